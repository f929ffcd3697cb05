// The URL a manager gives the others (forwarded requests go there, `managers list` shows it): its
// listening address, the host name for a wildcard one, or what --advertise-url says.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ManagerClient } from '../api/index.js';
import { startManager } from './manager.js';
import { testDatabase } from './test-postgres.js';

async function selfUrl(options: {
  host: string;
  advertiseUrl?: string;
}): Promise<{ url: string; self: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'sb-advertise-'));
  const manager = await startManager({
    ...(await testDatabase(dir)),
    ...options,
    dataDir: dir,
    port: 0,
    reconcileIntervalSeconds: 3600,
    log: () => {},
  });
  try {
    const port = new URL(manager.url).port;
    const view = await new ManagerClient(`http://127.0.0.1:${port}`, manager.adminToken ?? '').managers();
    return { url: manager.url, self: view.self.url };
  } finally {
    await manager.close();
    await rm(dir, { recursive: true, force: true });
  }
}

test('a manager on a wildcard address gives its host name; one on an address gives that; --advertise-url wins', async () => {
  const wildcard = await selfUrl({ host: '0.0.0.0' });
  assert.equal(wildcard.self, `http://${hostname()}:${new URL(wildcard.url).port}`);
  const loopback = await selfUrl({ host: '127.0.0.1' });
  assert.equal(loopback.self, loopback.url);
  const told = await selfUrl({ host: '0.0.0.0', advertiseUrl: 'http://m1.example:7100' });
  assert.equal(told.self, 'http://m1.example:7100');
});

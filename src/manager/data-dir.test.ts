// The data directory holds secrets: owner-only modes whatever it was created with. The fabric CA
// is made at the first start and kept (src/fabric-pki.test.ts: joins, refusals, revocation).
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ManagerClient } from '../api/index.js';
import { readCertificate, signedBy } from '../pki/index.js';
import { startManager, type RunningManager } from './manager.js';

let dir: string;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-data-dir-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const mode = async (file: string) => (await stat(file)).mode & 0o777;
const dbFiles = (data: string) =>
  ['manager.db', 'manager.db-wal', 'manager.db-shm'].map((f) => path.join(data, f));
const pkiFiles = (data: string) =>
  ['ca-key.pem', 'ca-cert.pem', 'manager-key.pem', 'manager-cert.pem'].map((f) => path.join(data, 'pki', f));

test('a data dir that existed with 0755 becomes 0700; the database, its WAL and SHM, the CA and the keys are 0600', async () => {
  const data = path.join(dir, 'loose');
  await mkdir(data, { mode: 0o755 });
  await chmod(data, 0o755);
  let manager: RunningManager | undefined = await startManager({ dataDir: data, log: () => {} });
  try {
    await new ManagerClient(manager.url, manager.adminToken ?? '').createPool({ name: 'p1' });
    assert.equal(await mode(data), 0o700);
    assert.equal(await mode(path.join(data, 'pki')), 0o700);
    for (const file of [...dbFiles(data), ...pkiFiles(data), path.join(data, 'admin-token')])
      assert.equal(await mode(file), 0o600, file);
    await manager.close();
    manager = undefined;
    // Loosened by hand (or by an older version): the next start tightens them again.
    await chmod(data, 0o755);
    await chmod(path.join(data, 'pki'), 0o755);
    await chmod(path.join(data, 'manager.db'), 0o644);
    manager = await startManager({ dataDir: data, log: () => {} });
    assert.equal(await mode(data), 0o700);
    assert.equal(await mode(path.join(data, 'pki')), 0o700);
    for (const file of dbFiles(data)) assert.equal(await mode(file), 0o600, file);
  } finally {
    await manager?.close();
  }
});

test('the fabric CA is made at the first start and kept; the manager certificate is its, with the manager role', async () => {
  const data = path.join(dir, 'ca');
  let manager = await startManager({ dataDir: data, log: () => {} });
  const ca = await readFile(path.join(data, 'pki', 'ca-cert.pem'), 'utf8');
  const cert = await readFile(path.join(data, 'pki', 'manager-cert.pem'), 'utf8');
  await manager.close();
  manager = await startManager({ dataDir: data, log: () => {} });
  try {
    assert.equal(
      await readFile(path.join(data, 'pki', 'ca-cert.pem'), 'utf8'),
      ca,
      'the CA changed at a restart',
    );
    assert.equal(await readFile(path.join(data, 'pki', 'manager-cert.pem'), 'utf8'), cert);
    assert.ok(signedBy(cert, ca));
    assert.equal(readCertificate(cert).role, 'manager');
    assert.equal(readCertificate(ca).role, 'ca');
  } finally {
    await manager.close();
  }
});

// The data directory holds secrets: owner-only modes whatever it was created with, and agent
// tokens never in clear in the database files. A stand-in agent answers the join and the polls.
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ManagerClient, type Datastore, type HostInfo, type VSwitch } from '../api/index.js';
import { startManager, type RunningManager } from './manager.js';

const AGENT_TOKEN = 'agent-token-4f9c2e71b8d3a6';
let dir: string;
let agent: Server;
let agentPort = 0;
/** Authorization headers the stand-in agent received. */
const seen: string[] = [];

const info: HostInfo = {
  name: 'h1',
  fabricAddress: '10.251.0.11',
  agentVersion: '0.1.0',
  qemuVersion: '7.2.0',
  accelerator: 'tcg',
  cpus: 2,
  memoryBytes: 2 ** 33,
  memoryFreeBytes: 2 ** 32,
  machineType: 'pc-q35-7.2',
  cpuModel: 'qemu64',
};
const datastores: Datastore[] = [
  { name: 'local', path: '/d', default: true, capacityBytes: 2 ** 34, freeBytes: 2 ** 33, class: 'standard' },
];
const vswitches: VSwitch[] = [{ name: 'vmsw0', bridge: 'vmsw0' }];

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-data-dir-'));
  agent = createServer((request, response) => {
    seen.push(request.headers.authorization ?? '');
    if (request.headers.authorization !== `Bearer ${AGENT_TOKEN}`) {
      response.statusCode = 401;
      response.end(
        JSON.stringify({ title: 'Unauthorized', status: 401, code: 'unauthorized', detail: 'token' }),
      );
      return;
    }
    const replies: Record<string, unknown> = {
      '/v1/host': info,
      '/v1/datastores': datastores,
      '/v1/vswitches': vswitches,
      '/v1/vms': [],
    };
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify(replies[request.url ?? ''] ?? {}));
  });
  await new Promise<void>((resolve) => agent.listen(0, '127.0.0.1', resolve));
  const address = agent.address();
  agentPort = typeof address === 'object' && address ? address.port : 0;
});

after(async () => {
  await new Promise<void>((resolve) => agent.close(() => resolve()));
  await rm(dir, { recursive: true, force: true });
});

const mode = async (file: string) => (await stat(file)).mode & 0o777;
const dbFiles = (data: string) =>
  ['manager.db', 'manager.db-wal', 'manager.db-shm'].map((f) => path.join(data, f));
/** Everything the database files hold, as text to search. */
async function dbBytes(data: string): Promise<string> {
  const parts = await Promise.all(dbFiles(data).map((f) => readFile(f).catch(() => Buffer.alloc(0))));
  return Buffer.concat(parts).toString('latin1');
}

test('a data dir that existed with 0755 becomes 0700; the database, its WAL and SHM and the key file are 0600', async () => {
  const data = path.join(dir, 'loose');
  await mkdir(data, { mode: 0o755 });
  await chmod(data, 0o755);
  let manager: RunningManager | undefined = await startManager({ dataDir: data, log: () => {} });
  try {
    await new ManagerClient(manager.url, manager.adminToken ?? '').createPool({ name: 'p1' });
    assert.equal(await mode(data), 0o700);
    for (const file of [...dbFiles(data), path.join(data, 'secrets.key'), path.join(data, 'admin-token')])
      assert.equal(await mode(file), 0o600, file);
    await manager.close();
    manager = undefined;
    // Loosened by hand (or by an older version): the next start tightens them again.
    await chmod(data, 0o755);
    await chmod(path.join(data, 'manager.db'), 0o644);
    manager = await startManager({ dataDir: data, log: () => {} });
    assert.equal(await mode(data), 0o700);
    for (const file of dbFiles(data)) assert.equal(await mode(file), 0o600, file);
  } finally {
    await manager?.close();
  }
});

test('an agent token is sealed at rest and still reaches the agent; one stored in clear is sealed at start', async () => {
  const data = path.join(dir, 'tokens');
  let manager = await startManager({ dataDir: data, log: () => {} });
  const client = () => new ManagerClient(manager.url, manager.adminToken ?? '');
  await client().addHost({ address: `127.0.0.1:${agentPort}`, token: AGENT_TOKEN });
  assert.ok(!(await dbBytes(data)).includes(AGENT_TOKEN), 'the token is in clear in the database files');
  seen.length = 0;
  await client().reconcileHost('h1');
  assert.ok(seen.length > 0);
  assert.deepEqual(new Set(seen), new Set([`Bearer ${AGENT_TOKEN}`]));
  await manager.close();

  // What an older manager left: the token in clear.
  const legacy = 'legacy-clear-token-77aa01';
  const sqlite = new Database(path.join(data, 'manager.db'));
  sqlite.prepare('update hosts set agent_token = ?').run(legacy);
  sqlite.close();
  assert.ok((await dbBytes(data)).includes(legacy));
  manager = await startManager({ dataDir: data, log: () => {} });
  try {
    const [row] = await manager.db.selectFrom('hosts').select('agent_token').execute();
    assert.match(row?.agent_token ?? '', /^sealed:v1:/);
    assert.ok(!(await dbBytes(data)).includes(legacy), 'the clear token is left in the database files');
    seen.length = 0;
    await client()
      .reconcileHost('h1')
      .catch(() => undefined);
    assert.ok(seen.includes(`Bearer ${legacy}`), 'the sealed legacy token is what reaches the agent');
  } finally {
    await manager.close();
  }
});

// Fuzz of the manager's REST API: for every operation of its OpenAPI document, generated bad
// requests (no or a wrong token, odd path parameters, unknown or out-of-range query parameters,
// bodies that are not JSON, not objects, with unknown fields or fields of the wrong type or out of
// bounds) must answer 4xx problem details, never 5xx, and change nothing in the inventory, the jobs
// or the change log. A real manager on SQLite in a temp dir, no agent; a failure prints the seed
// (replay it with FUZZ_SEED=<seed>).
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { ManagerClient, type Vm } from '../api/index.js';
import {
  assertRefused,
  badRequests,
  fuzzSeed,
  operations,
  type Answer,
  type BadRequest,
  type FuzzOperation,
} from '../../tools/api-fuzz.js';
import { SYSTEM } from './changes.js';
import { insertHost } from './inventory.js';
import { startManager, type RunningManager } from './manager.js';
import { applySnapshot, type AgentSnapshot } from './reconcile.js';

/** Cases per operation: about 35 operations, the whole file well under a minute on slow cores. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 60);

/** A well-formed job id naming no job. */
const NO_JOB = '00000000-0000-4000-8000-0000000000ff';

/** Path parameters naming objects that exist: a request wrong elsewhere must still change nothing. */
const EXISTING = { name: 'viewer', host: 'h2', pool: 'p1', vm: 'web1', id: NO_JOB };

let dir: string;
let manager: RunningManager;
let viewerSecret: string;
let ops: FuzzOperation[];
const internalErrors: string[] = [];

const vm = (name: string, i: number, mac: string): Vm => ({
  id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
  name,
  state: 'stopped',
  vcpus: 1,
  memoryMiB: 128,
  disks: [
    {
      id: 'root',
      datastore: 'local',
      path: `/d/${name}.qcow2`,
      format: 'qcow2',
      virtualSizeBytes: 2 ** 30,
      allocatedBytes: 1 << 20,
      nodeName: 'root-fmt',
    },
  ],
  nics: [{ id: 'net0', vswitch: 'vmsw0', mac, tap: 'tap0' }],
  machineType: 'pc-q35-7.2',
  cpuModel: 'qemu64',
  accelerator: 'tcg',
  createdAt: '2026-01-01T00:00:00.000Z',
});

async function seedHost(name: string, port: number, vms: Vm[]): Promise<void> {
  const snap: AgentSnapshot = {
    info: {
      name,
      fabricAddress: '10.251.0.11',
      agentVersion: '0.1.0',
      qemuVersion: '7.2.0',
      accelerator: 'tcg',
      cpus: 2,
      memoryBytes: 8 * 2 ** 30,
      memoryFreeBytes: 6 * 2 ** 30,
      machineType: 'pc-q35-7.2',
      cpuModel: 'qemu64',
    },
    datastores: [
      { name: 'local', path: '/d', default: true, capacityBytes: 10 * 2 ** 30, freeBytes: 5 * 2 ** 30 },
    ],
    vswitches: [{ name: 'vmsw0', bridge: 'vmsw0' }],
    vms,
  };
  const row = await manager.db.transaction().execute((tx) =>
    insertHost(tx, SYSTEM, {
      agentUrl: `http://127.0.0.1:${port}`,
      agentToken: 'x'.repeat(16),
      info: snap.info,
      poolId: null,
    }),
  );
  await applySnapshot(manager.db, row, snap);
}

/** Everything a request could change: tokens, pools, inventory, jobs and the change log. */
async function dbSnapshot(): Promise<string> {
  const tables = ['tokens', 'pools', 'hosts', 'vms', 'vm_disks', 'vm_nics', 'jobs', 'changes'] as const;
  const all = await Promise.all(tables.map((t) => manager.db.selectFrom(t).selectAll().execute()));
  return JSON.stringify(all);
}

/** The request exactly as generated (node:http, so `..` and stray `%` reach the server raw). */
function send(request: BadRequest): Promise<Answer> {
  const url = new URL(manager.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        method: request.method,
        path: request.url,
        headers: {
          ...request.headers,
          ...(request.body !== undefined ? { 'content-length': Buffer.byteLength(request.body) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: String(res.headers['content-type'] ?? ''),
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(request.body);
  });
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-manager-fuzz-'));
  manager = await startManager({
    dataDir: dir,
    reconcileIntervalSeconds: 3600,
    log: (message) => {
      if (message.startsWith('internal error')) internalErrors.push(message);
    },
  });
  const admin = new ManagerClient(manager.url, manager.adminToken ?? '');
  viewerSecret = (await admin.createToken({ name: 'viewer', role: 'read-only' })).secret;
  await seedHost('h1', 9, [vm('web1', 1, '52:54:00:00:00:01')]);
  await seedHost('h2', 10, []);
  await admin.createPool({ name: 'p1' });
  ops = [...operations(await admin.openApi())];
});

after(async () => {
  await manager.close();
  await rm(dir, { recursive: true, force: true });
});

test('the OpenAPI document lists every route the fuzz covers', () => {
  assert.ok(ops.length >= 30, `only ${ops.length} operations`);
});

test('bad requests to every operation: 4xx problem details, nothing changed', async (t) => {
  const seed = fuzzSeed();
  let cases = 0;
  for (const op of ops) {
    await t.test(`${op.method} ${op.path}`, async () => {
      const before = await dbSnapshot();
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            badRequests(op, manager.adminToken ?? '', { id: NO_JOB }),
            badRequests(op, manager.adminToken ?? '', EXISTING),
          ),
          async (request) => {
            cases++;
            assertRefused(request, await send(request));
            assert.equal(await dbSnapshot(), before, `${request.kind}: ${request.method} ${request.url}`);
          },
        ),
        { seed, numRuns: RUNS, endOnFailure: true },
      );
    });
  }
  assert.deepEqual(internalErrors, []);
  t.diagnostic(`${cases} cases over ${ops.length} operations, seed ${seed}`);
});

test('a read-only token may change nothing: 403 problem details on every other method', async () => {
  const before = await dbSnapshot();
  for (const op of ops.filter((o) => o.method !== 'GET')) {
    const url = op.path.replace(/\{([^}]+)\}/g, (_m, name: string) => (name === 'id' ? NO_JOB : 'fuzz-none'));
    const answer = await send({
      kind: 'read-only',
      method: op.method,
      url,
      headers: { authorization: `Bearer ${viewerSecret}`, 'content-type': 'application/json' },
      body: '{}',
      status: 403,
    });
    assertRefused({ kind: 'read-only', method: op.method, url, headers: {}, status: 403 }, answer);
  }
  assert.equal(await dbSnapshot(), before);
});

// Fuzz of the manager's REST API: for every operation of its OpenAPI document, generated bad
// requests (no or a wrong token, odd path parameters, unknown or out-of-range query parameters,
// bodies that are not JSON, not objects, with unknown fields or fields of the wrong type or out of
// bounds) must answer 4xx problem details, never 5xx, and change nothing in the inventory, the jobs
// or the change log. A real manager on SQLite in a temp dir, no agent; a failure prints the seed
// (replay it with FUZZ_SEED=<seed>).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ManagerClient } from '../api/index.js';
import type { ContractBreach } from '../api/index.js';
import {
  assertRefused,
  fuzzOperations,
  fuzzSeed,
  operations,
  sendRaw,
  type Answer,
  type BadRequest,
  type FuzzOperation,
} from '../../tools/api-fuzz.js';
import { startManager, type RunningManager } from './manager.js';
import { dbSnapshot, seedHost, testVm } from './test-inventory.js';
import { testDatabase } from './test-postgres.js';

/** Cases per operation: about 35 operations, the whole file well under a minute on slow cores. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 60);

/** A well-formed job id naming no job. */
const NO_JOB = '00000000-0000-4000-8000-0000000000ff';

/** Path parameters naming objects that exist: a request wrong elsewhere must still change nothing. */
const EXISTING = { name: 'viewer', host: 'h2', pool: 'p1', vm: 'web1', id: NO_JOB };

/** Answers outside the route table (error codes, and replies against their schemas). */
const breaches: ContractBreach[] = [];
let dir: string;
let manager: RunningManager;
let viewerSecret: string;
let ops: FuzzOperation[];
const internalErrors: string[] = [];

/** The request exactly as generated, over the manager's own HTTP server. */
const send = (request: BadRequest): Promise<Answer> => sendRaw(manager.url, request);

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-manager-fuzz-'));
  manager = await startManager({
    ...(await testDatabase(dir)),
    dataDir: dir,
    reconcileIntervalSeconds: 3600,
    onContractBreach: (breach) => breaches.push(breach),
    log: (message) => {
      if (message.startsWith('internal error')) internalErrors.push(message);
    },
  });
  const admin = new ManagerClient(manager.url, manager.adminToken ?? '');
  viewerSecret = (await admin.createToken({ name: 'viewer', role: 'read-only' })).secret;
  await seedHost(manager.db, 'h1', 9, [testVm('web1', 'stopped', 1)]);
  await seedHost(manager.db, 'h2', 10, []);
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
  const cases = await fuzzOperations(t, ops, {
    token: manager.adminToken ?? '',
    fills: [{ id: NO_JOB }, EXISTING],
    send,
    state: () => dbSnapshot(manager.db),
    seed,
    runs: RUNS,
  });
  assert.deepEqual(internalErrors, []);
  t.diagnostic(`${cases} cases over ${ops.length} operations, seed ${seed}`);
});

test('a read-only token may change nothing: 403 problem details on every other method', async () => {
  const before = await dbSnapshot(manager.db);
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
  assert.equal(await dbSnapshot(manager.db), before);
});

// Last: every answer of the tests above was one the route table declares.
test('every answer stayed inside the route table', () => {
  assert.deepEqual(breaches, []);
});

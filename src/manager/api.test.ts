// The REST API against a real manager (SQLite in a temp dir, loopback HTTP) with no agent: hosts
// and VMs enter the inventory through the code path reconciliation uses (applySnapshot).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ManagerClient } from '../api/index.js';
import type { ContractBreach } from '../api/index.js';
import { hostRow } from './inventory.js';
import { startManager, type RunningManager } from './manager.js';
import { applySnapshot } from './reconcile.js';
import {
  agentSnapshot as snapshot,
  dbSnapshot as tableRows,
  seedHost,
  rejects,
  testVm as vm,
} from './test-inventory.js';
import { testDatabase } from './test-postgres.js';

/** Answers outside the route table (error codes, and replies against their schemas). */
const breaches: ContractBreach[] = [];
let dir: string;
let manager: RunningManager;
let admin: ManagerClient;
let viewer: ManagerClient;

const changeCount = async () => (await admin.listChanges({ limit: 1000 })).items.length;
/** The whole database as rows, to prove a refused call changed nothing. */
const dbSnapshot = (): Promise<string> =>
  tableRows(manager.db, [
    'tokens',
    'pools',
    'hosts',
    'datastores',
    'vswitches',
    'vms',
    'vm_disks',
    'vm_nics',
    'jobs',
    'changes',
  ]);

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-manager-api-'));
  manager = await startManager({
    ...(await testDatabase(dir)),
    dataDir: dir,
    reconcileIntervalSeconds: 3600,
    log: () => {},
    onContractBreach: (breach) => breaches.push(breach),
  });
  assert.ok(manager.adminToken);
  admin = new ManagerClient(manager.url, manager.adminToken);
  const ro = await admin.createToken({ name: 'viewer', role: 'read-only' });
  viewer = new ManagerClient(manager.url, ro.secret);
  await seedHost(manager.db, 'h1', 9, [vm('web1', 'running', 1), vm('db1', 'stopped', 2)]);
  await seedHost(manager.db, 'h2', 9 + 1, []);
});

after(async () => {
  await manager.close();
  await rm(dir, { recursive: true, force: true });
});

test('the first start writes the admin token to <dataDir>/admin-token with mode 0600', async () => {
  assert.equal((await readFile(path.join(dir, 'admin-token'), 'utf8')).trim(), manager.adminToken);
  assert.equal((await stat(path.join(dir, 'admin-token'))).mode & 0o777, 0o600);
  assert.deepEqual((await admin.info()).token, { name: 'admin', role: 'admin' });
});

test('401 without or with a wrong token, 403 for read-only writes; neither changes anything', async () => {
  const beforeDb = await dbSnapshot();
  const anonymous = await fetch(`${manager.url}/api/v1/vms`);
  assert.equal(anonymous.status, 401);
  assert.equal(((await anonymous.json()) as { code: string }).code, 'unauthorized');
  await rejects(new ManagerClient(manager.url, 'sb_wrong').listVms(), 401);
  assert.equal((await fetch(`${manager.url}/api/v1/no-such-thing`)).status, 401);
  await rejects(admin.http.raw('GET', '/api/v1/no-such-thing'), 404);
  await rejects(new ManagerClient(manager.url, 'sb_wrong').createPool({ name: 'p' }), 401);
  await rejects(viewer.createPool({ name: 'nope' }), 403);
  await rejects(viewer.stopVm('web1'), 403);
  await rejects(viewer.createToken({ name: 'x', role: 'admin' }), 403);
  await rejects(viewer.listTokens(), 403);
  await rejects(viewer.removeHost('h1'), 403);
  assert.equal((await viewer.listVms()).items.length, 2, 'reads are allowed');
  assert.equal(await dbSnapshot(), beforeDb);
});

test('bad input is a 400 naming the field and the rule, and changes nothing', async () => {
  const beforeDb = await dbSnapshot();
  const e1 = await rejects(admin.createPool({ name: 'Not Valid' }), 400, 'name');
  assert.match(e1.message, /name: must be/);
  await rejects(
    admin.createVm({ host: 'h1', spec: { name: 'x', vcpus: 0, memoryMiB: 128 } }),
    400,
    'spec.vcpus',
  );
  await rejects(admin.createVm({ spec: { name: 'x', vcpus: 1, memoryMiB: 128 } }), 400, 'host');
  await rejects(
    admin.createVm({
      host: 'h1',
      spec: { name: 'x', vcpus: 1, memoryMiB: 128, disks: [{ datastore: 'nope', sizeBytes: 1 }] },
    }),
    400,
    'spec.disks.0.datastore',
  );
  await rejects(
    admin.createVm({
      host: 'h1',
      spec: { name: 'x', vcpus: 1, memoryMiB: 128, nics: [{ vswitch: 'nope' }] },
    }),
    400,
    'spec.nics.0.vswitch',
  );
  await rejects(
    admin.createVm({ host: 'h1', spec: { name: 'web1', vcpus: 1, memoryMiB: 128 } }),
    409,
    'spec.name',
  );
  await rejects(admin.createVm({ host: 'h9', spec: { name: 'x', vcpus: 1, memoryMiB: 128 } }), 404, 'host');
  await rejects(admin.listVms({ limit: 0 }), 400, 'limit');
  await rejects(admin.listVms({ cursor: 'garbage' }), 400, 'cursor');
  await rejects(admin.listChanges({ since: 'yesterday' }), 400, 'since');
  await rejects(
    admin.addHost({ address: 'no port here', joinToken: `${'x'.repeat(24)}.${'y'.repeat(43)}` }),
    400,
    'address',
  );
  await rejects(admin.getVm('missing'), 404);
  const raw = await fetch(`${manager.url}/api/v1/pools`, {
    method: 'POST',
    headers: { authorization: `Bearer ${manager.adminToken}`, 'content-type': 'application/json' },
    body: '{not json',
  });
  assert.equal(raw.status, 400);
  const body = (await raw.json()) as Record<string, unknown>;
  assert.equal(body.code, 'invalid-input');
  assert.equal(body.stack, undefined);
  assert.equal(await dbSnapshot(), beforeDb);
});

test('each pool and host mutation leaves exactly one change record by the token', async () => {
  const mutations: [string, () => Promise<unknown>, string][] = [
    ['create pool', () => admin.createPool({ name: 'rack1', description: 'first rack' }), 'created'],
    ['add host', () => admin.addPoolHost('rack1', 'h1'), 'setting-changed'],
    ['add host again (no change)', () => admin.addPoolHost('rack1', 'h1'), ''],
    ['remove host', () => admin.removePoolHost('rack1', 'h1'), 'setting-changed'],
    ['delete pool', () => admin.deletePool('rack1'), 'deleted'],
  ];
  for (const [what, call, action] of mutations) {
    const before = await changeCount();
    await call();
    const records = (await admin.listChanges({ actor: 'admin', limit: 1000 })).items;
    if (!action) {
      assert.equal(await changeCount(), before, what);
      continue;
    }
    assert.equal(await changeCount(), before + 1, what);
    assert.equal(records[0]?.action, action, what);
    assert.equal(records[0]?.object.kind, 'pool', what);
  }
  const membership = (await admin.listChanges({ kind: 'pool', text: 'h1', limit: 10 })).items;
  assert.deepEqual(
    membership.map((c) => c.changes[0]),
    [
      { field: 'hosts', before: ['h1'], after: [] },
      { field: 'hosts', before: [], after: ['h1'] },
    ],
  );
});

test('pools: a host is in one pool; a pool with hosts cannot be deleted; filters by pool', async () => {
  await admin.createPool({ name: 'a' });
  await admin.createPool({ name: 'b' });
  assert.deepEqual((await admin.addPoolHost('a', 'h2')).hosts, ['h2']);
  await rejects(admin.addPoolHost('b', 'h2'), 409, 'host');
  await rejects(admin.deletePool('a'), 409);
  assert.deepEqual(
    (await admin.listHosts({ pool: 'a' })).items.map((h) => h.name),
    ['h2'],
  );
  assert.equal((await admin.getHost('h2')).pool, 'a');
  await admin.removePoolHost('a', 'h2');
  await admin.deletePool('a');
  await admin.deletePool('b');
});

test('pool placement picks the connected member with room; none with room is 409 naming pool', async () => {
  const MiB = 1024 * 1024;
  await admin.createPool({ name: 'place' });
  await admin.addPoolHost('place', 'h1');
  await admin.addPoolHost('place', 'h2');
  // Both answered their last poll, h1 with little memory left (the seeded agents do not exist).
  await manager.db.updateTable('hosts').set({ state: 'connected' }).execute();
  await manager.db
    .updateTable('hosts')
    .set({ memory_free_bytes: 100 * MiB })
    .where('name', '=', 'h1')
    .execute();
  const { job } = await admin.createVm({ pool: 'place', spec: { name: 'placed', vcpus: 1, memoryMiB: 512 } });
  assert.equal(job.progress.details.host, 'h2');
  assert.equal((await admin.waitForJob(job.id, 60_000)).state, 'failed', 'nothing listens for h2');
  await rejects(
    admin.createVm({ pool: 'place', spec: { name: 'huge', vcpus: 1, memoryMiB: 65536 } }),
    409,
    'pool',
  );
  await rejects(
    admin.createVm({
      pool: 'place',
      spec: { name: 'x', vcpus: 1, memoryMiB: 64, nics: [{ vswitch: 'other' }] },
    }),
    409,
    'pool',
  );
  await manager.db
    .updateTable('hosts')
    .set({ memory_free_bytes: 6 * 1024 * MiB })
    .where('name', '=', 'h1')
    .execute();
  await admin.removePoolHost('place', 'h1');
  await admin.removePoolHost('place', 'h2');
  await admin.deletePool('place');
});

test('what appeared, changed and vanished behind the manager is drift: recorded by agent:<host>, with issues', async () => {
  const host = await hostRow(manager.db, 'h2');
  await applySnapshot(manager.db, host, snapshot('h2', [vm('sneaky', 'running', 7)]));
  let records = (await admin.listChanges({ objectId: vm('sneaky', 'running', 7).id })).items;
  assert.deepEqual(
    records.map((r) => [r.actor, r.action, r.host]),
    [['agent:h2', 'created', 'h2']],
  );
  const driftOf = async (name: string) =>
    (await admin.listStorageIssues({ state: 'all', rule: 'drift', limit: 1000 })).items
      .filter((i) => i.subject.name === name)
      .map((i) => [i.subject.kind, i.subject.host, i.active, i.message])
      .reverse();
  assert.deepEqual(await driftOf('sneaky'), [
    [
      'vm',
      'h2',
      true,
      "VM sneaky appeared on host h2: defined on the host's agent directly, not through the manager",
    ],
  ]);
  // The same report again changes nothing.
  const count = await changeCount();
  await applySnapshot(
    manager.db,
    await hostRow(manager.db, 'h2'),
    snapshot('h2', [vm('sneaky', 'running', 7)]),
  );
  assert.equal(await changeCount(), count);
  assert.equal((await driftOf('sneaky')).length, 1);
  await applySnapshot(
    manager.db,
    await hostRow(manager.db, 'h2'),
    snapshot('h2', [vm('sneaky', 'stopped', 7)]),
  );
  await applySnapshot(manager.db, await hostRow(manager.db, 'h2'), snapshot('h2', []));
  records = (await admin.listChanges({ objectId: vm('sneaky', 'running', 7).id })).items;
  assert.deepEqual(
    records.map((r) => [
      r.actor,
      r.action,
      r.changes.map((c) => `${c.field}:${String(c.before)}->${String(c.after)}`),
    ]),
    [
      ['agent:h2', 'deleted', []],
      ['agent:h2', 'state-changed', ['state:running->stopped']],
      ['agent:h2', 'created', []],
    ],
  );
  assert.deepEqual(
    (await driftOf('sneaky')).map((d) => d[3]),
    [
      "VM sneaky appeared on host h2: defined on the host's agent directly, not through the manager",
      "VM sneaky vanished from host h2: deleted on the host's agent directly, not through the manager",
    ],
  );
  await rejects(admin.getVm('sneaky'), 404);
});

test("a VM whose name or MAC is another VM's is not adopted: a critical drift issue while it is there", async () => {
  const h1 = await hostRow(manager.db, 'h1');
  const h1Vms = [vm('web1', 'running', 1), vm('db1', 'stopped', 2)];
  const twinName = vm('web1', 'stopped', 60);
  const twinMac = { ...vm('other', 'stopped', 61), nics: vm('db1', 'stopped', 2).nics };
  const beforeWeb1 = await admin.getVm('web1');
  await applySnapshot(manager.db, await hostRow(manager.db, 'h2'), snapshot('h2', [twinName, twinMac]));
  assert.equal((await admin.getVm('web1')).id, beforeWeb1.id, 'web1 stays the one on h1');
  await rejects(admin.getVm('other'), 404);
  const conflicts = async () =>
    (await admin.listStorageIssues({ state: 'all', rule: 'drift-conflict', limit: 1000 })).items.map((i) => [
      i.subject.name,
      i.severity,
      i.active,
    ]);
  assert.deepEqual((await conflicts()).sort(), [
    ['other', 'critical', true],
    ['web1', 'critical', true],
  ]);
  const [record] = (await admin.listChanges({ objectId: twinMac.id })).items;
  assert.equal(record?.actor, 'agent:h2');
  assert.deepEqual(record?.changes[0], { field: 'adopted', before: null, after: false });
  assert.match(
    String(record?.changes[1]?.after),
    /its MAC 52:54:00:00:00:02 is already used by VM db1 on host h1/,
  );
  // Polled again: nothing new; once h2 no longer has them, the issues end.
  const count = await changeCount();
  await applySnapshot(manager.db, await hostRow(manager.db, 'h2'), snapshot('h2', [twinName, twinMac]));
  assert.equal(await changeCount(), count);
  await applySnapshot(manager.db, await hostRow(manager.db, 'h2'), snapshot('h2', []));
  assert.deepEqual((await conflicts()).sort(), [
    ['other', 'critical', false],
    ['web1', 'critical', false],
  ]);
  await applySnapshot(manager.db, h1, snapshot('h1', h1Vms));
});

test('a VM reported by two hosts stays where it is, not where a failed move left an incoming shell', async () => {
  const real = vm('twice', 'crashed', 8);
  const shell = { ...real, state: 'incoming' as const };
  const h1Vms = [vm('web1', 'running', 1), vm('db1', 'stopped', 2)];
  await applySnapshot(manager.db, await hostRow(manager.db, 'h1'), snapshot('h1', [...h1Vms, real]));
  // Both reports, in either order and repeatedly: the row stays on h1 (its disk is there).
  for (let round = 0; round < 2; round++) {
    for (const [name, vms] of [
      ['h2', [shell]],
      ['h1', [...h1Vms, real]],
    ] as const) {
      await applySnapshot(manager.db, await hostRow(manager.db, name), snapshot(name, [...vms]));
      const shown = await admin.getVm('twice');
      assert.deepEqual([shown.host, shown.state], ['h1', 'crashed'], `after ${name}'s report`);
      // The shell is flagged with the VM while h2 reports it.
      assert.deepEqual(
        shown.otherCopies?.map((c) => `${c.host} ${c.state}`),
        ['h2 incoming'],
        `after ${name}'s report`,
      );
    }
  }
  // Once h1 no longer has it, the only copy left is what the inventory shows.
  await applySnapshot(manager.db, await hostRow(manager.db, 'h1'), snapshot('h1', h1Vms));
  await applySnapshot(manager.db, await hostRow(manager.db, 'h2'), snapshot('h2', [shell]));
  const only = await admin.getVm('twice');
  assert.deepEqual([only.host, only.otherCopies], ['h2', undefined]);
  await applySnapshot(manager.db, await hostRow(manager.db, 'h2'), snapshot('h2', []));
});

test('lists paginate with a stable cursor and filter by host and state', async () => {
  const h2 = await hostRow(manager.db, 'h2');
  const many = Array.from({ length: 25 }, (_, i) =>
    vm(`bulk-${String(i).padStart(2, '0')}`, i % 2 ? 'running' : 'stopped', 100 + i),
  );
  await applySnapshot(manager.db, h2, snapshot('h2', many));
  const seen: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await admin.listVms({ host: 'h2', limit: 10, ...(cursor ? { cursor } : {}) });
    assert.ok(page.items.length <= 10);
    seen.push(...page.items.map((v) => v.name));
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  assert.deepEqual(
    seen,
    many.map((v) => v.name),
  );
  const running = await admin.listVms({ host: 'h2', state: 'running', limit: 1000 });
  assert.equal(running.items.length, 12);
  assert.ok(running.items.every((v) => v.state === 'running' && v.host === 'h2'));
  assert.equal((await admin.listVms({ name: 'bulk-1', limit: 1000 })).items.length, 10);
  const byId = await admin.getVm(many[3]!.id);
  assert.equal(byId.name, 'bulk-03');
  assert.deepEqual(
    byId.disks.map((d) => d.id),
    ['root'],
  );
  assert.equal((await admin.listDatastores({ host: 'h1' })).items[0]?.default, true);
  assert.equal((await admin.listVSwitches()).items.length, 2);
  const changesPage1 = await admin.listChanges({ limit: 5 });
  const changesPage2 = await admin.listChanges({ limit: 5, cursor: changesPage1.nextCursor ?? '' });
  assert.ok(changesPage1.items[4]!.id > changesPage2.items[0]!.id);
  const future = await admin.listChanges({ since: new Date(Date.now() + 60_000).toISOString() });
  assert.equal(future.items.length, 0);
  const past = await admin.listChanges({ until: new Date(Date.now() + 60_000).toISOString(), limit: 1 });
  assert.equal(past.items.length, 1);
});

test('a job against an unreachable host fails with a recorded reason; events stream until the end', async () => {
  const beforeCount = await changeCount();
  const { job, url } = await admin.startVm('db1');
  assert.equal(url, `/api/v1/jobs/${job.id}`);
  assert.equal(job.kind, 'vm-start');
  assert.equal(job.createdBy, 'admin');
  const seen: string[] = [];
  const done = await admin.waitForJob(job.id, 60_000, (j) => seen.push(j.state));
  assert.equal(done.state, 'failed');
  assert.equal(done.error?.code, 'host-unreachable');
  assert.ok(seen.length >= 1 && seen.at(-1) === 'failed');
  assert.equal(await changeCount(), beforeCount, 'a failed job changed nothing');
  await rejects(admin.cancelJob(job.id), 409);
  assert.equal((await admin.listJobs({ targetId: job.target.id })).items[0]?.id, job.id);
});

test('the OpenAPI document covers every route from the same schemas', async () => {
  const doc = await viewer.openApi();
  const paths = doc.paths as Record<string, Record<string, { requestBody?: unknown }>>;
  for (const p of [
    '/api/v1/vms',
    '/api/v1/vms/{vm}',
    '/api/v1/jobs/{id}/events',
    '/api/v1/changes',
    '/api/v1/tokens',
  ]) {
    assert.ok(paths[p], p);
  }
  assert.ok(paths['/api/v1/vms']?.post?.requestBody);
});

test('host removal forgets its inventory with one change record', async () => {
  const before = await changeCount();
  await admin.removeHost('h1');
  assert.equal(await changeCount(), before + 1);
  const [record] = (await admin.listChanges({ kind: 'host', limit: 1 })).items;
  assert.equal(record?.action, 'deleted');
  assert.deepEqual(record?.changes, [{ field: 'vms', before: ['db1', 'web1'], after: [] }]);
  assert.equal((await admin.listVms({ host: 'h2', limit: 1 })).items.length, 1);
  await rejects(admin.getVm('web1'), 404);
});

test('a restart fails a job it cannot resume, with its reason and a change record by system', async () => {
  const now = new Date().toISOString();
  const id = '11111111-2222-4333-8444-555555555555';
  await manager.db
    .insertInto('jobs')
    .values({
      id,
      kind: 'vm-start',
      state: 'running',
      target_kind: 'vm',
      target_id: many0(),
      target_name: 'bulk-00',
      created_by: 'admin',
      params: JSON.stringify({ vmId: many0() }),
      progress: JSON.stringify({ phase: 'starting', percent: 10, message: '', details: {} }),
      checkpoint: null,
      result: null,
      error: null,
      cancel_requested: 0,
      created_at: now,
      started_at: now,
      finished_at: null,
      updated_at: now,
    })
    .execute();
  await manager.close();
  manager = await startManager({
    ...(await testDatabase(dir)),
    dataDir: dir,
    reconcileIntervalSeconds: 3600,
    log: () => {},
  });
  admin = new ManagerClient(manager.url, manager.adminToken ?? '');
  const job = await admin.getJob(id);
  assert.equal(job.state, 'failed');
  assert.equal(job.error?.code, 'manager-restarted');
  const [record] = (await admin.listChanges({ objectId: id })).items;
  assert.equal(record?.actor, 'system');
  assert.equal(record?.object.kind, 'job');
  assert.deepEqual(record?.changes[0], { field: 'state', before: 'running', after: 'failed' });
});

function many0(): string {
  return `00000000-0000-4000-8000-${String(100).padStart(12, '0')}`;
}

// Last: every answer of the tests above was one the route table declares.
test('every answer stayed inside the route table', () => {
  assert.deepEqual(breaches, []);
});

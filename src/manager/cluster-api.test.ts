// Clusters, VM HA settings and host maintenance through the REST API of a real manager (SQLite in
// a temp dir, loopback HTTP) with no agents: hosts and VMs enter the inventory as reconciliation
// adds them. A drain whose VMs can go nowhere (no agent answers) fails naming each VM and leaves
// the host entering maintenance; the drain that moves VMs is in src/drain.lab.test.ts.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ApiError, ChangeRecord, ManagerClient } from '../api/index.js';
import {
  dbSnapshot,
  rejects,
  seedHost,
  startTestManager,
  testVm as vm,
  type TestManager,
} from './test-inventory.js';

let t: TestManager;
let admin: ManagerClient;

const TABLES = ['clusters', 'hosts', 'vms', 'jobs', 'changes'] as const;
const unchanged = () => dbSnapshot(t.manager.db, TABLES);

before(async () => {
  t = await startTestManager('sb-cluster-api-');
  admin = t.admin;
  await seedHost(t.manager.db, 'h1', 9, [
    vm('web1', 'running', 1),
    vm('db1', 'running', 2),
    vm('old1', 'stopped', 3),
  ]);
  await seedHost(t.manager.db, 'h2', 10, [vm('web2', 'running', 4)]);
  await seedHost(t.manager.db, 'h3', 11, [vm('cold3', 'stopped', 5)]);
  await seedHost(t.manager.db, 'h4', 12, []);
});

after(async () => {
  assert.deepEqual(t.breaches, []);
  await t.close();
});

/** The newest change records of one object, oldest first, as `actor action field:before->after`. */
async function records(object: string): Promise<string[]> {
  const page = await admin.listChanges({ object, limit: 100 });
  const field = (c: ChangeRecord) =>
    c.changes.map((f) => `${f.field}:${JSON.stringify(f.before)}->${JSON.stringify(f.after)}`).join(' ');
  return page.items
    .filter((c) => c.actor !== 'system')
    .map((c) => `${c.actor} ${c.action}${c.changes.length ? ` ${field(c)}` : ''} [${c.riskRule}]`)
    .reverse();
}

test('clusters: create, list, show, delete; a taken or bad name is refused naming the field, changing nothing', async () => {
  const c = await admin.createCluster({ name: 'rack1' });
  assert.deepEqual([c.name, c.hosts], ['rack1', []]);
  const before = await unchanged();
  await rejects(admin.createCluster({ name: 'rack1' }), 409, 'name');
  await rejects(admin.createCluster({ name: 'Rack 1' }), 400, 'name');
  await rejects(admin.http.raw('POST', '/api/v1/clusters', { name: 'x', hosts: [] }), 400, 'hosts');
  await rejects(t.viewer.createCluster({ name: 'mine' }), 403);
  assert.equal(await unchanged(), before);
  assert.deepEqual(
    (await admin.listClusters()).items.map((x) => x.name),
    ['rack1'],
  );
  assert.equal((await t.viewer.getCluster('rack1')).id, c.id);
  await rejects(admin.getCluster('nope'), 404);
  await admin.deleteCluster('rack1');
  await rejects(admin.getCluster(c.id), 404);
  assert.deepEqual(await records('rack1'), ['admin created [created]', 'admin deleted [cluster-deleted]']);
});

test('join gives the lowest free lease host id; a host in another cluster is refused; a cluster with hosts is not deleted', async () => {
  await admin.createCluster({ name: 'c1' });
  await admin.createCluster({ name: 'c2' });
  await admin.joinCluster('c1', 'h1');
  await admin.joinCluster('c1', 'h2');
  let c1 = await admin.joinCluster('c1', 'h3');
  assert.deepEqual(
    c1.hosts.map((h) => [h.name, h.leaseHostId, h.maintenance]),
    [
      ['h1', 1, 'none'],
      ['h2', 2, 'none'],
      ['h3', 3, 'none'],
    ],
  );
  // Joining again changes nothing (no record either).
  const before = await unchanged();
  assert.deepEqual((await admin.joinCluster('c1', 'h2')).hosts, c1.hosts);
  assert.equal(await unchanged(), before);
  const other = await rejects(admin.joinCluster('c2', 'h1'), 409, 'host');
  assert.match(
    other.message,
    /h1 is already in cluster c1; evict it there first \(silobreak cluster evict c1 h1\)/,
  );
  await rejects(admin.joinCluster('c1', 'h9'), 404, 'host');
  await rejects(admin.joinCluster('c9', 'h4'), 404);
  const busy = await rejects(admin.deleteCluster('c1'), 409);
  assert.match(busy.message, /cluster c1 still has hosts \(h1, h2, h3\): evict them first/);
  assert.equal(await unchanged(), before);
  // An evicted host's id is free again: the next join takes it.
  await admin.evictClusterHost('c1', 'h2');
  c1 = await admin.joinCluster('c1', 'h4');
  assert.deepEqual(
    c1.hosts.map((h) => [h.name, h.leaseHostId]),
    [
      ['h1', 1],
      ['h3', 3],
      ['h4', 2],
    ],
  );
  // Host and VM reads say where they belong.
  const h4 = await admin.getHost('h4');
  assert.deepEqual([h4.cluster, h4.leaseHostId, h4.maintenance], ['c1', 2, 'none']);
  const h2 = await admin.getHost('h2');
  assert.deepEqual([h2.cluster, h2.leaseHostId], [null, null]);
  assert.equal((await admin.getVm('web1')).cluster, 'c1');
  assert.equal((await admin.getVm('web2')).cluster, null);
  assert.deepEqual(
    (await admin.listHosts({ cluster: 'c1' })).items.map((h) => h.name),
    ['h1', 'h3', 'h4'],
  );
  await rejects(admin.evictClusterHost('c2', 'h1'), 400, 'host');
  assert.deepEqual((await records('c1')).slice(-2), [
    'admin setting-changed hosts:["h1","h2","h3"]->["h1","h3"] [cluster-membership]',
    'admin setting-changed hosts:["h1","h3"]->["h1","h3","h4"] [cluster-membership]',
  ]);
});

test('VM HA settings: PUT replaces them (defaults fill in), PATCH changes some, null restores a default; bad input names the field', async () => {
  assert.deepEqual((await admin.getVm('web1')).ha, { protected: false, priority: 500, preferredHosts: [] });
  let web1 = await admin.setVmHa('web1', { protected: true, priority: 800, preferredHosts: ['h3', 'h4'] });
  assert.deepEqual(web1.ha, { protected: true, priority: 800, preferredHosts: ['h3', 'h4'] });
  web1 = await admin.patchVmHa('web1', { priority: 900 });
  assert.deepEqual(web1.ha, { protected: true, priority: 900, preferredHosts: ['h3', 'h4'] });
  web1 = await admin.patchVmHa('web1', { priority: null, preferredHosts: null });
  assert.deepEqual(web1.ha, { protected: true, priority: 500, preferredHosts: [] });
  // A PUT without priority or hosts puts the defaults back.
  await admin.setVmHa('db1', { protected: false, priority: 10, preferredHosts: ['h2'] });
  assert.deepEqual((await admin.setVmHa('db1', { protected: false })).ha, {
    protected: false,
    priority: 500,
    preferredHosts: [],
  });
  const before = await unchanged();
  const missing = await rejects(
    admin.setVmHa('web1', { protected: true, preferredHosts: ['h2', 'h9'] }),
    400,
    'preferredHosts.1',
  );
  assert.match(missing.message, /preferredHosts\.1: no host named h9/);
  await rejects(admin.setVmHa('web1', { protected: true, priority: 1001 }), 400, 'priority');
  await rejects(admin.setVmHa('web1', { protected: true, priority: -1 }), 400, 'priority');
  await rejects(
    admin.setVmHa('web1', { protected: true, preferredHosts: ['h2', 'h2'] }),
    400,
    'preferredHosts.1',
  );
  await rejects(admin.patchVmHa('web1', { protected: 'yes' as unknown as boolean }), 400, 'protected');
  await rejects(admin.http.raw('PUT', '/api/v1/vms/web1/ha', { protected: true, prio: 1 }), 400, 'prio');
  await rejects(admin.http.raw('PUT', '/api/v1/vms/web1/ha', { priority: 1 }), 400, 'protected');
  await rejects(t.viewer.setVmHa('web1', { protected: false }), 403);
  await rejects(admin.setVmHa('nope', { protected: false }), 404);
  assert.equal(await unchanged(), before);
  assert.deepEqual(await records('web1'), [
    'admin setting-changed ha.protected:false->true ha.priority:500->800 ha.preferredHosts:[]->["h3","h4"] [settings-changed]',
    'admin setting-changed ha.priority:800->900 [settings-changed]',
    'admin setting-changed ha.priority:900->500 ha.preferredHosts:["h3","h4"]->[] [settings-changed]',
  ]);
});

test('evict is refused while HA-protected VMs run on the host, naming them and both ways out', async () => {
  // web1 (protected, running) is on h1, in c1.
  const before = await unchanged();
  const refused = await rejects(admin.evictClusterHost('c1', 'h1'), 409, 'host');
  assert.match(
    refused.message,
    /h1 runs HA-protected VMs \(web1\): drain it first \(silobreak host drain h1\) or unprotect them \(silobreak vm ha web1 --unprotect\)/,
  );
  assert.equal(await unchanged(), before);
  // A protected VM that is stopped does not hold the host.
  await admin.setVmHa('cold3', { protected: true });
  assert.deepEqual(
    (await admin.evictClusterHost('c1', 'h3')).hosts.map((h) => h.name),
    ['h1', 'h4'],
  );
  await admin.joinCluster('c1', 'h3');
});

test('maintenance: a host with no running VM is in at once; it takes no new VM, no start, no move, no placement; resume ends it', async () => {
  // h3 has only a stopped VM: no drain.
  const answer = await admin.enterMaintenance('h3');
  assert.ok('host' in answer);
  assert.equal(answer.host.maintenance, 'in');
  assert.equal((await admin.getCluster('c1')).hosts.find((h) => h.name === 'h3')?.maintenance, 'in');
  assert.deepEqual(
    (await admin.listHosts({ maintenance: 'in' })).items.map((h) => h.name),
    ['h3'],
  );
  const before = await unchanged();
  const create = await rejects(
    admin.createVm({ host: 'h3', spec: { name: 'new1', vcpus: 1, memoryMiB: 64 } }),
    409,
    'host',
  );
  assert.match(
    create.message,
    /host h3 is in maintenance: cannot create new1 there; .*silobreak host resume h3/,
  );
  const start = await rejects(admin.startVm('cold3'), 409);
  assert.match(start.message, /host h3 is in maintenance: cannot start cold3 there/);
  const plan = await admin.planMove('web2', { to: 'h3' });
  const check = plan.checks.find((c) => c.check === 'target-maintenance');
  assert.equal(check?.ok, false);
  assert.equal(check?.field, 'to');
  assert.match(check?.detail ?? '', /host h3 is in maintenance and takes no VM/);
  const suggested = await admin.suggestPlacement({ memoryBytes: 64 * 2 ** 20, diskBytes: 2 ** 20 });
  assert.ok(!suggested.candidates.some((c) => c.host === 'h3'));
  assert.match(suggested.refused.find((r) => r.host === 'h3')?.reason ?? '', /h3 is in maintenance/);
  assert.equal(await unchanged(), before);
  // Entering again changes nothing; a read-only token may not.
  assert.ok('host' in (await admin.enterMaintenance('h3')));
  await rejects(t.viewer.enterMaintenance('h3'), 403);
  await rejects(t.viewer.resumeHost('h3'), 403);
  assert.equal(await unchanged(), before);
  assert.equal((await admin.resumeHost('h3')).maintenance, 'none');
  assert.equal((await admin.resumeHost('h3')).maintenance, 'none');
  assert.deepEqual((await records('h3')).slice(-2), [
    'admin state-changed maintenance:"none"->"in" [host-maintenance]',
    'admin state-changed maintenance:"in"->"none" [host-maintenance]',
  ]);
});

test('a drain whose VMs can go nowhere fails naming each, by priority; the host stays entering (no starts) until resume', async () => {
  // h1 runs web1 and db1; no agent answers, so every move check fails.
  await admin.setVmHa('db1', { protected: true, priority: 990 });
  const answer = await admin.enterMaintenance('h1');
  assert.ok('job' in answer, 'running VMs: a drain job');
  assert.equal(answer.job.kind, 'host-drain');
  assert.deepEqual(answer.job.target, { kind: 'host', id: (await admin.getHost('h1')).id, name: 'h1' });
  assert.equal((await admin.getHost('h1')).maintenance, 'entering');
  const job = await admin.waitForJob(answer.job.id, 60_000);
  assert.equal(job.state, 'failed');
  assert.equal(job.error?.code, 'conflict');
  const detail = job.error?.detail ?? '';
  assert.match(
    detail,
    /^drain of h1 left 2 VMs on it, which stays entering maintenance \(no new VMs; silobreak host resume h1 ends it, silobreak host drain h1 tries again\): /,
  );
  // By priority: db1 (990) was tried first; each names why it cannot leave, once.
  assert.match(
    detail,
    /: db1: source host h1 is unreachable \(host h1 is unreachable: connect ECONNREFUSED [^)]*\): start its agent or check the network, then retry; web1: source host h1 is unreachable/,
  );
  assert.equal((await admin.getHost('h1')).maintenance, 'entering');
  await rejects(admin.startVm('old1'), 409);
  assert.equal((await admin.resumeHost('h1')).maintenance, 'none');
  assert.deepEqual(
    (await records('h1')).filter((r) => r.includes('maintenance')),
    [
      'admin state-changed maintenance:"none"->"entering" [host-maintenance]',
      'admin state-changed maintenance:"entering"->"none" [host-maintenance]',
    ],
  );
  const entering = (await admin.listChanges({ object: 'h1', limit: 100 })).items.find((c) =>
    c.changes.some((f) => f.after === 'entering'),
  );
  assert.equal(entering?.jobId, job.id, 'the drain job made the host enter');
});

test('a move under way to or from the host holds its drain; entering again answers the same drain; resume cancels it', async () => {
  // h4 runs nothing; a move of web2 from h2 to h4 is under way (its job row, as the move job keeps it).
  const [h2, h4, web2] = await Promise.all([admin.getHost('h2'), admin.getHost('h4'), admin.getVm('web2')]);
  const moveId = '6f1c0a52-5a8e-4d35-9a55-0d1f3f7a9b11';
  const now = new Date().toISOString();
  await t.manager.db
    .insertInto('jobs')
    .values({
      id: moveId,
      kind: 'vm-move',
      state: 'running',
      target_kind: 'vm',
      target_id: web2.id,
      target_name: 'web2',
      created_by: 'admin',
      params: JSON.stringify({ vmId: web2.id, sourceHostId: h2.id, targetHostId: h4.id }),
      progress: JSON.stringify({ phase: 'mirror-disks', percent: 10, message: '', details: {} }),
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
  const first = await admin.enterMaintenance('h4');
  assert.ok('job' in first, 'a move to h4 under way: a drain waits for it');
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const running = await admin.getJob(first.job.id);
  assert.equal(running.state, 'running');
  assert.equal((await admin.getHost('h4')).maintenance, 'entering');
  const again = await admin.enterMaintenance('h4');
  assert.ok('job' in again);
  assert.equal(again.job.id, first.job.id, 'the drain under way, not a second one');
  assert.equal((await admin.resumeHost('h4')).maintenance, 'none');
  assert.equal((await admin.waitForJob(first.job.id, 30_000)).state, 'cancelled');
  await t.manager.db
    .updateTable('jobs')
    .set({ state: 'cancelled', finished_at: new Date().toISOString() })
    .where('id', '=', moveId)
    .execute();
  assert.deepEqual((await records('h4')).slice(-2), [
    'admin state-changed maintenance:"none"->"entering" [host-maintenance]',
    'admin state-changed maintenance:"entering"->"none" [host-maintenance]',
  ]);
});

test('parallel joins get distinct lease host ids; a host joined to two clusters at once ends in exactly one', async () => {
  const names = Array.from({ length: 20 }, (_, i) => `p${i}`);
  for (const [i, name] of names.entries()) await seedHost(t.manager.db, name, 100 + i, []);
  await admin.createCluster({ name: 'par' });
  await Promise.all(names.map((n) => admin.joinCluster('par', n)));
  const ids = (await admin.getCluster('par')).hosts.map((h) => h.leaseHostId).sort((a, b) => a - b);
  assert.deepEqual(
    ids,
    names.map((_, i) => i + 1),
  );
  await admin.createCluster({ name: 'left' });
  await admin.createCluster({ name: 'right' });
  await seedHost(t.manager.db, 'both', 200, []);
  const answers = await Promise.allSettled([
    admin.joinCluster('left', 'both'),
    admin.joinCluster('right', 'both'),
  ]);
  assert.deepEqual(
    answers
      .map((a) =>
        a.status === 'fulfilled'
          ? 'joined'
          : `${(a.reason as ApiError).status} ${(a.reason as ApiError).field}`,
      )
      .sort(),
    ['409 host', 'joined'],
  );
  const host = await admin.getHost('both');
  assert.ok(host.cluster === 'left' || host.cluster === 'right');
  assert.equal(host.leaseHostId, 1);
});

test("join refuses a host that does not see the storage holding the cluster's leases, naming it, changing nothing", async () => {
  await seedHost(t.manager.db, 'h9', 20, []);
  await admin.createCluster({ name: 'leased' });
  const storage = '6f1c3a52-8d1e-4c3b-9a57-0d2a4b6e7f10';
  await t.manager.db
    .updateTable('clusters')
    .set({ lease_storage_id: storage })
    .where('name', '=', 'leased')
    .execute();
  const before = await unchanged();
  const refused = await rejects(admin.joinCluster('leased', 'h9'), 409, 'host');
  assert.match(refused.message, new RegExp(`h9 has no datastore on storage ${storage}`));
  assert.equal(await unchanged(), before);
  const h9 = await t.manager.db
    .selectFrom('hosts')
    .select('id')
    .where('name', '=', 'h9')
    .executeTakeFirstOrThrow();
  await t.manager.db
    .insertInto('datastores')
    .values({
      id: 'ds-h9-shared',
      host_id: h9.id,
      name: 'shared',
      path: '/mnt/shared',
      is_default: 0,
      capacity_bytes: 1,
      free_bytes: 1,
      class: 'standard',
      kind: 'shared',
      storage_id: storage,
    })
    .execute();
  assert.deepEqual(
    (await admin.joinCluster('leased', 'h9')).hosts.map((h) => h.name),
    ['h9'],
  );
  await admin.evictClusterHost('leased', 'h9');
});

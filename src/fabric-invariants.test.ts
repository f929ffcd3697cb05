// The fabric's invariants held by the manager's database and by every agent, end to end without
// QEMU: a real manager (SQLite in a temp dir) joined to two real agent servers in this process
// (loopback HTTP, VMs defined without disks, never started). Issue 28: concurrent creates with one
// name or one MAC (exactly one wins, the others 409 naming the field); drift: what is made or
// deleted on an agent directly is recorded by `agent:<host>` with an issue, also when it came and
// went between two polls, and what the manager did itself is not.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { AgentClient, ApiError, ManagerClient, type ContractBreach } from './api/index.js';
import { startTestAgent, type TestAgent } from './agent/index.js';
import { startManager, testDatabase, type RunningManager } from './manager/index.js';

const AGENT_TOKEN = 'fabric-invariants-agent-token-0123';
/** Parallel requests per case: the issue's figure. */
const PARALLEL = 50;

const breaches: ContractBreach[] = [];
let dir: string;
let manager: RunningManager;
let admin: ManagerClient;
const agents: TestAgent[] = [];
/** Clients straight to each agent, past the manager. */
const direct: AgentClient[] = [];

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-fabric-'));
  manager = await startManager({
    ...(await testDatabase(path.join(dir, 'manager'))),
    dataDir: path.join(dir, 'manager'),
    reconcileIntervalSeconds: 3600,
    log: () => {},
    onContractBreach: (breach) => breaches.push(breach),
  });
  admin = new ManagerClient(manager.url, manager.adminToken ?? '');
  for (const hostName of ['host1', 'host2']) {
    const agent = await startTestAgent({
      token: AGENT_TOKEN,
      prefix: `sb-fabric-${hostName}-`,
      hostName,
      datastoreSubdir: 'ds1',
    });
    await mkdir(path.join(agent.dir, 'ds1'));
    agents.push(agent);
    // Behind the manager's back: the break-glass socket; the manager joins it over mutual TLS.
    direct.push(new AgentClient(await agent.listenBreakGlass()));
    await admin.addHost(await agent.listen());
  }
});

after(async () => {
  await manager.close();
  for (const agent of agents) await agent.close();
  await rm(dir, { recursive: true, force: true });
});

/** The status and field of each answer: 202 accepted, else the problem's status and field. */
async function outcomes(calls: Promise<unknown>[]): Promise<string[]> {
  const settled = await Promise.allSettled(calls);
  return settled.map((s) => {
    if (s.status === 'fulfilled') return '202';
    const error: unknown = s.reason;
    return error instanceof ApiError ? `${error.status} ${error.field ?? ''}` : String(error);
  });
}

const count = (list: string[]) =>
  list.reduce<Record<string, number>>((acc, o) => ({ ...acc, [o]: (acc[o] ?? 0) + 1 }), {});

async function settle(): Promise<void> {
  for (;;) {
    const active = await admin.listJobs({ limit: 1000 });
    if (active.items.every((j) => ['succeeded', 'failed', 'cancelled'].includes(j.state))) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test(`${PARALLEL} parallel creates with one MAC on two hosts: exactly one is accepted, the others 409 naming the MAC`, async () => {
  const mac = '52:54:00:28:00:01';
  const answers = await outcomes(
    Array.from({ length: PARALLEL }, (_, i) =>
      admin.createVm({
        host: `host${(i % 2) + 1}`,
        spec: { name: `same-mac-${i}`, vcpus: 1, memoryMiB: 64, nics: [{ vswitch: 'sw0', mac }] },
      }),
    ),
  );
  assert.deepEqual(count(answers), { '202': 1, '409 spec.nics.0.mac': PARALLEL - 1 });
  await settle();
  const holders = (await admin.listVms({ limit: 1000 })).items.filter((v) =>
    v.nics.some((n) => n.mac === mac),
  );
  assert.equal(holders.length, 1, 'one VM holds the MAC');
  // The agents agree: one VM with that MAC on the two hosts together.
  const onAgents = (await Promise.all(agents.map((a) => a.core.vms.list())))
    .flat()
    .filter((v) => v.nics.some((n) => n.mac === mac));
  assert.equal(onAgents.length, 1);
});

test(`${PARALLEL} parallel creates with one name on two hosts: exactly one is accepted, the others 409 naming the name`, async () => {
  const answers = await outcomes(
    Array.from({ length: PARALLEL }, (_, i) =>
      admin.createVm({ host: `host${(i % 2) + 1}`, spec: { name: 'same-name', vcpus: 1, memoryMiB: 64 } }),
    ),
  );
  assert.deepEqual(count(answers), { '202': 1, '409 spec.name': PARALLEL - 1 });
  await settle();
  const vm = await admin.getVm('same-name');
  assert.equal((await admin.listVms({ name: 'same-name', limit: 1000 })).items.length, 1);
  // Its name and MACs are free again once it is deleted.
  const deleted = await admin.deleteVm(vm.id);
  assert.equal((await admin.waitForJob(deleted.job.id, 30_000)).state, 'succeeded');
  const again = await admin.createVm({ host: 'host2', spec: { name: 'same-name', vcpus: 1, memoryMiB: 64 } });
  assert.equal((await admin.waitForJob(again.job.id, 30_000)).state, 'succeeded');
});

/** The change records of one object (id or, for a datastore, `host/name`), oldest first, as `actor action`. */
async function recordsOf(filter: { objectId?: string; object?: string }): Promise<string[]> {
  const page = await admin.listChanges({ ...filter, limit: 1000 });
  return page.items.map((c) => `${c.actor} ${c.action}`).reverse();
}
const issues = async (rule: 'drift' | 'drift-conflict') =>
  (await admin.listStorageIssues({ rule, state: 'all', limit: 1000 })).items.map(
    (i) => `${i.subject.kind} ${i.subject.name} ${i.active ? 'active' : 'ended'}: ${i.message}`,
  );

test('a VM defined and deleted on an agent directly is drift: agent:<host> records and issues, between polls too', async () => {
  const host1 = direct[0]!;
  const seen = await host1.createVm({ name: 'side-vm', vcpus: 1, memoryMiB: 64 });
  await manager.reconcileNow();
  assert.equal((await admin.getVm('side-vm')).host, 'host1');
  assert.deepEqual(await recordsOf({ objectId: seen.id }), ['agent:host1 created']);
  // Made and deleted between two polls: only the agent's journal saw it.
  const brief = await host1.createVm({ name: 'brief-vm', vcpus: 1, memoryMiB: 64 });
  await host1.deleteVm('brief-vm', true);
  await host1.deleteVm('side-vm', true);
  await manager.reconcileNow();
  assert.deepEqual(await recordsOf({ objectId: seen.id }), ['agent:host1 created', 'agent:host1 deleted']);
  assert.deepEqual(await recordsOf({ objectId: brief.id }), ['agent:host1 created', 'agent:host1 deleted']);
  const drift = await issues('drift');
  for (const expected of [
    /^vm side-vm active: VM side-vm appeared on host host1: defined on the host's agent directly/,
    /^vm side-vm active: VM side-vm vanished from host host1: deleted on the host's agent directly/,
    /^vm brief-vm active: VM brief-vm appeared on host host1 at .* and vanished again at .*, between two polls/,
  ])
    assert.ok(
      drift.some((d) => expected.test(d)),
      `${String(expected)} in ${drift.join('\n')}`,
    );
  // The storage rules' evaluation after a collection leaves drift issues alone.
  await manager.collectStatsNow();
  assert.deepEqual(await issues('drift'), drift);
  // Polled again: nothing new.
  const count = (await admin.listChanges({ limit: 1000 })).items.length;
  await manager.reconcileNow();
  assert.equal((await admin.listChanges({ limit: 1000 })).items.length, count);
});

test('what the manager made and deleted itself between two polls is not drift', async () => {
  const created = await admin.createVm({ host: 'host2', spec: { name: 'own-vm', vcpus: 1, memoryMiB: 64 } });
  const vm = await admin.waitForJob(created.job.id, 30_000);
  const deleted = await admin.deleteVm('own-vm');
  assert.equal((await admin.waitForJob(deleted.job.id, 30_000)).state, 'succeeded');
  await admin.addDatastore('host2', {
    name: 'own-ds',
    path: path.join(agents[1]!.dir, 'own-ds'),
    probe: false,
  });
  await admin.removeDatastore('host2', 'own-ds');
  const before = await issues('drift');
  await manager.reconcileNow();
  assert.deepEqual(await issues('drift'), before);
  assert.deepEqual(await recordsOf({ objectId: vm.target.id }), ['admin created', 'admin deleted']);
  assert.deepEqual(await recordsOf({ object: 'host2/own-ds' }), ['admin created', 'admin deleted']);
});

test('a datastore added or removed on an agent directly is drift, between polls too', async () => {
  const host2 = direct[1]!;
  await host2.addDatastore({ name: 'side-ds', path: path.join(agents[1]!.dir, 'side-ds'), probe: false });
  await host2.addDatastore({ name: 'brief-ds', path: path.join(agents[1]!.dir, 'brief-ds'), probe: false });
  await host2.removeDatastore('brief-ds');
  await manager.reconcileNow();
  assert.deepEqual(await recordsOf({ object: 'host2/side-ds' }), ['agent:host2 created']);
  assert.deepEqual(await recordsOf({ object: 'host2/brief-ds' }), [
    'agent:host2 created',
    'agent:host2 deleted',
  ]);
  const drift = await issues('drift');
  assert.ok(
    drift.some((d) =>
      d.startsWith('datastore host2/side-ds active: datastore host2/side-ds was added on the host'),
    ),
  );
  assert.ok(
    drift.some((d) =>
      /^datastore host2\/brief-ds active: .* appeared on host host2 at .* and vanished again/.test(d),
    ),
  );
  await host2.removeDatastore('side-ds');
  await manager.reconcileNow();
  assert.deepEqual(await recordsOf({ object: 'host2/side-ds' }), [
    'agent:host2 created',
    'agent:host2 deleted',
  ]);
});

test("a VM made on an agent with another VM's MAC is not adopted: a critical issue until it is gone", async () => {
  const created = await admin.createVm({
    host: 'host1',
    spec: { name: 'owner', vcpus: 1, memoryMiB: 64, nics: [{ vswitch: 'sw0', mac: '52:54:00:28:00:77' }] },
  });
  assert.equal((await admin.waitForJob(created.job.id, 30_000)).state, 'succeeded');
  // host2's agent cannot know host1's MACs: it takes the VM, and the manager refuses it.
  const twin = await direct[1]!.createVm({
    name: 'twin',
    vcpus: 1,
    memoryMiB: 64,
    nics: [{ vswitch: 'sw0', mac: '52:54:00:28:00:77' }],
  });
  await manager.reconcileNow();
  await assert.rejects(admin.getVm('twin'), (e: unknown) => e instanceof ApiError && e.status === 404);
  assert.deepEqual(await issues('drift-conflict'), [
    'vm twin active: VM twin on host host2 is not in the inventory: its MAC 52:54:00:28:00:77 is already used by VM owner on host host1. Rename or remove it on the host',
  ]);
  assert.deepEqual(await recordsOf({ objectId: twin.id }), ['agent:host2 created']);
  await direct[1]!.deleteVm('twin', true);
  await manager.reconcileNow();
  assert.match((await issues('drift-conflict'))[0] ?? '', /^vm twin ended/);
});

test("the manager's add-datastore: control characters refused at its door, other bad paths by the agent, each 400 naming path", async () => {
  const before = (await admin.listDatastores({ limit: 1000 })).items.map(
    (d) => `${d.host}/${d.name} ${d.path}`,
  );
  for (const [bad, detail] of [
    ['/srv/a\u0000b', /path: must not contain control characters .*U\+0000/],
    ['/srv/\u001b[31mred', /path: must not contain control characters .*U\+001B/],
    ['/srv/\u202eevil', /path: must not contain control characters .*U\+202E/],
    ['/proc/self', /host host1: path: \/proc\/self .*is in \/proc, a system directory/],
    ['/', /host host1: path: \/ is a system directory/],
    [path.join(dir, 'manager'), /host host1: path: .* is not under the datastore roots of this host/],
  ] as const) {
    const refused = await admin.addDatastore('host1', { name: 'bad', path: bad, probe: false }).then(
      () => assert.fail(`${JSON.stringify(bad)} was taken`),
      (e: unknown) => e,
    );
    assert.ok(refused instanceof ApiError);
    assert.deepEqual(
      [refused.status, refused.code, refused.field],
      [400, 'invalid-input', 'path'],
      refused.message,
    );
    assert.match(refused.message, detail);
  }
  assert.deepEqual(
    (await admin.listDatastores({ limit: 1000 })).items.map((d) => `${d.host}/${d.name} ${d.path}`),
    before,
  );
});

test('every answer stayed inside the route table', () => {
  assert.deepEqual(breaches, []);
});

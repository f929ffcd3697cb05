// The fabric's invariants held by the manager's database and by every agent, end to end without
// QEMU: a real manager (SQLite in a temp dir) joined to two real agent servers in this process
// (loopback HTTP, VMs defined without disks, never started). Issue 28: concurrent creates with one
// name or one MAC (exactly one wins, the others 409 naming the field).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ApiError, ManagerClient, type ContractBreach } from './api/index.js';
import { startTestAgent, type TestAgent } from './agent/index.js';
import { startManager, type RunningManager } from './manager/index.js';

const AGENT_TOKEN = 'fabric-invariants-agent-token-0123';
/** Parallel requests per case: the figure. */
const PARALLEL = 50;

const breaches: ContractBreach[] = [];
let dir: string;
let manager: RunningManager;
let admin: ManagerClient;
const agents: TestAgent[] = [];

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-fabric-'));
  manager = await startManager({
    dataDir: path.join(dir, 'manager'),
    reconcileIntervalSeconds: 3600,
    log: () => {},
    onContractBreach: (breach) => breaches.push(breach),
  });
  admin = new ManagerClient(manager.url, manager.adminToken ?? '');
  for (const hostName of ['host1', 'host2']) {
    const agent = await startTestAgent({ token: AGENT_TOKEN, prefix: `sb-fabric-${hostName}-`, hostName });
    agents.push(agent);
    const url = await agent.listen();
    await admin.addHost({ address: url, token: AGENT_TOKEN });
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

test('every answer stayed inside the route table', () => {
  assert.deepEqual(breaches, []);
});

// Draining a host as a user does it, `silobreak host drain host1`, while two busy guests on it
// write records with fsync and dirty memory: both leave live for host2 (two standalone lab hosts:
// shared-nothing moves, within the default two move slots, by HA priority), keep running there
// (same boot, uptime on) with every record they wrote before the drain, host1 ends `in`
// maintenance and takes no move until `silobreak host resume host1`; the change log says so.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Job, ManagerClient } from './api/index.js';
import {
  assertGuestKeptRunning,
  guestLife,
  guestRecordCount,
  inGuest,
  labCli,
  labDown,
  labWithManager,
  startGuestWorkloads,
  verifyGuestRecords,
  waitForPing,
  type GuestLife,
  type Lab,
  type LabHost,
  type RecordsFile,
} from './lab/index.js';

const LAB = 'drain';
/** The two busy guests: the second gets the higher HA priority, so it leaves first. */
const VMS = ['busy1', 'busy2'] as const;
const RECORDS = '/data/drain';

let lab: Lab;
let api: ManagerClient;
let h1: LabHost;
let h2: LabHost;

const cli = (args: string[]) => labCli(lab, args, 600_000);

/** `silobreak vm create <vm> --start` on host1 with the lab's n-th VM address, and some data on its disk. */
async function createBusyGuest(vm: string, n: number): Promise<void> {
  const address = lab.vmAddress(n);
  const created = await cli([
    'vm',
    'create',
    vm,
    '--host',
    h1.name,
    '--memory',
    '384M',
    '--disk',
    '2G',
    '--nic',
    'vmsw0',
    '--ip',
    address.cidr,
    '--start',
  ]);
  assert.equal(created.code, 0, created.stderr);
  await waitForPing(lab, address.ip);
  const fill = await inGuest(h1, vm, ['/bin/dd', 'if=/dev/urandom', 'of=/data/fill', 'bs=1M', 'count=50']);
  assert.equal(fill.exitCode, 0, fill.stderr);
  await inGuest(h1, vm, ['/bin/sync']);
}

before(
  async () => {
    let hosts: LabHost[];
    ({ lab, api, hosts } = await labWithManager(LAB));
    [h1, h2] = hosts as [LabHost, LabHost];
    for (const [i, vm] of VMS.entries()) await createBusyGuest(vm, i + 1);
  },
  { timeout: 900_000 },
);

after(
  async () => {
    // SB_KEEP_LAB=1 keeps the lab (agents' logs, datastores) to look at after a failure.
    if (!process.env.SB_KEEP_LAB) await labDown({ name: LAB });
  },
  { timeout: 300_000 },
);

test(
  'host drain moves two busy guests off live by priority, within the move slots; they run on with every record; resume ends it',
  { timeout: 1_200_000 },
  async () => {
    const ha = await cli(['vm', 'ha', 'busy2', '--priority', '900']);
    assert.equal(ha.code, 0, ha.stderr);
    const since = (await api.listChanges({ limit: 1 })).items[0]?.id ?? 0;
    const lives = new Map<string, GuestLife>();
    for (const vm of VMS) {
      await startGuestWorkloads(h1, vm, RECORDS);
      lives.set(vm, await guestLife(h1, vm));
    }
    const records = new Map<string, RecordsFile>();
    for (const vm of VMS)
      records.set(vm, { file: RECORDS, atLeast: await guestRecordCount(h1, vm, RECORDS) });

    const drained = await cli(['host', 'drain', h1.name]);
    assert.equal(drained.code, 0, drained.stdout + drained.stderr);
    console.log(`# ${drained.stdout.trim().split('\n').slice(-4).join('\n# ')}`);
    assert.match(drained.stdout, /succeeded: host-drain host host1/);
    assert.match(drained.stdout, /Moved:\s+(busy2 -> host2, busy1 -> host2|busy1 -> host2, busy2 -> host2)/);
    assert.match(drained.stdout, /Host:\s+host1: in maintenance/);

    // Both run on host2 as they ran before: same boot, uptime on, every record there.
    for (const vm of VMS) {
      const managed = await api.getVm(vm);
      assert.deepEqual([managed.host, managed.state], [h2.name, 'running'], vm);
      await assertGuestKeptRunning(h2, vm, lives.get(vm)!);
    }
    for (const vm of VMS) {
      const verified = await verifyGuestRecords(h2, vm, [records.get(vm)!]);
      console.log(`# ${vm}: ${verified.summary}`);
    }
    assert.equal((await api.getHost(h1.name)).maintenance, 'in');
    assert.equal((await api.listVms({ host: h1.name })).items.length, 0);

    // The moves: busy2 (priority 900) first, both under way at once (two slots per host).
    const moves = (await api.listJobs({ kind: 'vm-move', limit: 10 })).items.reverse();
    assert.deepEqual(
      moves.map((j: Job) => `${j.target.name} ${j.state}`),
      ['busy2 succeeded', 'busy1 succeeded'],
    );
    const [first, second] = moves as [Job, Job];
    assert.ok(
      Date.parse(second.startedAt ?? '') < Date.parse(first.finishedAt ?? ''),
      `the second move started (${second.startedAt}) before the first ended (${first.finishedAt})`,
    );
    const changes = (await api.listChanges({ object: h1.name, limit: 100 })).items
      .filter((c) => c.id > since && c.changes.some((f) => f.field === 'maintenance'))
      .reverse()
      .map((c) => `${c.actor} ${c.changes.map((f) => `${String(f.before)}->${String(f.after)}`).join(' ')}`);
    assert.deepEqual(changes, ['admin none->entering', 'admin entering->in']);

    // In maintenance host1 takes no move; after resume it does.
    const refused = await cli(['vm', 'move', 'busy1', '--to', h1.name, '--dry-run']);
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(refused.stdout, /target-maintenance\s+NO\s+host host1 is in maintenance and takes no VM/);
    const resumed = await cli(['host', 'resume', h1.name]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal((await api.getHost(h1.name)).maintenance, 'none');
    const plan = await api.planMove('busy1', { to: h1.name });
    assert.equal(plan.ok, true, JSON.stringify(plan.checks.filter((c) => !c.ok)));
  },
);

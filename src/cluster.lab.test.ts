// A cluster on shared storage, as a user runs it (issue 30): three lab hosts mount the lab's
// storage server (sftp over the fabric, lab/shared-storage.ts) as their `shared` datastore and
// run sanlock; a fourth host is standalone. Through the CLI: the cluster is made and the manager
// puts every member into the cluster's lockspace; a busy HA-protected guest whose disk is on the
// shared datastore moves by memory alone (the kernel's byte counters on the fabric say no disk
// went) with its lease handed over; then its host's link is cut with its QEMU alive (split
// brain): the host's own sanlock kills that QEMU when it can no longer renew its lease, the
// manager restarts the VM on another member only once the lease is free (never two QEMUs on one
// image), the guest answers ping and every record it wrote before the cut verifies; the host comes
// back and the VM's left definition there is removed.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import type { Job, ManagerClient } from './api/index.js';
import {
  fabricLink,
  guestLife,
  guestRecordCount,
  inGuest,
  labAgent,
  labCli,
  labDown,
  labUp,
  startGuestWorkloads,
  until,
  verifyGuestRecords,
  waitForPing,
  type Lab,
  type LabHost,
} from './lab/index.js';
import { ManagerClient as Manager } from './api/index.js';

const LAB = 'cluster';
const VM = 'ha1';
const RECORDS = '/data/ha';
const MiB = 1024 * 1024;

let lab: Lab;
let api: ManagerClient;
let hosts: LabHost[];

const cli = (args: string[]) => labCli(lab, args, 600_000);
const host = (name: string) => hosts.find((h) => h.name === name)!;
/** A counter of a namespace's fabric link, as the kernel keeps it. */
const linkBytes = (namespace: string, counter: 'tx_bytes' | 'rx_bytes') =>
  Number(
    execFileSync('ip', ['netns', 'exec', namespace, 'cat', `/sys/class/net/fabric0/statistics/${counter}`])
      .toString()
      .trim(),
  );
/** The fabric counters a move's bytes are bounded by (storage traffic crosses the same links). */
const counters = () => ({
  host1: linkBytes(host('host1').namespace, 'tx_bytes'),
  others: ['host2', 'host3'].reduce((n, h) => n + linkBytes(host(h).namespace, 'tx_bytes'), 0),
  storage: linkBytes(lab.storage!.namespace, 'rx_bytes'),
});
/** What sanlock on `h` says: the leases held there, by resource (the VM's id) and pid. */
const leasesOn = (h: LabHost) =>
  execFileSync('sanlock', ['client', 'status'], {
    env: { ...process.env, SANLOCK_RUN_DIR: h.shared!.sanlockRunDir },
  })
    .toString()
    .split('\n')
    .filter((l) => l.startsWith('r '));
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

before(async () => {
  lab = await labUp({
    name: LAB,
    hosts: 4,
    demo: false,
    accelerator: 'tcg',
    sharedStorage: true,
    sharedStorageHosts: 3,
  });
  api = new Manager(lab.manager!.url, lab.manager!.token, 120_000);
  hosts = lab.hosts;
});
after(async () => {
  if (lab && !process.env.KEEP_LAB) await labDown({ name: LAB });
});

test('a cluster of the three hosts on the shared storage: each joins its lockspace', async () => {
  for (const args of [
    ['cluster', 'create', 'c1'],
    ...['host1', 'host2', 'host3'].map((h) => ['cluster', 'join', 'c1', h]),
  ]) {
    const run = await cli(args);
    assert.equal(run.code, 0, `${args.join(' ')}: ${run.stderr}`);
  }
  const started = Date.now();
  for (const h of hosts.slice(0, 3)) {
    const lockspace = await until(
      `${h.name} in the lockspace`,
      async () => {
        const info = await labAgent(h).host();
        return info.lockspace?.state === 'joined' ? info.lockspace : undefined;
      },
      120_000,
    );
    assert.equal(lockspace.datastore, 'shared', `${h.name}'s lockspace is on its shared datastore`);
  }
  console.log(`lockspace joined by 3 hosts in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.equal((await labAgent(host('host4')).host()).lockspace, undefined, 'host4 is in no lockspace');
});

test('a busy HA guest on the shared datastore moves by memory alone, its lease handed over', async () => {
  const h1 = host('host1');
  const h2 = host('host2');
  const address = lab.vmAddress(1);
  const created = await cli([
    'vm',
    'create',
    VM,
    '--host',
    'host1',
    '--memory',
    '256M',
    '--disk',
    '2G@shared',
    '--nic',
    'vmsw0',
    '--ip',
    address.cidr,
    '--start',
  ]);
  assert.equal(created.code, 0, created.stderr);
  await waitForPing(lab, address.ip);
  const ha = await cli(['vm', 'ha', VM, '--protect', '--priority', '900']);
  assert.equal(ha.code, 0, ha.stderr);
  const fill = await inGuest(h1, VM, ['/bin/dd', 'if=/dev/urandom', 'of=/data/fill', 'bs=1M', 'count=320']);
  assert.equal(fill.exitCode, 0, fill.stderr);
  await inGuest(h1, VM, ['/bin/sync']);
  const vmId = (await api.getVm(VM)).id;
  assert.ok(
    leasesOn(h1).some((l) => l.includes(vmId)),
    `host1's sanlock holds the lease of ${VM}: ${leasesOn(h1).join('; ')}`,
  );
  await startGuestWorkloads(h1, VM, RECORDS);

  const dry = await cli(['vm', 'move', VM, '--to', 'host2', '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /memory only/i, `the dry run says memory only: ${dry.stdout}`);
  const before = await guestLife(h1, VM);
  const start = counters();
  const moved = await cli(['vm', 'move', VM, '--to', 'host2']);
  assert.equal(moved.code, 0, moved.stderr);
  const end = counters();
  // What host1 sent to its peers: all it sent but what reached the storage server; what the
  // storage server received from the other hosts is at most all they sent.
  const toStorage = end.storage - start.storage;
  const sent = end.host1 - start.host1 - toStorage + (end.others - start.others);
  const job = (await api.listJobs({ kind: 'vm-move', targetId: vmId })).items[0] as Job;
  const result = job.result as { diskBytes?: number; memoryBytes?: number } | undefined;
  console.log(
    `memory-only move: host1 sent ${(sent / MiB).toFixed(1)} MiB on its fabric link; job result ${JSON.stringify(result)}`,
  );
  // The guest's memory (256 MiB, parts of it sent again as it dirties them) and its writes to the
  // storage server during the move; its 320 MiB of data on disk never crossed.
  assert.ok(sent < 320 * MiB + 256 * MiB, `host1 sent ${sent} bytes: no disk was copied`);
  const life = await guestLife(h2, VM);
  assert.equal(life.bootId, before.bootId, 'the guest kept running (same boot)');
  assert.ok(life.uptimeSeconds > before.uptimeSeconds, 'its uptime went on');
  assert.ok(
    leasesOn(h2).some((l) => l.includes(vmId) && l.endsWith(`p ${life.qemuPid}`)),
    `host2's QEMU holds the lease now: ${leasesOn(h2).join('; ')}`,
  );
  assert.ok(!leasesOn(h1).some((l) => l.includes(vmId)), 'host1 holds it no more');
});

test('split brain: host2 cut off with its QEMU alive is fenced by its own lease before the VM restarts elsewhere', async () => {
  const h2 = host('host2');
  const atLeast = await guestRecordCount(h2, VM, RECORDS);
  const oldPid = (await labAgent(h2).getVm(VM)).pid!;
  const cutAt = Date.now();
  fabricLink(h2, 'down');
  // When host2's QEMU stops: sanlock kills it once host2 cannot renew its lease for 8 I/O timeouts.
  let fencedAt: number | undefined;
  const watch = setInterval(() => {
    if (fencedAt === undefined && !alive(oldPid)) fencedAt = Date.now();
  }, 100);
  try {
    const restarted = await until(
      `${VM} running on another host`,
      async () => {
        const vm = await api.getVm(VM);
        return vm.host !== 'host2' && vm.state === 'running' ? vm : undefined;
      },
      300_000,
    );
    await waitForPing(lab, lab.vmAddress(1).ip);
    const answeredAt = Date.now();
    const target = host(restarted.host);
    const startedAt = Date.parse((await labAgent(target).getVm(VM)).startedAt!);
    const jobs = await api.listJobs({ kind: 'ha-restart', targetId: restarted.id });
    const job = jobs.items[0];
    console.log(
      `HA restart: host2 fenced ${fencedAt === undefined ? 'never' : `${((fencedAt - cutAt) / 1000).toFixed(1)} s`} after the cut; ${VM} started on ${restarted.host} ${((startedAt - cutAt) / 1000).toFixed(1)} s after it and answered ping ${((answeredAt - cutAt) / 1000).toFixed(1)} s after it; job ${JSON.stringify(job?.result)}`,
    );
    assert.equal(job?.state, 'succeeded', `the ha-restart job: ${JSON.stringify(job)}`);
    assert.equal(job.createdBy, 'ha', "the manager's HA loop restarted it");
    assert.ok(fencedAt !== undefined, "host2's QEMU was killed by its sanlock");
    assert.ok(fencedAt < startedAt, 'fenced before the new QEMU started: never two QEMUs on one image');
    const verified = await verifyGuestRecords(target, VM, [{ file: RECORDS, atLeast }]);
    console.log(`records after the restart: ${verified.summary}`);
  } finally {
    clearInterval(watch);
    fabricLink(h2, 'up');
  }
});

test('host2 back: the VM runs on exactly one host, its left definition on host2 removed, host2 in the lockspace again', async () => {
  const h2 = host('host2');
  await until(
    `${VM}'s definition gone from host2`,
    async () => ((await labAgent(h2).listVms()).some((v) => v.name === VM) ? undefined : true),
    180_000,
  );
  const runningOn = [];
  for (const h of hosts) if ((await labAgent(h).listVms()).some((v) => v.name === VM)) runningOn.push(h.name);
  assert.equal(runningOn.length, 1, `defined on exactly one host: ${runningOn.join(', ')}`);
  await until(
    'host2 in the lockspace again',
    async () => ((await labAgent(h2).host()).lockspace?.state === 'joined' ? true : undefined),
    120_000,
  );
  const changes = await cli(['change', 'list', '--object', VM, '--json']);
  assert.equal(changes.code, 0, changes.stderr);
  assert.match(changes.stdout, /"ha"/, 'the change log names the HA loop');
});

test('the standalone host does not see the shared datastore: a move there copies the disk, and asking to keep it there is refused', async () => {
  const dry = await cli(['vm', 'move', VM, '--to', 'host4', '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.doesNotMatch(dry.stdout, /memory only/i, 'not memory only to host4');
  const refused = await cli(['vm', 'move', VM, '--to', 'host4', '--datastore', 'shared', '--dry-run']);
  assert.notEqual(refused.code, 0, 'refused');
  assert.match(refused.stderr + refused.stdout, /datastore/, `names the datastore: ${refused.stderr}`);
});

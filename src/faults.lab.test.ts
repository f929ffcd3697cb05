// Faults in the middle of a live move, the way they happen: a guest that writes to its disk with
// fsync and dirties memory while the fault strikes, moves started with the CLI as a user would,
// and each fault held to land in the phase it names (a slow link or a capped stream keeps the move
// there, and the source agent's own view confirms the phase at the strike). Each ends with what
// the user is promised: the VM runs on exactly one host and the inventory says which, the guest
// kept running (same boot, same QEMU: a VM "started again from its disk" fails), its QEMU holds
// nothing of the move, every record the guest wrote before the strike verifies from its disk,
// nothing of the move is left on the other host within 60 s of it answering again, and the job
// and the change log say what happened.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { ManagerClient, type Job } from './api/index.js';
import { AgentMigrationClient } from './api/index.js';
import {
  labAgent,
  assertGuestKeptRunning,
  createBusyVm,
  fabricLink,
  guestLife,
  guestRecordCount,
  inGuest,
  labCli,
  labDown,
  labWithManager,
  lastChangeId,
  listenersIn,
  qemusIn,
  restartLabAgent,
  restartLabManager,
  slowFabricLink,
  startGuestWorkloads,
  strikeInPhase,
  verifyGuestRecords,
  vmChangesSince,
  within,
  type CopyPhase,
  type GuestLife,
  type Lab,
  type LabHost,
  type RecordsFile,
} from './lab/index.js';
import { assertNoMoveLeftovers } from './qemu-leftovers.js';

const LAB = 'fault';
const VM = 'busy';
/** The promise: clean within this long of the faulty host answering again. */
const CLEAN_WITHIN_MS = 60_000;

let lab: Lab;
let api: ManagerClient;
let h1: LabHost;
let h2: LabHost;

const agentOf = (host: LabHost) => labAgent(host, 180_000);

const cli = (args: string[]) => labCli(lab, args, 300_000);
const guest = (host: LabHost, command: string[], detach = false) => inGuest(host, VM, command, { detach });

const life = (host: LabHost) => guestLife(host, VM);

const startWorkloads = (host: LabHost, file: string) => startGuestWorkloads(host, VM, file);
/** Every record of `records` verifies from the guest's disk, at least as many as before the strike. */
const verifyRecords = async (host: LabHost, records: RecordsFile) =>
  (await verifyGuestRecords(host, VM, [records])).summary;
const linkOf = fabricLink;

/** SIGKILL to a lab process the lab knows the pid of (never to a process group: no pid 0). */
function killProcess(pid: number | undefined): void {
  assert.ok(pid !== undefined && pid > 0, 'the lab knows the pid');
  process.kill(pid, 'SIGKILL');
}

/** Kills host2's incoming QEMU (there is exactly one while a move to it runs). */
function killIncomingQemu(): void {
  const qemus = [...qemusIn(h2).keys()];
  assert.equal(qemus.length, 1, 'the incoming QEMU runs on host2');
  for (const pid of qemus) process.kill(pid, 'SIGKILL');
}

/** Nothing of the VM or of a move on `host`: no VM, QEMU, listening port, NBD export or image. */
async function assertClean(host: LabHost): Promise<void> {
  assert.deepEqual(
    (await agentOf(host).listVms()).map((v) => `${v.name} ${v.state}`),
    [],
    `no VM left on ${host.name}`,
  );
  assert.deepEqual([...qemusIn(host).keys()], [], `no QEMU left on ${host.name}`);
  assert.deepEqual(listenersIn(host), [], `no NBD server or migration port left on ${host.name}`);
  assert.deepEqual(await readdir(host.datastorePath), [], `no image left on ${host.name}`);
}

/** Starts a move with the CLI (detached, as a script would) and returns its job. */
async function moveWithCli(to: string): Promise<Job> {
  const r = await cli(['vm', 'move', VM, '--to', to, '--detach', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Job;
}

interface Struck {
  jobId: string;
  /** The records file and how many records it held right before the strike. */
  records: RecordsFile;
}

/**
 * Moves the VM from host1 to host2 and strikes `fault` in `phase`, verified by the source agent
 * (strikeInPhase), with the move held there: a 40 Mbit/s link keeps the disk mirror going for
 * ~20 s, a 50 Mbit/s policy the memory copy. The mirror's move is started with the CLI, the
 * memory copy's through the API (the CLI has no policy flags). Right before the fault it reads how
 * many records the guest has written to `recordsFile`. The slow link goes once the fault has
 * struck, unless `holdUntilEnd` (the caller then ends it with `slowFabricLink(h1, undefined)`).
 */
async function strikeDuring(
  phase: CopyPhase,
  recordsFile: string,
  fault: () => unknown,
  holdUntilEnd = false,
): Promise<Struck> {
  let job: Job;
  if (phase === 'mirror-disks') {
    slowFabricLink(h1, '40mbit');
    job = await moveWithCli(h2.name);
  } else {
    // Uncompressed, so the 50 Mbit/s cap holds the copy whatever the idle CPU.
    job = (await api.moveVm(VM, { to: h2.name, policy: { linkBitsPerSecond: 50e6, compression: 'off' } }))
      .job;
  }
  let atLeast = 0;
  try {
    await strikeInPhase(api, h1, job.id, phase, async () => {
      atLeast = await guestRecordCount(h1, VM, recordsFile);
      await fault();
    });
    return { jobId: job.id, records: { file: recordsFile, atLeast } };
  } catch (error) {
    slowFabricLink(h1, undefined);
    throw error;
  } finally {
    if (!holdUntilEnd) slowFabricLink(h1, undefined);
  }
}

/** The phase the job's end record says the move failed in (the phase machine's checkpoint). */
async function failedInPhase(jobId: string): Promise<unknown> {
  const records = (await api.listChanges({ limit: 1000 })).items.filter((r) => r.jobId === jobId);
  return records.flatMap((r) => r.changes).find((c) => c.field === 'phase')?.after;
}

/**
 * Where the VM is and that it runs there only, as it ran before the fault: the inventory and the
 * agent agree, the guest kept running (same boot id, uptime went on, same QEMU process), and that
 * QEMU holds no block job, node or export of the move.
 */
async function assertRunsOn(host: LabHost, before: GuestLife): Promise<void> {
  await within(CLEAN_WITHIN_MS, async () => {
    const vm = await api.getVm(VM);
    assert.equal(vm.host, host.name);
    assert.equal(vm.state, 'running');
  });
  assert.equal((await agentOf(host).getVm(VM)).state, 'running');
  await assertGuestKeptRunning(host, VM, before);
  await assertNoMoveLeftovers(host, VM);
}

before(
  async () => {
    let hosts: LabHost[];
    ({ lab, api, hosts } = await labWithManager(LAB));
    [h1, h2] = hosts as [LabHost, LabHost];
    // Data for the mirror to carry: 100 MiB at 40 Mbit/s keeps it busy for ~20 s, several times
    // the ~2-5 s a strike takes from the move's start (more only lengthens the datastore case).
    await createBusyVm(lab, h1, VM, 100);
  },
  { timeout: 900_000 },
);

after(
  async () => {
    for (const host of [h1, h2]) {
      if (!host) continue;
      spawnSync('ip', ['-n', host.namespace, 'link', 'set', 'fabric0', 'up'], { stdio: 'ignore' });
      slowFabricLink(host, undefined);
    }
    // SB_KEEP_LAB=1 keeps the lab (agents' logs, datastores) to look at after a failure.
    if (!process.env.SB_KEEP_LAB) await labDown({ name: LAB });
  },
  { timeout: 300_000 },
);

// First: the datastore fills only once the mirror has carried all the guest's data plus the
// space check's margin at the slow link's pace, and every case adds ~1 MiB/s of records to it.
test(
  'target datastore fills up during the disk mirror: the move fails, the guest keeps running on the source, the target is clean',
  { timeout: 900_000 },
  async () => {
    await startWorkloads(h1, '/data/full');
    const before = await life(h1);
    // host2's datastore becomes a tmpfs just big enough for the pre-move space check (mounted in
    // its agent's own mount namespace: `ip netns exec` gave it one); the guest then writes
    // 150 MiB more while its disk mirrors.
    const plan = await api.planMove(VM, { to: h2.name });
    assert.equal(plan.ok, true, JSON.stringify(plan.checks.filter((c) => !c.ok)));
    const room = plan.disks.reduce((sum, d) => sum + d.requiredBytes, 0) + 16 * 1024 * 1024;
    const inAgent = ['-t', String(h2.pid), '-m'];
    execFileSync('nsenter', [
      ...inAgent,
      'mount',
      '-t',
      'tmpfs',
      '-o',
      `size=${room}`,
      'tmpfs',
      h2.datastorePath,
    ]);
    let records: RecordsFile;
    try {
      // The slow link stays until the job ends: the guest's new data must reach the mirror first.
      const struck = await strikeDuring(
        'mirror-disks',
        '/data/full',
        () =>
          guest(
            h1,
            ['/bin/dd', 'if=/dev/urandom', 'of=/data/grow', 'bs=1M', 'count=150', 'conv=fsync'],
            true,
          ),
        true,
      );
      records = struck.records;
      const job = await api.waitForJob(struck.jobId, 300_000);
      assert.equal(job.state, 'failed');
      assert.match(job.error?.detail ?? '', /during mirror-disks/);
      console.log(`# datastore full: ${job.error?.detail}`);
      await assertRunsOn(h1, before);
      await within(CLEAN_WITHIN_MS, () => assertClean(h2));
    } finally {
      slowFabricLink(h1, undefined);
      spawnSync('nsenter', [...inAgent, 'umount', h2.datastorePath], { stdio: 'ignore' });
    }
    await guest(h1, ['/bin/rm', '-f', '/data/grow']);
    console.log(`# records: ${await verifyRecords(h1, records)}`);
  },
);

test(
  'link cut during the disk mirror of a busy guest: it keeps running on the source, the target is cleaned once it answers',
  { timeout: 900_000 },
  async () => {
    const since = await lastChangeId(api);
    await startWorkloads(h1, '/data/mirror-cut');
    const before = await life(h1);
    const struck = await strikeDuring('mirror-disks', '/data/mirror-cut', () => linkOf(h2, 'down'));
    const job = await api.waitForJob(struck.jobId, 300_000);
    assert.equal(job.state, 'failed');
    assert.match(job.error?.detail ?? '', /during mirror-disks/);
    assert.match(job.error?.detail ?? '', /rolled back: busy runs on host1; clean-up on host2 pending/);
    await assertRunsOn(h1, before);
    // While host2 is away the admin's clean-up says what waits; it changes nothing on host1.
    const early = await cli(['vm', 'move', '--cleanup', VM]);
    assert.equal(early.code, 1, early.stdout + early.stderr);
    assert.match(early.stdout, /pending on host2: abort-incoming/);

    linkOf(h2, 'up');
    const cleanMs = await within(CLEAN_WITHIN_MS, async () => {
      await assertClean(h2);
      assert.match((await api.getJob(job.id)).progress.message, /clean-up on host2 done/);
    });
    console.log(`# mirror cut: host2 clean ${cleanMs} ms after its link came back`);
    const later = await cli(['vm', 'move', '--cleanup', VM]);
    assert.equal(later.code, 0, later.stderr);
    assert.match(later.stdout, /Nothing left of failed moves of busy on other hosts; it runs on host1/);
    const changes = await vmChangesSince(api, VM, since);
    assert.ok(
      changes.some((c) => c.startsWith('move:failed from:host1 to:host2')),
      changes.join('\n'),
    );
    assert.ok(
      changes.some((c) => c.startsWith('clean-up:pending step:abort-incoming')),
      changes.join('\n'),
    );
    assert.ok(
      changes.some((c) => c.startsWith('clean-up:done step:abort-incoming')),
      changes.join('\n'),
    );
    console.log(`# records: ${await verifyRecords(h1, struck.records)}`);
  },
);

test(
  'link cut during the memory copy of a busy guest: it keeps running on the source, the target is cleaned once it answers',
  { timeout: 900_000 },
  async () => {
    await startWorkloads(h1, '/data/memory-cut');
    const before = await life(h1);
    const struck = await strikeDuring('copy-memory', '/data/memory-cut', () => linkOf(h2, 'down'));
    const job = await api.waitForJob(struck.jobId, 300_000);
    assert.equal(job.state, 'failed');
    assert.match(job.error?.detail ?? '', /during copy-memory/);
    await assertRunsOn(h1, before);
    linkOf(h2, 'up');
    const cleanMs = await within(CLEAN_WITHIN_MS, () => assertClean(h2));
    console.log(`# memory cut: host2 clean ${cleanMs} ms after its link came back`);
    console.log(`# records: ${await verifyRecords(h1, struck.records)}`);
  },
);

for (const phase of ['mirror-disks', 'copy-memory'] as const) {
  test(
    `source agent killed during ${phase}: the move is undone, the guest keeps running there, nothing is left`,
    { timeout: 900_000 },
    async () => {
      const file = `/data/agent-kill-${phase}`;
      await startWorkloads(h1, file);
      const before = await life(h1);
      const struck = await strikeDuring(phase, file, () => killProcess(h1.pid));
      const job = await api.waitForJob(struck.jobId, 300_000);
      assert.equal(job.state, 'failed');
      assert.match(job.error?.detail ?? '', /clean-up on host1 pending \(cancel-source\)/);
      assert.equal(await failedInPhase(job.id), phase);
      // The target let go of its half-made VM at once; the source agent comes back after that.
      await within(CLEAN_WITHIN_MS, () => assertClean(h2));
      restartLabAgent(h1);
      const cleanMs = await within(CLEAN_WITHIN_MS, async () => {
        assert.match((await api.getJob(job.id)).progress.message, /clean-up on host1 done/);
      });
      console.log(`# source agent killed during ${phase}: its undo ran ${cleanMs} ms after it came back`);
      await assertRunsOn(h1, before);
      await assertClean(h2);
      console.log(`# records: ${await verifyRecords(h1, struck.records)}`);
    },
  );
}

test(
  'target QEMU killed during the disk mirror: the move fails, the guest keeps running on the source, the target cleans itself',
  { timeout: 900_000 },
  async () => {
    await startWorkloads(h1, '/data/target-kill-mirror');
    const before = await life(h1);
    const struck = await strikeDuring('mirror-disks', '/data/target-kill-mirror', killIncomingQemu);
    const job = await api.waitForJob(struck.jobId, 300_000);
    assert.equal(job.state, 'failed');
    assert.match(job.error?.detail ?? '', /during mirror-disks/);
    await assertRunsOn(h1, before);
    await within(CLEAN_WITHIN_MS, () => assertClean(h2));
    console.log(`# records: ${await verifyRecords(h1, struck.records)}`);
  },
);

test(
  'target QEMU killed during the memory copy: the move fails, the guest keeps running on the source, the target cleans itself',
  { timeout: 900_000 },
  async () => {
    await startWorkloads(h1, '/data/target-kill-memory');
    const before = await life(h1);
    const struck = await strikeDuring('copy-memory', '/data/target-kill-memory', killIncomingQemu);
    const job = await api.waitForJob(struck.jobId, 300_000);
    assert.equal(job.state, 'failed');
    assert.match(job.error?.detail ?? '', /during copy-memory/);
    await assertRunsOn(h1, before);
    await within(CLEAN_WITHIN_MS, () => assertClean(h2));
    console.log(`# records: ${await verifyRecords(h1, struck.records)}`);
  },
);

test(
  'target agent killed during the disk mirror: the copy goes on without it, and once it is back the move completes',
  { timeout: 900_000 },
  async () => {
    await startWorkloads(h1, '/data/target-agent-kill');
    const before = await life(h1);
    // Back at full speed after the strike: the rest of the copy needs no agent on either side.
    const struck = await strikeDuring('mirror-disks', '/data/target-agent-kill', () => killProcess(h2.pid));
    // The target's agent stays away until the source has the disks in sync without it.
    const source = new AgentMigrationClient(labAgent(h1, 10_000).http);
    const { migrationId } = (await api.getJob(struck.jobId)).progress.details;
    assert.equal(typeof migrationId, 'string');
    await within(120_000, async () => {
      const p = (await source.status(String(migrationId))).progress;
      assert.ok(p.phase !== 'mirror-disks' || p.disks.every((d) => d.ready), `${p.phase}: not in sync yet`);
    });
    restartLabAgent(h2);
    const job = await api.waitForJob(struck.jobId, 600_000);
    assert.equal(job.state, 'succeeded', JSON.stringify(job.error));
    await within(CLEAN_WITHIN_MS, async () => assert.equal((await api.getVm(VM)).host, h2.name));
    assert.equal((await agentOf(h2).getVm(VM)).state, 'running');
    await assertGuestKeptRunning(h2, VM, before);
    await assertNoMoveLeftovers(h2, VM);
    await within(CLEAN_WITHIN_MS, () => assertClean(h1));
    console.log(`# records: ${await verifyRecords(h2, struck.records)}`);
    // Back home for the next case.
    const back = await api.moveVm(VM, { to: h1.name });
    assert.equal((await api.waitForJob(back.job.id, 600_000)).state, 'succeeded');
  },
);

/** Starts the lab's manager again (after a SIGKILL) and waits until it answers. */
async function restartManager(): Promise<void> {
  restartLabManager(lab);
  await within(60_000, async () => {
    await api.info();
  });
}

test(
  'the manager restarts while the target agent is down mid-copy: the VM ends on one host, the other is cleaned once it answers',
  { timeout: 900_000 },
  async () => {
    await startWorkloads(h1, '/data/manager-restart');
    const before = await life(h1);
    const struck = await strikeDuring('copy-memory', '/data/manager-restart', () => {
      killProcess(h2.pid);
      killProcess(lab.manager?.pid);
    });
    await restartManager();
    // The move cannot go on without the target's agent: it is undone (or, had the copy completed
    // meanwhile, carried forward once the agent is back); either way the job ends. The agent
    // stays away until the restarted manager has ended the job, or 10 s.
    await within(10_000, async () => {
      assert.ok(!['queued', 'running'].includes((await api.getJob(struck.jobId)).state));
    }).catch(() => undefined);
    restartLabAgent(h2);
    const job = await api.waitForJob(struck.jobId, 600_000);
    const vm = await within(CLEAN_WITHIN_MS, async () => {
      const stored = await api.getVm(VM);
      assert.equal(stored.state, 'running');
    }).then(() => api.getVm(VM));
    const [runsOn, other] = vm.host === h1.name ? [h1, h2] : [h2, h1];
    console.log(
      `# manager restarted with host2's agent down: job ${job.state} (${job.error?.detail ?? 'moved'})`,
    );
    if (job.state === 'succeeded') assert.equal(runsOn, h2);
    else {
      assert.equal(runsOn, h1);
      assert.match(job.error?.detail ?? '', /manager restarted while moving busy \(during copy-memory\)/);
    }
    assert.equal((await agentOf(runsOn).getVm(VM)).state, 'running');
    const cleanMs = await within(CLEAN_WITHIN_MS, () => assertClean(other));
    console.log(`# ${other.name} clean ${cleanMs} ms after the checks began`);
    await assertGuestKeptRunning(runsOn, VM, before);
    await assertNoMoveLeftovers(runsOn, VM);
    console.log(`# records: ${await verifyRecords(runsOn, struck.records)}`);
  },
);

// Several managers, one leader (issue 31), tested the way it fails: two manager processes on one
// database, a busy guest (records written with fsync, memory dirtied) moving from host to host,
// and the leading manager killed (SIGKILL) while the move is held in its disk mirror, then again
// in its memory copy. The other manager must take the lease and the job over: the move completes
// or is rolled back by the phase machine's recovery, the VM runs on exactly one host (both agents
// asked), the guest kept running (same boot), every record it wrote before the kill verifies, and
// the change log holds the move's start from the killed leader and its end from the new one.
//
// The leaders in turn: the lab's manager (alpha) leads first and is killed in the mirror; beta
// takes over. Alpha is then started again, as an operator restarts a crashed service, and rejoins
// as a follower; beta is killed in the memory copy and the restarted alpha takes over. So the pair
// stays two managers throughout, and the second takeover is by a manager that was itself killed
// (its old lease and name must not confuse the lease). Both moves are rolled back: the slow link
// or capped stream holds the copy past the takeover. A third case has the other outcome: beta is
// back and stalled (SIGSTOP) when alpha dies mid-copy, the source finishes the copy with no
// manager leading, and beta, woken, carries the move forward to the target.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { AgentMigrationClient, ManagerClient, type ChangeRecord, type Job } from './api/index.js';
import {
  assertGuestKeptRunning,
  createBusyVm,
  guestLife,
  guestRecordCount,
  isAlive,
  labAgent,
  labCli,
  labDown,
  labUp,
  lastChangeId,
  restartLabManager,
  slowFabricLink,
  startGuestWorkloads,
  startLabManager,
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
import { createTestDatabase, LEASE_CHECK_MS, LEASE_EXPIRY_MS } from './manager/index.js';
import { assertNoMoveLeftovers } from './qemu-leftovers.js';

const LAB = 'leaders';
const VM = 'busy';
/**
 * The database both managers share: a database of this test process's own PostgreSQL (issue 31:
 * managers on several machines share one), or SB_MANAGERS_DATABASE: a postgres:// URL, or `sqlite`
 * for the SQLite file (WAL) in the lab manager's data dir, which two processes on one machine may
 * share.
 */
const DATABASE = process.env.SB_MANAGERS_DATABASE ?? 'postgres';
/** From a leader's death to a new leader: the lease runs out, then the next look (plus a loaded machine's slack). */
const TAKEOVER_BOUND_MS = LEASE_EXPIRY_MS + LEASE_CHECK_MS + 5_000;
/** The VM on one host only, the other clean of it, within this long of the job's end. */
const CLEAN_WITHIN_MS = 60_000;

interface Manager {
  name: string;
  url: string;
  pid: () => number | undefined;
  api: ManagerClient;
}

let lab: Lab;
let h1: LabHost;
let h2: LabHost;
let alpha: Manager;
let beta: Manager;
const pids: number[] = [];

const agentOf = (host: LabHost) => labAgent(host, 180_000);

/** The CLI as a user runs it against `manager`. */
const cliAt = (manager: Manager, args: string[]) =>
  labCli(
    { ...lab, ...(lab.manager ? { manager: { ...lab.manager, url: manager.url } } : {}) },
    args,
    300_000,
  );

async function leading(manager: Manager): Promise<number | undefined> {
  const view = await manager.api.managers().catch(() => undefined);
  return view?.self.leading ? view.self.epoch : undefined;
}

/** Polls `what` every 100 ms until it returns a value; the ms it took from `since`. */
async function timeUntil<T>(
  since: number,
  ms: number,
  label: string,
  what: () => Promise<T | undefined>,
): Promise<{ value: T; ms: number }> {
  for (;;) {
    const value = await what().catch(() => undefined);
    if (value !== undefined) return { value, ms: Date.now() - since };
    if (Date.now() - since > ms) throw new Error(`${label}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The hosts whose agent runs the VM (asked directly, not the inventory). */
async function hostsRunning(): Promise<string[]> {
  const on: string[] = [];
  for (const host of [h1, h2])
    if ((await agentOf(host).listVms()).some((v) => v.name === VM && v.state === 'running'))
      on.push(host.name);
  return on;
}

/**
 * One takeover: `leader` leads, `follower` follows; a move of the busy guest from the host it runs
 * on to the other is held in `phase`, the leader is SIGKILLed there, and the follower must take
 * the lease and the move over.
 */
async function killLeaderDuring(phase: CopyPhase, leader: Manager, follower: Manager): Promise<void> {
  const oldEpoch = await leading(leader);
  assert.ok(oldEpoch !== undefined, `${leader.name} leads`);
  const view = await follower.api.managers();
  assert.equal(view.self.leading, false);
  assert.equal(view.leader?.name, leader.name);
  assert.equal(view.leader?.epoch, oldEpoch);

  const sourceName = (await follower.api.getVm(VM)).host;
  const [source, target] = sourceName === h1.name ? [h1, h2] : [h2, h1];
  const since = await lastChangeId(follower.api);
  const file = `/data/takeover-${phase}`;
  await startGuestWorkloads(source, VM, file);
  const life = await guestLife(source, VM);

  // Held in the phase until the new leader has the job: a 40 Mbit/s link keeps 100 MiB of disk
  // mirroring for ~20 s; a 50 Mbit/s uncompressed stream never catches the guest's 64 MiB/s.
  let job: Job;
  if (phase === 'mirror-disks') {
    slowFabricLink(source, '40mbit');
    // Started at the leader with the CLI, as a user would.
    const r = await cliAt(leader, ['vm', 'move', VM, '--to', target.name, '--detach', '--json']);
    assert.equal(r.code, 0, r.stderr);
    job = JSON.parse(r.stdout) as Job;
  } else {
    // Started at the follower (the CLI has no policy flags): it queues the job, the leader runs it.
    job = (
      await follower.api.moveVm(VM, {
        to: target.name,
        policy: { linkBitsPerSecond: 50e6, compression: 'off' },
      })
    ).job;
  }

  let records: RecordsFile | undefined;
  let killedAt = 0;
  let lead: { value: number; ms: number };
  let taken: { value: Job; ms: number };
  try {
    await strikeInPhase(follower.api, source, job.id, phase, async () => {
      records = { file, atLeast: await guestRecordCount(source, VM, file) };
      const pid = leader.pid();
      assert.ok(pid !== undefined && pid > 0);
      process.kill(pid, 'SIGKILL');
      killedAt = Date.now();
    });
    lead = await timeUntil(killedAt, TAKEOVER_BOUND_MS, `${follower.name} leads`, () => leading(follower));
    // The job advances again: the new leader writes its row (nobody else may).
    taken = await timeUntil(killedAt, 60_000, `${follower.name} takes the job over`, async () => {
      const j = await follower.api.getJob(job.id);
      return Date.parse(j.updatedAt) > killedAt ? j : undefined;
    });
  } finally {
    slowFabricLink(source, undefined);
  }
  assert.equal(lead.value, oldEpoch + 1, 'the new leader took the lease one epoch on');
  assert.ok(records, 'the strike counted the records');
  await afterTakeover({
    phase,
    leader,
    follower,
    oldEpoch,
    job,
    source,
    target,
    life,
    records,
    killedAt,
    lead,
    taken,
    since,
  });
}

interface Takeover {
  /** The phase the job was in at the kill. */
  phase: CopyPhase;
  leader: Manager;
  follower: Manager;
  oldEpoch: number;
  job: Job;
  source: LabHost;
  target: LabHost;
  life: GuestLife;
  records: RecordsFile;
  killedAt: number;
  /** The new leader's epoch, and when it led (ms after the kill). */
  lead: { value: number; ms: number };
  /** The job as the new leader first wrote it, and when (ms after the kill). */
  taken: { value: Job; ms: number };
  /** The newest change record before the move. */
  since: number;
}

/**
 * What the user is promised after a takeover: the move ended (completed, or rolled back by the
 * phase machine's recovery), the VM runs on exactly one host, the guest kept running with every
 * record, and the change log has the move's start and end.
 */
async function afterTakeover(t: Takeover): Promise<Job> {
  const {
    phase,
    leader,
    follower,
    oldEpoch,
    job,
    source,
    target,
    life,
    records,
    killedAt,
    lead,
    taken,
    since,
  } = t;
  const ended = await follower.api.waitForJob(job.id, 300_000);
  const endMs = Date.now() - killedAt;

  // The move completed or was rolled back, and the VM runs on exactly one host: the one the
  // inventory names, and the other host holds nothing of it.
  const moved = ended.state === 'succeeded';
  const [runsOn, other] = moved ? [target, source] : [source, target];
  if (!moved) {
    assert.equal(ended.state, 'failed', JSON.stringify(ended));
    // A takeover, said as one (not as a restart): who stopped leading, who undid the move.
    assert.match(
      ended.error?.detail ?? '',
      new RegExp(
        `^manager ${leader.name} stopped leading while moving ${VM} \\(during ${phase}\\); ${follower.name} took over, undid the move and ${VM} runs on ${source.name}`,
      ),
    );
  }
  await within(CLEAN_WITHIN_MS, async () => {
    assert.deepEqual(await hostsRunning(), [runsOn.name]);
    assert.deepEqual(
      (await agentOf(other).listVms()).map((v) => v.name),
      [],
      `nothing of ${VM} on ${other.name}`,
    );
    const vm = await follower.api.getVm(VM);
    assert.equal(vm.host, runsOn.name);
    assert.equal(vm.state, 'running');
  });
  await assertGuestKeptRunning(runsOn, VM, life);
  await assertNoMoveLeftovers(runsOn, VM);
  const verified = (await verifyGuestRecords(runsOn, VM, [records])).summary;

  // The change log: the move's start written by the killed leader, its end by the new one (each
  // record names the manager that wrote it).
  const mine = (await follower.api.listChanges({ limit: 1000 })).items.filter(
    (r: ChangeRecord) => r.jobId === job.id,
  );
  const moveStep = (r: ChangeRecord) => String(r.changes.find((c) => c.field === 'move')?.after);
  const started = mine.find((r) => moveStep(r) === 'started');
  const end = mine.find((r) => ['finished', 'failed'].includes(moveStep(r)));
  assert.ok(started && end, `start and end records of the move: ${JSON.stringify(mine)}`);
  assert.equal(started.manager, leader.name, `started by ${leader.name}: ${JSON.stringify(started)}`);
  assert.equal(end.manager, follower.name, `ended by ${follower.name}: ${JSON.stringify(end)}`);
  assert.ok(Date.parse(started.at) < killedAt, `started by ${leader.name} before its kill`);
  assert.equal(moveStep(end), moved ? 'finished' : 'failed');
  const changes = await vmChangesSince(follower.api, VM, since);
  assert.ok(
    changes.some((c) => c.startsWith(`move:${moved ? 'finished' : 'failed'} from:${source.name}`)),
    changes.join('\n'),
  );
  console.log(
    `# ${phase}: ${leader.name} (epoch ${oldEpoch}) SIGKILLed; ${follower.name} leads ${lead.ms} ms later ` +
      `(epoch ${lead.value}), the job advances ${taken.ms} ms after the kill (${taken.value.progress.phase}: ` +
      `${taken.value.progress.message}), ends ${endMs} ms after it: ${ended.state}` +
      `${moved ? '' : ` (${ended.error?.detail ?? ''})`}; ${VM} runs on ${runsOn.name}; ` +
      `change log: start at ${started.at} by ${started.actor} at ${started.manager ?? '?'}, end at ${end.at} by ${end.actor} at ${end.manager ?? '?'}`,
  );
  console.log(`# records: ${verified}`);
  return ended;
}

before(
  async () => {
    lab = await labUp({
      name: LAB,
      hosts: 2,
      demo: false,
      accelerator: 'tcg',
      ...(DATABASE === 'sqlite'
        ? {}
        : { managerDatabase: DATABASE === 'postgres' ? await createTestDatabase() : DATABASE }),
    });
    const m = lab.manager;
    if (!m) throw new Error('the lab started no manager');
    // The manager runs on the database asked for (its command line says which).
    const command = (await readFile(`/proc/${m.pid}/cmdline`, 'utf8')).split('\0');
    const database = command[command.indexOf('--database') + 1];
    console.log(`# database: ${DATABASE === 'sqlite' ? 'the SQLite file in the data dir' : database}`);
    if (DATABASE === 'sqlite') assert.ok(!command.includes('--database'), command.join(' '));
    else assert.match(database ?? '', /^postgres(ql)?:\/\//, command.join(' '));
    [h1, h2] = lab.hosts as [LabHost, LabHost];
    alpha = {
      name: '',
      url: m.url,
      pid: () => lab.manager?.pid,
      api: new ManagerClient(m.url, m.token, 120_000),
    };
    // The lab's manager goes by the machine's name (the default).
    alpha.name = (await alpha.api.managers()).self.name;
    pids.push(m.pid);
    // 100 MiB of data for the mirror to carry (~20 s at 40 Mbit/s).
    await createBusyVm(lab, h1, VM, 100);
    const b = await startLabManager(lab, 'beta');
    pids.push(b.pid);
    beta = { name: b.name, url: b.url, pid: () => b.pid, api: new ManagerClient(b.url, m.token, 120_000) };
  },
  { timeout: 900_000 },
);

after(
  async () => {
    for (const host of [h1, h2]) if (host) slowFabricLink(host, undefined);
    if (lab?.manager) pids.push(lab.manager.pid);
    // SB_KEEP_LAB=1 keeps the lab (managers' logs, database) to look at after a failure.
    if (process.env.SB_KEEP_LAB) return;
    await labDown({ name: LAB });
    // `lab down` stopped every manager of the lab, the extra one too.
    for (const pid of pids) assert.equal(await isAlive(pid), false, `manager process ${pid} left running`);
  },
  { timeout: 300_000 },
);

test(
  'the leading manager is killed during the disk mirror of a busy guest: the other takes over, the move ends, the guest runs on one host with every record',
  { timeout: 600_000 },
  async () => {
    await killLeaderDuring('mirror-disks', alpha, beta);
  },
);

test(
  'the leading manager is killed during the memory copy: the restarted first manager takes over, the move ends, the guest runs on one host with every record',
  { timeout: 600_000 },
  async () => {
    // The killed manager comes back, as its service would be restarted, and follows.
    pids.push(restartLabManager(lab));
    await within(60_000, async () => {
      const view = await alpha.api.managers();
      assert.equal(view.self.leading, false);
      assert.equal(view.leader?.name, beta.name);
    });
    await killLeaderDuring('copy-memory', beta, alpha);
  },
);

test(
  'the leading manager is killed mid-copy and the copy completes before another leads: the next leader carries the move through to the target',
  { timeout: 600_000 },
  async () => {
    // beta comes back and follows alpha, which leads since the case before.
    const b = await startLabManager(lab, 'beta');
    pids.push(b.pid);
    beta = {
      ...beta,
      url: b.url,
      pid: () => b.pid,
      api: new ManagerClient(b.url, lab.manager?.token ?? '', 120_000),
    };
    const oldEpoch = await leading(alpha);
    assert.ok(oldEpoch !== undefined, `${alpha.name} leads`);
    const sourceName = (await alpha.api.getVm(VM)).host;
    const [source, target] = sourceName === h1.name ? [h1, h2] : [h2, h1];
    const since = await lastChangeId(alpha.api);
    const file = '/data/takeover-forward';
    await startGuestWorkloads(source, VM, file);
    const life = await guestLife(source, VM);
    // beta stalls (SIGSTOP) before alpha dies, so that nobody leads while the source's agent
    // finishes the copy on its own: a takeover that comes after the copy completed.
    process.kill(b.pid, 'SIGSTOP');
    let records: RecordsFile;
    let killedAt: number;
    let phase: CopyPhase;
    let job: Job;
    try {
      const r = await cliAt(alpha, ['vm', 'move', VM, '--to', target.name, '--detach', '--json']);
      assert.equal(r.code, 0, r.stderr);
      job = JSON.parse(r.stdout) as Job;
      const copying = await timeUntil(Date.now(), 120_000, 'the copy', async () => {
        const j = await alpha.api.getJob(job.id);
        // The job names the source's migration once it has followed the copy once.
        const copyPhase =
          ['mirror-disks', 'copy-memory'].includes(j.progress.phase) &&
          typeof j.progress.details.migrationId === 'string';
        return copyPhase || !['queued', 'running'].includes(j.state) ? j : undefined;
      });
      assert.equal(
        copying.value.state,
        'running',
        `the move ended before its copy: ${JSON.stringify(copying.value)}`,
      );
      phase = copying.value.progress.phase as CopyPhase;
      records = { file, atLeast: await guestRecordCount(source, VM, file) };
      const pid = alpha.pid();
      assert.ok(pid !== undefined && pid > 0);
      process.kill(pid, 'SIGKILL');
      killedAt = Date.now();
      const { migrationId } = copying.value.progress.details;
      assert.equal(typeof migrationId, 'string', 'the job names its migration');
      const agent = new AgentMigrationClient(labAgent(source, 10_000).http);
      const done = await timeUntil(killedAt, 120_000, 'the copy ends on the source', async () => {
        const status = await agent.status(String(migrationId));
        return status.state === 'running' ? undefined : status;
      });
      assert.equal(done.value.state, 'completed', JSON.stringify(done.value));
      console.log(`# killed in ${phase}; the source completed the copy ${done.ms} ms after the kill`);
    } finally {
      process.kill(b.pid, 'SIGCONT');
    }
    const lead = await timeUntil(killedAt, TAKEOVER_BOUND_MS + 120_000, `${beta.name} leads`, () =>
      leading(beta),
    );
    const taken = await timeUntil(killedAt, 180_000, `${beta.name} takes the job over`, async () => {
      const j = await beta.api.getJob(job.id);
      return Date.parse(j.updatedAt) > killedAt ? j : undefined;
    });
    assert.equal(lead.value, oldEpoch + 1, 'the new leader took the lease one epoch on');
    const ended = await afterTakeover({
      phase,
      leader: alpha,
      follower: beta,
      oldEpoch,
      job,
      source,
      target,
      life,
      records,
      killedAt,
      lead,
      taken,
      since,
    });
    assert.equal(ended.state, 'succeeded', 'the copy had completed: the move goes forward');
  },
);

// The managers' database on a PostgreSQL primary and its synchronous standby (issue 31: "A
// replica"), tested the way it fails: two managers whose --database lists both servers, a busy
// guest (records written with fsync, memory dirtied) that was created and moved through them, a
// pool made with the CLI; then the primary's postmaster is SIGKILLed (a crash) and the standby
// promoted with the README's command (pg_ctl promote). Meanwhile a request answers 503
// database-unavailable in time rather than hang, and the leader stops leading. Afterwards every job
// and change record answered before the kill is there unchanged, the managers answer on the new
// primary, one of them leads (a higher epoch), a new move of the guest completes, and the guest
// kept running with every record it wrote.
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { ManagerClient, isManagerError, type ChangeRecord, type Job } from './api/index.js';
import {
  assertGuestKeptRunning,
  createBusyVm,
  guestLife,
  guestRecordCount,
  labAgent,
  labCli,
  labDown,
  labUp,
  startGuestWorkloads,
  startLabManager,
  verifyGuestRecords,
  within,
  type Lab,
  type LabHost,
} from './lab/index.js';
import {
  DATABASE_WAIT_MS,
  LEASE_STEP_DOWN_MS,
  startReplicatedPair,
  type ReplicatedPair,
} from './manager/index.js';

const LAB = 'dbfail';
const VM = 'busy';
const POOL = 'dbfail-extra';

interface Manager {
  name: string;
  url: string;
  logPath: string;
  api: ManagerClient;
}

let pair: ReplicatedPair;
let lab: Lab;
let h1: LabHost;
let h2: LabHost;
let alpha: Manager;
let beta: Manager;

/** The CLI as a user runs it against `manager`. */
const cliAt = (manager: Manager, args: string[]) =>
  labCli(
    { ...lab, ...(lab.manager ? { manager: { ...lab.manager, url: manager.url } } : {}) },
    args,
    300_000,
  );

/** The hosts whose agent runs the VM (asked directly, not the inventory). */
async function hostsRunning(): Promise<string[]> {
  const on: string[] = [];
  for (const host of [h1, h2])
    if ((await labAgent(host, 60_000).listVms()).some((v) => v.name === VM && v.state === 'running'))
      on.push(host.name);
  return on;
}

/** A move of the guest to the other host, through the CLI, waited for: its job. */
async function moveGuest(at: Manager): Promise<Job> {
  const from = (await at.api.getVm(VM)).host;
  const to = from === h1.name ? h2 : h1;
  const r = await cliAt(at, ['vm', 'move', VM, '--to', to.name, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const job = JSON.parse(r.stdout) as Job;
  assert.equal(job.state, 'succeeded', r.stdout);
  return job;
}

/** Everything in a list of the API, by id. */
async function everyJob(api: ManagerClient): Promise<Map<string, Job>> {
  return new Map((await api.listJobs({ limit: 1000 })).items.map((j) => [j.id, j]));
}
async function everyChange(api: ManagerClient): Promise<Map<number, ChangeRecord>> {
  return new Map((await api.listChanges({ limit: 1000 })).items.map((c) => [c.id, c]));
}

/** The lines a manager logged since `offset` bytes into its log. */
const logSince = async (m: Manager, offset: number) =>
  (await readFile(m.logPath)).subarray(offset).toString();

before(
  async () => {
    pair = await startReplicatedPair();
    const urls = await pair.createDatabase();
    lab = await labUp({
      name: LAB,
      hosts: 2,
      demo: false,
      accelerator: 'tcg',
      // The primary first, as an operator lists them; the manager finds which takes writes.
      managerDatabase: `${urls.primary},${urls.standby}`,
    });
    const m = lab.manager;
    if (!m) throw new Error('the lab started no manager');
    // The manager's command line names both servers.
    const command = (await readFile(`/proc/${m.pid}/cmdline`, 'utf8')).split('\0');
    assert.equal(command[command.indexOf('--database') + 1], `${urls.primary},${urls.standby}`);
    [h1, h2] = lab.hosts as [LabHost, LabHost];
    alpha = { name: '', url: m.url, logPath: m.logPath, api: new ManagerClient(m.url, m.token, 120_000) };
    alpha.name = (await alpha.api.managers()).self.name;
    await createBusyVm(lab, h1, VM, 50);
    const b = await startLabManager(lab, 'beta');
    beta = { name: b.name, url: b.url, logPath: b.logPath, api: new ManagerClient(b.url, m.token, 120_000) };
  },
  { timeout: 900_000 },
);

after(
  async () => {
    // SB_KEEP_LAB=1 keeps the lab (managers' logs) to look at after a failure.
    if (process.env.SB_KEEP_LAB) return;
    await labDown({ name: LAB });
  },
  { timeout: 300_000 },
);

test(
  'the primary database is killed and the standby promoted: nothing committed is lost, the managers carry on, one leads, a new move completes, the guest kept every record',
  { timeout: 900_000 },
  async () => {
    // Work committed as a user does it: a pool made at the follower, a move through the leader.
    assert.equal((await alpha.api.managers()).self.leading, true, `${alpha.name} leads`);
    const made = await cliAt(beta, ['pool', 'create', POOL]);
    assert.equal(made.code, 0, made.stderr);
    await moveGuest(alpha);
    const source = (await alpha.api.getVm(VM)).host === h1.name ? h1 : h2;
    const file = '/data/db-failover';
    await startGuestWorkloads(source, VM, file);
    const life = await guestLife(source, VM);
    // Records before the kill (the writer fsyncs each: some tens a second under TCG), so that
    // "every record written before" means something.
    // (A loaded machine's second guest lane slows the writer to a few a second: 10 within 2 min.)
    await within(120_000, async () => {
      const count = await guestRecordCount(source, VM, file);
      assert.ok(count >= 10, `${count} records written so far in ${file} on ${source.name}`);
    });

    // What the managers answered before the kill (every one of them a 2xx).
    const jobs = await everyJob(alpha.api);
    const changes = await everyChange(beta.api);
    const oldEpoch = (await alpha.api.managers()).self.epoch;
    assert.ok(oldEpoch !== undefined);
    assert.ok(jobs.size >= 2 && changes.size >= 3, `jobs ${jobs.size}, changes ${changes.size}`);
    const records = { file, atLeast: await guestRecordCount(source, VM, file) };
    const logFrom = await Promise.all([alpha, beta].map(async (m) => (await stat(m.logPath)).size));

    // The crash: the primary's postmaster SIGKILLed.
    pair.killPrimary();
    const killedAt = Date.now();

    // Meanwhile a request fails in time with the typed error, rather than hang. (A read in flight
    // at the crash may still be answered by a backend that has not yet noticed its postmaster die.)
    let outage: unknown;
    let askedAt = killedAt;
    while (outage === undefined) {
      askedAt = Date.now();
      assert.ok(askedAt - killedAt < 5_000, 'requests still answered 5 s after the kill');
      outage = await alpha.api.listJobs().then(
        () => undefined,
        (error: unknown) => error,
      );
    }
    const answeredMs = Date.now() - askedAt;
    assert.ok(isManagerError(outage, 'database-unavailable'), String(outage));
    assert.equal((outage as { status?: number }).status, 503);
    assert.ok(answeredMs < DATABASE_WAIT_MS + 5_000, `answered after ${answeredMs} ms`);
    // The leader stops leading: it cannot renew the lease (the fence closes) within the step-down time.
    await within(LEASE_STEP_DOWN_MS + 5_000, async () =>
      assert.match(
        await logSince(alpha, logFrom[0] ?? 0),
        new RegExp(`no longer leads \\(epoch ${oldEpoch}\\): the lease was not renewed`),
      ),
    );

    const steppedDownMs = Date.now() - killedAt;

    // The README's promotion command.
    pair.promoteStandby();
    const promotedAt = Date.now();

    // The first job accepted after the promotion: a move of the guest, asked until it is taken.
    const to = source === h1 ? h2 : h1;
    let accepted: Job | undefined;
    while (!accepted) {
      accepted = await alpha.api.moveVm(VM, { to: to.name }).then(
        (r) => r.job,
        () => undefined,
      );
      if (!accepted) {
        assert.ok(Date.now() - promotedAt < 120_000, 'no job accepted within 120 s of the promotion');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const acceptedAt = Date.now();
    const moved = await alpha.api.waitForJob(accepted.id, 240_000).catch(async (error: unknown) => {
      // What held it: the job, the managers' views and the sessions on the new primary.
      const job = await beta.api.getJob(accepted.id).catch(String);
      const views = await Promise.all([alpha, beta].map((m) => m.api.managers().catch(String)));
      const sessions = await pair.standby.admin
        .query(
          `select pid, application_name, state, wait_event_type, wait_event, now() - xact_start as xact,
             left(query, 160) as query from pg_stat_activity where datname like 'r%'`,
        )
        .then((r) => r.rows, String);
      console.log(`# job ${JSON.stringify(job)}\n# views ${JSON.stringify(views)}`);
      for (const row of Array.isArray(sessions) ? sessions : [sessions])
        console.log(`# ${JSON.stringify(row)}`);
      throw error;
    });
    assert.equal(moved.state, 'succeeded', JSON.stringify(moved));

    // Nothing answered before the kill is lost: every job and change record, unchanged.
    const jobsAfter = await everyJob(beta.api);
    for (const [id, job] of jobs) assert.deepEqual(jobsAfter.get(id), job, `job ${id}`);
    const changesAfter = await everyChange(alpha.api);
    for (const [id, change] of changes) assert.deepEqual(changesAfter.get(id), change, `change ${id}`);
    assert.ok((await beta.api.listPools()).items.some((p) => p.name === POOL));

    // Both managers answer on the new primary (the promoted standby), and one of them leads.
    const { rows } = await pair.standby.admin.query<{ recovery: boolean }>(
      'select pg_is_in_recovery() as recovery',
    );
    assert.equal(rows[0]?.recovery, false, 'the standby was promoted');
    for (const [i, m] of [alpha, beta].entries())
      assert.match(
        await logSince(m, logFrom[i] ?? 0),
        new RegExp(`database: the primary is .*${pair.standby.dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
        `${m.name} moved to the promoted standby`,
      );
    const views = await Promise.all([alpha, beta].map((m) => m.api.managers()));
    const leaders = views.filter((v) => v.self.leading);
    assert.equal(leaders.length, 1, JSON.stringify(views));
    const newEpoch = leaders[0]?.self.epoch ?? 0;
    assert.ok(newEpoch > oldEpoch, `epoch ${oldEpoch} -> ${newEpoch}`);
    for (const v of views) assert.equal(v.leader?.epoch, newEpoch);

    // The guest: on the target only, same boot, every record written before the kill (and since).
    await within(60_000, async () => assert.deepEqual(await hostsRunning(), [to.name]));
    await assertGuestKeptRunning(to, VM, life);
    const verified = (await verifyGuestRecords(to, VM, [records])).summary;
    console.log(
      `# a request ${askedAt - killedAt} ms after the kill: 503 database-unavailable after ${answeredMs} ms; the leader stepped down (seen ${steppedDownMs} ms after the kill); ` +
        `promoted ${promotedAt - killedAt} ms after the kill ` +
        `(pg_ctl promote); first job accepted ${acceptedAt - killedAt} ms after the kill ` +
        `(${acceptedAt - promotedAt} ms after the promotion); the move ${moved.state}; ` +
        `leader ${leaders[0]?.self.name} epoch ${oldEpoch} -> ${newEpoch}; ` +
        `${jobs.size} jobs and ${changes.size} change records from before the kill all there`,
    );
    console.log(`# records: ${verified}`);
  },
);

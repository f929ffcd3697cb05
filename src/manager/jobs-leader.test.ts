// The job runner's roles with several managers (issue 31), on a real SQLite database: a follower
// only writes a job down, the leader runs it; a leader that stops leading can write nothing more
// of its jobs, and the next leader (a higher epoch) resumes them as a restart would (recover()).
// Both runners share one database handle here (the ownership rules are the runner's and the
// rows'); two processes on one file are the API test's (src/managers.test.ts).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import { SYSTEM } from './changes.js';
import { nameWriter, openDatabase, type Db } from './db.js';
import { JOB_POLL_MS, JobRunner, type JobHandler } from './jobs.js';

let dir: string;
let db: Db;
const runners: JobRunner[] = [];
const logs: string[] = [];
/** The runs of `test-step` seen: which runner, resumed or not, the checkpoint it got. */
const runs: {
  runner: string;
  resumed: boolean;
  checkpoint: unknown;
  takenOver: { from: string; by: string } | undefined;
}[] = [];
const gates = new Map<string, () => void>();

const Params = z.object({ label: z.string() });

/** A resumable job that saves a checkpoint, waits at a gate, then saves another and ends. */
function stepHandler(runner: string): JobHandler<z.infer<typeof Params>> {
  return {
    kind: 'test-step',
    params: Params,
    resumable: true,
    async run(ctx) {
      runs.push({ runner, resumed: ctx.resumed, checkpoint: ctx.checkpoint, takenOver: ctx.takenOver });
      await ctx.saveCheckpoint({ step: 1, by: runner }, { phase: 'one', percent: 10 });
      await new Promise<void>((resolve) => {
        gates.set(`${ctx.params.label}/${runner}`, resolve);
        ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      ctx.throwIfCancelled();
      await ctx.saveCheckpoint({ step: 2, by: runner }, { phase: 'two', percent: 90 });
      return { by: runner };
    },
  };
}

/** A job that cannot resume: it waits at its gate. */
function onceHandler(runner: string): JobHandler<z.infer<typeof Params>> {
  return {
    kind: 'test-once',
    params: Params,
    resumable: false,
    async run(ctx) {
      await new Promise<void>((resolve) => {
        gates.set(`${ctx.params.label}/${runner}`, resolve);
        ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      return { by: runner };
    },
  };
}

function runner(name: string): JobRunner {
  const r = new JobRunner(db, (m) => logs.push(`${name}: ${m}`));
  r.register(stepHandler(name));
  r.register(onceHandler(name));
  runners.push(r);
  return r;
}

const target = (label: string) => ({ kind: 'vm' as const, id: `vm-${label}`, name: label });
const submit = (r: JobRunner, label: string) =>
  r.submit({ kind: 'test-step', target: target(label), params: { label }, actor: SYSTEM });
const row = (id: string) => db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

async function until(what: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await what())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-jobs-leader-'));
  db = await openDatabase(dir);
});
after(async () => {
  for (const r of runners) r.follow();
  for (const resolve of gates.values()) resolve();
  for (const r of runners) await r.drain(5_000);
  await db.destroy();
  await rm(dir, { recursive: true, force: true });
});

test('a job submitted at a follower is only queued there; the leader runs it under its epoch', async () => {
  const leader = runner('a');
  const follower = runner('b');
  follower.follow();
  await leader.lead(1);
  const job = await submit(follower, 'one');
  assert.equal(job.state, 'queued');
  await until(() => runs.some((r) => r.runner === 'a' && !r.resumed), 10 * JOB_POLL_MS);
  assert.equal(runs.filter((r) => r.runner === 'b').length, 0, 'the follower ran nothing');
  assert.equal((await row(job.id)).epoch, 1);
  gates.get('one/a')?.();
  await until(async () => (await row(job.id)).state === 'succeeded', 5_000);
  assert.deepEqual(JSON.parse((await row(job.id)).result ?? 'null'), { by: 'a' });
  leader.follow();
});

test("a deposed leader writes nothing more of its job; the next leader resumes it from the job's checkpoint", async () => {
  runs.length = 0;
  const old = runner('old');
  const next = runner('next');
  next.follow();
  // The managers' names, as their handles carry them (one handle here: named as each leads).
  nameWriter(db, 'm-old');
  await old.lead(2);
  const job = await submit(old, 'two');
  await until(() => gates.has('two/old'), 5_000);
  assert.deepEqual(JSON.parse((await row(job.id)).checkpoint ?? 'null'), { step: 1, by: 'old' });
  assert.equal((await row(job.id)).manager, 'm-old');
  // The old leader loses the lease; the next one takes it under a higher epoch.
  old.follow();
  nameWriter(db, 'm-next');
  await next.lead(3);
  await until(() => gates.has('two/next'), 5_000);
  assert.deepEqual(
    runs.map((r) => [r.runner, r.resumed, r.checkpoint]),
    [
      ['old', false, undefined],
      ['next', true, { step: 1, by: 'old' }],
    ],
    "resumed as after a restart, from the old leader's checkpoint",
  );
  // The run knows it is a takeover, not a restart: the job was another manager's.
  assert.deepEqual(
    runs.map((r) => r.takenOver),
    [undefined, { from: 'm-old', by: 'm-next' }],
  );
  assert.equal((await row(job.id)).epoch, 3, 'the job is the new epoch’s now');
  assert.equal((await row(job.id)).manager, 'm-next');
  // The old run goes on (a stalled process waking up): its next write is refused, nothing changes.
  const before = await row(job.id);
  gates.get('two/old')?.();
  await until(
    () => logs.some((l) => l.startsWith('old:') && l.includes(`job ${job.id} is no longer`)),
    5_000,
  );
  const afterOld = await row(job.id);
  assert.equal(afterOld.checkpoint, before.checkpoint, 'no checkpoint written by the deposed run');
  assert.equal(afterOld.state, 'running');
  gates.get('two/next')?.();
  await until(async () => (await row(job.id)).state === 'succeeded', 5_000);
  assert.deepEqual(JSON.parse((await row(job.id)).result ?? 'null'), { by: 'next' });
  next.follow();
});

test('a job left running under an older epoch is not taken from a newer leader by an older one', async () => {
  runs.length = 0;
  const newer = runner('newer');
  await newer.lead(5);
  const job = await submit(newer, 'three');
  await until(() => gates.has('three/newer'), 5_000);
  // A runner that believes it leads under epoch 4 (it has not noticed yet) looks for jobs.
  const stale = runner('stale');
  await stale.lead(4);
  await new Promise((r) => setTimeout(r, 3 * JOB_POLL_MS));
  assert.equal(runs.filter((r) => r.runner === 'stale').length, 0);
  assert.equal((await row(job.id)).epoch, 5);
  stale.follow();
  gates.get('three/newer')?.();
  await until(async () => (await row(job.id)).state === 'succeeded', 5_000);
  newer.follow();
});

test("a cancel asked at a follower reaches the leader's running job", async () => {
  const leader = runner('lead-c');
  const follower = runner('follow-c');
  follower.follow();
  await leader.lead(6);
  const job = await submit(leader, 'four');
  await until(() => gates.has('four/lead-c'), 5_000);
  const asked = await follower.cancel(job.id);
  assert.equal(asked.cancelRequested, true);
  await until(async () => (await row(job.id)).state === 'cancelled', 10 * JOB_POLL_MS);
  leader.follow();
});

test('a job that cannot resume, left by a manager that stopped leading, fails naming it and the one that took over', async () => {
  const first = runner('first');
  nameWriter(db, 'm-first');
  await first.lead(7);
  const job = await first.submit({
    kind: 'test-once',
    target: target('five'),
    params: { label: 'five' },
    actor: SYSTEM,
  });
  await until(() => gates.has('five/first'), 5_000);
  first.follow();
  const second = runner('second');
  nameWriter(db, 'm-second');
  await second.lead(8);
  await until(async () => (await row(job.id)).state === 'failed', 5_000);
  const error = JSON.parse((await row(job.id)).error ?? 'null') as { code: string; detail: string };
  assert.equal(error.code, 'manager-restarted');
  assert.match(
    error.detail,
    /^manager m-first stopped leading \(m-second took over\) while this test-once job was running and it cannot resume/,
  );
  gates.get('five/first')?.();
  second.follow();
});

test('a leader that steps down while it looks for queued jobs launches none of them; the next leader runs them', async () => {
  runs.length = 0;
  const follower = runner('f');
  follower.follow();
  const stepping = runner('stepping');
  await stepping.lead(9);
  const job = await submit(follower, 'three');
  // Its look is under way (its query not answered yet, as in a database outage) when it steps down.
  const look = stepping.recover({ since: 'lead' });
  stepping.follow();
  await look;
  await new Promise((r) => setTimeout(r, 3 * JOB_POLL_MS));
  assert.deepEqual(runs, [], 'nothing launched by a manager that no longer leads');
  const left = await row(job.id);
  assert.equal(left.state, 'queued');
  assert.equal(left.epoch, null);
  const next = runner('after');
  await next.lead(10);
  await until(() => gates.has('three/after'), 5_000);
  gates.get('three/after')?.();
  await until(async () => (await row(job.id)).state === 'succeeded', 5_000);
  next.follow();
});

// The job runner through a real manager (SQLite in a temp dir) with test-only job kinds: progress,
// cancellation, one job at a time per target, and resuming from a checkpoint after a restart.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, mock, test } from 'node:test';
import { z } from 'zod';
import { ManagerClient, type Job } from '../api/index.js';
import type { JobHandler } from './jobs.js';
import { startManager, type RunningManager } from './manager.js';
import { testDatabase } from './test-postgres.js';

let dir: string;
let manager: RunningManager;
let api: ManagerClient;
/** Runs of the `test-resumable` kind seen by this process: whether resumed, and the checkpoint. */
const runs: { resumed: boolean; checkpoint: unknown; takenOver?: { from: string; by: string } }[] = [];
const release = new Set<string>();

const Params = z.object({ label: z.string() });

function testHandlers(): JobHandler<never>[] {
  const waitForRelease = async (label: string, signal: AbortSignal) => {
    while (!release.has(label)) {
      if (signal.aborted) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const gated: JobHandler<z.infer<typeof Params>> = {
    kind: 'test-gated',
    params: Params,
    resumable: false,
    async run(ctx) {
      await ctx.progress({ phase: 'one', percent: 50, message: 'half way' });
      await ctx.progress({ percent: 30, message: 'a step back is not shown' });
      await waitForRelease(ctx.params.label, ctx.signal);
      ctx.throwIfCancelled();
      return { label: ctx.params.label };
    },
  };
  const resumable: JobHandler<z.infer<typeof Params>> = {
    kind: 'test-resumable',
    params: Params,
    resumable: true,
    async run(ctx) {
      runs.push({
        resumed: ctx.resumed,
        checkpoint: ctx.checkpoint,
        ...(ctx.takenOver ? { takenOver: ctx.takenOver } : {}),
      });
      await ctx.saveCheckpoint({ step: 2 }, { phase: 'two', percent: 80 });
      return { resumedFrom: ctx.checkpoint ?? null };
    },
  };
  const quick: JobHandler<z.infer<typeof Params>> = {
    kind: 'test-quick',
    params: Params,
    resumable: false,
    run: async (ctx) => ({ label: ctx.params.label }),
  };
  return [gated, resumable, quick] as JobHandler<never>[];
}

async function start(): Promise<void> {
  manager = await startManager({
    ...(await testDatabase(dir)),
    dataDir: dir,
    reconcileIntervalSeconds: 3600,
    jobHandlers: testHandlers,
    drainSeconds: 1,
    log: () => {},
  });
  api = new ManagerClient(manager.url, manager.adminToken ?? '');
}

const submit = (label: string, kind = 'test-gated', targetId = label) =>
  manager.jobs.submit({
    kind,
    target: { kind: 'vm', id: targetId, name: label },
    params: { label },
    actor: { name: 'admin' },
  });

async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-manager-jobs-'));
  await start();
});
after(async () => {
  await manager.close();
  await rm(dir, { recursive: true, force: true });
});

test('progress never goes backwards, and the result is stored', async () => {
  const job = await submit('a');
  await until('phase one', async () => (await api.getJob(job.id)).progress.phase === 'one');
  const mid = await api.getJob(job.id);
  assert.equal(mid.state, 'running');
  assert.equal(mid.progress.percent, 50);
  assert.equal(mid.progress.message, 'a step back is not shown');
  release.add('a');
  const done = await api.waitForJob(job.id, 20_000);
  assert.equal(done.state, 'succeeded');
  assert.equal(done.progress.percent, 100);
  assert.deepEqual(done.result, { label: 'a' });
  assert.ok(done.startedAt && done.finishedAt && done.finishedAt >= done.startedAt);
});

test('jobs on one target run one at a time; a queued job cancels at once, a running one at its next check', async () => {
  const first = await submit('b', 'test-gated', 'same-target');
  const second = await submit('c', 'test-gated', 'same-target');
  await until('first running', async () => (await api.getJob(first.id)).state === 'running');
  assert.equal((await api.getJob(second.id)).state, 'queued');
  const cancelledQueued = await api.cancelJob(second.id);
  assert.equal(cancelledQueued.state, 'cancelled');
  const events: Job[] = [];
  const watching = api.waitForJob(first.id, 20_000, (j) => events.push(j));
  const asked = await api.cancelJob(first.id);
  assert.equal(asked.cancelRequested, true);
  const ended = await watching;
  assert.equal(ended.state, 'cancelled');
  assert.equal(events.at(-1)?.state, 'cancelled');
  assert.equal((await api.getJob(second.id)).startedAt, undefined, 'the cancelled queued job never ran');
  const list = await api.listJobs({ targetId: 'same-target' });
  assert.deepEqual(
    list.items.map((j) => j.id),
    [second.id, first.id],
  );
});

test('a resumable job interrupted by a restart resumes from its checkpoint', async () => {
  const job = await submit('r', 'test-resumable');
  await api.waitForJob(job.id, 20_000);
  assert.deepEqual(runs, [{ resumed: false, checkpoint: undefined }]);
  // As if the manager had died in the middle: the row says running, with a checkpoint.
  await manager.db
    .updateTable('jobs')
    .set({ state: 'running', finished_at: null, result: null, checkpoint: JSON.stringify({ step: 1 }) })
    .where('id', '=', job.id)
    .execute();
  await manager.close();
  await start();
  const done = await api.waitForJob(job.id, 20_000);
  assert.equal(done.state, 'succeeded');
  // The same manager's restart, not a takeover (no takenOver).
  assert.deepEqual(runs[1], { resumed: true, checkpoint: { step: 1 } });
  assert.deepEqual(done.result, { resumedFrom: { step: 1 } });
  assert.equal(done.progress.phase, 'two');
});

test('a clean stop ends open event streams and leaves a running job to the next start', async () => {
  const job = await submit('z');
  await until('z running', async () => (await api.getJob(job.id)).state === 'running');
  const seen: Job[] = [];
  const watching = (async () => {
    for await (const snapshot of api.watchJob(job.id)) seen.push(snapshot);
  })();
  await until('the first event', async () => seen.length > 0);
  const started = Date.now();
  await manager.close();
  await watching;
  assert.ok(Date.now() - started < 10_000, 'close did not wait for the stream');
  assert.equal(seen.at(-1)?.state, 'running');
  release.add('z');
  await start();
  const after = await api.getJob(job.id);
  assert.equal(after.state, 'failed');
  assert.equal(after.error?.code, 'manager-restarted');
  assert.match(after.error?.detail ?? '', /^the manager restarted while this test-\S+ job was running/);
});

test('jobs created in the same millisecond list newest first in the order they were made, page by page', async () => {
  // The clock stands still while they are submitted: one created_at for all of them.
  mock.timers.enable({ apis: ['Date'], now: Date.parse('2026-12-07T10:00:00.000Z') });
  const made: Job[] = [];
  try {
    for (let i = 0; i < 8; i++) made.push(await submit(`tie-${i}`, 'test-quick', 'same-ms'));
  } finally {
    mock.timers.reset();
  }
  assert.equal(new Set(made.map((j) => j.createdAt)).size, 1, 'one creation time for all');
  const listed: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await api.listJobs({ targetId: 'same-ms', limit: 3, ...(cursor ? { cursor } : {}) });
    listed.push(...page.items.map((j) => j.id));
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  assert.deepEqual(listed, made.map((j) => j.id).reverse());
  for (const job of made) await api.waitForJob(job.id, 20_000);
});

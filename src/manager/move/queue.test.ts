// The per-host move limit as jobs see it (a real manager, SQLite in a temp dir, a test job kind
// that takes move slots like the move jobs do): a job over the limit shows `queued` with the
// reason, a cancel ends it at once, and it runs when a slot frees.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import type { Job } from '../../api/index.js';
import type { JobHandler } from '../jobs.js';
import { startManager, type RunningManager } from '../manager.js';
import { HostSlots, takeMoveSlots } from './slots.js';
import { testDatabase } from '../test-postgres.js';

let dir: string;
let manager: RunningManager;
const slots = new HostSlots(1);
const open = new Set<string>();
const Params = z.object({ label: z.string(), host: z.string() });

const handler: JobHandler<z.infer<typeof Params>> = {
  kind: 'test-slotted',
  params: Params,
  resumable: false,
  async run(ctx) {
    // The move jobs' own slot-taking, so this exercises what they do.
    const release = await takeMoveSlots(slots, ctx, [{ id: ctx.params.host, name: ctx.params.host }], false);
    try {
      while (!open.has(ctx.params.label)) {
        ctx.throwIfCancelled();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return { label: ctx.params.label };
    } finally {
      release();
    }
  },
};

const submit = (label: string) =>
  manager.jobs.submit({
    kind: 'test-slotted',
    target: { kind: 'vm', id: `vm-${label}`, name: label },
    params: { label, host: 'h1' },
    actor: { name: 'test' },
  });

async function until(id: string, ok: (job: Job) => boolean): Promise<Job> {
  for (let i = 0; i < 500; i++) {
    const job = await manager.jobs.get(id);
    if (ok(job)) return job;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`job ${id} never got there: ${JSON.stringify(await manager.jobs.get(id))}`);
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-move-queue-'));
  manager = await startManager({
    ...(await testDatabase(dir)),
    dataDir: dir,
    reconcileIntervalSeconds: 3600,
    jobHandlers: () => [handler] as JobHandler<never>[],
    drainSeconds: 1,
    log: () => {},
  });
});

after(async () => {
  open.add('a').add('b').add('c');
  await manager.close();
  await rm(dir, { recursive: true, force: true });
});

test('over the limit a job waits as queued with the reason, cancels at once, and runs when a slot frees', async () => {
  const a = await submit('a');
  await until(a.id, (j) => j.state === 'running');
  const b = await submit('b');
  // A new job is queued until it starts anyway; this one starts, finds h1 full and waits.
  const queued = await until(b.id, (j) => j.progress.message.startsWith('waiting for a free'));
  assert.equal(queued.state, 'queued');
  assert.equal(queued.progress.message, 'waiting for a free move slot: h1 already at the limit of 1 moves');
  const cancelled = await manager.jobs.cancel(b.id);
  assert.equal(cancelled.state, 'cancelled');
  const c = await submit('c');
  await until(c.id, (j) => j.progress.message.startsWith('waiting for a free'));
  open.add('a');
  assert.equal((await until(a.id, (j) => j.state === 'succeeded')).state, 'succeeded');
  await until(c.id, (j) => j.state === 'running');
  open.add('c');
  await until(c.id, (j) => j.state === 'succeeded');
  // The cancelled one never ran and stays cancelled.
  const endB = await manager.jobs.get(b.id);
  assert.equal(endB.state, 'cancelled');
  assert.equal(slots.inUse('h1'), 0);
});

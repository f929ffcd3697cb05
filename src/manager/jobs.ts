import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { z } from 'zod';
import {
  TERMINAL_JOB_STATES,
  type Job,
  type JobError,
  type JobListQuery,
  type JobProgress,
  type JobState,
  type ObjectIdentity,
  type Page,
} from '../api/index.js';
import { SYSTEM, nowIso, recordChanges, type Actor } from './changes.js';
import { decodeCursor, pageOf } from './cursor.js';
import type { Db, JobsTable, Tx } from './db.js';
import { InvalidInput, JobFinished, JobNotFound, ManagerError, toProblem } from './errors.js';
import { KeyedMutex } from './locks.js';

/*
 * Jobs: long operations persisted in the database and run in the background. A job kind is a
 * registered JobHandler; its run() gets a JobContext to report progress, persist checkpoint data
 * (what a resumable handler needs to continue after a restart) and notice cancellation. Jobs on the
 * same target run one after another.
 */

export interface ProgressUpdate {
  phase?: string;
  /** Clamped so that a job's percentage never goes backwards. */
  percent?: number;
  message?: string;
  details?: Record<string, unknown>;
}

export interface JobContext<P> {
  readonly jobId: string;
  readonly params: P;
  /** The job's creator, with the job id: pass it to whatever records changes. */
  readonly actor: Actor;
  /** True when this run continues a job that a manager restart interrupted. */
  readonly resumed: boolean;
  /** The last data saved with saveCheckpoint (undefined on a first run). */
  readonly checkpoint: unknown;
  /** Aborted when a cancel is requested. */
  readonly signal: AbortSignal;
  progress(update: ProgressUpdate): Promise<void>;
  /** Persists data for a resumed run, together with an optional progress update. */
  saveCheckpoint(data: unknown, update?: ProgressUpdate): Promise<void>;
  /** Throws JobCancelled if a cancel was requested; call it between steps that can be stopped. */
  throwIfCancelled(): void;
  /**
   * Shows the job as `queued` with `message` while `wait` runs (e.g. for a free slot on a host),
   * then as `running` again. A cancel meanwhile ends the job at once and aborts `wait`'s signal.
   */
  waitQueued<T>(message: string, wait: (signal: AbortSignal) => Promise<T>): Promise<T>;
}

export interface JobHandler<P = unknown> {
  kind: string;
  /** Validates the parameters stored with the job (again when it resumes). */
  params: z.ZodType<P>;
  /** Whether run() can continue, from its checkpoint, a job a manager restart interrupted. */
  resumable: boolean;
  /** Does the work; the returned value is stored as the job's result. */
  run(ctx: JobContext<P>): Promise<unknown>;
}

/** Thrown (by throwIfCancelled) to end a job as `cancelled`. */
export class JobCancelled extends Error {
  constructor() {
    super('cancelled on request');
    this.name = 'JobCancelled';
  }
}

type JobRow = Selectable<JobsTable>;

export function jobOf(r: Omit<JobRow, 'seq'>): Job {
  return {
    id: r.id,
    kind: r.kind,
    state: r.state,
    target: { kind: r.target_kind as ObjectIdentity['kind'], id: r.target_id, name: r.target_name },
    createdBy: r.created_by,
    progress: JSON.parse(r.progress) as JobProgress,
    ...(r.result !== null ? { result: JSON.parse(r.result) as unknown } : {}),
    ...(r.error !== null ? { error: JSON.parse(r.error) as JobError } : {}),
    cancelRequested: r.cancel_requested === 1,
    createdAt: r.created_at,
    ...(r.started_at ? { startedAt: r.started_at } : {}),
    ...(r.finished_at ? { finishedAt: r.finished_at } : {}),
    updatedAt: r.updated_at,
  };
}

export const isTerminal = (state: JobState) => TERMINAL_JOB_STATES.includes(state);

export interface SubmitArgs {
  kind: string;
  target: ObjectIdentity;
  params: unknown;
  actor: Actor;
  /** Shown in the queued job's progress details from the start (e.g. the chosen host). */
  details?: Record<string, unknown>;
  /**
   * Runs in the transaction that queues the job (e.g. claims what the job will make); when it
   * throws, no job is queued.
   */
  within?: (tx: Tx, jobId: string) => Promise<void>;
}

export class JobRunner {
  private readonly handlers = new Map<string, JobHandler<unknown>>();
  private readonly targetLocks = new KeyedMutex();
  private readonly controllers = new Map<string, AbortController>();
  private readonly inFlight = new Set<Promise<void>>();
  /** Emits 'job' with every new snapshot of any job. */
  readonly events = new EventEmitter().setMaxListeners(0);

  constructor(
    private readonly db: Db,
    private readonly log: (message: string) => void,
  ) {}

  register<P>(handler: JobHandler<P>): void {
    if (this.handlers.has(handler.kind)) throw new Error(`job kind ${handler.kind} is registered twice`);
    this.handlers.set(handler.kind, handler as JobHandler<unknown>);
  }

  /** Persists a queued job and starts it in the background. */
  async submit(args: SubmitArgs): Promise<Job> {
    const handler = this.handlers.get(args.kind);
    if (!handler) throw new Error(`no handler for job kind ${args.kind}`);
    const parsed = handler.params.safeParse(args.params);
    if (!parsed.success) throw InvalidInput.fromZod(parsed.error);
    const now = nowIso();
    // The row's creation order (seq) is assigned by the database at insert.
    const row: Omit<JobRow, 'seq'> = {
      id: randomUUID(),
      kind: args.kind,
      state: 'queued',
      target_kind: args.target.kind,
      target_id: args.target.id,
      target_name: args.target.name,
      created_by: args.actor.name,
      params: JSON.stringify(parsed.data),
      progress: JSON.stringify({
        phase: 'queued',
        percent: 0,
        message: 'waiting to start',
        details: args.details ?? {},
      }),
      checkpoint: null,
      result: null,
      error: null,
      cancel_requested: 0,
      created_at: now,
      started_at: null,
      finished_at: null,
      updated_at: now,
    };
    await this.db.transaction().execute(async (tx) => {
      await tx.insertInto('jobs').values(row).execute();
      await args.within?.(tx, row.id);
    });
    const job = jobOf(row);
    this.events.emit('job', job);
    this.launch(row.id, false);
    return job;
  }

  async get(id: string): Promise<Job> {
    const row = await this.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new JobNotFound(id);
    return jobOf(row);
  }

  /** Newest first: by creation order (seq), which no two jobs share, unlike a millisecond. */
  async list(q: Omit<JobListQuery, 'limit'> & { limit: number }): Promise<Page<Job>> {
    let query = this.db.selectFrom('jobs').selectAll();
    if (q.state) query = query.where('state', '=', q.state);
    if (q.kind) query = query.where('kind', '=', q.kind);
    if (q.targetId) query = query.where('target_id', '=', q.targetId);
    if (q.cursor) query = query.where('seq', '<', decodeCursor(q.cursor, ['int'])[0]);
    const rows = await query
      .orderBy('seq', 'desc')
      .limit(q.limit + 1)
      .execute();
    return pageOf(rows, q.limit, (r) => [r.seq], jobOf);
  }

  /**
   * Resolves with the job once it has ended, calling `onUpdate` with each snapshot meanwhile (a job
   * that works for another follows it so). Looks again every `pollMs` too: a job ended by another
   * manager process (none yet) or before the listener was on is seen all the same. `signal`
   * aborting stops the wait (rejecting with its reason); the job itself goes on.
   */
  async waitForEnd(
    id: string,
    options: { signal?: AbortSignal; onUpdate?: (job: Job) => void; pollMs?: number } = {},
  ): Promise<Job> {
    const { signal, onUpdate } = options;
    for (;;) {
      signal?.throwIfAborted();
      const job = await this.get(id);
      if (isTerminal(job.state)) return job;
      onUpdate?.(job);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.events.off('job', onJob);
          signal?.removeEventListener('abort', done);
          resolve();
        };
        const onJob = (snapshot: Job) => {
          if (snapshot.id !== id) return;
          if (isTerminal(snapshot.state)) done();
          else onUpdate?.(snapshot);
        };
        const timer = setTimeout(done, options.pollMs ?? 5000);
        this.events.on('job', onJob);
        signal?.addEventListener('abort', done, { once: true });
      });
    }
  }

  /** A queued job is cancelled at once; a running one is asked to stop at its next safe point. */
  async cancel(id: string): Promise<Job> {
    const job = await this.get(id);
    if (isTerminal(job.state)) throw new JobFinished(id, job.state);
    if (job.state === 'queued') {
      const changed = await this.finishIf(id, 'queued', 'cancelled', {
        error: { code: 'cancelled', detail: 'cancelled before it started' },
      });
      if (changed) {
        // A handler waiting in waitQueued stops waiting.
        this.controllers.get(id)?.abort(new JobCancelled());
        return changed;
      }
    }
    await this.update(id, { cancel_requested: 1 });
    this.controllers.get(id)?.abort(new JobCancelled());
    return this.get(id);
  }

  /**
   * After a restart: queued jobs start; running jobs resume when their handler can, and otherwise
   * fail with the reason recorded (in the job and as a change record by `system`).
   */
  async recover(): Promise<void> {
    const rows = await this.db
      .selectFrom('jobs')
      .selectAll()
      .where('state', 'in', ['queued', 'running'])
      // In creation order: jobs on one target queue for it in that order again.
      .orderBy('seq')
      .execute();
    for (const row of rows) {
      const handler = this.handlers.get(row.kind);
      if (row.state === 'queued' && handler) this.launch(row.id, false);
      else if (row.state === 'running' && handler?.resumable) this.launch(row.id, true);
      else {
        const detail = handler
          ? `the manager restarted while this ${row.kind} job was running and it cannot resume; the inventory shows the actual state after the next reconciliation`
          : `the manager restarted and has no handler for job kind ${row.kind}`;
        await this.finishIf(
          row.id,
          row.state,
          'failed',
          { error: { code: 'manager-restarted', detail } },
          true,
        );
      }
    }
  }

  /**
   * Waits up to `timeoutMs` for the jobs running in this process (on a clean stop). Jobs still
   * running then stay `running` in the database and are recovered by the next start.
   */
  async drain(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.inFlight.size && Date.now() < deadline) {
      await Promise.race([
        Promise.allSettled([...this.inFlight]),
        new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())).unref()),
      ]);
    }
  }

  private launch(id: string, resumed: boolean): void {
    const p = this.execute(id, resumed)
      .catch((error: unknown) =>
        this.log(`job ${id}: ${error instanceof Error ? error.message : String(error)}`),
      )
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  private async execute(id: string, resumed: boolean): Promise<void> {
    const first = await this.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    await this.targetLocks.run(first.target_id, async () => {
      const row = await this.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      if (isTerminal(row.state)) return; // cancelled while queued
      const handler = this.handlers.get(row.kind);
      if (!handler) throw new Error(`no handler for job kind ${row.kind}`);
      const controller = new AbortController();
      this.controllers.set(id, controller);
      if (row.cancel_requested) controller.abort(new JobCancelled());
      let progress = JSON.parse(row.progress) as JobProgress;
      const now = nowIso();
      await this.update(id, { state: 'running', started_at: row.started_at ?? now });
      const advance = (update: ProgressUpdate): JobProgress => {
        progress = {
          phase: update.phase ?? progress.phase,
          percent: Math.min(100, Math.max(progress.percent, update.percent ?? progress.percent)),
          message: update.message ?? progress.message,
          details: update.details ?? progress.details,
        };
        return progress;
      };
      const params = handler.params.safeParse(JSON.parse(row.params));
      if (!params.success) {
        // Parameters stored by an older version that this one no longer accepts.
        const detail = InvalidInput.fromZod(params.error).message;
        await this.finish(id, 'failed', {
          error: { code: 'invalid-input', detail: `job parameters: ${detail}` },
          progress,
        });
        this.controllers.delete(id);
        return;
      }
      const ctx: JobContext<unknown> = {
        jobId: id,
        params: params.data,
        actor: { name: row.created_by, jobId: id },
        resumed,
        checkpoint: row.checkpoint === null ? undefined : (JSON.parse(row.checkpoint) as unknown),
        signal: controller.signal,
        progress: (update) => this.update(id, { progress: JSON.stringify(advance(update)) }),
        saveCheckpoint: (data, update) =>
          this.update(id, {
            checkpoint: JSON.stringify(data ?? null),
            ...(update ? { progress: JSON.stringify(advance(update)) } : {}),
          }),
        throwIfCancelled: () => {
          if (controller.signal.aborted) throw new JobCancelled();
        },
        waitQueued: async (message, wait) => {
          await this.update(id, {
            state: 'queued',
            progress: JSON.stringify(advance({ phase: 'queued', message })),
          });
          try {
            return await wait(controller.signal);
          } finally {
            if (!controller.signal.aborted) await this.update(id, { state: 'running' });
          }
        },
      };
      try {
        const result = await handler.run(ctx);
        advance({ percent: 100, message: 'done' });
        await this.finish(id, 'succeeded', { result, progress });
      } catch (error) {
        if (
          error instanceof JobCancelled ||
          (controller.signal.aborted && !(error instanceof ManagerError))
        ) {
          await this.finish(id, 'cancelled', {
            error: { code: 'cancelled', detail: 'cancelled on request' },
            progress,
          });
        } else {
          const problem = toProblem(error);
          if (problem.code === 'internal') this.log(`job ${id} (${row.kind}) failed: ${String(error)}`);
          const detail =
            problem.code === 'internal' && error instanceof Error ? error.message : problem.detail;
          await this.finish(id, 'failed', { error: { code: problem.code, detail }, progress });
        }
      } finally {
        this.controllers.delete(id);
      }
    });
  }

  /** Sets a job's progress message, also after it ended (e.g. a clean-up that ran later). */
  async note(id: string, message: string): Promise<void> {
    const row = await this.db.selectFrom('jobs').select('progress').where('id', '=', id).executeTakeFirst();
    if (!row) throw new JobNotFound(id);
    const progress = JSON.parse(row.progress) as JobProgress;
    await this.update(id, { progress: JSON.stringify({ ...progress, message }) });
  }

  private async update(id: string, set: Partial<JobRow>): Promise<void> {
    await this.db
      .updateTable('jobs')
      .set({ ...set, updated_at: nowIso() })
      .where('id', '=', id)
      .execute();
    this.events.emit('job', await this.get(id));
  }

  private async finish(
    id: string,
    state: JobState,
    end: { result?: unknown; error?: JobError; progress: JobProgress },
  ): Promise<void> {
    const now = nowIso();
    await this.update(id, {
      state,
      finished_at: now,
      progress: JSON.stringify(end.progress),
      result: end.result === undefined ? null : JSON.stringify(end.result),
      error: end.error ? JSON.stringify(end.error) : null,
    });
  }

  /** Ends a job that is still in state `from`; returns it, or undefined if it had moved on. */
  private async finishIf(
    id: string,
    from: JobState,
    to: JobState,
    end: { error: JobError },
    record = false,
  ): Promise<Job | undefined> {
    const now = nowIso();
    const done = await this.db.transaction().execute(async (tx) => {
      const result = await tx
        .updateTable('jobs')
        .set({ state: to, finished_at: now, updated_at: now, error: JSON.stringify(end.error) })
        .where('id', '=', id)
        .where('state', '=', from)
        .executeTakeFirst();
      if (result.numUpdatedRows === 0n) return false;
      if (record) {
        const row = await tx.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
        await recordChanges(
          tx,
          { ...SYSTEM, jobId: id },
          [
            {
              object: { kind: 'job', id, name: `${row.kind} ${row.target_name}` },
              action: 'state-changed',
              changes: [
                { field: 'state', before: from, after: to },
                { field: 'reason', before: null, after: end.error.detail },
              ],
            },
          ],
          now,
        );
      }
      return true;
    });
    if (!done) return undefined;
    const job = await this.get(id);
    this.events.emit('job', job);
    return job;
  }
}

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
import { writerOf, type Db, type JobsTable, type Tx } from './db.js';
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
  /**
   * For a run that continues a job another manager ran (a takeover, issue 31): that manager's name
   * and this one's. Undefined on a first run and when a manager resumes its own (a restart).
   */
  readonly takenOver?: { from: string; by: string };
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

/**
 * Thrown at a job's next write when this manager no longer owns the job: it stopped leading, or a
 * newer leader took the job over (its epoch is on the job's row). The job is left as it is, for
 * the leader to resume.
 */
export class JobDeposed extends Error {
  constructor(jobId: string) {
    super(`job ${jobId} is no longer this manager's: it stopped leading, and the leader resumes the job`);
    this.name = 'JobDeposed';
  }
}

/** How often a leading manager looks for jobs other managers queued (and cancels they asked for). */
export const JOB_POLL_MS = 500;

/**
 * Who runs the jobs (issue 31). `solo`: this runner runs what it is given and recovers on request
 * (one manager, tests). `leading`: it runs jobs under a leader epoch, stamps that epoch on each
 * job it starts, and adopts every job queued by any manager or left running under an older epoch.
 * `following`: submitted jobs are only written down, queued, for the leader.
 */
export type JobRunnerRole = { kind: 'solo' } | { kind: 'leading'; epoch: number } | { kind: 'following' };

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
  /** The jobs this process runs now (launched, not ended): never launched twice. */
  private readonly launched = new Set<string>();
  #role: JobRunnerRole = { kind: 'solo' };
  #poll: NodeJS.Timeout | undefined;
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
      epoch: null,
      manager: null,
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
    // A follower leaves it queued: the leader's next look (JOB_POLL_MS) starts it.
    if (this.#role.kind !== 'following') this.launch(row.id, false);
    return job;
  }

  get role(): JobRunnerRole {
    return this.#role;
  }

  /** Whether this process runs job `id` now (its updates are emitted on `events` as they happen). */
  runsHere(id: string): boolean {
    return this.launched.has(id);
  }

  /**
   * Starts leading under `epoch`: the jobs queued or left running under an older epoch are taken
   * over at once (running ones resumed as after a restart: recover()), then looked for every
   * JOB_POLL_MS, with the cancels other managers wrote down.
   */
  async lead(epoch: number): Promise<void> {
    this.#role = { kind: 'leading', epoch };
    await this.recover();
    const tick = () => {
      this.#poll = setTimeout(() => {
        void this.#look(epoch)
          .catch((error: unknown) =>
            this.log(`jobs: ${error instanceof Error ? error.message : String(error)}`),
          )
          .finally(() => {
            if (this.#role.kind === 'leading' && this.#role.epoch === epoch) tick();
          });
      }, JOB_POLL_MS);
      this.#poll.unref();
    };
    tick();
  }

  /**
   * Stops leading, at once: nothing more is launched, and the jobs running here can write nothing
   * more (their next write throws JobDeposed; the new leader resumes them).
   */
  follow(): void {
    this.#role = { kind: 'following' };
    clearTimeout(this.#poll);
  }

  async #look(epoch: number): Promise<void> {
    if (this.#role.kind !== 'leading' || this.#role.epoch !== epoch) return;
    await this.recover({ since: 'lead' });
    // Cancels asked at another manager: the running job's signal is aborted here.
    const cancels = await this.db
      .selectFrom('jobs')
      .select('id')
      .where('cancel_requested', '=', 1)
      .where('state', 'in', ['queued', 'running'])
      .where('epoch', '=', epoch)
      .execute();
    for (const { id } of cancels) {
      const controller = this.controllers.get(id);
      if (controller && !controller.signal.aborted) controller.abort(new JobCancelled());
    }
  }

  /** Whether a run under `owner` (undefined: a solo run) may still write its job. */
  #owns(owner: number | undefined): boolean {
    return owner === undefined
      ? this.#role.kind === 'solo'
      : this.#role.kind === 'leading' && this.#role.epoch === owner;
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
   * that works for another follows it so). Looks again every `pollMs` too: a job another manager
   * runs (the leader, issue 31) or that ended before the listener was on is seen all the same. `signal`
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
        // A follower sees the leader's progress only in the database: it looks more often.
        const timer = setTimeout(done, options.pollMs ?? (this.#role.kind === 'following' ? 1000 : 5000));
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
  async recover(options: { since?: 'start' | 'lead' } = {}): Promise<void> {
    const role = this.#role;
    if (role.kind === 'following') return;
    let query = this.db.selectFrom('jobs').selectAll().where('state', 'in', ['queued', 'running']);
    // A leader takes the jobs nobody started and those of older epochs; its own it runs already.
    // Once it leads, a job nobody started is one another manager queued (running without an
    // epoch is only what a manager before migration 0017 left, taken at the start).
    if (role.kind === 'leading')
      query = query.where((eb) =>
        eb.or([
          options.since === 'lead'
            ? eb.and([eb('epoch', 'is', null), eb('state', '=', 'queued')])
            : eb('epoch', 'is', null),
          eb('epoch', '<', role.epoch),
        ]),
      );
    // In creation order: jobs on one target queue for it in that order again.
    const rows = await query.orderBy('seq').execute();
    const me = writerOf(this.db);
    for (const row of rows) {
      // It stopped leading while it looked (a database outage makes the look last): the leader
      // takes these; launched here they would run with no owner and stay `running` for good.
      if (this.#role !== role) return;
      if (this.launched.has(row.id)) continue;
      const handler = this.handlers.get(row.kind);
      if (row.state === 'queued' && handler) this.launch(row.id, false);
      else if (row.state === 'running' && handler?.resumable) this.launch(row.id, true);
      else {
        // Another manager's job (a takeover), or this manager's own before its restart.
        const stopped =
          row.manager !== null && me !== null && row.manager !== me
            ? `manager ${row.manager} stopped leading (${me} took over)`
            : 'the manager restarted';
        const detail = handler
          ? `${stopped} while this ${row.kind} job was running and it cannot resume; the inventory shows the actual state after the next reconciliation`
          : `${stopped} and has no handler for job kind ${row.kind}`;
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
    if (this.launched.has(id)) return;
    this.launched.add(id);
    const owner = this.#role.kind === 'leading' ? this.#role.epoch : undefined;
    const p = this.execute(id, resumed, owner)
      .catch((error: unknown) =>
        this.log(
          error instanceof JobDeposed
            ? error.message
            : `job ${id}: ${error instanceof Error ? error.message : String(error)}`,
        ),
      )
      .finally(() => {
        this.inFlight.delete(p);
        this.launched.delete(id);
      });
    this.inFlight.add(p);
  }

  private async execute(id: string, resumed: boolean, owner: number | undefined): Promise<void> {
    const first = await this.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    await this.targetLocks.run(first.target_id, async () => {
      const row = await this.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      if (isTerminal(row.state)) return; // cancelled while queued
      const handler = this.handlers.get(row.kind);
      if (!handler) throw new Error(`no handler for job kind ${row.kind}`);
      // Whose run this continues: the manager that took the job before (null before 0019).
      const me = writerOf(this.db);
      const takenOver =
        resumed && row.manager !== null && me !== null && row.manager !== me
          ? { from: row.manager, by: me }
          : undefined;
      if (owner !== undefined) {
        // The job becomes this leader's: its epoch on the row, unless a newer leader's is there.
        if (!this.#owns(owner)) throw new JobDeposed(id);
        const taken = await this.db
          .updateTable('jobs')
          .set({ epoch: owner, manager: me })
          .where('id', '=', id)
          .where((eb) => eb.or([eb('epoch', 'is', null), eb('epoch', '<=', owner)]))
          .executeTakeFirst();
        if (taken.numUpdatedRows === 0n) throw new JobDeposed(id);
      }
      const controller = new AbortController();
      this.controllers.set(id, controller);
      if (row.cancel_requested) controller.abort(new JobCancelled());
      let progress = JSON.parse(row.progress) as JobProgress;
      const now = nowIso();
      const write = (set: Partial<JobRow>) => this.update(id, set, owner);
      await write({ state: 'running', started_at: row.started_at ?? now });
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
        await this.finish(id, owner, 'failed', {
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
        ...(takenOver ? { takenOver } : {}),
        checkpoint: row.checkpoint === null ? undefined : (JSON.parse(row.checkpoint) as unknown),
        signal: controller.signal,
        progress: (update) => write({ progress: JSON.stringify(advance(update)) }),
        saveCheckpoint: (data, update) =>
          write({
            checkpoint: JSON.stringify(data ?? null),
            ...(update ? { progress: JSON.stringify(advance(update)) } : {}),
          }),
        throwIfCancelled: () => {
          if (controller.signal.aborted) throw new JobCancelled();
        },
        waitQueued: async (message, wait) => {
          await write({
            state: 'queued',
            progress: JSON.stringify(advance({ phase: 'queued', message })),
          });
          try {
            return await wait(controller.signal);
          } finally {
            if (!controller.signal.aborted) await write({ state: 'running' });
          }
        },
      };
      try {
        const result = await handler.run(ctx);
        advance({ percent: 100, message: 'done' });
        await this.finish(id, owner, 'succeeded', { result, progress });
      } catch (error) {
        // Whatever ended the run (an agent's stale-epoch refusal, JobDeposed), the job is not ours
        // to end any more.
        if (!this.#owns(owner)) throw new JobDeposed(id);
        if (
          error instanceof JobCancelled ||
          (controller.signal.aborted && !(error instanceof ManagerError))
        ) {
          await this.finish(id, owner, 'cancelled', {
            error: { code: 'cancelled', detail: 'cancelled on request' },
            progress,
          });
        } else {
          const problem = toProblem(error);
          if (problem.code === 'internal') this.log(`job ${id} (${row.kind}) failed: ${String(error)}`);
          const detail =
            problem.code === 'internal' && error instanceof Error ? error.message : problem.detail;
          await this.finish(id, owner, 'failed', { error: { code: problem.code, detail }, progress });
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

  /**
   * Writes a job's row; a run under `owner` writes only while this manager leads under that epoch
   * and the row still carries it (else JobDeposed: a newer leader has the job).
   */
  private async update(id: string, set: Partial<JobRow>, owner?: number): Promise<void> {
    if (!this.#owns(owner) && owner !== undefined) throw new JobDeposed(id);
    let query = this.db
      .updateTable('jobs')
      .set({ ...set, updated_at: nowIso() })
      .where('id', '=', id);
    if (owner !== undefined) query = query.where('epoch', '=', owner);
    const result = await query.executeTakeFirst();
    if (owner !== undefined && result.numUpdatedRows === 0n) throw new JobDeposed(id);
    this.events.emit('job', await this.get(id));
  }

  private async finish(
    id: string,
    owner: number | undefined,
    state: JobState,
    end: { result?: unknown; error?: JobError; progress: JobProgress },
  ): Promise<void> {
    const now = nowIso();
    await this.update(
      id,
      {
        state,
        finished_at: now,
        progress: JSON.stringify(end.progress),
        result: end.result === undefined ? null : JSON.stringify(end.result),
        error: end.error ? JSON.stringify(end.error) : null,
      },
      owner,
    );
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

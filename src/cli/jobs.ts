// Following a job to its end: live bar on a terminal, plain lines in logs, the job as JSON for scripts.
import { TERMINAL_JOB_STATES, type Job } from '../api/index.js';
import { connectionProblem, OperationFailed } from './errors.js';
import { paint, paintState, terminalSafe } from './output.js';
import type { CliContext } from './program.js';
import {
  nextPlainLine,
  ProgressTracker,
  renderBar,
  renderPlainLine,
  type PlainLineState,
} from './progress.js';
import { moveSummary } from './move-summary.js';
import { renderDetails } from './table.js';
import { formatDuration } from './units.js';

const WATCH_TIMEOUT_MS = 24 * 3600_000;
/** How long to keep re-attaching after the manager stopped answering (it may be restarting). */
const RECONNECT_MS = 120_000;

/** `vm-create vm web-1`: what a job is about, for messages. */
export function jobLabel(job: Job): string {
  return `${job.kind} ${job.target.kind} ${job.target.name}`;
}

/**
 * After a command started `job`: with `detach`, says how to follow it and returns; otherwise
 * follows it to the end. A job that fails or is cancelled throws OperationFailed (exit 1).
 */
export async function followJob(ctx: CliContext, job: Job, detach: boolean): Promise<Job> {
  if (detach) {
    if (ctx.style.json) ctx.printJson(job);
    else {
      ctx.print(`Started job ${job.id} (${jobLabel(job)}).`);
      ctx.print(`Follow it with: silobreak job watch ${job.id}`);
    }
    return job;
  }
  const final = await watch(ctx, job);
  if (ctx.style.json) ctx.printJson(final);
  if (final.state === 'succeeded') {
    if (!ctx.style.json) {
      ctx.print(
        `${paintState(ctx.style, 'succeeded')}: ${jobLabel(final)} in ${formatDuration(jobSeconds(final))}`,
      );
      const summary = moveSummary(final);
      if (summary) ctx.print(renderDetails(summary));
    }
    return final;
  }
  const reason = final.error ? `${final.error.detail} [${final.error.code}]` : final.progress.message;
  throw new OperationFailed(
    `job ${final.id} (${jobLabel(final)}) ${final.state}${reason ? `: ${reason}` : ''}`,
    `details: silobreak job show ${final.id}`,
  );
}

/** Seconds the job has run: from its start (or creation) to its end, or to `nowMs` while it runs. */
export function jobSeconds(job: Job, nowMs = Date.now()): number {
  const start = Date.parse(job.startedAt ?? job.createdAt);
  const end = job.finishedAt ? Date.parse(job.finishedAt) : nowMs;
  return Math.max(0, (end - start) / 1000);
}

/** Follows the job's event stream, drawing progress, and returns its final snapshot. */
async function watch(ctx: CliContext, job: Job): Promise<Job> {
  if (TERMINAL_JOB_STATES.includes(job.state)) return job;
  const tracker = new ProgressTracker(Date.parse(job.startedAt ?? job.createdAt) || Date.now());
  let plain: PlainLineState | undefined;
  const draw = () => {
    const now = Date.now();
    const view = tracker.view(now);
    if (ctx.style.progressBar) {
      ctx.stdout.write(`\r${terminalSafe(renderBar(view, ctx.stdout.columns || 80))}\x1b[K`);
    } else if (!ctx.style.json) {
      const next = nextPlainLine(plain, view, now);
      if (next) {
        plain = next;
        ctx.print(renderPlainLine(view));
      }
    }
  };
  const onUpdate = (snapshot: Job) => {
    tracker.update({ state: snapshot.state, ...snapshot.progress }, Date.now());
    draw();
  };
  if (!ctx.style.json) ctx.print(`Job ${job.id}: ${jobLabel(job)}`);
  onUpdate(job);
  // Between events the bar still ticks: elapsed time, ETA and "stalled" change with the clock.
  const ticker = setInterval(draw, 1000);
  const clearBar = () => {
    if (ctx.style.progressBar) ctx.stdout.write('\r\x1b[K');
  };
  // Ctrl-C leaves the job running; say how to get back to it.
  const onInterrupt = () => {
    clearInterval(ticker);
    clearBar();
    ctx.stderr.write(
      `${paint(ctx.style, 'yellow', 'detached')}: job ${job.id} keeps running; ` +
        `re-attach with: silobreak job watch ${job.id}, or stop it with: silobreak job cancel ${job.id}\n`,
    );
    process.exit(130);
  };
  process.once('SIGINT', onInterrupt);
  try {
    let lostSince: number | undefined;
    for (;;) {
      try {
        return await ctx.client().waitForJob(job.id, WATCH_TIMEOUT_MS, (snapshot) => {
          lostSince = undefined;
          onUpdate(snapshot);
        });
      } catch (error) {
        // A manager restart keeps its jobs: wait for it and re-attach rather than give up.
        const problem =
          error instanceof Error && error.name === 'TimeoutError' ? undefined : connectionProblem(error);
        if (!problem || (lostSince !== undefined && Date.now() - lostSince > RECONNECT_MS)) throw error;
        if (lostSince === undefined) {
          clearBar();
          ctx.stderr.write(`lost the manager (${problem}); re-attaching to job ${job.id}...\n`);
        }
        lostSince ??= Date.now();
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    }
  } finally {
    clearInterval(ticker);
    process.removeListener('SIGINT', onInterrupt);
    clearBar();
  }
}

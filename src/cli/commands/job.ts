// silobreak job list|show|watch|cancel
import type { Command } from 'commander';
import { z } from 'zod';
import { JobKind, JobState, TERMINAL_JOB_STATES, type Job } from '../../api/index.js';
import { followJob, jobLabel, jobSeconds } from '../jobs.js';
import { moveSummary } from '../move-summary.js';
import { paintState, type OutputStyle } from '../output.js';
import { act, allPages, noun, printList, printObject, verb } from '../program.js';
import { input } from '../rules.js';
import { renderDetails, type Column } from '../table.js';
import { formatDuration, formatRelativeTime } from '../units.js';

const JobId = z.uuid('must be a job id (a UUID, as `silobreak job list` shows)');

function duration(job: Job): string {
  return job.startedAt ? formatDuration(jobSeconds(job)) : '-';
}

function progressText(job: Job): string {
  if (TERMINAL_JOB_STATES.includes(job.state)) return job.error ? job.error.detail : '-';
  return `${Math.floor(job.progress.percent)}% ${job.progress.phase}`;
}

function jobColumns(style: OutputStyle): Column<Job>[] {
  return [
    { header: 'Id', value: (j) => j.id },
    { header: 'Kind', value: (j) => j.kind },
    { header: 'Target', value: (j) => `${j.target.kind} ${j.target.name}` },
    { header: 'State', value: (j) => paintState(style, j.state) },
    { header: 'Progress', value: progressText },
    { header: 'By', value: (j) => j.createdBy },
    { header: 'Created', value: (j) => formatRelativeTime(j.createdAt) },
    { header: 'Took', value: duration, align: 'right' },
  ];
}

function jobDetails(j: Job): string {
  const pairs: [string, string][] = [
    ['Job', j.id],
    ['Kind', j.kind],
    ['Target', `${j.target.kind} ${j.target.name} (${j.target.id})`],
    [
      'State',
      j.state + (j.cancelRequested && !TERMINAL_JOB_STATES.includes(j.state) ? ' (cancel requested)' : ''),
    ],
    ['Phase', j.progress.phase || '-'],
    ['Progress', `${Math.floor(j.progress.percent)}%${j.progress.message ? ` ${j.progress.message}` : ''}`],
    ['Created', `${formatRelativeTime(j.createdAt)} by ${j.createdBy}`],
    ['Started', formatRelativeTime(j.startedAt)],
    ['Finished', formatRelativeTime(j.finishedAt)],
    ['Took', duration(j)],
  ];
  if (j.error) pairs.push(['Error', `${j.error.detail} [${j.error.code}]`]);
  for (const [key, value] of Object.entries(j.progress.details))
    pairs.push([`  ${key}`, JSON.stringify(value)]);
  const summary = moveSummary(j);
  // A move ends with what it cost (the figures `job show --json` has in `result`).
  return summary ? `${renderDetails(pairs)}\n\n${renderDetails(summary)}` : renderDetails(pairs);
}

export function registerJobCommands(program: Command): void {
  const job = noun(program, 'job', 'Jobs (long operations: VM create/start/stop/delete, moves)');

  verb(job, 'list', 'List jobs, newest first')
    .option('--state <state>', `only jobs in this state (${JobState.options.join(', ')})`)
    .option('--kind <kind>', 'only jobs of this kind, e.g. vm-create')
    .option('--target <id>', 'only jobs on the object with this id')
    .option('--limit <n>', 'at most this many jobs (default 50)')
    .action(
      act(
        z.object({
          state: JobState.optional(),
          kind: JobKind.optional(),
          target: z.string().min(1).max(128).optional(),
          limit: input.limit,
        }),
        async (o, ctx) => {
          const client = ctx.client();
          const jobs = await allPages(
            (q) => client.listJobs({ ...q, state: o.state, kind: o.kind, targetId: o.target }),
            o.limit ?? 50,
          );
          printList(ctx, jobs, jobColumns(ctx.style), 'No jobs.');
        },
      ),
    );

  verb(job, 'show <id>', 'Show one job').action(
    act(z.object({ id: JobId }), async (o, ctx) => {
      const j = await ctx.client().getJob(o.id);
      printObject(ctx, j, jobDetails(j));
    }),
  );

  verb(job, 'watch <id>', 'Follow a job to its end (exit 1 if it fails)').action(
    act(z.object({ id: JobId }), async (o, ctx) => {
      await followJob(ctx, await ctx.client().getJob(o.id), false);
    }),
  );

  verb(job, 'cancel <id>', 'Ask a running job to stop and undo what it did').action(
    act(z.object({ id: JobId }), async (o, ctx) => {
      const j = await ctx.client().cancelJob(o.id);
      printObject(ctx, j, `Cancel requested for job ${j.id} (${jobLabel(j)}), now ${j.state}.`);
    }),
  );
}

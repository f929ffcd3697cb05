// silobreak report: the week's storage issues, days-until-full ranking, change timeline and moves as
// one self-contained HTML file. This file gathers the data through the API; src/report renders it.
import { chmod, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { z } from 'zod';
import { MoveResult, type ChangeRecord, type Job, type ManagerClient } from '../../api/index.js';
import type {
  ChangeTimeline,
  DatastoreFill,
  MoveFigures,
  NotableChange,
  ReportData,
  Risk,
  StorageIssue,
  TimelineSeries,
} from '../../report/index.js';
import { OperationFailed } from '../errors.js';
import { act, allPages, verb } from '../program.js';
import { input } from '../rules.js';

export interface ReportWindow {
  from: Date;
  to: Date;
}

const DAY_MS = 86_400_000;
const RISKS: readonly Risk[] = ['low', 'medium', 'high'];
/** The high-risk list stops here: the timeline counts them all. */
const TOP_CHANGES = 50;

/**
 * The Storage Explorer's part of the window: the issues active at some time in it (started before
 * its end, not ended before its start; the manager keeps ended ones 8 days), oldest first, and
 * every datastore ranked by days until full, soonest first (those not filling last).
 */
export async function gatherStorage(
  client: ManagerClient,
  window: ReportWindow,
): Promise<{ storageIssues: StorageIssue[]; daysUntilFull: DatastoreFill[] }> {
  const [from, to] = [window.from.toISOString(), window.to.toISOString()];
  const [issues, datastores, { bandOf }] = await Promise.all([
    allPages((q) => client.listStorageIssues({ ...q, state: 'all' })),
    allPages((q) => client.listStorageDatastores({ ...q, sort: 'name' })),
    // The report part (and its charting library) loads only for the report command.
    import('../../report/index.js'),
  ]);
  return {
    storageIssues: issues
      .filter((i) => i.startedAt < to && (i.endedAt === null || i.endedAt >= from))
      .sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.id - b.id)
      .map((i) => ({
        severity: i.severity,
        rule: i.rule,
        object: { kind: i.subject.kind, name: i.subject.name, host: i.subject.host },
        detail: i.message,
        startedAt: i.startedAt,
        endedAt: i.endedAt,
      })),
    daysUntilFull: datastores
      .map((d) => ({
        host: d.host,
        datastore: d.name,
        capacityBytes: d.capacityBytes,
        freeBytes: d.freeBytes,
        provisionedBytes: d.provisionedBytes,
        allocatedBytes: d.allocatedBytes,
        daysUntilFull: d.daysUntilFull,
        band: bandOf(d.daysUntilFull),
      }))
      .sort(
        (a, b) =>
          (a.daysUntilFull ?? Infinity) - (b.daysUntilFull ?? Infinity) ||
          a.host.localeCompare(b.host) ||
          a.datastore.localeCompare(b.datastore),
      ),
  };
}

/** The change timeline of the window from the manager: per UTC day, by risk and by kind of object. */
export async function changeTimeline(client: ManagerClient, window: ReportWindow): Promise<ChangeTimeline> {
  const query = { bucket: 'day', since: window.from.toISOString(), until: window.to.toISOString() } as const;
  const [byRisk, byKind] = await Promise.all([
    client.changeTimeline({ ...query, by: 'risk' }),
    client.changeTimeline({ ...query, by: 'kind' }),
  ]);
  const series = (list: TimelineSeries[], order: readonly string[]) =>
    [...list].sort((a, b) => rank(order, a.name) - rank(order, b.name) || a.name.localeCompare(b.name));
  return {
    bucket: 'day',
    buckets: byRisk.buckets,
    series: series(byRisk.series, RISKS),
    byKind: series(byKind.series, []),
  };
}

const rank = (order: readonly string[], name: string) =>
  order.includes(name) ? order.indexOf(name) : order.length;

/** The high-risk changes, newest first (the records come newest first). */
export function topChanges(records: ChangeRecord[]): NotableChange[] {
  return records
    .flatMap((c) => {
      if (c.risk !== 'high') return [];
      const { kind, name } = c.object;
      return [
        {
          at: c.at,
          actor: c.actor,
          object: { kind, name },
          action: c.action,
          risk: c.risk,
          rule: c.riskRule,
        },
      ];
    })
    .slice(0, TOP_CHANGES);
}

/** What a move job shows while it runs (progress.details), kept after it fails. */
const MoveDetails = z.object({
  from: z.string().optional(),
  to: z.string().optional(),
  mode: z.enum(['live', 'cold']).optional(),
});

/** A finished vm-move job as the report's figures; undefined while it is still queued or running. */
export function moveOf(job: Job): MoveFigures | undefined {
  if (job.state !== 'succeeded' && job.state !== 'failed' && job.state !== 'cancelled') return undefined;
  const result = MoveResult.safeParse(job.result);
  const r = result.success ? result.data : undefined;
  const details = MoveDetails.safeParse(job.progress.details);
  const d = details.success ? details.data : {};
  const elapsedMs =
    job.startedAt && job.finishedAt ? Date.parse(job.finishedAt) - Date.parse(job.startedAt) : undefined;
  const totalMs = r?.totalTimeMs ?? elapsedMs;
  const sent = [r?.diskBytes, r?.memoryBytes].filter((b): b is number => b !== undefined);
  return {
    at: job.finishedAt ?? job.createdAt,
    vm: r?.vm.name ?? job.target.name,
    from: r?.from ?? d.from ?? null,
    to: r?.to ?? d.to ?? null,
    mode: r?.mode ?? d.mode ?? null,
    outcome: job.state,
    totalSeconds: totalMs === undefined ? null : totalMs / 1000,
    downtimeMs: r?.downtimeMs ?? null,
    guestDowntimeMs: r?.guestDowntimeMs ?? null,
    bytes: sent.length ? sent.reduce((a, b) => a + b, 0) : null,
  };
}

/** Everything the report shows, from the manager's API. */
export async function gatherReport(client: ManagerClient, window: ReportWindow): Promise<ReportData> {
  const [from, to] = [window.from.toISOString(), window.to.toISOString()];
  const inWindow = (iso: string) => iso >= from && iso < to;
  const [info, records, timeline, jobs, storage] = await Promise.all([
    client.info(),
    allPages((q) => client.listChanges({ ...q, since: from, until: to, risk: 'high' })),
    changeTimeline(client, window),
    allPages((q) => client.listJobs({ ...q, kind: 'vm-move' })),
    gatherStorage(client, window),
  ]);
  return {
    window: { from, to, generatedAt: new Date().toISOString(), managerVersion: info.version },
    ...storage,
    changeTimeline: timeline,
    topChanges: topChanges(records),
    moves: jobs
      .map(moveOf)
      .filter((m): m is MoveFigures => m !== undefined && inWindow(m.at))
      .sort((a, b) => a.at.localeCompare(b.at)),
  };
}

/** `Wrote week.html: 12 changes (1 high-risk), 3 moves (1 not completed), 0 storage issues (0 active).` */
export function summaryOf(data: ReportData): string {
  const changes = data.changeTimeline.series.reduce((sum, s) => sum + s.counts.reduce((a, b) => a + b, 0), 0);
  const failed = data.moves.filter((m) => m.outcome !== 'succeeded').length;
  const active = data.storageIssues.filter((i) => i.endedAt === null).length;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  return [
    `${plural(changes, 'change')} (${data.topChanges.length} high-risk)`,
    `${plural(data.moves.length, 'move')} (${failed} not completed)`,
    `${plural(data.storageIssues.length, 'storage issue')} (${active} active)`,
    `${plural(data.daysUntilFull.length, 'datastore')} ranked`,
  ].join(', ');
}

export function registerReportCommand(program: Command): void {
  verb(program, 'report', 'Write the week as a self-contained HTML report (storage, changes, moves)')
    .requiredOption('--out <file>', 'the HTML file to write, e.g. week.html')
    .option('--days <n>', 'how many days the report covers, up to now (default 7)')
    .action(
      act(
        z.object({
          out: z.string().min(1, 'must name a file'),
          days: input.count(1, 31).default(7),
        }),
        async (o, ctx) => {
          const to = new Date();
          const data = await gatherReport(ctx.client(), {
            from: new Date(to.getTime() - o.days * DAY_MS),
            to,
          });
          // Loaded only here: the charting library takes seconds to load, every other command skips it.
          const { renderReport } = await import('../../report/index.js');
          const html = renderReport(data);
          try {
            await writeFile(o.out, html, { mode: 0o644 });
            await chmod(o.out, 0o644); // also when the file existed, or the umask is tighter
          } catch (error) {
            const reason = (error as NodeJS.ErrnoException).code ?? String(error);
            throw new OperationFailed(
              `--out: cannot write ${o.out} (${reason})`,
              'name a file in a directory that exists and that you may write to',
            );
          }
          const summary = summaryOf(data);
          if (ctx.style.json) ctx.printJson({ path: o.out, summary, window: data.window });
          else ctx.print(`Wrote ${o.out}: ${summary}.`);
        },
      ),
    );
}

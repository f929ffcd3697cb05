// silobreak changes [list] | changes timeline: the change record of everything made through the
// manager or seen by it, with each change's risk; `change list` is the older spelling.
import type { Command } from 'commander';
import { z } from 'zod';
import {
  CHANGE_WINDOW_DAYS,
  ManagerName,
  ObjectKind,
  RiskFilter,
  TimelineBucket,
  TimelineGrouping,
  type ChangeRecord,
} from '../../api/index.js';
import { renderTimeline } from '../chart.js';
import { paint, type OutputStyle } from '../output.js';
import { act, allPages, noun, printList, verb } from '../program.js';
import { fromParser, input } from '../rules.js';
import type { Column } from '../table.js';
import { formatRelativeTime, parseTimeFilter } from '../units.js';

function show(value: unknown): string {
  if (value === undefined || value === null) return '-';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function paintRisk(style: OutputStyle, risk: ChangeRecord['risk']): string {
  if (risk === 'high') return paint(style, 'red', risk);
  return risk === 'medium' ? paint(style, 'yellow', risk) : risk;
}

function columns(style: OutputStyle): Column<ChangeRecord>[] {
  return [
    { header: 'When', value: (c) => formatRelativeTime(c.at) },
    { header: 'Risk', value: (c) => paintRisk(style, c.risk) },
    { header: 'Rule', value: (c) => c.riskRule },
    { header: 'Actor', value: (c) => c.actor },
    { header: 'Manager', value: (c) => c.manager ?? '-' },
    { header: 'Kind', value: (c) => c.object.kind },
    { header: 'Object', value: (c) => c.object.name },
    { header: 'Action', value: (c) => c.action },
    {
      header: 'Changes',
      value: (c) =>
        c.changes.map((f) => `${f.field}: ${show(f.before)} -> ${show(f.after)}`).join('; ') || '-',
    },
  ];
}

const uuid = z.uuid();

/** The filters both verbs take, as flags and as their zod rules. */
function withFilters(command: Command): Command {
  return command
    .option('--risk <risk>', 'only changes of this risk: low, medium, high, or several joined by commas')
    .option('--kind <kind>', `only changes of objects of this kind (${ObjectKind.options.join(', ')})`)
    .option('--object <id|name>', 'only changes of this object (by name: with its disks, NICs, datastores)')
    .option('--actor <name>', 'only changes by this token name (or `system` for what the manager observed)')
    .option('--manager <name>', 'only changes written by the manager of this name (its --name)')
    .option('--search <text>', 'only changes whose object name, actor or values contain this text')
    .option(
      '--since <time>',
      `since then: an age like 30m, 2h, 7d or an ISO time (default ${CHANGE_WINDOW_DAYS}d)`,
    )
    .option('--until <time>', 'before then (same forms as --since)');
}
const filterRules = {
  risk: RiskFilter.optional(),
  kind: ObjectKind.optional(),
  object: z.string().min(1, 'must not be empty').max(200, 'must be at most 200 characters').optional(),
  actor: z.string().min(1).max(64, 'must be at most 64 characters').optional(),
  manager: ManagerName.optional(),
  search: z.string().min(1, 'must not be empty').max(200, 'must be at most 200 characters').optional(),
  since: fromParser(parseTimeFilter).optional(),
  until: fromParser(parseTimeFilter).optional(),
};
type FilterFlags = z.output<z.ZodObject<typeof filterRules>>;

/** The API's query for the flags: an id goes as objectId, a name as object (found even when deleted). */
function filterQuery(o: FilterFlags) {
  const byId = o.object !== undefined && uuid.safeParse(o.object).success;
  return {
    risk: o.risk,
    kind: o.kind,
    ...(byId ? { objectId: o.object } : { object: o.object }),
    actor: o.actor,
    manager: o.manager,
    text: o.search,
    since: o.since?.iso,
    until: o.until?.iso,
  };
}

export function registerChangeCommands(program: Command): void {
  const list = (parent: Command, name: string, isDefault: boolean) => {
    const command = verb(
      parent,
      name,
      `List change records with their risk, newest first (default: the last ${CHANGE_WINDOW_DAYS} days)`,
      { isDefault },
    );
    withFilters(command)
      .option('--limit <n>', 'at most this many records (default 50)')
      .action(
        act(z.object({ ...filterRules, limit: input.limit }), async (o, ctx) => {
          const client = ctx.client();
          const records = await allPages(
            (q) => client.listChanges({ ...q, ...filterQuery(o) }),
            o.limit ?? 50,
          );
          printList(ctx, records, columns(ctx.style), 'No changes.');
        }),
      );
  };
  const changes = noun(program, 'changes', 'The change record: who changed what, when, and how risky it was');
  list(changes, 'list', true);
  withFilters(
    verb(changes, 'timeline', "Changes over time per risk or kind, as a chart (--json: the API's data)"),
  )
    .option('--bucket <hour|day>', 'one column per hour or per day (default hour)')
    .option('--by <risk|kind>', 'one row per risk or per object kind (default risk)')
    .action(
      act(
        z.object({ ...filterRules, bucket: TimelineBucket.optional(), by: TimelineGrouping.optional() }),
        async (o, ctx) => {
          const timeline = await ctx
            .client()
            .changeTimeline({ ...filterQuery(o), bucket: o.bucket, by: o.by });
          if (ctx.style.json) ctx.printJson(timeline);
          else ctx.print(renderTimeline(timeline, ctx.stdout.columns || 80));
        },
      ),
    );
  // The older noun: `silobreak change list` keeps working.
  list(noun(program, 'change', 'The change record (also `silobreak changes`)'), 'list', false);
}

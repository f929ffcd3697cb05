// silobreak storage explorer | issues | thresholds: the Storage Explorer in the terminal.
import type { Command } from 'commander';
import { z } from 'zod';
import {
  DATASTORE_SORTS,
  DISK_SORTS,
  IssueSeverity,
  StorageRule,
  StorageThresholds,
  StorageWindow,
  storageTotals,
  type DirectionFigures,
  type StorageDatastoreRow,
  type StorageDiskRow,
  type StorageIssue,
  type StorageThresholdOverrides,
  type StorageTotals,
} from '../../api/index.js';
import { paint, type OutputStyle } from '../output.js';
import { act, allPages, noun, printList, printObject, repeatable, verb } from '../program.js';
import { input, parseFieldSettings, parseUnsetFields } from '../rules.js';
import { renderDetails, type Column } from '../table.js';
import { formatBytes, formatRate, formatRelativeTime } from '../units.js';

const num = (v: number | null, digits = 1) => (v === null ? '-' : v.toFixed(digits));
/** `avg/p90/p99` in ms, `-` for what is unknown. */
const latency = (d: DirectionFigures) =>
  d.avgLatencyMs === null ? '-' : `${num(d.avgLatencyMs)}/${num(d.p90LatencyMs)}/${num(d.p99LatencyMs)}`;
const rate = (v: number | null) => (v === null ? '-' : formatRate(v));

function severity(style: OutputStyle, s: StorageIssue['severity']): string {
  return s === 'critical' ? paint(style, 'red', s) : s === 'warning' ? paint(style, 'yellow', s) : s;
}

const datastoreColumns: Column<StorageDatastoreRow>[] = [
  { header: 'Host', value: (d) => d.host },
  { header: 'Datastore', value: (d) => d.name },
  { header: 'Kind', value: (d) => d.kind },
  { header: 'FS', value: (d) => d.fsType },
  { header: 'Capacity', value: (d) => formatBytes(d.capacityBytes), align: 'right' },
  { header: 'Free', value: (d) => formatBytes(d.freeBytes), align: 'right' },
  { header: 'Free%', value: (d) => num(d.freePercent), align: 'right' },
  { header: 'Provisioned', value: (d) => formatBytes(d.provisionedBytes), align: 'right' },
  { header: 'Allocated', value: (d) => formatBytes(d.allocatedBytes), align: 'right' },
  {
    header: 'Overcommit',
    value: (d) => (d.overcommitRatio === null ? '-' : `${d.overcommitRatio.toFixed(2)}x`),
    align: 'right',
  },
  {
    header: 'Full in',
    value: (d) => (d.daysUntilFull === null ? '-' : `${num(d.daysUntilFull)}d`),
    align: 'right',
  },
  { header: 'IOPS', value: (d) => num(d.iops), align: 'right' },
  { header: 'Throughput', value: (d) => rate(d.throughputBytesPerSecond), align: 'right' },
  { header: 'Read ms avg/p90/p99', value: (d) => latency(d.read), align: 'right' },
  { header: 'Write ms avg/p90/p99', value: (d) => latency(d.write), align: 'right' },
  { header: 'Disks', value: (d) => String(d.disks), align: 'right' },
  { header: 'Issues', value: (d) => String(d.issues), align: 'right' },
];

const diskColumns: Column<StorageDiskRow>[] = [
  { header: 'VM', value: (d) => d.vm },
  { header: 'Disk', value: (d) => d.disk },
  { header: 'Host', value: (d) => d.host },
  { header: 'Datastore', value: (d) => d.datastore },
  { header: 'Format', value: (d) => (d.formatVersion ? `${d.format} ${d.formatVersion}` : d.format) },
  { header: 'Size', value: (d) => formatBytes(d.virtualSizeBytes), align: 'right' },
  { header: 'Allocated', value: (d) => formatBytes(d.allocatedBytes), align: 'right' },
  {
    header: 'Guest used',
    value: (d) =>
      d.guestUsedBytes === null
        ? '-'
        : `${formatBytes(d.guestUsedBytes)} (${num(d.guestFullestPercent, 0)}%)`,
    align: 'right',
  },
  { header: 'IOPS', value: (d) => num(d.iops), align: 'right' },
  { header: 'Throughput', value: (d) => rate(d.throughputBytesPerSecond), align: 'right' },
  { header: 'Read ms avg/p90/p99', value: (d) => latency(d.read), align: 'right' },
  { header: 'Write ms avg/p90/p99', value: (d) => latency(d.write), align: 'right' },
];

/** The rows listed, summed: a shared storage several hosts show counts once (storageTotals). */
export function totalsLine(t: StorageTotals): string {
  const counted =
    t.storages === t.datastores
      ? `${t.storages} datastore${t.storages === 1 ? '' : 's'}`
      : `${t.storages} storage${t.storages === 1 ? '' : 's'} in ${t.datastores} datastores (a shared storage counted once)`;
  return `Total: ${formatBytes(t.capacityBytes)} capacity, ${formatBytes(t.usedBytes)} used, ${formatBytes(t.freeBytes)} free; ${counted}`;
}

function issueColumns(style: OutputStyle, all: boolean): Column<StorageIssue>[] {
  return [
    { header: 'Severity', value: (i) => severity(style, i.severity) },
    { header: 'Rule', value: (i) => i.rule },
    { header: 'Subject', value: (i) => `${i.subject.kind} ${i.subject.name}` },
    { header: 'Started', value: (i) => formatRelativeTime(i.startedAt) },
    ...(all ? [{ header: 'Ended', value: (i: StorageIssue) => formatRelativeTime(i.endedAt) }] : []),
    { header: 'Message', value: (i) => i.message },
  ];
}

const ALL_SORTS = [...new Set<string>([...DATASTORE_SORTS, ...DISK_SORTS])];
const THRESHOLD_FIELDS = Object.keys(StorageThresholds.shape);

/** `field=value` pairs of --set into overrides (numbers), naming the bad one. */
export function parseThresholdSettings(settings: readonly string[]): StorageThresholdOverrides {
  return parseFieldSettings(
    settings,
    THRESHOLD_FIELDS,
    'freeWarningPercent=30',
    false,
  ) as StorageThresholdOverrides;
}

export function registerStorageCommands(program: Command): void {
  const storage = noun(
    program,
    'storage',
    'The Storage Explorer: datastores, disks, their figures and issues',
  );

  verb(storage, 'explorer', 'Datastores (default) or VM disks with capacity, I/O and latency over a window')
    .option('--datastores', 'one row per datastore (the default)')
    .option('--disks', 'one row per VM disk')
    .option('--window <age>', 'figures over this last period: 15m, 1h, 7d (default 1h, at most 8d)')
    .option('--sort <column>', `sort by: ${ALL_SORTS.join(', ')}`)
    .option('--order <asc|desc>', 'sort order (default: text ascending, figures descending)')
    .option('--search <text>', 'only rows whose names or format contain this text')
    .option('--host <host>', 'only this host')
    .option('--datastore <name>', 'only disks on this datastore (with --disks)')
    .option('--limit <n>', 'at most this many rows')
    .action(
      act(
        z
          .object({
            datastores: z.boolean().default(false),
            disks: z.boolean().default(false),
            window: StorageWindow,
            sort: z.string().optional(),
            order: z.enum(['asc', 'desc']).optional(),
            search: z
              .string()
              .min(1, 'must not be empty')
              .max(200, 'must be at most 200 characters')
              .optional(),
            host: input.ref.optional(),
            datastore: z.string().min(1).max(64).optional(),
            limit: input.limit,
          })
          .superRefine((o, ctx) => {
            if (o.datastores && o.disks)
              ctx.addIssue({
                code: 'custom',
                path: ['disks'],
                message: 'give --datastores or --disks, not both',
              });
            const sorts: readonly string[] = o.disks ? DISK_SORTS : DATASTORE_SORTS;
            if (o.sort !== undefined && !sorts.includes(o.sort))
              ctx.addIssue({ code: 'custom', path: ['sort'], message: `must be one of ${sorts.join(', ')}` });
            if (o.datastore !== undefined && !o.disks)
              ctx.addIssue({ code: 'custom', path: ['datastore'], message: 'goes with --disks' });
          }),
        async (o, ctx) => {
          const client = ctx.client();
          const common = { window: o.window, order: o.order, q: o.search, host: o.host };
          if (o.disks) {
            const sort = o.sort as (typeof DISK_SORTS)[number] | undefined;
            const rows = await allPages(
              (q) => client.listStorageDisks({ ...q, ...common, sort, datastore: o.datastore }),
              o.limit,
            );
            printList(ctx, rows, diskColumns, 'No disks.');
          } else {
            const sort = o.sort as (typeof DATASTORE_SORTS)[number] | undefined;
            const rows = await allPages(
              (q) => client.listStorageDatastores({ ...q, ...common, sort }),
              o.limit,
            );
            printList(ctx, rows, datastoreColumns, 'No datastores.');
            if (!ctx.style.json && rows.length > 0) ctx.print(totalsLine(storageTotals(rows)));
          }
        },
      ),
    );

  verb(storage, 'issues', 'Storage issues (alerts): active ones, or --all with those that ended')
    .option('--all', 'also issues that ended (kept 8 days)')
    .option('--severity <level>', `only this severity (${IssueSeverity.options.join(', ')})`)
    .option('--rule <rule>', `only this rule (${StorageRule.options.join(', ')})`)
    .option('--limit <n>', 'at most this many issues')
    .action(
      act(
        z.object({
          all: z.boolean().default(false),
          severity: IssueSeverity.optional(),
          rule: StorageRule.optional(),
          limit: input.limit,
        }),
        async (o, ctx) => {
          const client = ctx.client();
          const issues = await allPages(
            (q) =>
              client.listStorageIssues({
                ...q,
                state: o.all ? 'all' : 'active',
                severity: o.severity,
                rule: o.rule,
              }),
            o.limit,
          );
          printList(ctx, issues, issueColumns(ctx.style, o.all), o.all ? 'No issues.' : 'No active issues.');
        },
      ),
    );

  verb(storage, 'thresholds <host> <datastore>', "Show or set a datastore's storage rule thresholds")
    .option('--set <field=value>', 'override a threshold (repeatable); the others keep theirs', repeatable)
    .option('--unset <field>', 'drop one override: back to its default (repeatable)', repeatable)
    .option('--reset', 'drop every override (with --set: keep only those)')
    .action(
      act(
        z.object({
          host: input.ref,
          datastore: z.string().min(1).max(64),
          set: z.array(z.string()).optional(),
          unset: z.array(z.string()).optional(),
          reset: z.boolean().default(false),
        }),
        async (o, ctx) => {
          const client = ctx.client();
          const set = parseThresholdSettings(o.set ?? []);
          const unset = parseUnsetFields(o.unset ?? [], THRESHOLD_FIELDS);
          // As placement settings: --reset replaces (PUT), --set/--unset merge on the manager (PATCH).
          const result = o.reset
            ? await client.setStorageThresholds(o.host, o.datastore, set)
            : o.set || o.unset
              ? await client.patchStorageThresholds(o.host, o.datastore, { ...set, ...unset })
              : await client.getStorageThresholds(o.host, o.datastore);
          const pairs = Object.entries(result.effective).map(
            ([k, v]) =>
              [
                k,
                `${v}${k in result.overrides ? ` (set; default ${String(result.defaults[k as keyof typeof result.defaults])})` : ''}`,
              ] as const,
          );
          printObject(ctx, result, `${result.host}/${result.datastore}\n${renderDetails(pairs)}`);
        },
      ),
    );
}

import { z } from 'zod';
import { DatastoreKind, Name, StorageId } from './agent.js';
import { ObjectRef, PageQuery } from './manager.js';
import { MergePatchOf } from './merge-patch.js';

/*
 * The Storage Explorer's API (manager, /api/v1/storage/...): one row per datastore and per VM disk
 * over a window, the issues the storage rules found, and the per-datastore thresholds those rules
 * use. Figures the manager does not know are null, never 0 (a stopped disk has no IOPS figure, a
 * VM without a guest agent has no guest usage).
 */

const Timestamp = z.iso.datetime().describe('ISO-8601 UTC time');

/**
 * Latency histogram bounds the manager keeps (nanoseconds, ascending; a last bin above the last
 * bound). Agents may report other bounds: their counts are spread over these in proportion to
 * overlap. The agent's own bounds (0.1 ... 500 ms) are a subset, so only its bins get split, and
 * the rules' thresholds (15, 50, 75 ms) sit on bounds.
 */
export const LATENCY_BOUNDS_NS: readonly number[] = [
  0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 20, 30, 50, 75, 100, 250, 500, 1000,
].map((ms) => Math.round(ms * 1e6));

// ---------------------------------------------------------------------------------------------
// Thresholds of the storage rules: documented defaults, each overridable per datastore.

/**
 * Defaults, and why:
 * - over-commitment (provisioned / capacity): 1.5 warns, 2.0 is critical when space is also at
 *   risk (free below the warning band or full within the days-until-full bands); thin disks make
 *   a ratio above 1 normal, so without a shrinking free space it stays one level lower.
 * - free space: below 25 % warns, below 15 % is critical (vCloud Director's yellow/red; vCenter's
 *   usage alarm 75/85 % says the same).
 * - days until full (linear regression of free space over the trend window, 7 days = "the last
 *   week's growth"): under 120 days info, 60 warning, 30 critical (vCenter "time remaining" bands).
 *   It needs trendMinPoints samples spanning trendMinSpanSeconds.
 * - datastore latency: p90 above 15 ms over a 5-minute period (Storage DRS's default).
 * - VM disk latency: the slower direction's average above 50 ms warns, 75 ms critical, over a
 *   5-minute period (vCenter's read and write latency alarms).
 * - VM throughput: a VM moving more than 200 MiB/s (warning) or 500 MiB/s (critical) over a
 *   5-minute period, a neighbour the others on its datastore feel.
 * - guest filesystem: 90 % used warns, 95 % critical (common monitoring practice).
 */
export const DEFAULT_STORAGE_THRESHOLDS = {
  overcommitWarningRatio: 1.5,
  overcommitCriticalRatio: 2.0,
  freeWarningPercent: 25,
  freeCriticalPercent: 15,
  daysUntilFullInfo: 120,
  daysUntilFullWarning: 60,
  daysUntilFullCritical: 30,
  trendWindowHours: 168,
  trendMinPoints: 5,
  trendMinSpanSeconds: 300,
  datastoreLatencyP90Ms: 15,
  vmLatencyWarningMs: 50,
  vmLatencyCriticalMs: 75,
  vmThroughputWarningBytesPerSecond: 200 * 2 ** 20,
  vmThroughputCriticalBytesPerSecond: 500 * 2 ** 20,
  guestUsedWarningPercent: 90,
  guestUsedCriticalPercent: 95,
} as const;

const Percent = z.number().min(0).max(100);
const Positive = z.number().positive().max(1e15);

/** Effective thresholds of one datastore (every field present). */
export const StorageThresholds = z.strictObject({
  overcommitWarningRatio: Positive,
  overcommitCriticalRatio: Positive,
  freeWarningPercent: Percent,
  freeCriticalPercent: Percent,
  daysUntilFullInfo: Positive,
  daysUntilFullWarning: Positive,
  daysUntilFullCritical: Positive,
  // From 36 s (a short trend shows a fill in progress; the lab test uses it) to the 8 days kept.
  trendWindowHours: z
    .number()
    .min(0.01)
    .max(24 * 8),
  trendMinPoints: z.number().int().min(2).max(10_000),
  trendMinSpanSeconds: z
    .number()
    .int()
    .min(10)
    .max(8 * 86_400),
  datastoreLatencyP90Ms: Positive,
  vmLatencyWarningMs: Positive,
  vmLatencyCriticalMs: Positive,
  vmThroughputWarningBytesPerSecond: Positive,
  vmThroughputCriticalBytesPerSecond: Positive,
  guestUsedWarningPercent: Percent,
  guestUsedCriticalPercent: Percent,
});
export type StorageThresholds = z.infer<typeof StorageThresholds>;

/** Each warning level must come before its critical one. */
const ORDERED: [keyof StorageThresholds, keyof StorageThresholds][] = [
  ['overcommitWarningRatio', 'overcommitCriticalRatio'],
  ['freeCriticalPercent', 'freeWarningPercent'],
  ['daysUntilFullCritical', 'daysUntilFullWarning'],
  ['daysUntilFullWarning', 'daysUntilFullInfo'],
  ['vmLatencyWarningMs', 'vmLatencyCriticalMs'],
  ['vmThroughputWarningBytesPerSecond', 'vmThroughputCriticalBytesPerSecond'],
  ['guestUsedWarningPercent', 'guestUsedCriticalPercent'],
];

/** The first pair of levels out of order in effective thresholds, if any. */
export function thresholdOrderProblem(t: StorageThresholds): { field: string; message: string } | undefined {
  for (const [low, high] of ORDERED) {
    if (t[low] > t[high]) return { field: low, message: `must not be above ${high} (${t[high]})` };
  }
  return undefined;
}

/**
 * PUT body: the overrides of one datastore (fields left out take the defaults); `{}` clears them.
 * It replaces the previous overrides as a whole.
 */
export const StorageThresholdOverrides = StorageThresholds.partial().strict();
export type StorageThresholdOverrides = z.infer<typeof StorageThresholdOverrides>;
/** PATCH body: a merge patch of the overrides (`null` drops one: back to its default). */
export const StorageThresholdPatch = MergePatchOf(StorageThresholdOverrides);
export type StorageThresholdPatch = { [K in keyof StorageThresholds]?: StorageThresholds[K] | null };

export const DatastoreThresholds = z.object({
  host: Name,
  datastore: Name,
  /** What the rules use: the defaults with the overrides applied. */
  effective: StorageThresholds,
  overrides: StorageThresholdOverrides,
  defaults: StorageThresholds,
});
export type DatastoreThresholds = z.infer<typeof DatastoreThresholds>;

export const DatastoreRef = z.object({ host: ObjectRef, datastore: Name });

// ---------------------------------------------------------------------------------------------
// Explorer rows

/** One direction's figures over the window: null when nothing was measured. */
export const DirectionFigures = z.object({
  iops: z.number().nullable(),
  bytesPerSecond: z.number().nullable(),
  /** Δ total time ÷ Δ operations over the window (never the average since boot). */
  avgLatencyMs: z.number().nullable(),
  /** From the latency histograms, linear within a bin; null without histograms. */
  p90LatencyMs: z.number().nullable(),
  p99LatencyMs: z.number().nullable(),
});
export type DirectionFigures = z.infer<typeof DirectionFigures>;

const IoFigures = {
  read: DirectionFigures,
  write: DirectionFigures,
  /** Reads + writes (+ flushes for IOPS). */
  iops: z.number().nullable(),
  throughputBytesPerSecond: z.number().nullable(),
  /** Seconds of the window the figures cover (a VM stopped for part of it covers less). */
  coveredSeconds: z.number(),
};

/**
 * Which storage a datastore is: a shared datastore's storage id (hosts whose datastores carry it see
 * one storage), else its host and name. The one key for "a shared storage is one budget": the
 * explorer's totals (storageTotals), placement's rooms and the upgrade planner's space.
 */
export function storageKey(d: { host: string; name: string; storageId?: string | null | undefined }): string {
  return d.storageId ? `storage ${d.storageId}` : `${d.host}/${d.name}`;
}

/**
 * The subject name of an issue about a shared storage's space (one for all its hosts): its
 * storageKey and the datastores (`host/name`) that see it, e.g. `storage nfs-a (host1/shared,
 * host2/shared)`. datastoresOfSubject reads it back, so the console marks each of those rows.
 */
export function sharedStorageSubject(key: string, datastores: readonly string[]): string {
  return `${key} (${datastores.join(', ')})`;
}

/** The datastores (`host/name`) a datastore issue's subject name is about: itself, or a shared storage's. */
export function datastoresOfSubject(name: string): string[] {
  const shared = /^storage \S+ \((.*)\)$/.exec(name);
  return shared ? (shared[1] ?? '').split(', ') : [name];
}

export interface StorageTotals {
  /** Distinct storages: a shared one seen by several hosts counts once. */
  storages: number;
  /** Datastore rows summed (each host's view of a shared storage is one). */
  datastores: number;
  capacityBytes: number;
  freeBytes: number;
  usedBytes: number;
}

/**
 * Capacity and free space summed over storages, each once. The hosts of one shared storage report
 * the same filesystem, measured at slightly different moments: it counts with the largest
 * capacity and the least free space any of them reported (what can be counted on).
 */
export function storageTotals(
  rows: readonly {
    host: string;
    name: string;
    storageId?: string | null | undefined;
    capacityBytes: number;
    freeBytes: number;
  }[],
): StorageTotals {
  const byStorage = new Map<string, { capacityBytes: number; freeBytes: number }>();
  for (const r of rows) {
    const k = storageKey(r);
    const seen = byStorage.get(k);
    byStorage.set(
      k,
      seen
        ? {
            capacityBytes: Math.max(seen.capacityBytes, r.capacityBytes),
            freeBytes: Math.min(seen.freeBytes, r.freeBytes),
          }
        : { capacityBytes: r.capacityBytes, freeBytes: r.freeBytes },
    );
  }
  let capacityBytes = 0;
  let freeBytes = 0;
  for (const s of byStorage.values()) {
    capacityBytes += s.capacityBytes;
    freeBytes += s.freeBytes;
  }
  return {
    storages: byStorage.size,
    datastores: rows.length,
    capacityBytes,
    freeBytes,
    usedBytes: capacityBytes - freeBytes,
  };
}

export const StorageDatastoreRow = z.object({
  host: Name,
  name: Name,
  /** `local` or `shared` storage (the inventory's datastore; `local` once it left the inventory). */
  kind: DatastoreKind,
  /** A shared datastore's storage id: rows with the same one are one storage (storageTotals); null for a local one. */
  storageId: StorageId.nullable(),
  fsType: z.string(),
  capacityBytes: z.number(),
  freeBytes: z.number(),
  freePercent: z.number().nullable(),
  /** Sum of the virtual sizes of the images on it. */
  provisionedBytes: z.number(),
  /** Sum of the allocated sizes of the images on it. */
  allocatedBytes: z.number(),
  /** provisioned ÷ capacity. */
  overcommitRatio: z.number().nullable(),
  /** From the free-space trend; null when free space does not shrink or the trend is too short. */
  daysUntilFull: z.number().nullable(),
  disks: z.number().int(),
  ...IoFigures,
  /** Active issues of the datastore and its disks. */
  issues: z.number().int(),
  sampledAt: Timestamp,
});
export type StorageDatastoreRow = z.infer<typeof StorageDatastoreRow>;

export const StorageDiskRow = z.object({
  vm: Name,
  vmId: z.uuid(),
  disk: Name,
  host: Name,
  datastore: Name,
  format: z.enum(['qcow2', 'raw']),
  /** qcow2 compat level ("0.10" or "1.1"); null for raw. */
  formatVersion: z.string().nullable(),
  virtualSizeBytes: z.number(),
  allocatedBytes: z.number(),
  ...IoFigures,
  flushAvgLatencyMs: z.number().nullable(),
  /**
   * The VM's guest filesystems (all of them, the guest does not say which disk holds which):
   * summed size and used bytes, and the fullest one's percentage. Null when unknown.
   */
  guestUsedBytes: z.number().nullable(),
  guestSizeBytes: z.number().nullable(),
  guestFullestPercent: z.number().nullable(),
  sampledAt: Timestamp,
});
export type StorageDiskRow = z.infer<typeof StorageDiskRow>;

/** The I/O columns both views sort by. */
const IO_SORTS = [
  'iops',
  'throughput',
  'readIops',
  'writeIops',
  'readThroughput',
  'writeThroughput',
  'readLatency',
  'writeLatency',
  'readP90',
  'writeP90',
  'readP99',
  'writeP99',
] as const;

/** Columns a datastore view sorts by (text ones ascending, figures descending unless `order`). */
export const DATASTORE_SORTS = [
  'host',
  'name',
  'kind',
  'fsType',
  'capacity',
  'free',
  'freePercent',
  'provisioned',
  'allocated',
  'overcommit',
  'daysUntilFull',
  'disks',
  'issues',
  ...IO_SORTS,
] as const;
export const DISK_SORTS = [
  'vm',
  'disk',
  'host',
  'datastore',
  'format',
  'formatVersion',
  'virtualSize',
  'allocated',
  'guestFullestPercent',
  'guestUsed',
  ...IO_SORTS,
] as const;
export const TEXT_SORTS: readonly string[] = [
  'host',
  'name',
  'kind',
  'fsType',
  'vm',
  'disk',
  'datastore',
  'format',
  'formatVersion',
];

/** Shortest and longest window; the store keeps 8 days. */
export const WINDOW_MIN_SECONDS = 60;
export const WINDOW_MAX_SECONDS = 8 * 86_400;
export const DEFAULT_WINDOW = '1h';
/**
 * The windows the console offers. The store keeps each as one row per disk and datastore, so
 * any sort of a view over one reads 10,000s of rows, not 100,000s; other windows sum buckets.
 */
export const EXPLORER_WINDOWS = ['15m', '1h', '6h', '24h', '7d', '8d'] as const;

/** `15m`, `1h`, `7d` -> seconds. */
export function parseWindow(text: string): number | undefined {
  const m = /^([1-9][0-9]{0,4})([mhd])$/.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * { m: 60, h: 3600, d: 86_400 }[m[2] as 'm' | 'h' | 'd'];
}

export const StorageWindow = z
  .string()
  .max(8)
  .default(DEFAULT_WINDOW)
  .superRefine((text, ctx) => {
    const s = parseWindow(text);
    if (s === undefined)
      ctx.addIssue({ code: 'custom', message: 'must be a number and a unit m, h or d, like 15m, 1h or 7d' });
    else if (s < WINDOW_MIN_SECONDS || s > WINDOW_MAX_SECONDS)
      ctx.addIssue({ code: 'custom', message: 'must be from 1m to 8d (the store keeps 8 days)' });
  });

const ExplorerQuery = PageQuery.extend({
  window: StorageWindow,
  order: z.enum(['asc', 'desc']).optional(),
  /** Case-insensitive substring of the names (host, datastore, VM, disk) and the format. */
  q: z.string().min(1).max(200).optional(),
  host: ObjectRef.optional(),
});

export const StorageDatastoreQuery = ExplorerQuery.extend({
  sort: z.enum(DATASTORE_SORTS).default('name'),
});
export type StorageDatastoreQuery = z.input<typeof StorageDatastoreQuery>;

export const StorageDiskQuery = ExplorerQuery.extend({
  sort: z.enum(DISK_SORTS).default('vm'),
  datastore: Name.optional(),
});
export type StorageDiskQuery = z.input<typeof StorageDiskQuery>;

// ---------------------------------------------------------------------------------------------
// Issues (alerts)

export const IssueSeverity = z.enum(['info', 'warning', 'critical']);
export type IssueSeverity = z.infer<typeof IssueSeverity>;

export const STORAGE_RULES = [
  'over-commitment',
  'low-capacity',
  'days-until-full',
  'high-latency',
  'format-version-mismatch',
  'filesystem-mismatch',
  'vm-low-disk-space',
  'vm-latency',
  'vm-throughput',
  /** The VM's guest tools need attention: outdated, not answering, or missing (see ToolsStatus). */
  'vm-tools',
  /**
   * A host cannot reach a shared datastore it configures (its agent's bounded check: a hung or
   * failing mount, another storage or none mounted there, or its cluster lockspace on it lost);
   * critical, open while the agent says so.
   */
  'shared-datastore-lost',
  /**
   * Drift (issue 28): a VM or datastore appeared on or vanished from a host without the manager
   * (made on its agent directly); active for DRIFT_ISSUE_HOURS. Reconciliation opens these, not
   * the storage rules, so Prometheus has no alert for them.
   */
  'drift',
  /** Drift the inventory refuses: a VM on a host whose name or MAC is another VM's; active while it is there. */
  'drift-conflict',
] as const;
/** The rules reconciliation opens (manager/drift.ts); the others come from the storage figures. */
export const DRIFT_RULES = [
  'drift',
  'drift-conflict',
] as const satisfies readonly (typeof STORAGE_RULES)[number][];
/** How long a drift issue stays active: a day, so the next morning's look at the issues sees it. */
export const DRIFT_ISSUE_HOURS = 24;
export const StorageRule = z.enum(STORAGE_RULES);
export type StorageRule = z.infer<typeof StorageRule>;

export const StorageIssue = z.object({
  id: z.number().int(),
  rule: StorageRule,
  severity: IssueSeverity,
  /** What it is about: a datastore (`host/datastore`), a disk (`vm/disk`) or a VM's filesystem. */
  subject: z.object({
    kind: z.enum(['datastore', 'disk', 'vm']),
    name: z.string(),
    host: Name.nullable(),
  }),
  message: z.string(),
  /** The figure that fired the rule, and the threshold it crossed. */
  value: z.number().nullable(),
  threshold: z.number().nullable(),
  active: z.boolean(),
  startedAt: Timestamp,
  /** null while active. */
  endedAt: Timestamp.nullable(),
  updatedAt: Timestamp,
});
export type StorageIssue = z.infer<typeof StorageIssue>;

export const StorageIssueQuery = PageQuery.extend({
  /** active (default): open issues; all: also those that ended (kept 8 days). */
  state: z.enum(['active', 'all']).default('active'),
  severity: IssueSeverity.optional(),
  rule: StorageRule.optional(),
});
export type StorageIssueQuery = z.input<typeof StorageIssueQuery>;

// ---------------------------------------------------------------------------------------------
// Time series (the console's charts): one point per bucket of the store over a window

/** Most points a series holds: its step is the finest stored tier that covers the window within it. */
export const SERIES_MAX_POINTS = 300;

export const StorageSeriesQuery = z.strictObject({ window: StorageWindow });
export type StorageSeriesQuery = z.input<typeof StorageSeriesQuery>;

/** One bucket's I/O: the explorer's figures over `stepSeconds` from `at`; null where nothing was measured. */
export const SeriesPoint = z.object({
  /** Start of the bucket. */
  at: Timestamp,
  read: DirectionFigures,
  write: DirectionFigures,
  iops: z.number().nullable(),
  throughputBytesPerSecond: z.number().nullable(),
  /** Seconds of the bucket the figures cover (0: no sample; less than the step: the current one, or a stop). */
  coveredSeconds: z.number(),
});
export type SeriesPoint = z.infer<typeof SeriesPoint>;

/** A datastore's bucket: its disks' I/O summed, and its space as last sampled in the bucket. */
export const DatastoreSeriesPoint = SeriesPoint.extend({
  capacityBytes: z.number().nullable(),
  usedBytes: z.number().nullable(),
  freeBytes: z.number().nullable(),
});
export type DatastoreSeriesPoint = z.infer<typeof DatastoreSeriesPoint>;

const SeriesFrame = {
  window: z.string(),
  /** Length of each point's bucket (30 s, 5 min or 1 h, the tier the window reads). */
  stepSeconds: z.number().int().positive(),
  /** First bucket's start and the end of the last (the current, partial) one. */
  from: Timestamp,
  to: Timestamp,
};

export const DiskSeries = z.object({
  vm: Name,
  vmId: z.uuid(),
  disk: Name,
  /** Where it was last sampled; null before its first sample. */
  host: Name.nullable(),
  datastore: Name.nullable(),
  ...SeriesFrame,
  points: z.array(SeriesPoint),
});
export type DiskSeries = z.infer<typeof DiskSeries>;

export const DatastoreSeries = z.object({
  host: Name,
  datastore: Name,
  ...SeriesFrame,
  points: z.array(DatastoreSeriesPoint),
});
export type DatastoreSeries = z.infer<typeof DatastoreSeries>;

/** A VM's disks summed per bucket (operations and bytes add up; the covered time is the longest). */
export const VmSeries = z.object({
  vm: Name,
  vmId: z.uuid(),
  /** The disks summed: those the store has figures of. */
  disks: z.array(Name),
  ...SeriesFrame,
  points: z.array(SeriesPoint),
});
export type VmSeries = z.infer<typeof VmSeries>;

export const DiskSeriesRef = z.object({ vm: ObjectRef, disk: Name });

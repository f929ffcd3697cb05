// What a weekly report shows: the one input of renderReport. The CLI gathers it from the manager's
// API; the renderer trusts nothing else, so every field is checked here (unknown fields are errors).
import { z } from 'zod';

const Time = z.iso.datetime().describe('ISO-8601 UTC time');
const Bytes = z.number().int().min(0);
/** Optional figures are null when not measured, never 0: the report says "-" for them. */
const Measured = z.number().min(0).nullable();

export const Severity = z.enum(['critical', 'warning', 'info']);
export type Severity = z.infer<typeof Severity>;

export const Risk = z.enum(['low', 'medium', 'high']);
export type Risk = z.infer<typeof Risk>;

/** Days-until-full bands, narrowest first: a datastore is in the first band its figure is under. */
export const DAYS_UNTIL_FULL_BANDS = [30, 60, 120] as const;
export const Band = z.enum(['under-30', 'under-60', 'under-120', 'ok']);
export type Band = z.infer<typeof Band>;

/** The band of a days-until-full figure; `ok` when it is above every band or unknown (not growing). */
export function bandOf(daysUntilFull: number | null): Band {
  if (daysUntilFull === null) return 'ok';
  const limit = DAYS_UNTIL_FULL_BANDS.find((days) => daysUntilFull < days);
  return limit === undefined ? 'ok' : `under-${limit}`;
}

export const StorageIssue = z.strictObject({
  severity: Severity,
  /** The rule that fired, e.g. `low-capacity`, `over-commitment`, `high-latency`. */
  rule: z.string().min(1),
  object: z.strictObject({
    /** As the Storage Explorer names its subjects: a datastore, a VM's disk, or a VM (its filesystems, tools, figures). */
    kind: z.enum(['datastore', 'disk', 'vm']),
    /** `host/datastore`, `vm/disk`, or the VM's name. */
    name: z.string().min(1),
    host: z.string().nullable(),
  }),
  detail: z.string(),
  startedAt: Time,
  /** Null while the issue is still active. */
  endedAt: Time.nullable(),
});
export type StorageIssue = z.infer<typeof StorageIssue>;

export const DatastoreFill = z.strictObject({
  host: z.string().min(1),
  datastore: z.string().min(1),
  capacityBytes: Bytes,
  freeBytes: Bytes,
  /** Sum of the virtual sizes of its images. */
  provisionedBytes: Bytes,
  /** Sum of the allocated sizes of its images. */
  allocatedBytes: Bytes,
  /** From the growth trend; null when free space is not shrinking. */
  daysUntilFull: Measured,
  band: Band,
});
export type DatastoreFill = z.infer<typeof DatastoreFill>;

export const TimelineSeries = z.strictObject({
  name: z.string().min(1),
  /** One count per bucket. */
  counts: z.array(z.number().int().min(0)),
});
export type TimelineSeries = z.infer<typeof TimelineSeries>;

export const ChangeTimeline = z
  .strictObject({
    bucket: z.enum(['hour', 'day']),
    /** Start of each bucket. */
    buckets: z.array(Time),
    /** By risk: `low`, `medium`, `high` (or `unrated` while records carry no risk). */
    series: z.array(TimelineSeries),
    byKind: z.array(TimelineSeries).optional(),
  })
  .superRefine((timeline, ctx) => {
    for (const [key, list] of [
      ['series', timeline.series],
      ['byKind', timeline.byKind ?? []],
    ] as const) {
      list.forEach((s, i) => {
        if (s.counts.length !== timeline.buckets.length) {
          ctx.addIssue({
            code: 'custom',
            path: [key, i, 'counts'],
            message: `must have one count per bucket (${timeline.buckets.length}), has ${s.counts.length}`,
          });
        }
      });
    }
  });
export type ChangeTimeline = z.infer<typeof ChangeTimeline>;

export const NotableChange = z.strictObject({
  at: Time,
  actor: z.string(),
  object: z.strictObject({ kind: z.string(), name: z.string() }),
  action: z.string(),
  risk: Risk,
  /** The rule that set the risk. */
  rule: z.string(),
});
export type NotableChange = z.infer<typeof NotableChange>;

export const MoveOutcome = z.enum(['succeeded', 'failed', 'cancelled']);

export const MoveFigures = z.strictObject({
  /** When the move ended (or started, if it never ended). */
  at: Time,
  vm: z.string().min(1),
  /** Null when a failed move never said (its job ended before planning). */
  from: z.string().nullable(),
  to: z.string().nullable(),
  mode: z.enum(['live', 'cold']).nullable(),
  outcome: MoveOutcome,
  totalSeconds: Measured,
  /** QEMU's figure for the switchover. */
  downtimeMs: Measured,
  /** What the guest saw (its clock's gap or a ping), where measured. */
  guestDowntimeMs: Measured,
  /** Disk and memory bytes sent. */
  bytes: Measured,
});
export type MoveFigures = z.infer<typeof MoveFigures>;

export const ReportData = z.strictObject({
  window: z.strictObject({
    from: Time,
    to: Time,
    generatedAt: Time,
    managerVersion: z.string(),
  }),
  storageIssues: z.array(StorageIssue),
  /** Ranked: soonest full first. */
  daysUntilFull: z.array(DatastoreFill),
  changeTimeline: ChangeTimeline,
  /** The high-risk changes of the window, newest first. */
  topChanges: z.array(NotableChange),
  moves: z.array(MoveFigures),
});
export type ReportData = z.infer<typeof ReportData>;

import { z } from 'zod';
import { Name } from './agent.js';
import { ObjectRef, PageQuery } from './manager.js';
import { MergePatchOf } from './merge-patch.js';

/*
 * Demand-driven placement (issue 18, manager /api/v1/placement/...): hot VMs move to a datastore
 * of the fast class and go home when they cool; schedules move a VM in ahead of a window and back
 * after it; `suggest` ranks where a new VM would go. Every recommendation carries its reason.
 */

const Timestamp = z.iso.datetime().describe('ISO-8601 UTC time');

/** DRS-like modes: nothing, recommendations to apply by hand, or moves started by the manager. */
export const PlacementMode = z.enum(['off', 'recommend', 'automatic']);
export type PlacementMode = z.infer<typeof PlacementMode>;

/**
 * The mode a new manager starts in: `recommend`. vSphere DRS defaults to fully automated, but a
 * placement loop that starts moves on its own should be switched on knowingly (and its
 * recommendations seen first) — Storage DRS shipped in manual mode for the same reason.
 */
export const DEFAULT_PLACEMENT_MODE: PlacementMode = 'recommend';

/**
 * Placement defaults, and why (README "Placement" lists them too):
 * - evaluation every 60 s (vSphere 7 DRS's period); demand read over the last 5 minutes.
 * - hot: at least 200 IOPS *and* its disks' p90 latency at least 15 ms (Storage DRS's latency
 *   default), held 5 minutes (the sustained period of vCenter's latency alarms). Both, so a busy
 *   VM that its storage serves well stays put. `hotLatencyMs: 0` drops the latency condition.
 *   Or held at a limit (HELD_AT_LIMIT_SHARE below), whatever its latency, for the same hold.
 * - cool: below 50 IOPS, held 30 minutes: a lower threshold and a longer hold than hot, the
 *   hysteresis that keeps a VM near the threshold from bouncing.
 * - a VM stays at least 30 minutes after any move, makes at most 4 placement moves in 24 hours
 *   (2 per episode: there and back; it leaves only with a move left for the way back) and at most
 *   1 placement move runs at a time.
 * - a target keeps 1 GiB of memory and 15 % of its space free (vCloud Director's red band), and
 *   the VMs on it use at most 80 % of its IOPS budget (its limit or measured capability).
 * - a schedule's lead time: memory and allocated disk at 100 MiB/s plus 60 s, so the move has
 *   ended when the window opens.
 */
export const DEFAULT_PLACEMENT_SETTINGS = {
  evaluationIntervalSeconds: 60,
  demandWindowSeconds: 300,
  fastClass: 'fast',
  hotIops: 200,
  hotLatencyPercentile: 'p90',
  hotLatencyMs: 15,
  holdSeconds: 300,
  coolIops: 50,
  coolHoldSeconds: 1800,
  minStaySeconds: 1800,
  movesPerDay: 4,
  maxConcurrentMoves: 1,
  minFreeMemoryBytes: 2 ** 30,
  minFreeSpacePercent: 15,
  maxIopsUtilisation: 0.8,
  moveBytesPerSecond: 100 * 2 ** 20,
  moveOverheadSeconds: 60,
} as const satisfies PlacementSettings;

/**
 * A VM whose I/O over the demand window runs at this share of a limit it is throttled at (its
 * datastore's IOPS or bandwidth limit: QEMU applies it to each VM's disks on that datastore) is
 * *held at its limit*: it suffers, and counts as hot whatever its latency shows. A throttle
 * bounds the latency a single-queue guest sees (random I/O held at a 400-IOPS limit reads p90
 * ~4.5 ms, never Storage DRS's 15 ms), so latency alone misses it; and QEMU 10's
 * `query-blockstats` has no figure of the time requests wait in a throttle group (its accounting
 * is the device's: the wait is inside the latency, nothing apart). 90 %: a throttled guest
 * runs within 1 % of its limit (402 of 400 IOPS measured), so 90 % still holds over a window
 * with a pause of a tenth of it or a sample lost at its edges, while a VM using 80 % of its
 * limit is served, not held.
 */
export const HELD_AT_LIMIT_SHARE = 0.9;

const Seconds = (min: number, max: number) => z.number().int().min(min).max(max);
const DAY = 86_400;

export const PlacementSettings = z.strictObject({
  evaluationIntervalSeconds: Seconds(1, DAY),
  /**
   * At least 30 s: one bucket of the Storage Explorer's finest tier (a window covers its length
   * plus up to one bucket).
   */
  demandWindowSeconds: Seconds(30, DAY),
  fastClass: Name,
  hotIops: z.number().positive().max(1e9),
  hotLatencyPercentile: z.enum(['p90', 'p99']),
  hotLatencyMs: z.number().min(0).max(1e6),
  holdSeconds: Seconds(0, 7 * DAY),
  coolIops: z.number().min(0).max(1e9),
  coolHoldSeconds: Seconds(0, 7 * DAY),
  minStaySeconds: Seconds(0, 7 * DAY),
  movesPerDay: z.number().int().min(0).max(1000),
  maxConcurrentMoves: z.number().int().min(0).max(100),
  minFreeMemoryBytes: z
    .number()
    .int()
    .min(0)
    .max(2 ** 50),
  minFreeSpacePercent: z.number().min(0).max(100),
  maxIopsUtilisation: z.number().positive().max(1),
  moveBytesPerSecond: z.number().positive().max(1e13),
  moveOverheadSeconds: Seconds(0, DAY),
});
export type PlacementSettings = z.infer<typeof PlacementSettings>;

/** The hysteresis the settings must keep; the first field out of order, if any. */
export function placementSettingsProblem(
  s: PlacementSettings,
): { field: string; message: string } | undefined {
  if (s.coolIops >= s.hotIops)
    return { field: 'coolIops', message: `must be below hotIops (${s.hotIops}): the hysteresis band` };
  if (s.coolHoldSeconds < s.holdSeconds)
    return { field: 'coolHoldSeconds', message: `must not be below holdSeconds (${s.holdSeconds})` };
  if (s.movesPerDay === 1)
    return {
      field: 'movesPerDay',
      message: 'must be 0 or at least 2: a VM leaves its home only with a move left to come back',
    };
  return undefined;
}

/**
 * PUT /placement/settings: the overrides as a whole (fields left out take the defaults); `{}`
 * restores every default. PATCH changes some: a merge patch, `null` drops an override.
 */
export const PlacementSettingsOverrides = PlacementSettings.partial().strict();
export type PlacementSettingsOverrides = z.infer<typeof PlacementSettingsOverrides>;
export const PlacementSettingsPatch = MergePatchOf(PlacementSettingsOverrides);
/** `{ holdSeconds: 600, hotIops: null }`: set one override, drop another. */
export type PlacementSettingsPatch = { [K in keyof PlacementSettings]?: PlacementSettings[K] | null };

export const PlacementModeBody = z.strictObject({ mode: PlacementMode });
export type PlacementModeBody = z.infer<typeof PlacementModeBody>;

export const PlacementConfig = z.object({
  mode: PlacementMode,
  /** What the loop uses: the defaults with the overrides applied. */
  settings: PlacementSettings,
  overrides: PlacementSettingsOverrides,
  defaults: PlacementSettings,
});
export type PlacementConfig = z.infer<typeof PlacementConfig>;

// ---------------------------------------------------------------------------------------------
// Per-VM settings

/** Named priorities map onto 0-100 (an integer may be given instead). */
export const PRIORITY_NAMES = { low: 25, normal: 50, high: 75 } as const;
export const Priority = z.union([z.enum(['low', 'normal', 'high']), z.number().int().min(0).max(100)]);
export type Priority = z.infer<typeof Priority>;
export const priorityValue = (p: Priority): number => (typeof p === 'number' ? p : PRIORITY_NAMES[p]);

export const Location = z.strictObject({ host: ObjectRef, datastore: Name });
export type Location = z.infer<typeof Location>;

/** PUT /vms/:vm/placement: a VM's placement settings, all of them (PATCH changes some). */
export const VmPlacementRequest = z.strictObject({
  priority: Priority,
  /** Pinned: placement never moves it (its demand still counts on its datastore). */
  pinned: z.boolean(),
  /** Excluded: placement neither moves it nor counts it as a candidate. */
  excluded: z.boolean(),
  /** Where it goes when it cools; null (or left out) forgets it (set again at the next move away). */
  home: Location.nullable().default(null),
});
export type VmPlacementRequest = z.input<typeof VmPlacementRequest>;
/** PATCH /vms/:vm/placement: a merge patch of those settings (`home: null` forgets the home). */
export const VmPlacementPatch = MergePatchOf(VmPlacementRequest);
export type VmPlacementPatch = {
  priority?: Priority;
  pinned?: boolean;
  excluded?: boolean;
  home?: { host?: string; datastore?: string } | null;
};

export const VmPlacement = z.object({
  vm: Name,
  priority: z.number().int(),
  pinned: z.boolean(),
  excluded: z.boolean(),
  home: z.object({ host: Name, datastore: Name }).nullable(),
  /** Why it is where it is, when placement put it there. */
  placedFor: z.enum(['demand', 'schedule']).nullable(),
  hotSince: Timestamp.nullable(),
  coolSince: Timestamp.nullable(),
});
export type VmPlacement = z.infer<typeof VmPlacement>;

// ---------------------------------------------------------------------------------------------
// Recommendations

export const RecommendationKind = z.enum(['to-fast', 'go-home', 'displace', 'schedule-in', 'schedule-out']);
export type RecommendationKind = z.infer<typeof RecommendationKind>;
export const RecommendationState = z.enum(['pending', 'applied', 'dismissed', 'expired']);
export type RecommendationState = z.infer<typeof RecommendationState>;

export const PlacementReason = z.object({
  /**
   * iops, iops-limit or bandwidth-limit (held at its datastore's limit: value in IOPS or bytes/s,
   * threshold HELD_AT_LIMIT_SHARE of the limit), schedule, priority.
   */
  metric: z.string(),
  value: z.number().nullable(),
  threshold: z.number().nullable(),
  windowSeconds: z.number(),
  /** How long the condition has held. */
  heldSeconds: z.number(),
  text: z.string(),
});
export type PlacementReason = z.infer<typeof PlacementReason>;

export const PredictedLoad = z.object({
  /** The target's IOPS with the VM added, and its budget (null: unknown, not limited). */
  iops: z.number(),
  iopsBudget: z.number().nullable(),
  memoryFreeBytes: z.number(),
  freeBytes: z.number(),
});
export type PredictedLoad = z.infer<typeof PredictedLoad>;

export const Recommendation = z.object({
  id: z.uuid(),
  kind: RecommendationKind,
  vm: Name,
  vmId: z.uuid(),
  from: z.object({ host: Name, datastore: Name }),
  to: z.object({ host: Name, datastore: Name, class: z.string() }),
  reason: PlacementReason,
  predicted: PredictedLoad,
  state: RecommendationState,
  createdAt: Timestamp,
  updatedAt: Timestamp,
  /** The move's job once applied. */
  jobId: z.uuid().nullable(),
});
export type Recommendation = z.infer<typeof Recommendation>;

export const RecommendationQuery = PageQuery.extend({
  /** Only these; pending when absent. */
  state: z.union([RecommendationState, z.literal('all')]).default('pending'),
});
export type RecommendationQuery = z.input<typeof RecommendationQuery>;

export const RecommendationRef = z.object({ id: z.uuid() });

// ---------------------------------------------------------------------------------------------
// Schedules

/** `4h`, `90m`, `1d`, `3600s`: a window's length, from 1 minute to 7 days. */
export function parseDuration(text: string): number | undefined {
  const m = /^([1-9][0-9]{0,5})([smhd])$/.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: DAY }[m[2] as 's' | 'm' | 'h' | 'd'];
}
export const Duration = z
  .string()
  .max(8)
  .superRefine((text, ctx) => {
    const s = parseDuration(text);
    if (s === undefined)
      ctx.addIssue({ code: 'custom', message: 'must be a number and a unit s, m, h or d, like 4h or 90m' });
    else if (s < 60 || s > 7 * DAY) ctx.addIssue({ code: 'custom', message: 'must be from 1m to 7d' });
  });

export const CreateScheduleRequest = z.strictObject({
  vm: ObjectRef,
  class: Name,
  /** Five fields (minute hour day-of-month month day-of-week), UTC: when each window opens. */
  cron: z.string().min(9).max(100),
  /** How long each window lasts. */
  for: Duration,
});
export type CreateScheduleRequest = z.infer<typeof CreateScheduleRequest>;

export const PlacementSchedule = z.object({
  id: z.uuid(),
  vm: Name,
  class: z.string(),
  cron: z.string(),
  durationSeconds: z.number().int(),
  /** The window in progress or the next one. */
  nextStart: Timestamp.nullable(),
  nextEnd: Timestamp.nullable(),
  createdAt: Timestamp,
  createdBy: z.string(),
});
export type PlacementSchedule = z.infer<typeof PlacementSchedule>;
export const ScheduleRef = z.object({ id: z.uuid() });

// ---------------------------------------------------------------------------------------------
// Status and suggest

export const PlacementVmStatus = z.object({
  vm: Name,
  host: Name,
  datastore: Name,
  class: z.string(),
  iops: z.number().nullable(),
  latencyMs: z.number().nullable(),
  /** hot (above the hot threshold or held at a limit), cool (below the cool one) or between. */
  demand: z.enum(['hot', 'cool', 'between', 'unknown']),
  /** Why its demand is what it is ("held at its datastore's 400-IOPS limit ..."); null: unknown. */
  demandReason: z.string().nullable(),
  /**
   * Why a VM hot past its hold is not moved to the fast class (no room there and why, its day's
   * budget, a move slot, the room kept for a hotter VM of higher priority...), as the next round
   * would decide now; null when it asks for no move or would get one.
   */
  waitingReason: z.string().nullable(),
  priority: z.number().int(),
  pinned: z.boolean(),
  excluded: z.boolean(),
  home: z.object({ host: Name, datastore: Name }).nullable(),
  movesToday: z.number().int(),
});
export type PlacementVmStatus = z.infer<typeof PlacementVmStatus>;

export const PlacementStatus = z.object({
  mode: PlacementMode,
  settings: PlacementSettings,
  lastEvaluatedAt: Timestamp.nullable(),
  pendingRecommendations: z.number().int(),
  movesInFlight: z.number().int(),
  vms: z.array(PlacementVmStatus),
});
export type PlacementStatus = z.infer<typeof PlacementStatus>;

export const SuggestRequest = z.strictObject({
  memoryBytes: z
    .number()
    .int()
    .min(1)
    .max(2 ** 50),
  diskBytes: z
    .number()
    .int()
    .min(0)
    .max(2 ** 55),
  /** Only datastores of this class; any class when absent. */
  class: Name.optional(),
  /** Only hosts of this pool. */
  pool: ObjectRef.optional(),
});
export type SuggestRequest = z.infer<typeof SuggestRequest>;

export const SuggestCandidate = z.object({
  host: Name,
  datastore: Name,
  class: z.string(),
  /** Higher is better; the list is sorted by it. */
  score: z.number(),
  reasons: z.array(z.string()),
});
export type SuggestCandidate = z.infer<typeof SuggestCandidate>;

export const SuggestResult = z.object({
  candidates: z.array(SuggestCandidate),
  /** Datastores that do not fit, each with why. */
  refused: z.array(z.object({ host: Name, datastore: Name, reason: z.string() })),
});
export type SuggestResult = z.infer<typeof SuggestResult>;

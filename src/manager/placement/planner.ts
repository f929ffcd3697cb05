/*
 * The placement planner: pure, so every rule is testable without a manager. Given each VM's
 * demand, facts and streaks, the targets' capacity, the settings, the schedule windows and the
 * time, it returns the moves it recommends (each with its reason and the target's predicted load)
 * and the streaks to keep for the next round.
 *
 * A VM enters the fast class only with two moves left in its day's budget: one to come back.
 *
 * Order of decisions: VMs leave the fast class first (schedule windows that ended, VMs cooled for
 * the long hold), then VMs enter it (schedule windows about to open, then hot VMs by priority and
 * demand). A VM that finds no room may displace a lower-priority one, which goes home first; the
 * newcomer follows in a later round, once the room is really free. A lower-priority VM does not
 * take room a higher-priority one, hot but not yet for the hold time, would need. Capacity is
 * booked as moves are planned, so a round never overfills a target.
 */
import {
  HELD_AT_LIMIT_SHARE,
  type HostMaintenance,
  type PlacementReason,
  type PlacementSettings,
  type PredictedLoad,
  type RecommendationKind,
  storageKey,
} from '../../api/index.js';

export interface Place {
  host: string;
  datastore: string;
}

/** Limits a VM's disks on a datastore are throttled at (the datastore's); null: none. */
export interface IoLimits {
  iops: number | null;
  bytesPerSecond: number | null;
}

/** A VM's I/O on one datastore over the window, and the limits it is throttled at there. */
export interface ThrottledIo {
  datastore: string;
  iops: number | null;
  bytesPerSecond: number | null;
  limits: IoLimits;
}

export interface Demand {
  /** Reads + writes + flushes per second over the window, all disks. */
  iops: number | null;
  /** The slowest disk's latency at the settings' percentile (ms); null when unknown. */
  latencyMs: number | null;
  /** Its I/O on each datastore its disks are on, with that datastore's limits; absent: none known. */
  throttled?: readonly ThrottledIo[];
}

export interface VmFacts {
  id: string;
  name: string;
  running: boolean;
  memoryBytes: number;
  /** Allocated bytes of its disks: what a move needs on the target. */
  diskBytes: number;
  at: Place;
  /** The class of the datastore it is on. */
  cls: string;
  home: Place | null;
  placedFor: 'demand' | 'schedule' | null;
  priority: number;
  pinned: boolean;
  excluded: boolean;
  /** Epoch ms of its last move (any), null when never. */
  lastMoveAt: number | null;
  /** Placement moves of the last 24 hours. */
  movesToday: number;
  /** A move of it is queued or running. */
  moving: boolean;
  /** Where a placement move in flight takes it (booked there already). */
  movingTo: Place | null;
  demand: Demand | null;
  /**
   * The IOPS a placement move brought it here for, while its demand window does not yet cover its
   * time here (its demand here then shows only part of it); null otherwise.
   */
  arrivalIops: number | null;
  hotSince: number | null;
  coolSince: number | null;
}

export interface Target extends Place {
  cls: string;
  connected: boolean;
  /** A host in maintenance (entering or in) is never a target. */
  maintenance: HostMaintenance;
  memoryFreeBytes: number;
  capacityBytes: number;
  freeBytes: number;
  /** A shared datastore's storage id (several hosts' datastores, one storage); null for a local one. */
  storageId: string | null;
  /** The datastore's IOPS limit or measured capability; null when unknown (not limited). */
  iopsBudget: number | null;
  /** The limits QEMU throttles each VM's disks on it at. */
  limits: IoLimits;
}

/** A schedule's window nearest now (in progress or next), epoch ms. */
export interface ScheduleWindow {
  vmId: string;
  cls: string;
  start: number;
  end: number;
}

export interface PlanInput {
  vms: readonly VmFacts[];
  targets: readonly Target[];
  settings: PlacementSettings;
  windows: readonly ScheduleWindow[];
  /** Placement moves queued or running now. */
  movesInFlight: number;
  now: number;
}

export interface PlannedMove {
  kind: RecommendationKind;
  vmId: string;
  vm: string;
  from: Place;
  to: Place & { cls: string };
  reason: PlacementReason;
  predicted: PredictedLoad;
}

export interface Streak {
  hotSince: number | null;
  coolSince: number | null;
}

export interface PlanOutput {
  moves: PlannedMove[];
  streaks: Map<string, Streak>;
  /**
   * Why a VM whose demand asks for a move (hot past its hold off the fast class) gets none this
   * round, by VM id: what a user reads when a hot VM stays where it is (vSphere lists such DRS
   * faults too). VMs that ask for nothing have no entry.
   */
  waiting: Map<string, string>;
}

const key = (p: Place) => `${p.host}/${p.datastore}`;
const same = (a: Place, b: Place) => a.host === b.host && a.datastore === b.datastore;

/** A limit a VM's I/O runs at: HELD_AT_LIMIT_SHARE of it or more over the window. */
export interface HeldAtLimit {
  datastore: string;
  metric: 'iops' | 'bandwidth';
  /** Its IOPS or bytes per second over the window. */
  value: number;
  limit: number;
}

/** The limit the VM's I/O runs nearest to, when it runs at HELD_AT_LIMIT_SHARE of it or more. */
export function heldAtLimit(d: Demand | null): HeldAtLimit | null {
  let best: { held: HeldAtLimit; share: number } | null = null;
  for (const t of d?.throttled ?? []) {
    const pairs = [
      ['iops', t.iops, t.limits.iops],
      ['bandwidth', t.bytesPerSecond, t.limits.bytesPerSecond],
    ] as const;
    for (const [metric, value, limit] of pairs) {
      if (value === null || limit === null || limit <= 0) continue;
      const share = value / limit;
      if (share >= HELD_AT_LIMIT_SHARE && (best === null || share > best.share))
        best = { held: { datastore: t.datastore, metric, value, limit }, share };
    }
  }
  return best?.held ?? null;
}

/**
 * Why a VM is hot: held at a limit (whatever its latency: a throttle bounds what a guest sees),
 * or busy (`hotIops`) and served slowly (`hotLatencyMs`; busy alone when that is 0). A VM below
 * the cool threshold is never hot, so a limit set that low does not make an idle VM hot and the
 * hysteresis band holds.
 */
export type HotCause = { kind: 'limit'; held: HeldAtLimit } | { kind: 'latency' } | { kind: 'iops' };

export function hotCause(d: Demand | null, s: PlacementSettings): HotCause | null {
  if (d?.iops === null || d?.iops === undefined || isCool(d, s)) return null;
  const held = heldAtLimit(d);
  if (held) return { kind: 'limit', held };
  if (d.iops < s.hotIops) return null;
  if (s.hotLatencyMs <= 0) return { kind: 'iops' };
  return d.latencyMs !== null && d.latencyMs >= s.hotLatencyMs ? { kind: 'latency' } : null;
}

export function isHot(d: Demand | null, s: PlacementSettings): boolean {
  return hotCause(d, s) !== null;
}

export function isCool(d: Demand | null, s: PlacementSettings): boolean {
  return d?.iops !== null && d?.iops !== undefined && d.iops < s.coolIops;
}

const MiB = 2 ** 20;
const limitName = (h: HeldAtLimit) =>
  h.metric === 'iops' ? `${fmt(h.limit)}-IOPS` : `${fmt(h.limit / MiB)}-MiB/s`;
const heldValue = (h: HeldAtLimit) =>
  h.metric === 'iops' ? `${fmt(h.value)} IOPS` : `${fmt(h.value / MiB)} MiB/s`;
const latencyText = (d: Demand, s: PlacementSettings, op: string) =>
  `${s.hotLatencyPercentile} latency ${fmt(d.latencyMs)} ms ${op} ${s.hotLatencyMs} ms`;

/** `held at its datastore's 400-IOPS limit: 399 IOPS, at least 90 % of it`. */
export function heldText(h: HeldAtLimit): string {
  return `held at its datastore's ${limitName(h)} limit: ${heldValue(h)}, at least ${Math.round(HELD_AT_LIMIT_SHARE * 100)} % of it`;
}

/** Why a VM's demand is hot, cool or between (the status shows it); null when unknown. */
export function demandReason(d: Demand | null, s: PlacementSettings): string | null {
  if (d?.iops === null || d?.iops === undefined) return null;
  const cause = hotCause(d, s);
  const iops = `IOPS ${fmt(d.iops)}`;
  if (cause?.kind === 'limit') return heldText(cause.held);
  if (cause?.kind === 'latency') return `${iops} ≥ ${s.hotIops}, ${latencyText(d, s, '≥')}`;
  if (cause?.kind === 'iops') return `${iops} ≥ ${s.hotIops}`;
  if (isCool(d, s)) return `${iops} below ${s.coolIops}`;
  if (d.iops < s.hotIops) return `${iops}: below ${s.hotIops}, not below ${s.coolIops}, and at no limit`;
  return `${iops} ≥ ${s.hotIops}, but ${latencyText(d, s, '<')} and at no limit`;
}

/** The streaks after this round: a condition's start is kept while it holds, cleared when not. */
export function nextStreak(vm: VmFacts, s: PlacementSettings, now: number): Streak {
  return {
    hotSince: isHot(vm.demand, s) ? (vm.hotSince ?? now) : null,
    coolSince: isCool(vm.demand, s) ? (vm.coolSince ?? now) : null,
  };
}

/** Estimated seconds a move of the VM takes (a schedule moves it that much ahead of its window). */
export function estimatedMoveSeconds(vm: Pick<VmFacts, 'memoryBytes' | 'diskBytes'>, s: PlacementSettings) {
  return Math.ceil((vm.memoryBytes + vm.diskBytes) / s.moveBytesPerSecond) + s.moveOverheadSeconds;
}

export type Fit = { problem: string } | { predicted: PredictedLoad };

/**
 * Whether `need` fits on the target as it is now (`now`: its free memory and space, the IOPS its
 * VMs make), keeping the settings' reserves; the load it would have with it. The one capacity rule
 * of the planner and of `suggest`.
 */
export function fitOn(
  t: Target,
  now: { memoryFreeBytes: number; freeBytes: number; iops: number },
  need: { memoryBytes: number; diskBytes: number; iops: number },
  s: PlacementSettings,
): Fit {
  if (!t.connected) return { problem: `host ${t.host} is not connected` };
  if (t.maintenance !== 'none') return { problem: `host ${t.host} is ${t.maintenance} maintenance` };
  const memory = now.memoryFreeBytes - need.memoryBytes;
  if (memory < s.minFreeMemoryBytes)
    return {
      problem: `host ${t.host} would keep ${memory} bytes of memory free, below ${s.minFreeMemoryBytes}`,
    };
  const free = now.freeBytes - need.diskBytes;
  if (free < (t.capacityBytes * s.minFreeSpacePercent) / 100)
    return {
      problem: `${key(t)} would keep ${free} bytes free, below ${s.minFreeSpacePercent} % of its capacity`,
    };
  const iops = now.iops + need.iops;
  if (t.iopsBudget !== null && iops > t.iopsBudget * s.maxIopsUtilisation)
    return {
      problem: `${key(t)} would serve ${Math.round(iops)} IOPS, above ${s.maxIopsUtilisation * 100} % of its budget ${t.iopsBudget}`,
    };
  return { predicted: { iops, iopsBudget: t.iopsBudget, memoryFreeBytes: memory, freeBytes: free } };
}

/**
 * The IOPS a VM is counted for on its datastore and wherever it is booked: its demand, or what it
 * was moved in for while its window is still filling (else a VM that just arrived would look
 * nearly idle, and a second one would be let in beside it).
 */
const iopsOf = (vm: VmFacts) => Math.max(vm.demand?.iops ?? 0, vm.arrivalIops ?? 0);

/** A target's free room as the round books moves on it. */
interface Room {
  t: Target;
  free: number;
  iops: number;
}

/**
 * Every target's free room (memory per host: its datastores share it) as moves are booked. A room
 * is a storage (storageKey): the datastores of several hosts on one shared storage are one room,
 * their free space and IOPS one budget whichever host writes.
 */
class Ledger {
  rooms = new Map<string, Room>();
  /** The room of each target's place (`host/datastore`). */
  roomOf = new Map<string, string>();
  hostMemory = new Map<string, number>();
  constructor(
    targets: readonly Target[],
    vms: readonly VmFacts[],
    private s: PlacementSettings,
  ) {
    for (const t of targets) {
      this.hostMemory.set(t.host, t.memoryFreeBytes);
      const room = storageKey({ host: t.host, name: t.datastore, storageId: t.storageId });
      this.roomOf.set(key(t), room);
      if (!this.rooms.has(room)) this.rooms.set(room, { t, free: t.freeBytes, iops: 0 });
    }
    for (const vm of vms) {
      const room = this.room(vm.at);
      if (room) room.iops += iopsOf(vm);
      // A move in flight holds room on both sides until it ends: the agent's free figures may
      // not show the incoming copy yet.
      if (vm.movingTo) {
        const to = this.room(vm.movingTo);
        if (to && to !== room) {
          to.iops += iopsOf(vm);
          to.free -= vm.diskBytes;
        }
        if (vm.movingTo.host !== vm.at.host)
          this.hostMemory.set(
            vm.movingTo.host,
            (this.hostMemory.get(vm.movingTo.host) ?? 0) - vm.memoryBytes,
          );
      }
    }
  }

  /** The room of a place: its storage's. */
  room(p: Place): Room | undefined {
    const k = this.roomOf.get(key(p));
    return k === undefined ? undefined : this.rooms.get(k);
  }

  clone(): Ledger {
    const copy = Object.create(Ledger.prototype) as Ledger;
    copy.s = this.s;
    copy.rooms = new Map([...this.rooms].map(([k, r]) => [k, { ...r }]));
    copy.roomOf = this.roomOf;
    copy.hostMemory = new Map(this.hostMemory);
    return copy;
  }

  /** Connected targets with the most IOPS headroom first (no budget: unlimited), then free space. */
  rank(targets: readonly Target[]): Target[] {
    const headroom = (t: Target) => {
      const room = this.room(t);
      return t.iopsBudget === null ? Infinity : t.iopsBudget - (room?.iops ?? 0);
    };
    const free = (t: Target) => this.room(t)?.free ?? 0;
    return targets
      .filter((t) => t.connected && t.maintenance === 'none')
      .sort((a, b) => headroom(b) - headroom(a) || free(b) - free(a) || (key(a) < key(b) ? -1 : 1));
  }

  /**
   * Why the VM would not fit on the target, or its prediction when it fits. `iops: false` leaves
   * its demand out of the IOPS budget (a displaced VM going home: see homeFor).
   */
  check(vm: VmFacts, to: Place, iops = true): Fit {
    const room = this.room(to);
    if (!room) return { problem: `${key(to)} is not known` };
    const sameHost = vm.at.host === to.host;
    return fitOn(
      room.t,
      { memoryFreeBytes: this.hostMemory.get(to.host) ?? 0, freeBytes: room.free, iops: room.iops },
      {
        memoryBytes: sameHost ? 0 : vm.memoryBytes,
        diskBytes: vm.diskBytes,
        iops: iops ? iopsOf(vm) : 0,
      },
      this.s,
    );
  }

  /** Books the VM's move: its target gains it, its source loses it. */
  book(vm: VmFacts, to: Place): void {
    const src = this.room(vm.at);
    const dst = this.room(to);
    const d = iopsOf(vm);
    // Between two hosts of one shared storage the disks stay: its room neither gains nor loses.
    if (dst && dst !== src) {
      dst.free -= vm.diskBytes;
      dst.iops += d;
    }
    if (src && src !== dst) {
      src.free += vm.diskBytes;
      src.iops -= d;
    }
    if (vm.at.host !== to.host) {
      this.hostMemory.set(to.host, (this.hostMemory.get(to.host) ?? 0) - vm.memoryBytes);
      this.hostMemory.set(vm.at.host, (this.hostMemory.get(vm.at.host) ?? 0) + vm.memoryBytes);
    }
  }
}

export function plan(input: PlanInput): PlanOutput {
  const { settings: s, now } = input;
  const streaks = new Map<string, Streak>();
  const vms = input.vms.map((vm) => {
    const streak = vm.running ? nextStreak(vm, s, now) : { hotSince: null, coolSince: null };
    streaks.set(vm.id, streak);
    return { ...vm, ...streak };
  });
  let ledger = new Ledger(input.targets, vms, s);
  const classOf = new Map(input.targets.map((t) => [key(t), t.cls]));
  const moves: PlannedMove[] = [];
  let slots = Math.max(0, s.maxConcurrentMoves - input.movesInFlight);
  const planned = new Set<string>();
  const waiting = new Map<string, string>();
  const windowSeconds = s.demandWindowSeconds;

  const movable = (vm: VmFacts) =>
    vm.running && !vm.pinned && !vm.excluded && !vm.moving && vm.movesToday < s.movesPerDay;
  /** Leaving for the fast class keeps a move of the day's budget for the way back. */
  const canGoAndReturn = (vm: VmFacts) => vm.movesToday + 2 <= s.movesPerDay;
  /** Why `movable` or `canGoAndReturn` says no to a VM that would leave for the fast class. */
  const whyNotMovable = (vm: VmFacts): string | null =>
    !vm.running
      ? 'it is not running'
      : vm.pinned
        ? 'it is pinned'
        : vm.excluded
          ? 'it is excluded from placement'
          : vm.moving
            ? 'a move of it is in flight'
            : !canGoAndReturn(vm)
              ? `its day's budget: ${vm.movesToday} of ${s.movesPerDay} moves made, and the way back needs one`
              : null;
  const stayedLongEnough = (vm: VmFacts) =>
    vm.lastMoveAt === null || now - vm.lastMoveAt >= s.minStaySeconds * 1000;
  const windowOf = (vm: VmFacts) => input.windows.find((w) => w.vmId === vm.id);
  const leadMs = (vm: VmFacts) => estimatedMoveSeconds(vm, s) * 1000;
  /** In its window, or close enough that the move must start now. */
  const scheduledNow = (vm: VmFacts) => {
    const w = windowOf(vm);
    return w !== undefined && now >= w.start - leadMs(vm) && now < w.end;
  };
  const held = (since: number | null) => (since === null ? 0 : Math.round((now - since) / 1000));

  const add = (
    vm: VmFacts,
    kind: RecommendationKind,
    to: Place,
    predicted: PredictedLoad,
    reason: PlacementReason,
  ) => {
    ledger.book(vm, to);
    planned.add(vm.id);
    slots--;
    moves.push({
      kind,
      vmId: vm.id,
      vm: vm.name,
      from: vm.at,
      to: { host: to.host, datastore: to.datastore, cls: classOf.get(key(to)) ?? '' },
      reason,
      predicted,
    });
  };

  /**
   * Home, or else the standard-class target with the most room that fits. A displaced VM is still
   * busy, and its demand (made on the fast class) would overfill any standard budget: its own home
   * takes it back whatever its IOPS (it ran there before; the home's limit bounds what it gets).
   */
  const homeFor = (vm: VmFacts, displaced = false): { to: Place; predicted: PredictedLoad } | undefined => {
    const choices = [
      ...(vm.home ? [vm.home] : []),
      ...ledger.rank(input.targets.filter((t) => t.cls !== s.fastClass && !(vm.home && same(t, vm.home)))),
    ];
    for (const to of choices) {
      const fit = ledger.check(vm, to, !(displaced && vm.home !== null && same(to, vm.home)));
      if ('predicted' in fit) return { to, predicted: fit.predicted };
    }
    return undefined;
  };

  // 1. Leaving the fast class: ended schedule windows, then VMs that cooled for the long hold.
  for (const vm of vms) {
    if (slots <= 0) break;
    if (vm.cls !== s.fastClass || !movable(vm) || scheduledNow(vm)) continue;
    const w = windowOf(vm);
    const hotHeld = vm.hotSince !== null && held(vm.hotSince) >= s.holdSeconds;
    let kind: RecommendationKind | undefined;
    let reason: PlacementReason | undefined;
    if (vm.placedFor === 'schedule' && !hotHeld) {
      kind = 'schedule-out';
      reason = {
        metric: 'schedule',
        value: null,
        threshold: null,
        windowSeconds: w ? Math.round((w.end - w.start) / 1000) : 0,
        heldSeconds: 0,
        text: `its scheduled window on class ${vm.cls} has ended`,
      };
    } else if (vm.coolSince !== null && held(vm.coolSince) >= s.coolHoldSeconds && stayedLongEnough(vm)) {
      kind = 'go-home';
      reason = {
        metric: 'iops',
        value: vm.demand?.iops ?? null,
        threshold: s.coolIops,
        windowSeconds,
        heldSeconds: held(vm.coolSince),
        text: `IOPS ${fmt(vm.demand?.iops)} below ${s.coolIops} for ${held(vm.coolSince)} s (hold ${s.coolHoldSeconds} s)`,
      };
    }
    if (!kind || !reason) continue;
    const home = homeFor(vm);
    if (home) add(vm, kind, home.to, home.predicted, reason);
  }

  // 2. Entering: schedule windows about to open, then hot VMs by priority, then demand.
  type Want = { vm: VmFacts; cls: string; kind: 'schedule-in' | 'to-fast'; reason: PlacementReason };
  const wants: Want[] = [];
  for (const vm of vms) {
    const asks = vm.cls !== s.fastClass && vm.hotSince !== null && held(vm.hotSince) >= s.holdSeconds;
    if (asks && !planned.has(vm.id)) {
      const why =
        whyNotMovable(vm) ??
        (stayedLongEnough(vm) ? null : `its minimum stay of ${s.minStaySeconds} s since its last move`);
      if (why) waiting.set(vm.id, why);
    }
    if (!movable(vm) || planned.has(vm.id) || !canGoAndReturn(vm)) continue;
    const w = windowOf(vm);
    if (w && scheduledNow(vm) && vm.cls !== w.cls) {
      wants.push({
        vm,
        cls: w.cls,
        kind: 'schedule-in',
        reason: {
          metric: 'schedule',
          value: null,
          threshold: null,
          windowSeconds: Math.round((w.end - w.start) / 1000),
          heldSeconds: 0,
          text: `scheduled on class ${w.cls} from ${new Date(w.start).toISOString()} to ${new Date(w.end).toISOString()} (move takes about ${estimatedMoveSeconds(vm, s)} s)`,
        },
      });
      continue;
    }
    if (
      vm.cls === s.fastClass ||
      vm.hotSince === null ||
      held(vm.hotSince) < s.holdSeconds ||
      !stayedLongEnough(vm)
    )
      continue;
    const cause = hotCause(vm.demand, s);
    const holding = `for ${held(vm.hotSince)} s (hold ${s.holdSeconds} s)`;
    wants.push({
      vm,
      cls: s.fastClass,
      kind: 'to-fast',
      reason:
        cause?.kind === 'limit'
          ? {
              metric: cause.held.metric === 'iops' ? 'iops-limit' : 'bandwidth-limit',
              value: cause.held.value,
              threshold: cause.held.limit * HELD_AT_LIMIT_SHARE,
              windowSeconds,
              heldSeconds: held(vm.hotSince),
              text: `${heldText(cause.held)}, ${holding}`,
            }
          : {
              metric: 'iops',
              value: vm.demand?.iops ?? null,
              threshold: s.hotIops,
              windowSeconds,
              heldSeconds: held(vm.hotSince),
              text: `${demandReason(vm.demand, s) ?? `IOPS ≥ ${s.hotIops}`} ${holding}`,
            },
    });
  }
  const rank = (w: Want) => (w.kind === 'schedule-in' ? 1 : 0);
  wants.sort(
    (a, b) =>
      rank(b) - rank(a) ||
      b.vm.priority - a.vm.priority ||
      (b.vm.demand?.iops ?? 0) - (a.vm.demand?.iops ?? 0) ||
      (a.vm.name < b.vm.name ? -1 : 1),
  );
  const busyTargets = new Set(vms.filter((v) => v.moving).map((v) => v.at.host));
  // VMs hot but not yet for the hold time: a lower-priority VM does not take the room one of them
  // will need, or it would be moved in only to be displaced a moment later (two wasted moves).
  const warming = vms.filter(
    (v) =>
      movable(v) &&
      canGoAndReturn(v) &&
      !planned.has(v.id) &&
      v.cls !== s.fastClass &&
      v.hotSince !== null &&
      held(v.hotSince) < s.holdSeconds &&
      stayedLongEnough(v),
  );
  const fastTargets = input.targets.filter((t) => t.cls === s.fastClass);
  const fitsSomewhere = (l: Ledger, v: VmFacts) =>
    fastTargets.some((t) => !same(t, v.at) && 'predicted' in l.check(v, t));
  /** The warming higher-priority VM that would no longer fit if `vm` went to `to`. */
  const crowdedOut = (vm: VmFacts, to: Place) => {
    const trial = ledger.clone();
    trial.book(vm, to);
    return warming.find(
      (v) => v.priority > vm.priority && fitsSomewhere(ledger, v) && !fitsSomewhere(trial, v),
    );
  };
  for (const want of wants) {
    const { vm } = want;
    if (slots <= 0) {
      waiting.set(
        vm.id,
        `no move slot free: ${s.maxConcurrentMoves} placement moves at a time, ${input.movesInFlight} in flight and ${moves.length} planned`,
      );
      continue;
    }
    const candidates = ledger.rank(input.targets.filter((t) => t.cls === want.cls && !same(t, vm.at)));
    /** Placed, or waiting for room a warming VM needs: no displacement either way. */
    let decided = false;
    const problems: string[] = [];
    for (const to of candidates) {
      const fit = ledger.check(vm, to);
      if (!('predicted' in fit)) {
        problems.push(fit.problem);
        continue;
      }
      const warm = want.kind === 'to-fast' ? crowdedOut(vm, to) : undefined;
      if (warm) {
        waiting.set(vm.id, `the room on ${key(to)} is for ${warm.name} (priority ${warm.priority}), hot too`);
        decided = true; // it waits: the room is the warming VM's
        break;
      }
      add(vm, want.kind, to, fit.predicted, want.reason);
      decided = true;
      break;
    }
    if (decided) continue;
    waiting.set(
      vm.id,
      candidates.length
        ? `no datastore of class ${want.cls} has room: ${problems.join('; ')}`
        : `no datastore of class ${want.cls} to go to`,
    );
    // No room: displace the lowest-priority, least busy VM of a lower priority from the class,
    // unless one is already on its way (its room is not free yet) on that host.
    const victims = vms
      .filter(
        (v) =>
          v.cls === want.cls &&
          v.priority < vm.priority &&
          movable(v) &&
          !planned.has(v.id) &&
          !scheduledNow(v) &&
          stayedLongEnough(v) &&
          !busyTargets.has(v.at.host),
      )
      .sort((a, b) => a.priority - b.priority || (a.demand?.iops ?? 0) - (b.demand?.iops ?? 0));
    for (const victim of victims) {
      const home = homeFor(victim, true);
      if (!home) continue;
      // Only a displacement that makes room for this VM: try it on a copy of the ledger.
      const trial = ledger.clone();
      trial.book(victim, home.to);
      const before = ledger;
      ledger = trial;
      const fits = candidates.some((to) => same(to, victim.at) && 'predicted' in ledger.check(vm, to));
      ledger = before;
      if (!fits) continue;
      waiting.delete(vm.id); // room is being made
      add(victim, 'displace', home.to, home.predicted, {
        metric: 'priority',
        value: victim.priority,
        threshold: vm.priority,
        windowSeconds,
        heldSeconds: want.reason.heldSeconds,
        text: `makes room on ${key(victim.at)} for ${vm.name} (priority ${vm.priority} > ${victim.priority}): ${want.reason.text}`,
      });
      break;
    }
  }
  for (const m of moves) waiting.delete(m.vmId);
  return { moves, streaks, waiting };
}

const fmt = (v: number | null | undefined) =>
  v === null || v === undefined ? 'unknown' : String(Math.round(v * 10) / 10);

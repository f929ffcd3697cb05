/*
 * A move's overall progress from raw QEMU figures (no I/O).
 *
 * Disks and memory are counted together in bytes: done = mirrored bytes + memory sent, total = done
 * + what QEMU still reports as remaining. Both "remaining" figures can grow again (the guest writes
 * to a disk, re-dirties memory), so the percentage is kept monotonic: it never goes below what was
 * already shown, and reaches 100 only when the move is done. Rates are smoothed (EWMA over the
 * samples) so a progress bar does not jitter. Health separates "slow" (bytes move, but the guest
 * dirties memory about as fast as it is sent, or the rate is tiny) from "stalled" (no byte moved for
 * the stall window), which the engine turns into a cancel.
 */
import type { DiskProgress, MigrationPhase, MigrationProgress } from '../../api/index.js';

export interface RawDisk {
  diskId: string;
  /** Block job `offset` and `len` (len grows while the guest writes). */
  offset: number;
  len: number;
  ready: boolean;
}

export interface RawMemory {
  transferred: number;
  remaining: number;
  total: number;
  passes: number;
  /** Stream rate in bytes/s (QEMU's mbps converted). */
  rate: number;
  /** Dirty rate in bytes/s. */
  dirtyRate: number;
}

export interface RawProgress {
  atMs: number;
  phase: MigrationPhase;
  disks: RawDisk[];
  memory?: RawMemory | undefined;
  /** Guest RAM size, counted as still to send before the memory copy starts. */
  memoryBytes: number;
  throttlePercent: number;
}

export interface ProgressTracker {
  progress: MigrationProgress;
  lastAtMs: number | undefined;
  lastDone: number;
  lastAdvanceAtMs: number | undefined;
  diskDone: Record<string, number>;
  diskRates: Record<string, number>;
}

export interface ProgressConfig {
  stallAfterMs: number;
  /** Below this rate (bytes/s) a move counts as slow. */
  slowBelowBytesPerSecond: number;
}

export const DEFAULT_PROGRESS: ProgressConfig = { stallAfterMs: 30_000, slowBelowBytesPerSecond: 1e6 };

const SMOOTHING = 0.3;

export function initialProgress(phase: MigrationPhase = 'validate'): ProgressTracker {
  return {
    progress: {
      phase,
      percent: 0,
      disks: [],
      rateBytesPerSecond: 0,
      dirtyRateBytesPerSecond: 0,
      health: 'progressing',
      throttlePercent: 0,
    },
    lastAtMs: undefined,
    lastDone: 0,
    lastAdvanceAtMs: undefined,
    diskDone: {},
    diskRates: {},
  };
}

export function advanceProgress(
  tracker: ProgressTracker,
  raw: RawProgress,
  config: ProgressConfig = DEFAULT_PROGRESS,
): ProgressTracker {
  const dtS = tracker.lastAtMs === undefined ? 0 : (raw.atMs - tracker.lastAtMs) / 1000;
  const diskDone: Record<string, number> = {};
  const diskRates: Record<string, number> = {};
  const disks: DiskProgress[] = raw.disks.map((d) => {
    const before = tracker.diskDone[d.diskId];
    const measured = before !== undefined && dtS > 0;
    const rate = measured
      ? smooth(tracker.diskRates[d.diskId], Math.max(0, d.offset - before) / dtS)
      : (tracker.diskRates[d.diskId] ?? 0);
    diskDone[d.diskId] = d.offset;
    if (measured || tracker.diskRates[d.diskId] !== undefined) diskRates[d.diskId] = rate;
    return {
      diskId: d.diskId,
      bytesDone: d.offset,
      bytesTotal: d.len,
      bytesRemaining: Math.max(0, d.len - d.offset),
      ready: d.ready,
      rateBytesPerSecond: Math.round(rate),
    };
  });

  const diskDoneSum = disks.reduce((s, d) => s + d.bytesDone, 0);
  const diskLeft = disks.reduce((s, d) => s + d.bytesRemaining, 0);
  const memDone = raw.memory?.transferred ?? 0;
  const memLeft = raw.memory ? raw.memory.remaining : raw.memoryBytes;
  const done = diskDoneSum + memDone;
  const total = done + diskLeft + memLeft;
  const finished = raw.phase === 'done';
  const computed = finished ? 100 : total > 0 ? Math.min(99.9, (done / total) * 100) : 0;
  const percent = Math.max(tracker.progress.percent, round1(computed));

  const diskRate = disks.reduce((s, d) => s + d.rateBytesPerSecond, 0);
  const copyingMemory = raw.memory !== undefined && raw.phase === 'copy-memory';
  const rate = copyingMemory ? (raw.memory?.rate ?? 0) : diskRate;
  const dirtyRate = raw.memory?.dirtyRate ?? 0;

  const advanced = done > tracker.lastDone;
  const lastAdvanceAtMs =
    advanced || tracker.lastAdvanceAtMs === undefined ? raw.atMs : tracker.lastAdvanceAtMs;
  const idleMs = raw.atMs - lastAdvanceAtMs;

  let health: MigrationProgress['health'] = 'progressing';
  let healthReason: string | undefined;
  const transferring = raw.phase === 'mirror-disks' || raw.phase === 'copy-memory';
  if (transferring && idleMs >= config.stallAfterMs) {
    health = 'stalled';
    healthReason = `no byte moved for ${Math.round(idleMs / 1000)} s`;
  } else if (copyingMemory && rate > 0 && dirtyRate >= 0.8 * rate) {
    health = 'slow';
    healthReason = `guest dirties ${mb(dirtyRate)} MB/s, stream carries ${mb(rate)} MB/s`;
  } else if (transferring && dtS > 0 && rate < config.slowBelowBytesPerSecond && idleMs > 0) {
    health = 'slow';
    healthReason = `transfer rate ${mb(rate)} MB/s`;
  }

  // ETA only while the remaining work shrinks faster than the guest adds to it.
  let etaSeconds: number | undefined;
  const netRate = rate - (copyingMemory ? dirtyRate : 0);
  if (finished) etaSeconds = 0;
  else if (transferring && netRate > 0 && health !== 'stalled') {
    const left = raw.phase === 'mirror-disks' ? diskLeft + memLeft / Math.max(1, rate / netRate) : memLeft;
    etaSeconds = Math.round((left / netRate) * 10) / 10;
  }

  const progress: MigrationProgress = {
    phase: raw.phase,
    percent,
    disks,
    ...(raw.memory
      ? {
          memory: {
            bytesTransferred: raw.memory.transferred,
            bytesRemaining: raw.memory.remaining,
            bytesTotal: raw.memory.total,
            passes: raw.memory.passes,
            rateBytesPerSecond: Math.round(raw.memory.rate),
            dirtyRateBytesPerSecond: Math.round(dirtyRate),
          },
        }
      : {}),
    rateBytesPerSecond: Math.round(rate),
    dirtyRateBytesPerSecond: Math.round(dirtyRate),
    ...(etaSeconds !== undefined ? { etaSeconds } : {}),
    health,
    ...(healthReason !== undefined ? { healthReason } : {}),
    throttlePercent: raw.throttlePercent,
  };
  return {
    progress,
    lastAtMs: raw.atMs,
    lastDone: Math.max(done, tracker.lastDone),
    lastAdvanceAtMs,
    diskDone,
    diskRates,
  };
}

function smooth(previous: number | undefined, instant: number): number {
  if (previous === undefined) return instant;
  return previous + SMOOTHING * (instant - previous);
}

function round1(n: number): number {
  return Math.floor(n * 10) / 10;
}

function mb(bytesPerSecond: number): number {
  return Math.round(bytesPerSecond / 1e6);
}

import {
  LATENCY_BOUNDS_NS,
  type BlockCounters,
  type DirectionFigures,
  type LatencyHistograms,
} from '../../api/index.js';

/*
 * The arithmetic of the metrics store, pure: two cumulative samples of a disk make one interval
 * (deltas, never averages since boot), intervals add up into sums over a window, and sums give
 * rates, average latencies (Δtime ÷ Δops) and percentiles from latency histograms.
 */

/** Bins the store keeps per direction: one per bound plus the open one above the last. */
export const BIN_COUNT = LATENCY_BOUNDS_NS.length + 1;

/** What a window's intervals add up to (also one interval alone). */
export interface IoSums {
  /** Seconds covered by the intervals. */
  seconds: number;
  readOps: number;
  writeOps: number;
  flushOps: number;
  readBytes: number;
  writeBytes: number;
  readNs: number;
  writeNs: number;
  flushNs: number;
  /** Operations per latency bin (LATENCY_BOUNDS_NS), BIN_COUNT long; zeros without histograms. */
  readBins: number[];
  writeBins: number[];
}

export interface CounterSample {
  /** Milliseconds since the epoch. */
  at: number;
  epoch: string | null;
  counters: BlockCounters | null;
  histograms: LatencyHistograms | null;
}

export const zeroBins = (): number[] => new Array<number>(BIN_COUNT).fill(0);

export function emptySums(): IoSums {
  return {
    seconds: 0,
    readOps: 0,
    writeOps: 0,
    flushOps: 0,
    readBytes: 0,
    writeBytes: 0,
    readNs: 0,
    writeNs: 0,
    flushNs: 0,
    readBins: zeroBins(),
    writeBins: zeroBins(),
  };
}

/** a + b (a new object). */
export function addSums(a: IoSums, b: IoSums): IoSums {
  return {
    seconds: a.seconds + b.seconds,
    readOps: a.readOps + b.readOps,
    writeOps: a.writeOps + b.writeOps,
    flushOps: a.flushOps + b.flushOps,
    readBytes: a.readBytes + b.readBytes,
    writeBytes: a.writeBytes + b.writeBytes,
    readNs: a.readNs + b.readNs,
    writeNs: a.writeNs + b.writeNs,
    flushNs: a.flushNs + b.flushNs,
    readBins: a.readBins.map((v, i) => v + (b.readBins[i] ?? 0)),
    writeBins: a.writeBins.map((v, i) => v + (b.writeBins[i] ?? 0)),
  };
}

const COUNTER_KEYS = [
  'readOps',
  'writeOps',
  'flushOps',
  'readBytes',
  'writeBytes',
  'readTotalNs',
  'writeTotalNs',
  'flushTotalNs',
] as const satisfies readonly (keyof BlockCounters)[];

/**
 * The interval between two samples of one disk, or undefined when they do not make one: another
 * QEMU process (epoch), a counter that went down (a reset), no counters, or time not moving
 * forward. Then `cur` starts a new series; a rate is never negative.
 */
export function diskInterval(prev: CounterSample, cur: CounterSample): IoSums | undefined {
  if (!prev.counters || !cur.counters) return undefined;
  if (prev.epoch !== cur.epoch) return undefined;
  const seconds = (cur.at - prev.at) / 1000;
  if (!(seconds > 0)) return undefined;
  const p = prev.counters;
  const c = cur.counters;
  if (COUNTER_KEYS.some((k) => c[k] < p[k])) return undefined;
  const hist = histogramDelta(prev.histograms, cur.histograms);
  return {
    seconds,
    readOps: c.readOps - p.readOps,
    writeOps: c.writeOps - p.writeOps,
    flushOps: c.flushOps - p.flushOps,
    readBytes: c.readBytes - p.readBytes,
    writeBytes: c.writeBytes - p.writeBytes,
    readNs: c.readTotalNs - p.readTotalNs,
    writeNs: c.writeTotalNs - p.writeTotalNs,
    flushNs: c.flushTotalNs - p.flushTotalNs,
    readBins: hist?.read ?? zeroBins(),
    writeBins: hist?.write ?? zeroBins(),
  };
}

/**
 * Per-bin differences of two cumulative histograms, spread over the store's bins; undefined when
 * either is missing, their bounds differ, or a bin went down (histograms were reset).
 */
export function histogramDelta(
  prev: LatencyHistograms | null,
  cur: LatencyHistograms | null,
): { read: number[]; write: number[] } | undefined {
  if (!prev || !cur) return undefined;
  const b = cur.boundariesNs;
  if (prev.boundariesNs.length !== b.length || prev.boundariesNs.some((v, i) => v !== b[i])) return undefined;
  const delta = (p: number[], c: number[]): number[] | undefined => {
    if (p.length !== c.length || c.length !== b.length + 1) return undefined;
    const d = c.map((v, i) => v - (p[i] ?? 0));
    return d.some((v) => v < 0) ? undefined : d;
  };
  const read = delta(prev.read, cur.read);
  const write = delta(prev.write, cur.write);
  if (!read || !write) return undefined;
  const same = b.length === LATENCY_BOUNDS_NS.length && b.every((v, i) => v === LATENCY_BOUNDS_NS[i]);
  // Whole counts: the store adds and subtracts them exactly (its windows subtract old buckets).
  const store = (counts: number[]) => (same ? counts : roundCounts(rebin(b, counts)));
  return { read: store(read), write: store(write) };
}

/** Whole numbers with the same (rounded) total, the largest remainders rounded up. */
export function roundCounts(values: readonly number[]): number[] {
  const out = values.map((v) => Math.floor(v));
  let missing = Math.round(values.reduce((a, v) => a + v, 0)) - out.reduce((a, v) => a + v, 0);
  const byRemainder = values.map((v, i) => [v - Math.floor(v), i] as const).sort((a, b) => b[0] - a[0]);
  for (const [, i] of byRemainder) {
    if (missing <= 0) break;
    out[i] = (out[i] ?? 0) + 1;
    missing--;
  }
  return out;
}

/**
 * Counts over `bounds` (bin i: [bounds[i-1], bounds[i]), the last bin above the last bound)
 * spread over `target`'s bins in proportion to overlap, as if uniform within a bin: the same
 * assumption percentiles make. The open last bin goes where its lower bound falls. Totals are kept.
 */
export function rebin(
  bounds: readonly number[],
  counts: readonly number[],
  target: readonly number[] = LATENCY_BOUNDS_NS,
): number[] {
  const out = new Array<number>(target.length + 1).fill(0);
  const same = bounds.length === target.length && bounds.every((v, i) => v === target[i]);
  if (same) return counts.map((c) => c);
  const binOf = (ns: number) => {
    const i = target.findIndex((t) => ns < t);
    return i < 0 ? target.length : i;
  };
  counts.forEach((count, i) => {
    if (count === 0) return;
    const lo = i === 0 ? 0 : (bounds[i - 1] ?? 0);
    const hi = bounds[i];
    if (hi === undefined || hi <= lo) {
      out[binOf(lo)] = (out[binOf(lo)] ?? 0) + count;
      return;
    }
    for (let j = 0; j <= target.length; j++) {
      const tlo = j === 0 ? 0 : (target[j - 1] ?? 0);
      const thi = target[j] ?? Infinity;
      const overlap = Math.min(hi, thi) - Math.max(lo, tlo);
      if (overlap > 0) out[j] = (out[j] ?? 0) + (count * overlap) / (hi - lo);
    }
  });
  return out;
}

/**
 * The latency (ms) below which a fraction `p` of the operations fall, linear within the bin that
 * holds it (the first bin starts at 0). In the open last bin the answer is its lower bound: "at
 * least". Null when the bins are empty.
 */
export function percentileMs(
  bins: readonly number[],
  p: number,
  bounds: readonly number[] = LATENCY_BOUNDS_NS,
): number | null {
  const total = bins.reduce((a, b) => a + b, 0);
  if (!(total > 0)) return null;
  const rank = p * total;
  let below = 0;
  for (let i = 0; i < bins.length; i++) {
    const count = bins[i] ?? 0;
    if (count > 0 && below + count >= rank) {
      const lo = i === 0 ? 0 : (bounds[i - 1] ?? 0);
      const hi = bounds[i];
      if (hi === undefined) return lo / 1e6;
      return (lo + ((hi - lo) * (rank - below)) / count) / 1e6;
    }
    below += count;
  }
  return (bounds[bounds.length - 1] ?? 0) / 1e6;
}

const per = (n: number, d: number) => (d > 0 ? n / d : null);

/** The percentiles every view shows (and sorts by) per direction. */
export const P90 = 0.9;
export const P99 = 0.99;

function direction(
  ops: number,
  bytes: number,
  ns: number,
  bins: number[],
  seconds: number,
): DirectionFigures {
  return {
    iops: per(ops, seconds),
    bytesPerSecond: per(bytes, seconds),
    avgLatencyMs: ops > 0 ? ns / ops / 1e6 : null,
    p90LatencyMs: percentileMs(bins, P90),
    p99LatencyMs: percentileMs(bins, P99),
  };
}

export interface IoFigures {
  read: DirectionFigures;
  write: DirectionFigures;
  iops: number | null;
  throughputBytesPerSecond: number | null;
  coveredSeconds: number;
  flushAvgLatencyMs: number | null;
}

/** Rates and latencies of a window's sums; every figure null when no time was covered. */
export function ioFigures(s: IoSums): IoFigures {
  return {
    read: direction(s.readOps, s.readBytes, s.readNs, s.readBins, s.seconds),
    write: direction(s.writeOps, s.writeBytes, s.writeNs, s.writeBins, s.seconds),
    iops: per(s.readOps + s.writeOps + s.flushOps, s.seconds),
    throughputBytesPerSecond: per(s.readBytes + s.writeBytes, s.seconds),
    coveredSeconds: s.seconds,
    flushAvgLatencyMs: s.flushOps > 0 ? s.flushNs / s.flushOps / 1e6 : null,
  };
}

/**
 * The slower direction's average latency (ms), null without operations: slow writes hurt a
 * guest even when its many fast reads would pull a combined average down.
 */
export function worstAvgLatencyMs(s: IoSums): number | null {
  const read = s.readOps > 0 ? s.readNs / s.readOps / 1e6 : null;
  const write = s.writeOps > 0 ? s.writeNs / s.writeOps / 1e6 : null;
  return read === null ? write : write === null ? read : Math.max(read, write);
}

/**
 * Days until `free` reaches zero by a least-squares line through the points (seconds, bytes),
 * counted from the last point's free space; null when free space does not shrink.
 */
export function daysUntilFull(points: readonly { t: number; free: number }[]): number | null {
  const n = points.length;
  if (n < 2) return null;
  const t0 = points[0]?.t ?? 0;
  let st = 0;
  let sf = 0;
  for (const p of points) {
    st += p.t - t0;
    sf += p.free;
  }
  const mt = st / n;
  const mf = sf / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    const dt = p.t - t0 - mt;
    num += dt * (p.free - mf);
    den += dt * dt;
  }
  if (!(den > 0)) return null;
  const slope = num / den;
  if (!(slope < 0)) return null;
  const last = points[n - 1]?.free ?? 0;
  return Math.max(0, last / -slope / 86_400);
}

// A VM's I/O series (GET /api/v1/vms/:vm/series, VmSeries in src/api/storage.ts) as the three
// charts of its page draw them: IOPS, latency (p90/p99, read and write) and throughput. Pure.
import { EXPLORER_WINDOWS } from '../../api/browser.js';

/** One direction's figures of a bucket (DirectionFigures); null where nothing was measured. */
export interface DirectionPoint {
  iops: number | null;
  bytesPerSecond: number | null;
  avgLatencyMs: number | null;
  p90LatencyMs: number | null;
  p99LatencyMs: number | null;
}

/** The part of a series point the charts read (SeriesPoint). */
export interface SeriesPointShape {
  at: string;
  read: DirectionPoint;
  write: DirectionPoint;
  iops: number | null;
  throughputBytesPerSecond: number | null;
  coveredSeconds: number;
}

export interface SeriesShape {
  stepSeconds: number;
  points: readonly SeriesPointShape[];
}

/** One line of a chart: its name and a value per bucket (null: a gap, not a zero). */
export interface Line {
  name: string;
  values: (number | null)[];
}

export interface ChartData {
  /** Each bucket's start, in ms since the epoch. */
  times: number[];
  lines: Line[];
}

export interface VmCharts {
  iops: ChartData;
  latency: ChartData;
  throughput: ChartData;
  /** No bucket has any figure: the page says so instead of drawing empty axes. */
  empty: boolean;
}

const MiB = 1024 * 1024;

/** A bucket without a sample is a gap; one with a sample keeps its figures as they are. */
const measured = (p: SeriesPointShape, v: number | null): number | null => (p.coveredSeconds > 0 ? v : null);

export function vmCharts(series: SeriesShape): VmCharts {
  const times = series.points.map((p) => Date.parse(p.at));
  const line = (name: string, pick: (p: SeriesPointShape) => number | null): Line => ({
    name,
    values: series.points.map((p) => measured(p, pick(p))),
  });
  const iops = [line('read IOPS', (p) => p.read.iops), line('write IOPS', (p) => p.write.iops)];
  const latency = [
    line('read p90', (p) => p.read.p90LatencyMs),
    line('read p99', (p) => p.read.p99LatencyMs),
    line('write p90', (p) => p.write.p90LatencyMs),
    line('write p99', (p) => p.write.p99LatencyMs),
  ];
  const mib = (v: number | null) => (v === null ? null : v / MiB);
  const throughput = [
    line('read MiB/s', (p) => mib(p.read.bytesPerSecond)),
    line('write MiB/s', (p) => mib(p.write.bytesPerSecond)),
  ];
  const empty = [...iops, ...latency, ...throughput].every((l) => l.values.every((v) => v === null));
  return {
    iops: { times, lines: iops },
    latency: { times, lines: latency },
    throughput: { times, lines: throughput },
    empty,
  };
}

/** The windows the page offers (the store keeps 8 days). */
export const SERIES_WINDOWS = EXPLORER_WINDOWS;
export type SeriesWindow = (typeof SERIES_WINDOWS)[number];

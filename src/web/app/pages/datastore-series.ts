// The datastore page's charts from its series (GET /storage/datastores/:host/:datastore/series):
// space over time (used and free stacked, capacity as a line) and latency per direction (average
// and p99). Empty buckets are null and drawn as gaps, never as zero; each point has a symbol, so
// a lone bucket between gaps (a short window, a new datastore) still shows.

/** One direction's figures of a bucket (the series' DirectionFigures). */
interface Direction {
  avgLatencyMs: number | null;
  p99LatencyMs: number | null;
}

/** What the charts read of a datastore series point. */
export interface SeriesPointLike {
  at: string;
  read: Direction;
  write: Direction;
  iops: number | null;
  throughputBytesPerSecond: number | null;
  capacityBytes: number | null;
  usedBytes: number | null;
  freeBytes: number | null;
}

const GIB = 2 ** 30;
const AXIS = { color: '#1b1f24' };
const round = (n: number | null, digits: number) => (n === null ? null : Number(n.toFixed(digits)));

function frame(points: readonly SeriesPointLike[], yName: string) {
  return {
    tooltip: { trigger: 'axis' },
    legend: { top: 0 },
    grid: { left: 48, right: 16, top: 32, bottom: 28, containLabel: true },
    xAxis: { type: 'time', axisLabel: AXIS, min: points[0]?.at, max: points.at(-1)?.at },
    yAxis: { type: 'value', name: yName, axisLabel: AXIS },
  };
}

/** Space in GiB: used and free stacked as areas, capacity as a line over them. */
export function capacityOption(points: readonly SeriesPointLike[]): Record<string, unknown> {
  const gib = (n: number | null) => round(n === null ? null : n / GIB, 2);
  return {
    ...frame(points, 'GiB'),
    series: [
      {
        name: 'Used',
        type: 'line',
        stack: 'space',
        areaStyle: {},
        showSymbol: true,
        symbolSize: 5,
        color: '#0b5cad',
        data: points.map((p) => [p.at, gib(p.usedBytes)]),
      },
      {
        name: 'Free',
        type: 'line',
        stack: 'space',
        areaStyle: {},
        showSymbol: true,
        symbolSize: 5,
        color: '#7cb342',
        data: points.map((p) => [p.at, gib(p.freeBytes)]),
      },
      {
        name: 'Capacity',
        type: 'line',
        showSymbol: true,
        symbolSize: 5,
        color: '#1b1f24',
        lineStyle: { type: 'dashed' },
        data: points.map((p) => [p.at, gib(p.capacityBytes)]),
      },
    ],
  };
}

/** Latency in ms: read and write, average (solid) and p99 (dashed). */
export function latencyOption(points: readonly SeriesPointLike[]): Record<string, unknown> {
  const line = (
    name: string,
    color: string,
    dashed: boolean,
    pick: (p: SeriesPointLike) => number | null,
  ) => ({
    name,
    type: 'line',
    showSymbol: true,
    symbolSize: 5,
    connectNulls: false,
    color,
    lineStyle: dashed ? { type: 'dashed' } : {},
    data: points.map((p) => [p.at, round(pick(p), 3)]),
  });
  return {
    ...frame(points, 'ms'),
    series: [
      line('Read avg', '#0b5cad', false, (p) => p.read.avgLatencyMs),
      line('Read p99', '#0b5cad', true, (p) => p.read.p99LatencyMs),
      line('Write avg', '#b3261e', false, (p) => p.write.avgLatencyMs),
      line('Write p99', '#b3261e', true, (p) => p.write.p99LatencyMs),
    ],
  };
}

/** Whether a series has anything to draw (a new datastore has only empty buckets). */
export const hasFigures = (points: readonly SeriesPointLike[]) =>
  points.some(
    (p) => p.capacityBytes !== null || p.read.avgLatencyMs !== null || p.write.avgLatencyMs !== null,
  );

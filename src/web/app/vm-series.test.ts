import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { vmCharts, type DirectionPoint, type SeriesPointShape } from './vm-series.js';

const MiB = 1024 * 1024;
const none: DirectionPoint = {
  iops: null,
  bytesPerSecond: null,
  avgLatencyMs: null,
  p90LatencyMs: null,
  p99LatencyMs: null,
};
const dir = (iops: number, mibs: number, p90: number, p99: number): DirectionPoint => ({
  iops,
  bytesPerSecond: mibs * MiB,
  avgLatencyMs: p90 / 2,
  p90LatencyMs: p90,
  p99LatencyMs: p99,
});
const point = (at: string, read: DirectionPoint, write: DirectionPoint, covered = 30): SeriesPointShape => ({
  at,
  read,
  write,
  iops: (read.iops ?? 0) + (write.iops ?? 0),
  throughputBytesPerSecond: (read.bytesPerSecond ?? 0) + (write.bytesPerSecond ?? 0),
  coveredSeconds: covered,
});

describe('vmCharts', () => {
  it('draws read and write IOPS, p90/p99 latency and MiB/s per bucket', () => {
    const charts = vmCharts({
      stepSeconds: 30,
      points: [
        point('2025-01-01T10:00:00.000Z', dir(100, 2, 1.5, 4), dir(50, 1, 3, 9)),
        point('2025-01-01T10:00:30.000Z', dir(120, 3, 1.2, 5), dir(60, 0.5, 2, 8)),
      ],
    });
    assert.deepEqual(charts.iops.times, [
      Date.parse('2025-01-01T10:00:00.000Z'),
      Date.parse('2025-01-01T10:00:30.000Z'),
    ]);
    assert.deepEqual(charts.iops.lines, [
      { name: 'read IOPS', values: [100, 120] },
      { name: 'write IOPS', values: [50, 60] },
    ]);
    assert.deepEqual(
      charts.latency.lines.map((l) => [l.name, l.values]),
      [
        ['read p90', [1.5, 1.2]],
        ['read p99', [4, 5]],
        ['write p90', [3, 2]],
        ['write p99', [9, 8]],
      ],
    );
    assert.deepEqual(charts.throughput.lines, [
      { name: 'read MiB/s', values: [2, 3] },
      { name: 'write MiB/s', values: [1, 0.5] },
    ]);
    assert.equal(charts.empty, false);
  });

  it('leaves a gap (null, not zero) where a bucket has no sample', () => {
    const charts = vmCharts({
      stepSeconds: 30,
      points: [
        point('2025-01-01T10:00:00.000Z', dir(0, 0, 1, 2), dir(0, 0, 1, 2), 0),
        point('2025-01-01T10:00:30.000Z', dir(0, 0, 1, 2), none),
      ],
    });
    assert.deepEqual(charts.iops.lines[0]?.values, [null, 0]);
    assert.deepEqual(charts.iops.lines[1]?.values, [null, null]);
    assert.equal(charts.empty, false);
  });

  it('says when nothing was measured in the window', () => {
    assert.equal(vmCharts({ stepSeconds: 30, points: [] }).empty, true);
    assert.equal(
      vmCharts({ stepSeconds: 30, points: [point('2025-01-01T10:00:00.000Z', none, none, 0)] }).empty,
      true,
    );
  });
});

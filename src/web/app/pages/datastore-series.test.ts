import assert from 'node:assert/strict';
import { test } from 'node:test';
import { capacityOption, hasFigures, latencyOption, type SeriesPointLike } from './datastore-series.js';

const dir = (avg: number | null, p99: number | null) => ({ avgLatencyMs: avg, p99LatencyMs: p99 });
const point = (at: string, used: number | null, read: number | null): SeriesPointLike => ({
  at,
  read: dir(read, read === null ? null : read * 3),
  write: dir(null, null),
  iops: null,
  throughputBytesPerSecond: null,
  capacityBytes: used === null ? null : 10 * 2 ** 30,
  usedBytes: used,
  freeBytes: used === null ? null : 10 * 2 ** 30 - used,
});

const points = [
  point('2025-05-02T10:00:00.000Z', 2 ** 30, 1.23456),
  point('2025-05-02T10:05:00.000Z', null, null),
];

interface Line {
  name: string;
  stack?: string;
  data: [string, number | null][];
}

test('space is drawn in GiB, used and free stacked, empty buckets as gaps', () => {
  const series = capacityOption(points).series as Line[];
  assert.deepEqual(
    series.map((s) => [s.name, s.stack, s.data]),
    [
      [
        'Used',
        'space',
        [
          ['2025-05-02T10:00:00.000Z', 1],
          ['2025-05-02T10:05:00.000Z', null],
        ],
      ],
      [
        'Free',
        'space',
        [
          ['2025-05-02T10:00:00.000Z', 9],
          ['2025-05-02T10:05:00.000Z', null],
        ],
      ],
      [
        'Capacity',
        undefined,
        [
          ['2025-05-02T10:00:00.000Z', 10],
          ['2025-05-02T10:05:00.000Z', null],
        ],
      ],
    ],
  );
});

test('latency has average and p99 per direction, in ms', () => {
  const series = latencyOption(points).series as Line[];
  assert.deepEqual(
    series.map((s) => s.name),
    ['Read avg', 'Read p99', 'Write avg', 'Write p99'],
  );
  assert.deepEqual(series[0]?.data[0], ['2025-05-02T10:00:00.000Z', 1.235]);
  assert.deepEqual(series[1]?.data[0], ['2025-05-02T10:00:00.000Z', 3.704]);
  assert.deepEqual(series[2]?.data[0], ['2025-05-02T10:00:00.000Z', null]);
});

test('a series of empty buckets has nothing to draw', () => {
  assert.equal(hasFigures(points), true);
  assert.equal(hasFigures([points[1] as SeriesPointLike]), false);
});

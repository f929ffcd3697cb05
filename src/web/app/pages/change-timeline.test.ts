import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ChangeTimeline } from '../../../api/browser.js';
import {
  bucketRange,
  busyBuckets,
  isoOfLocal,
  rangeText,
  timelineOption,
  valueText,
} from './change-timeline.js';

const timeline: ChangeTimeline = {
  bucket: 'hour',
  by: 'risk',
  start: '2025-05-02T10:00:00.000Z',
  end: '2025-05-02T12:30:00.000Z',
  buckets: ['2025-05-02T10:00:00.000Z', '2025-05-02T11:00:00.000Z', '2025-05-02T12:00:00.000Z'],
  series: [
    { name: 'low', counts: [1, 0, 2] },
    { name: 'medium', counts: [0, 0, 0] },
    { name: 'high', counts: [0, 3, 0] },
  ],
  total: 6,
};

interface BarSeries {
  name: string;
  type: string;
  stack: string;
  data: number[];
  itemStyle: { color: string };
}

test('the option stacks one bar series per risk with counts, in bucket order', () => {
  const option = timelineOption(timeline);
  const series = option.series as BarSeries[];
  assert.deepEqual(
    series.map((s) => [s.name, s.type, s.stack, s.data]),
    [
      ['low', 'bar', 'changes', [1, 0, 2]],
      ['high', 'bar', 'changes', [0, 3, 0]],
    ],
  );
  assert.equal(series[1]?.itemStyle.color, '#b3261e');
  assert.equal((option.xAxis as { data: string[] }).data.length, 3);
  assert.deepEqual((option.legend as { data: string[] }).data, ['low', 'high']);
});

test('a bucket covers its start to the next start; the last ends with the window', () => {
  assert.deepEqual(bucketRange(timeline, 1), {
    since: '2025-05-02T11:00:00.000Z',
    until: '2025-05-02T12:00:00.000Z',
  });
  assert.deepEqual(bucketRange(timeline, 2), {
    since: '2025-05-02T12:00:00.000Z',
    until: '2025-05-02T12:30:00.000Z',
  });
  assert.equal(bucketRange(timeline, 3), undefined);
});

test('a range reads with its date once when within a day', () => {
  const since = new Date(2025, 4, 2, 14, 0).toISOString();
  const until = new Date(2025, 4, 2, 15, 0).toISOString();
  assert.equal(rangeText({ since, until }), '2025-05-02 14:00 to 15:00');
  const dayEnd = new Date(2025, 4, 3, 0, 0).toISOString();
  assert.equal(
    rangeText({ since: new Date(2025, 4, 2).toISOString(), until: dayEnd }),
    '2025-05-02 00:00 to 2025-05-03 00:00',
  );
});

test('a local time input becomes an ISO time; empty or bad text none', () => {
  assert.equal(isoOfLocal('2025-05-02T14:00'), new Date(2025, 4, 2, 14, 0).toISOString());
  assert.equal(isoOfLocal(''), undefined);
  assert.equal(isoOfLocal('not a time'), undefined);
});

test('before/after values read as text', () => {
  assert.equal(valueText('web1'), 'web1');
  assert.equal(valueText(4), '4');
  assert.equal(valueText({ iops: 100 }), '{"iops":100}');
  assert.equal(valueText(null), '—');
  assert.equal(valueText(undefined), '—');
});

test('the busy buckets are those with changes in any series, with their totals (the bars a keyboard can pick)', () => {
  assert.deepEqual(busyBuckets(timeline), [
    { index: 0, count: 1 },
    { index: 1, count: 3 },
    { index: 2, count: 2 },
  ]);
  const quiet = {
    ...timeline,
    series: timeline.series.map((s) => ({ ...s, counts: [0, s.counts[1] ?? 0, 0] })),
  };
  assert.deepEqual(busyBuckets(quiet), [{ index: 1, count: 3 }]);
});

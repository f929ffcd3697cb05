import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ChangeTimeline } from '../api/index.js';
import { block, mergeBuckets, renderTimeline } from './chart.js';

const hours = (n: number) =>
  Array.from({ length: n }, (_, i) => new Date(Date.UTC(2026, 10, 24, 18 + i)).toISOString());

function timeline(series: Record<string, number[]>, bucket: 'hour' | 'day' = 'hour'): ChangeTimeline {
  const n = Object.values(series)[0]?.length ?? 0;
  const buckets = hours(n);
  const total = Object.values(series)
    .flat()
    .reduce((a, b) => a + b, 0);
  return {
    bucket,
    by: 'risk',
    start: buckets[0] ?? '2026-11-24T18:00:00.000Z',
    end: '2026-12-01T18:24:00.000Z',
    buckets,
    series: Object.entries(series).map(([name, counts]) => ({ name, counts })),
    total,
  };
}

test('buckets merge in runs, the last run shorter', () => {
  assert.deepEqual(mergeBuckets([1, 2, 3, 4, 5], 2), [3, 7, 5]);
  assert.deepEqual(mergeBuckets([1, 2, 3], 1), [1, 2, 3]);
});

test('bars scale to the largest column; any change shows, none is a dot', () => {
  assert.equal(block(0, 10), '·');
  assert.equal(block(1, 1000), '▁');
  assert.equal(block(10, 10), '█');
  assert.equal(block(5, 10), '▄');
});

test('a week by the hour fits 80 columns: 3 hours a step, totals and peaks per series', () => {
  const high = Array.from({ length: 169 }, (_, i) => (i === 100 ? 4 : 0));
  const low = Array.from({ length: 169 }, (_, i) => (i % 10 === 0 ? 1 : 0));
  const text = renderTimeline(timeline({ high, low }), 80);
  const lines = text.split('\n');
  assert.match(
    lines[0] ?? '',
    /^21 changes by risk, 2026-11-24 18:00 to 2026-12-01 18:24 UTC, 3 hours a step$/,
  );
  for (const line of lines) assert.ok([...line].length <= 80, `${line} (${[...line].length})`);
  const [, highRow, lowRow] = lines;
  assert.match(highRow ?? '', /^high {2}[·▁-█]{57} {2}4 \(peak 4\)$/);
  // Column 100 / 3 = 33 holds the 4 changes: the only full bar of the chart.
  assert.equal([...(highRow ?? '')].indexOf('█'), 6 + 33);
  assert.match(lowRow ?? '', / 17 \(peak 1\)$/);
  assert.ok(!(lowRow ?? '').includes('█'));
});

test('few buckets get wider columns; no series says so', () => {
  const text = renderTimeline(timeline({ low: [0, 2, 1] }, 'day'), 80);
  assert.match(text, /^low {3}····████▄▄▄▄ {2}3 \(peak 2\)$/m);
  assert.match(renderTimeline({ ...timeline({ low: [0] }), series: [], total: 0 }), /No changes\.$/);
});

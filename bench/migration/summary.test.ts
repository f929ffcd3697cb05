import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSpread, spread } from './summary.js';

test('median of odd and even counts, min and max, undefined and NaN ignored', () => {
  assert.deepEqual(spread([3, 1, 2]), { median: 2, min: 1, max: 3, n: 3 });
  assert.deepEqual(spread([4, 1, undefined, 2, 10, Number.NaN]), { median: 3, min: 1, max: 10, n: 4 });
  assert.equal(spread([]), undefined);
  assert.equal(spread([undefined]), undefined);
});

test('formatting: single value, range, nothing', () => {
  const f = (v: number) => v.toFixed(1);
  assert.equal(formatSpread(spread([2]), f), '2.0');
  assert.equal(formatSpread(spread([1, 2, 4]), f), '2.0 (1.0–4.0)');
  assert.equal(formatSpread(spread([5, 5]), f), '5.0');
  assert.equal(formatSpread(undefined, f), '—');
});

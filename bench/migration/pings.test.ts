import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pingGaps } from './pings.js';

// Replies every 10 ms from t=1000, with holes.
function replies(holes: [number, number][]): number[] {
  const out: number[] = [];
  for (let t = 1000; t <= 3000; t += 10) if (!holes.some(([a, b]) => t > a && t < b)) out.push(t);
  return out;
}

test('the gap that spans the switchover is the downtime; a longer one elsewhere is reported apart', () => {
  const r = replies([
    [1200, 1700], // 500 ms machine stall during the mirror
    [2500, 2580], // the switchover: paused at 2505
  ]);
  assert.deepEqual(pingGaps(r, 1000, 2505), { switchoverGapMs: 80, otherGapMs: 500, otherGapAtMs: 200 });
});

test('switchover time unknown: the longest gap of the move, nothing apart', () => {
  const r = replies([
    [1200, 1700],
    [2500, 2580],
  ]);
  assert.deepEqual(pingGaps(r, 1000, undefined), {
    switchoverGapMs: 500,
    otherGapMs: undefined,
    otherGapAtMs: undefined,
  });
});

test('no reply on either side of the switchover: no downtime figure', () => {
  assert.equal(pingGaps([1000, 1010, 1020], 1000, 5000).switchoverGapMs, undefined);
  assert.equal(pingGaps([], 1000, 5000).switchoverGapMs, undefined);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { cronProblem, currentOrNextWindow } from './schedule.js';

const at = (iso: string) => Date.parse(iso);
const H = 3600_000;

test('a daily 01:00 window of 4 h: the next one before it, the current one inside it', () => {
  assert.deepEqual(currentOrNextWindow('0 1 * * *', 4 * 3600, at('2026-06-01T00:30:00Z')), {
    start: at('2026-06-01T01:00:00Z'),
    end: at('2026-06-01T05:00:00Z'),
  });
  assert.deepEqual(currentOrNextWindow('0 1 * * *', 4 * 3600, at('2026-06-01T01:00:00Z')), {
    start: at('2026-06-01T01:00:00Z'),
    end: at('2026-06-01T05:00:00Z'),
  });
  assert.deepEqual(
    currentOrNextWindow('0 1 * * *', 4 * 3600, at('2026-06-01T04:59:59Z')).start,
    at('2026-06-01T01:00:00Z'),
  );
  assert.deepEqual(
    currentOrNextWindow('0 1 * * *', 4 * 3600, at('2026-06-01T05:00:00Z')).start,
    at('2026-06-02T01:00:00Z'),
  );
});

test('weekdays only, and steps', () => {
  // 2026-06-06 is a Saturday: the next weekday window is Monday's.
  assert.equal(
    currentOrNextWindow('0 1 * * 1-5', 3600, at('2026-06-06T12:00:00Z')).start,
    at('2026-06-08T01:00:00Z'),
  );
  assert.equal(
    currentOrNextWindow('*/15 * * * *', 600, at('2026-06-01T00:20:00Z')).start,
    at('2026-06-01T00:15:00Z'),
  );
  assert.equal(
    currentOrNextWindow('*/15 * * * *', 600, at('2026-06-01T00:26:00Z')).start,
    at('2026-06-01T00:30:00Z'),
  );
});

test('bad expressions are named, good ones pass', () => {
  assert.equal(cronProblem('0 1 * * *'), undefined);
  assert.match(cronProblem('0 1 * *') ?? '', /5 fields/);
  assert.match(cronProblem('61 1 * * *') ?? '', /not a cron expression/);
  assert.match(cronProblem('0 0 1 * * *') ?? '', /5 fields/);
});

test('property: now is before the window or inside it, never after', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: at('2026-01-01T00:00:00Z'), max: at('2027-01-01T00:00:00Z') }),
      fc.integer({ min: 60, max: 30 * 3600 }),
      fc.constantFrom('0 1 * * *', '30 */6 * * *', '0 9 * * 1-5', '*/20 * * * *'),
      (now, duration, cron) => {
        const w = currentOrNextWindow(cron, duration, now);
        assert.equal(w.end - w.start, duration * 1000);
        assert.ok(now < w.end);
        assert.ok(w.start - now <= 7 * 24 * H);
      },
    ),
    { numRuns: 200 },
  );
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { percentile, renderSoak, type SoakReport } from './report.js';

test('percentiles by nearest rank', () => {
  assert.equal(percentile([], 50), undefined);
  assert.equal(percentile([5], 95), 5);
  assert.equal(percentile([4, 1, 3, 2], 50), 2);
  assert.equal(
    percentile(
      [...Array(20).keys()].map((i) => i + 1),
      95,
    ),
    19,
  );
  assert.equal(percentile([3, 9, 1], 100), 9);
});

test('the soak table shows each host before and after, and its growth', () => {
  const fp = (fds: number, files: number) => ({ fds, processes: 3, listening: 1, vms: 1, files });
  const report: SoakReport = {
    startedAt: '2026-12-01T00:00:00.000Z',
    moves: 40,
    cutEvery: 20,
    ok: 38,
    failed: 0,
    cutsRolledBack: 2,
    unexpected: [],
    moveMs: [3000, 4000, 5000],
    downtimeMs: [20, 30, 40],
    cleanAfterCutMs: [4000, 6000],
    guestAgentAnswered: 38,
    records: 'ok: verified 100 records',
    before: { host1: fp(40, 1), host2: fp(30, 0) },
    after: { host1: fp(40, 1), host2: fp(33, 1) },
    loadavg: [1, 2, 3],
  };
  const text = renderSoak(report);
  assert.match(text, /moves ok 38 of 38, failed 0; cut moves rolled back with the VM on its source 2 of 2/);
  assert.match(text, /guest agent answered its first call on the target after 38 of 38 moves/);
  assert.match(text, /move time median 4000 ms, p95 5000 ms; QEMU downtime median 30 ms, p95 40 ms/);
  assert.match(text, /\| host1 \| 40 → 40 \| 3 → 3 \| 1 → 1 \| 1 → 1 \| 1 → 1 \| 0 \|/);
  assert.match(text, /\| host2 \| 30 → 33 \| 3 → 3 \| 1 → 1 \| 1 → 1 \| 0 → 1 \| 4 \|/);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { moveSummary } from './move-summary.js';
import { formatMilliseconds } from './units.js';

const MiB = 1024 * 1024;
const live = {
  vm: { id: '00000000-0000-4000-8000-000000000001', name: 'web1' },
  mode: 'live',
  from: 'h1',
  to: 'h2',
  totalTimeMs: 75_000,
  downtimeMs: 48,
  guestDowntimeMs: 131,
  diskBytes: 512 * MiB,
  memoryBytes: 400 * MiB,
  throttlePeakPercent: 30,
  throttleSeconds: 4,
  keptSource: false,
  stats: { mirrorTimeMs: 4000, memoryTimeMs: 5000, iterations: 3 },
};

test("a live move's summary: time, bytes and rates, passes, both downtimes, throttle", () => {
  assert.deepEqual(moveSummary({ result: live }), [
    ['Moved', 'web1: h1 -> h2 (live)'],
    ['Total time', '1m 15s'],
    ['Disks', '512 MiB at 128 MiB/s'],
    ['Memory', '400 MiB at 80 MiB/s, 3 passes'],
    ['Downtime (QEMU)', '48 ms'],
    ['Guest paused', '131 ms'],
    ['Throttle', 'up to 30% for 4s'],
  ]);
});

test("the memory stream's encoding and the reason it was chosen, when the engine reports it", () => {
  const why = 'link 125 MB/s is the bound; guest dirties 60 MB/s: multifd-zstd on 1 channel(s)';
  const rows = moveSummary({
    result: { ...live, stats: { ...live.stats, compression: { mode: 'multifd-zstd', why } } },
  });
  assert.deepEqual(rows?.at(-1), ['Memory stream', `multifd-zstd (${why})`]);
});

test('unknown figures say so or are left out; a cold move has no downtime rows', () => {
  const rows = moveSummary({
    result: {
      ...live,
      guestDowntimeMs: undefined,
      throttlePeakPercent: 0,
      stats: {},
      note: 'the cancel came late',
    },
  });
  assert.deepEqual(rows?.slice(2), [
    ['Disks', '512 MiB'],
    ['Memory', '400 MiB'],
    ['Downtime (QEMU)', '48 ms'],
    ['Guest paused', 'not measured'],
    ['Throttle', 'none'],
    ['Note', 'the cancel came late'],
  ]);
  const cold = moveSummary({
    result: { ...live, mode: 'cold', memoryBytes: undefined, downtimeMs: undefined },
  });
  assert.deepEqual(
    cold?.map(([k]) => k),
    ['Moved', 'Total time', 'Disks'],
  );
});

test('no summary for a job that is not a move or has no result', () => {
  assert.equal(moveSummary({ result: undefined }), undefined);
  assert.equal(moveSummary({ result: { id: 'x', name: 'a-vm' } }), undefined);
});

test('milliseconds read as ms below a second, seconds above', () => {
  assert.equal(formatMilliseconds(48.4), '48 ms');
  assert.equal(formatMilliseconds(1250), '1.3 s');
  assert.equal(formatMilliseconds(65_000), '1m 05s');
  assert.equal(formatMilliseconds(-1), '-');
});

test('the link the plan used: its rate, where it came from and the stream cap; unknown said as such', () => {
  const plan = {
    slowLink: true,
    maxBandwidthBytesPerSecond: 112 * MiB,
    multifdChannels: 1,
    postcopy: false,
    targetDowntimeMs: 30,
    maxDowntimeMs: 300,
    mirrorBufSizeBytes: 16 * MiB,
    link: { bitsPerSecond: 0.944e9, source: 'probe', measuredAt: '2026-12-07T12:00:00.000Z' },
    reasons: [],
  };
  const row = (result: unknown) => moveSummary({ result })?.find(([label]) => label === 'Link');
  assert.deepEqual(row({ ...live, plan }), ['Link', '944 Mbit/s (probe); stream capped at 112 MiB/s']);
  const { link: _none, ...unknown } = plan;
  assert.deepEqual(row({ ...live, plan: { ...unknown, slowLink: false } }), [
    'Link',
    'unknown (a LAN assumed)',
  ]);
  assert.equal(row(live), undefined, 'no plan (a cold move, or a job from before): no row');
});

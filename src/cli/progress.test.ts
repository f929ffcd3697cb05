import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  nextPlainLine,
  ProgressTracker,
  renderBar,
  renderPlainLine,
  type PlainLineState,
  type ProgressSample,
} from './progress.js';

const sample = (percent: number, extra: Partial<ProgressSample> = {}): ProgressSample => ({
  state: 'running',
  phase: 'copy-memory',
  percent,
  message: '',
  details: {},
  ...extra,
});

test('the shown percent never goes backwards, even when the job reports less', () => {
  const t = new ProgressTracker(0);
  const shown: number[] = [];
  for (const [i, p] of [10, 40, 35, 20, 55, 50, 90].entries()) {
    t.update(sample(p), i * 1000);
    shown.push(t.view(i * 1000).percent);
  }
  assert.deepEqual(shown, [10, 40, 40, 40, 55, 55, 90]);
  const bars = shown.map((p) => renderBar({ ...t.view(7000), percent: p }).split('#').length);
  assert.deepEqual(
    [...bars].sort((a, b) => a - b),
    bars,
    'bar length is monotonic too',
  );
});

test('percent is clamped to 0..100 and a succeeded job shows 100', () => {
  const t = new ProgressTracker(0);
  t.update(sample(140), 0);
  assert.equal(t.view(0).percent, 100);
  const u = new ProgressTracker(0);
  u.update(sample(-5), 0);
  assert.equal(u.view(0).percent, 0);
  u.update(sample(60, { state: 'succeeded' }), 1000);
  assert.equal(u.view(1000).percent, 100);
  assert.equal(u.view(1000).etaSeconds, undefined, 'no ETA once finished');
});

test('rate and ETA are derived from bytes and percent over the window', () => {
  const t = new ProgressTracker(0);
  const MiB = 1024 * 1024;
  t.update(sample(10, { details: { transferredBytes: 100 * MiB } }), 0);
  t.update(sample(20, { details: { transferredBytes: 200 * MiB } }), 5_000);
  const v = t.view(5_000);
  assert.equal(v.rateBytesPerSecond, 20 * MiB);
  // 10 points in 5 s = 2 %/s; 80 % left -> 40 s.
  assert.equal(v.etaSeconds, 40);
  assert.match(renderBar(v, 200), /20 MiB\/s/);
  assert.match(renderBar(v, 200), /ETA 40s/);
});

test('figures the job gives (rate, ETA, total) win over derived ones', () => {
  const t = new ProgressTracker(0);
  t.update(
    sample(10, {
      details: { transferredBytes: 1024, totalBytes: 4096, rateBytesPerSecond: 512, etaSeconds: 6 },
    }),
    0,
  );
  const v = t.view(0);
  assert.equal(v.rateBytesPerSecond, 512);
  assert.equal(v.etaSeconds, 6);
  assert.match(renderPlainLine(v), /1 KiB\/4 KiB {2}512 B\/s {2}ETA 6s/);
});

test('no progress for a minute is reported as stalled, distinct from slow', () => {
  const t = new ProgressTracker(0);
  t.update(sample(30), 0);
  t.update(sample(30), 59_000);
  assert.equal(t.view(59_000).stalledSeconds, undefined);
  t.update(sample(30, { message: 'waiting' }), 61_000);
  const v = t.view(61_000);
  assert.equal(v.stalledSeconds, 61);
  assert.match(renderBar(v, 200), /STALLED: no progress for 1m 01s/);
  assert.doesNotMatch(renderBar(v, 200), /ETA/);
  t.update(sample(31), 62_000);
  assert.equal(t.view(62_000).stalledSeconds, undefined, 'progress ends the stall');
  // Moving bytes is progress too, even when the percent stands still.
  t.update(sample(31, { details: { transferredBytes: 10 } }), 120_000);
  t.update(sample(31, { details: { transferredBytes: 20 } }), 150_000);
  assert.equal(t.view(150_000).stalledSeconds, undefined);
});

test('renderBar fits the terminal width and names the phase', () => {
  const t = new ProgressTracker(0);
  t.update(sample(50, { message: 'x'.repeat(200) }), 0);
  const line = renderBar(t.view(0), 60);
  assert.equal([...line].length, 60);
  assert.match(line, /^\[#{12}\.{12}\] {2}50% {2}copy-memory/);
});

test('plain lines appear on phase changes, each 10 %, stalls and every 30 s, not on every update', () => {
  const t = new ProgressTracker(0);
  let last: PlainLineState | undefined;
  const printed: number[] = [];
  const feed = (ms: number, s: ProgressSample) => {
    t.update(s, ms);
    const next = nextPlainLine(last, t.view(ms), ms);
    if (next) {
      last = next;
      printed.push(ms);
    }
  };
  feed(0, sample(1));
  feed(1000, sample(2));
  feed(2000, sample(9));
  feed(3000, sample(10));
  feed(4000, sample(11));
  feed(5000, sample(11, { phase: 'switchover' }));
  feed(20_000, sample(12, { phase: 'switchover' }));
  feed(36_000, sample(13, { phase: 'switchover' }));
  assert.deepEqual(printed, [0, 3000, 5000, 36_000]);
});

test('copy-memory shows memory left, its own rate and dirty rate, and the pass (not the mirror rate)', () => {
  const MiB = 1024 * 1024;
  const t = new ProgressTracker(0);
  const disk = { diskId: 'root', bytesDone: MiB, bytesTotal: MiB, bytesRemaining: 0, ready: true };
  const details = {
    disks: [{ ...disk, rateBytesPerSecond: 7 * MiB }],
    memory: {
      bytesTransferred: 300 * MiB,
      bytesRemaining: 96 * MiB,
      bytesTotal: 512 * MiB,
      passes: 4,
      rateBytesPerSecond: 110 * MiB,
      dirtyRateBytesPerSecond: 40 * MiB,
    },
    rateBytesPerSecond: 7 * MiB,
    dirtyRateBytesPerSecond: 0,
  };
  t.update(sample(60, { phase: 'copy-memory', details }), 0);
  const line = renderPlainLine(t.view(0));
  assert.match(
    line,
    /copy-memory {2}disks in sync {2}memory 96 MiB left of 512 MiB {2}110 MiB\/s {2}dirtying 40 MiB\/s {2}pass 4/,
  );
  assert.ok(!line.includes('7 MiB/s'), line);
  // Entering the memory copy, before QEMU's first figures: no stale mirror rate either.
  const early = new ProgressTracker(0);
  early.update(sample(55, { phase: 'copy-memory', details: { ...details, memory: undefined } }), 0);
  assert.ok(!renderPlainLine(early.view(0)).includes('MiB/s'), renderPlainLine(early.view(0)));
  // Before the memory copy the generic rate is the mirror's.
  t.update(sample(61, { phase: 'mirror-disks', details: { ...details, memory: undefined } }), 1);
  assert.match(renderPlainLine(t.view(1)), /root in sync {2}7 MiB\/s/);
});

test("a move's figures: per disk, memory, dirty rate, throttle, and the job's own health verdict", () => {
  const MiB = 1024 * 1024;
  const t = new ProgressTracker(0);
  const details = {
    disks: [
      {
        diskId: 'disk0',
        bytesDone: 512 * MiB,
        bytesTotal: 1024 * MiB,
        bytesRemaining: 512 * MiB,
        ready: false,
        rateBytesPerSecond: 0,
      },
      {
        diskId: 'disk1',
        bytesDone: 64 * MiB,
        bytesTotal: 64 * MiB,
        bytesRemaining: 0,
        ready: true,
        rateBytesPerSecond: 0,
      },
    ],
    memory: {
      bytesTransferred: 300 * MiB,
      bytesRemaining: 20 * MiB,
      bytesTotal: 1024 * MiB,
      passes: 3,
      rateBytesPerSecond: 200 * MiB,
      dirtyRateBytesPerSecond: 250 * MiB,
    },
    rateBytesPerSecond: 200 * MiB,
    dirtyRateBytesPerSecond: 250 * MiB,
    throttlePercent: 30,
    health: 'slow',
    healthReason: 'VM dirties memory faster than the link: throttling 30 %',
    etaSeconds: 12,
  };
  t.update(sample(70, { details }), 0);
  const line = renderPlainLine(t.view(0));
  for (const part of [
    'disk0 512 MiB/1 GiB',
    'disk1 in sync',
    'memory 20 MiB left of 1 GiB',
    'pass 3',
    '200 MiB/s',
    'dirtying 250 MiB/s',
    'throttle 30%',
    'ETA 12s',
    'VM dirties memory faster than the link',
  ]) {
    assert.ok(line.includes(part), `${part} in: ${line}`);
  }
  t.update(
    sample(70, { details: { ...details, health: 'stalled', healthReason: 'no pass finished in 60 s' } }),
    1000,
  );
  assert.match(renderPlainLine(t.view(1000)), /STALLED {2}no pass finished in 60 s/);
});

test('a figure off the expected shape hides only itself', () => {
  const t = new ProgressTracker(0);
  t.update(sample(5, { details: { rateBytesPerSecond: 'fast', etaSeconds: 9, disks: 'none' } }), 0);
  const v = t.view(0);
  assert.equal(v.rateBytesPerSecond, undefined);
  assert.equal(v.etaSeconds, 9);
  assert.equal(v.figures.disks, undefined);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { advanceProgress, initialProgress, type RawProgress } from './progress.js';

const GB = 1e9;

function raw(over: Partial<RawProgress>): RawProgress {
  return { atMs: 0, phase: 'mirror-disks', disks: [], memoryBytes: 1 * GB, throttlePercent: 0, ...over };
}

test('disks and memory count together; percent and rates follow the bytes', () => {
  let t = initialProgress('mirror-disks');
  t = advanceProgress(t, raw({ atMs: 0, disks: [{ diskId: 'a', offset: 0, len: 2 * GB, ready: false }] }));
  t = advanceProgress(
    t,
    raw({ atMs: 1000, disks: [{ diskId: 'a', offset: 0.3 * GB, len: 2 * GB, ready: false }] }),
  );
  const p = t.progress;
  assert.equal(p.phase, 'mirror-disks');
  assert.equal(p.disks[0]?.bytesRemaining, 1.7 * GB);
  assert.equal(p.disks[0]?.rateBytesPerSecond, 0.3 * GB);
  assert.equal(p.rateBytesPerSecond, 0.3 * GB);
  // 0.3 done of 2 GB disk + 1 GB memory still to send.
  assert.equal(p.percent, 10);
  assert.equal(p.health, 'progressing');
  // 1.7 GB of disk + 1 GB of memory at 0.3 GB/s.
  assert.equal(p.etaSeconds, 9);
});

test('percent never goes down when the guest re-dirties memory', () => {
  let t = initialProgress('copy-memory');
  const disks = [{ diskId: 'a', offset: 1 * GB, len: 1 * GB, ready: true }];
  const mem = (transferred: number, remaining: number) => ({
    transferred,
    remaining,
    total: 1 * GB,
    passes: 2,
    rate: 0.3 * GB,
    dirtyRate: 0.1 * GB,
  });
  t = advanceProgress(t, raw({ atMs: 0, phase: 'copy-memory', disks, memory: mem(0.9 * GB, 0.05 * GB) }));
  const before = t.progress.percent;
  t = advanceProgress(t, raw({ atMs: 500, phase: 'copy-memory', disks, memory: mem(0.95 * GB, 0.2 * GB) }));
  assert.ok(t.progress.percent >= before);
  assert.ok(t.progress.percent < 100);
  assert.equal(t.progress.memory?.passes, 2);
  assert.equal(t.progress.dirtyRateBytesPerSecond, 0.1 * GB);
  // 0.2 GB left at 0.3 - 0.1 GB/s net.
  assert.equal(t.progress.etaSeconds, 1);
  t = advanceProgress(t, raw({ atMs: 900, phase: 'done', disks, memory: mem(1.2 * GB, 0) }));
  assert.equal(t.progress.percent, 100);
  assert.equal(t.progress.etaSeconds, 0);
});

test('slow: the guest dirties as fast as the stream carries; no ETA then', () => {
  let t = initialProgress('copy-memory');
  const memory = {
    transferred: 2 * GB,
    remaining: 0.2 * GB,
    total: 1 * GB,
    passes: 9,
    rate: 0.12 * GB,
    dirtyRate: 0.15 * GB,
  };
  t = advanceProgress(t, raw({ atMs: 0, phase: 'copy-memory', memory }));
  t = advanceProgress(
    t,
    raw({ atMs: 1000, phase: 'copy-memory', memory: { ...memory, transferred: 2.12 * GB } }),
  );
  assert.equal(t.progress.health, 'slow');
  assert.match(t.progress.healthReason ?? '', /dirties 150 MB\/s, stream carries 120 MB\/s/);
  assert.equal(t.progress.etaSeconds, undefined);
});

test('stalled: no byte moved for the window; progressing again once bytes move', () => {
  let t = initialProgress('mirror-disks');
  const disk = (offset: number) => [{ diskId: 'a', offset, len: 2 * GB, ready: false }];
  t = advanceProgress(t, raw({ atMs: 0, disks: disk(0.5 * GB) }));
  t = advanceProgress(t, raw({ atMs: 10_000, disks: disk(0.5 * GB) }));
  assert.equal(t.progress.health, 'slow');
  t = advanceProgress(t, raw({ atMs: 30_000, disks: disk(0.5 * GB) }));
  assert.equal(t.progress.health, 'stalled');
  assert.equal(t.progress.healthReason, 'no byte moved for 30 s');
  assert.equal(t.progress.etaSeconds, undefined);
  t = advanceProgress(t, raw({ atMs: 31_000, disks: disk(0.6 * GB) }));
  assert.equal(t.progress.health, 'progressing');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MigrationStatus } from '../../api/index.js';
import { phasePercent } from './phases.js';
import {
  coldCopyProgress,
  guestDowntimeMs,
  jobPhaseOf,
  moveFigures,
  moveProgress,
  moveResult,
  type MoveContext,
} from './progress.js';

const ctx: MoveContext = {
  vm: { id: '7f1c0a52-5a8e-4d35-9a55-0d1f3f7a9b11', name: 'web-1' },
  from: 'h1',
  to: 'h2',
  mode: 'live',
};
const GiB = 1024 ** 3;

function status(
  over: Partial<MigrationStatus['progress']>,
  state: MigrationStatus['state'] = 'running',
): MigrationStatus {
  return {
    id: '3b0c7d2e-8d1b-4a4f-9a51-7d7b6c1f0a22',
    role: 'source',
    vmName: 'web-1',
    state,
    progress: {
      phase: 'mirror-disks',
      percent: 0,
      disks: [],
      rateBytesPerSecond: 0,
      dirtyRateBytesPerSecond: 0,
      health: 'progressing',
      throttlePercent: 0,
      ...over,
    },
    stats: {},
    policyLog: [],
    startedAt: '2026-11-25T14:00:00.000Z',
  };
}

const disk = (done: number, total: number, ready = false) => ({
  diskId: 'root',
  bytesDone: done,
  bytesTotal: total,
  bytesRemaining: total - done,
  ready,
  rateBytesPerSecond: 100e6,
});

test("the agent's phases map onto the job's: its set-up counts as the mirror, done as the switchover", () => {
  assert.equal(jobPhaseOf(status({ phase: 'validate' })), 'mirror-disks');
  assert.equal(jobPhaseOf(status({ phase: 'mirror-disks' })), 'mirror-disks');
  assert.equal(jobPhaseOf(status({ phase: 'copy-memory' })), 'copy-memory');
  // The agent's own switchover is still part of the copy until the source reports completed.
  assert.equal(jobPhaseOf(status({ phase: 'switchover' })), 'copy-memory');
  assert.equal(jobPhaseOf(status({ phase: 'done' }, 'completed')), 'switchover');
});

test('the mirror fills its share by bytes mirrored; disks in sync fill it all', () => {
  const half = moveProgress(ctx, status({ disks: [disk(GiB / 2, GiB)] }));
  assert.equal(half.phase, 'mirror-disks');
  assert.equal(half.percent, phasePercent('mirror-disks', 0.5));
  assert.match(half.message ?? '', /mirroring 1 disk to h2 \(0 in sync\)/);
  const ready = moveProgress(ctx, status({ disks: [disk(GiB, GiB + 5, true)] }));
  assert.equal(ready.percent, phasePercent('mirror-disks', 1));
});

test("memory fills copy-memory's share by sent over sent + remaining; figures pass through for the CLI", () => {
  const update = moveProgress(
    ctx,
    status({
      phase: 'copy-memory',
      disks: [disk(GiB, GiB, true)],
      memory: {
        bytesTransferred: 300,
        bytesRemaining: 100,
        bytesTotal: 400,
        passes: 3,
        rateBytesPerSecond: 250e6,
        dirtyRateBytesPerSecond: 80e6,
      },
      rateBytesPerSecond: 250e6,
      dirtyRateBytesPerSecond: 80e6,
      etaSeconds: 4,
      health: 'slow',
      healthReason: 'the guest dirties memory nearly as fast as it is sent',
      throttlePercent: 20,
    }),
  );
  assert.equal(update.percent, phasePercent('copy-memory', 0.75));
  assert.match(update.message ?? '', /copying memory to h2, pass 3 \(slow: the guest dirties memory/);
  const d = update.details ?? {};
  assert.equal(d.dirtyRateBytesPerSecond, 80e6);
  assert.equal(d.throttlePercent, 20);
  assert.equal(d.etaSeconds, 4);
  assert.equal(d.health, 'slow');
  assert.equal(d.from, 'h1');
  assert.equal((d.memory as { passes: number }).passes, 3);
  assert.equal(d.stream, undefined, 'no encoding reported: none passed on');
  const compression = { mode: 'multifd-zstd' as const, why: 'link 125 MB/s is the bound' };
  const withStream = moveProgress(ctx, { ...status({ phase: 'copy-memory' }), stats: { compression } });
  assert.deepEqual(withStream.details?.stream, compression);
});

test("the result carries QEMU's downtime, bytes and throttling next to the move's total time", () => {
  const result = moveResult(
    ctx,
    { downtimeMs: 31, diskBytes: 5, memoryBytes: 7, throttlePeakPercent: 30, throttleSeconds: 2.5 },
    9000,
    true,
  );
  assert.deepEqual(
    [
      result.downtimeMs,
      result.diskBytes,
      result.memoryBytes,
      result.throttlePeakPercent,
      result.throttleSeconds,
    ],
    [31, 5, 7, 30, 2.5],
  );
  assert.equal(result.totalTimeMs, 9000);
  assert.equal(result.keptSource, true);
  assert.equal(result.note, undefined);
});

test("the guest's pause: the source's pause to the target's resume; unknown or negative gives none", () => {
  const stats = { switchoverAt: '2026-12-01T10:00:00.100Z', resumedAt: '2026-12-01T10:00:00.233Z' };
  assert.equal(guestDowntimeMs(stats), 133);
  assert.equal(moveResult(ctx, stats, 9000, false).guestDowntimeMs, 133);
  assert.equal(guestDowntimeMs({ switchoverAt: stats.switchoverAt }), undefined);
  // Clocks far apart would make it negative: not a figure to show.
  assert.equal(guestDowntimeMs({ switchoverAt: stats.resumedAt, resumedAt: stats.switchoverAt }), undefined);
  assert.equal('guestDowntimeMs' in moveResult(ctx, {}, 9000, false), false);
});

test("a move's figures for its end record: the result's, else how far the copy got", () => {
  const done = moveResult(ctx, { downtimeMs: 31.4, diskBytes: 5, memoryBytes: 7 }, 9000, false);
  assert.deepEqual(moveFigures(done, undefined), {
    totalTimeMs: 9000,
    downtimeMs: 31,
    diskBytes: 5,
    memoryBytes: 7,
  });
  const failed = status({
    phase: 'copy-memory',
    disks: [
      {
        diskId: 'root',
        bytesDone: GiB,
        bytesTotal: GiB,
        bytesRemaining: 0,
        ready: true,
        rateBytesPerSecond: 0,
      },
    ],
    memory: {
      bytesTransferred: 300,
      bytesRemaining: 10,
      bytesTotal: 310,
      passes: 2,
      rateBytesPerSecond: 1,
      dirtyRateBytesPerSecond: 1,
    },
  });
  assert.deepEqual(moveFigures({ totalTimeMs: 4000.6 }, failed), {
    totalTimeMs: 4001,
    diskBytes: GiB,
    memoryBytes: 300,
  });
  assert.deepEqual(moveFigures({ totalTimeMs: 10 }, undefined), { totalTimeMs: 10 });
});

test("a cold move's progress: mirror-disks' share by how far its target's copy is, bytes received shown", () => {
  const cold: MoveContext = { ...ctx, mode: 'cold' };
  const copy = {
    migrationId: '3b0c7d2e-8d1b-4a4f-9a51-7d7b6c1f0a22',
    vmName: 'web-1',
    state: 'running' as const,
    percent: 50,
    receivedBytes: 100 * 1024 * 1024,
    startedAt: '2026-12-07T10:00:00.000Z',
  };
  const update = coldCopyProgress(cold, copy, 1);
  assert.equal(update.phase, 'mirror-disks');
  assert.equal(update.percent, phasePercent('mirror-disks', 0.5));
  assert.equal(update.message, 'copying 1 disk to h2: 50 % (100.0 MiB received)');
  assert.deepEqual(update.details, {
    from: 'h1',
    to: 'h2',
    mode: 'cold',
    migrationId: copy.migrationId,
    copyPercent: 50,
    transferredBytes: 100 * 1024 * 1024,
  });
  assert.equal(coldCopyProgress(cold, { ...copy, percent: 100 }, 2).percent, phasePercent('mirror-disks', 1));
  assert.match(coldCopyProgress(cold, copy, 2).message ?? '', /^copying 2 disks/);
});

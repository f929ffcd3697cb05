import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkLevel,
  emptyMoveForm,
  finishedFigures,
  liveFigures,
  moveRequest,
  moveStorageRequest,
} from './move-figures.js';

const MiB = 1024 * 1024;
const disk = (id: string, done: number, total: number, ready: boolean) => ({
  diskId: id,
  bytesDone: done,
  bytesTotal: total,
  bytesRemaining: total - done,
  ready,
  rateBytesPerSecond: 10 * MiB,
});

describe('liveFigures', () => {
  it("reads a live move's details as the manager writes them (progress.ts moveProgress)", () => {
    const f = liveFigures({
      from: 'h1',
      to: 'h2',
      mode: 'live',
      migrationId: '7e0c1f7e-3b7a-4c37-9a43-1f1e7d1c2b3a',
      disks: [disk('root', 100 * MiB, 100 * MiB, true), disk('data', 50 * MiB, 200 * MiB, false)],
      memory: {
        bytesTransferred: 30 * MiB,
        bytesRemaining: 10 * MiB,
        bytesTotal: 256 * MiB,
        passes: 3,
        rateBytesPerSecond: 40 * MiB,
        dirtyRateBytesPerSecond: 5 * MiB,
      },
      rateBytesPerSecond: 42 * MiB,
      dirtyRateBytesPerSecond: 1 * MiB,
      etaSeconds: 12,
      health: 'slow',
      healthReason: 'the guest dirties memory fast',
      throttlePercent: 20,
      stream: { mode: 'multifd-zstd', why: 'slow link' },
    });
    assert.equal(f.from, 'h1');
    assert.equal(f.to, 'h2');
    assert.equal(f.mode, 'live');
    assert.equal(f.sentBytes, 180 * MiB);
    assert.equal(f.totalBytes, 340 * MiB);
    assert.equal(f.disksInSync, '1/2 disks in sync');
    assert.equal(f.memoryPasses, 3);
    assert.equal(f.rateBytesPerSecond, 42 * MiB);
    // The memory copy's own dirty rate wins over the overall one.
    assert.equal(f.dirtyRateBytesPerSecond, 5 * MiB);
    assert.equal(f.throttlePercent, 20);
    assert.equal(f.etaSeconds, 12);
    assert.equal(f.health, 'slow');
    assert.equal(f.healthReason, 'the guest dirties memory fast');
    assert.equal(f.stream, 'multifd-zstd (slow link)');
  });

  it("reads a cold move's copy (coldCopyProgress) and hides a figure off its shape", () => {
    const f = liveFigures({
      from: 'a',
      to: 'b',
      mode: 'cold',
      transferredBytes: 5 * MiB,
      throttlePercent: 'x',
    });
    assert.deepEqual(f, { from: 'a', to: 'b', mode: 'cold', sentBytes: 5 * MiB });
  });

  it('gives nothing for a queued job', () => {
    assert.deepEqual(liveFigures({}), {});
  });
});

const times = {
  createdAt: '2025-01-01T10:00:00.000Z',
  startedAt: '2025-01-01T10:00:05.000Z',
  finishedAt: '2025-01-01T10:01:05.000Z',
};

/** A succeeded live move of web1 from h1 to h2 with these result figures. */
const succeeded = (figures: Record<string, unknown>) => ({
  ...times,
  progress: { phase: 'clean-up', percent: 100, message: '', details: {} },
  result: {
    vm: { id: '7e0c1f7e-3b7a-4c37-9a43-1f1e7d1c2b3a', name: 'web1' },
    mode: 'live',
    from: 'h1',
    to: 'h2',
    keptSource: false,
    ...figures,
  },
});

describe('finishedFigures', () => {
  it("takes a succeeded move's result", () => {
    const f = finishedFigures(
      succeeded({
        totalTimeMs: 42_500,
        downtimeMs: 80,
        guestDowntimeMs: 95,
        diskBytes: 300 * MiB,
        memoryBytes: 60 * MiB,
        stats: { deltaBytes: 12 * MiB },
      }),
    );
    assert.deepEqual(f, {
      from: 'h1',
      to: 'h2',
      mode: 'live',
      totalSeconds: 42.5,
      downtimeMs: 80,
      guestPausedMs: 95,
      sentBytes: 360 * MiB,
      delta: true,
    });
  });

  it('falls back to the stats when the result has no top-level figures', () => {
    const f = finishedFigures(succeeded({ totalTimeMs: 1000, stats: { diskBytes: 2 * MiB, downtimeMs: 7 } }));
    assert.equal(f.sentBytes, 2 * MiB);
    assert.equal(f.downtimeMs, 7);
    assert.equal(f.delta, undefined);
  });

  it('tells how far a failed move got from its last details and its timestamps', () => {
    const f = finishedFigures({
      ...times,
      progress: {
        phase: 'mirror-disks',
        percent: 30,
        message: '',
        details: { from: 'h1', to: 'h2', mode: 'live', disks: [disk('root', 40 * MiB, 100 * MiB, false)] },
      },
    });
    assert.deepEqual(f, { from: 'h1', to: 'h2', mode: 'live', totalSeconds: 60, sentBytes: 40 * MiB });
  });
});

describe('the move request', () => {
  it('sends only the target by default: TLS on and the default datastore, as `vm move --to` does', () => {
    assert.deepEqual(moveRequest({ ...emptyMoveForm(), to: 'h2', datastores: { root: '' } }), { to: 'h2' });
  });

  it('names the chosen datastores per disk and the advanced flags only when set', () => {
    assert.deepEqual(
      moveRequest({
        to: 'h2',
        datastores: { root: 'fast', data: '' },
        noSecure: true,
        keepSource: true,
        retain: true,
      }),
      { to: 'h2', datastore: { root: 'fast' }, secure: false, keepSource: true, retain: true },
    );
  });

  it('moves storage of every disk unless some are picked', () => {
    assert.deepEqual(moveStorageRequest('fast', [], ['root', 'data']), { datastore: 'fast' });
    assert.deepEqual(moveStorageRequest('fast', ['root', 'data'], ['root', 'data']), { datastore: 'fast' });
    assert.deepEqual(moveStorageRequest('fast', ['data'], ['root', 'data']), {
      datastore: 'fast',
      disks: ['data'],
    });
  });
});

describe('checkLevel', () => {
  it('words a check as pass, warn or fail', () => {
    assert.equal(checkLevel({ ok: true }), 'pass');
    assert.equal(checkLevel({ ok: true, warning: true }), 'warn');
    assert.equal(checkLevel({ ok: false, warning: true }), 'fail');
  });
});

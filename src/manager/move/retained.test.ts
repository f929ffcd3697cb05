import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseDiskCopy, type DiskCopyFacts } from './retained.js';

const usable: DiskCopyFacts = {
  vmName: 'web1',
  targetName: 'host1',
  copy: { generationId: 'g1', departedAt: '2026-12-01T10:00:00.000Z', datastores: { root: 'local' } },
  generation: 'g1',
  disks: [{ id: 'root', format: 'qcow2', toDatastore: 'local' }],
  targetCheck: {
    vmId: '00000000-0000-4000-8000-000000000001',
    vmName: 'web1',
    generationId: 'g1',
    departedAt: '2026-12-01T10:00:00.000Z',
    disks: [],
    allocatedBytes: 0,
    check: { valid: true },
  },
  sourceDelta: { usable: true, generationId: 'g1', bytes: 5 * 1024 * 1024 },
};

test('a provable copy gives a delta with what the bitmaps mark', () => {
  assert.deepEqual(chooseDiskCopy(usable), {
    kind: 'delta',
    bytes: 5 * 1024 * 1024,
    generationId: 'g1',
    retainedAt: '2026-12-01T10:00:00.000Z',
  });
});

test('every doubt is a full copy with its reason', () => {
  const cases: [Partial<DiskCopyFacts>, RegExp][] = [
    [{ copy: undefined }, /host1 keeps no retained copy of web1/],
    [{ generation: 'g2' }, /stale: web1 moved on/],
    [{ generation: undefined }, /stale/],
    [{ disks: [{ id: 'root', format: 'raw', toDatastore: 'local' }] }, /disk root is raw: only qcow2/],
    [{ disks: [{ id: 'data', format: 'qcow2', toDatastore: 'local' }] }, /has no disk data/],
    [
      { disks: [{ id: 'root', format: 'qcow2', toDatastore: 'fast' }] },
      /goes to datastore fast, its retained copy is on local/,
    ],
    [{ targetCheck: 'host1 did not answer' }, /host1 cannot check its retained copy: host1 did not answer/],
    [{ targetCheck: undefined }, /host1 no longer has the retained copy/],
    [
      {
        targetCheck: {
          ...(usable.targetCheck as object),
          check: { valid: false, reason: 'the image of disk root is missing' },
        } as DiskCopyFacts['targetCheck'],
      },
      /cannot be used: the image of disk root is missing/,
    ],
    [
      {
        targetCheck: {
          ...(usable.targetCheck as object),
          generationId: 'g0',
        } as DiskCopyFacts['targetCheck'],
      },
      /another generation \(g0\)/,
    ],
    [
      {
        sourceDelta: {
          usable: false,
          generationId: 'g1',
          reason: 'disk root: the tracking bitmap sb-delta-g1 is inconsistent',
        },
      },
      /inconsistent/,
    ],
    [{ sourceDelta: undefined }, /the source did not say/],
  ];
  for (const [change, reason] of cases) {
    const copy = chooseDiskCopy({ ...usable, ...change });
    assert.equal(copy.kind, 'full', JSON.stringify(change));
    assert.match(copy.kind === 'full' ? copy.reason : '', reason);
  }
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DELTA_PREFIX,
  deltaNames,
  deltaOverlayPath,
  imageOfDeltaOverlay,
  deltaRefusal,
  generationOfBitmap,
  TRACKING_BITMAP_PREFIX,
  trackingBitmapName,
} from './delta.js';

test('a tracking bitmap name carries its generation and reads back', () => {
  for (const id of ['0f3c9a2e-4b1d-4c8e-9a7b-2d5e6f708192', 'gen1', 'A_b-9']) {
    const name = trackingBitmapName(id);
    assert.ok(name.startsWith(TRACKING_BITMAP_PREFIX));
    assert.equal(generationOfBitmap(name), id);
  }
});

test('generation ids that could not be told apart or break QEMU names are refused', () => {
  for (const bad of ['', '-lead', 'has space', 'a/b', 'ü', 'x'.repeat(65)]) {
    assert.throws(
      () => trackingBitmapName(bad),
      (e: unknown) => e instanceof RangeError && /generation id/.test(e.message),
      bad,
    );
  }
  assert.equal(trackingBitmapName('x'.repeat(64)).length, TRACKING_BITMAP_PREFIX.length + 64);
});

test('bitmaps that are not the fabric’s have no generation', () => {
  for (const other of ['backup-daily', 'sb-delta-', 'sb-delta-bad id', 'xsb-delta-gen1']) {
    assert.equal(generationOfBitmap(other), undefined, other);
  }
});

test('the QEMU names of one delta move are distinct, prefixed and fit QEMU’s node-name limit', () => {
  const names = deltaNames('0f3c9a2e', 'disk-with-a-long-identifier');
  const all = Object.values(names);
  assert.equal(new Set(all).size, all.length);
  for (const n of all) {
    assert.ok(n.startsWith(DELTA_PREFIX), n);
    assert.ok(n.length <= 31, n);
  }
  assert.notDeepEqual(deltaNames('0f3c9a2e', 'd0'), deltaNames('0f3c9a2e', 'd1'));
});

test('a delta is refused for a missing, inconsistent, transient or stopped bitmap', () => {
  const good = { name: 'sb-delta-g', count: 65536, granularity: 65536, recording: true, persistent: true };
  assert.equal(deltaRefusal(good, 'sb-delta-g'), undefined);
  assert.match(deltaRefusal(undefined, 'sb-delta-g') ?? '', /no tracking bitmap sb-delta-g/);
  assert.match(deltaRefusal({ ...good, inconsistent: true }, 'sb-delta-g') ?? '', /inconsistent/);
  assert.match(deltaRefusal({ ...good, persistent: false }, 'sb-delta-g') ?? '', /not persistent/);
  assert.match(deltaRefusal({ ...good, recording: false }, 'sb-delta-g') ?? '', /not recording/);
});

test('a delta overlay is named after its image and leads back to it', () => {
  const image = '/srv/ds1/web.vda.qcow2';
  const overlay = deltaOverlayPath(image, '0f3c9a2e');
  assert.equal(overlay, '/srv/ds1/web.vda.qcow2.dlt-0f3c9a2e.qcow2');
  assert.equal(imageOfDeltaOverlay(overlay), image);
  for (const other of [image, '/srv/ds1/web.vda.qcow2.dlt-.qcow2', '/srv/ds1/x.dlt-a b.qcow2']) {
    assert.equal(imageOfDeltaOverlay(other), undefined, other);
  }
});

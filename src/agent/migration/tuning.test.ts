import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseCompression } from './compression.js';
import { chooseTuning, UNLIMITED_BANDWIDTH, type TuningInput } from './tuning.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const lab: TuningInput = {
  linkBitsPerSecond: 15e9,
  accelerator: 'tcg',
  hostCpus: 2,
  hostMemoryBytes: 24 * GiB,
  vcpus: 1,
  memoryBytes: GiB,
  diskCount: 1,
  allowPostcopy: false,
};

test('fast link under TCG: cap lifted, no xbzrle; multifd only with two spare cores', () => {
  const t = chooseTuning(lab);
  assert.equal(t.slowLink, false);
  assert.equal(t.maxBandwidthBytesPerSecond, UNLIMITED_BANDWIDTH);
  assert.equal(t.multifdChannels, 0, 'the lab: 2 cores, 1 vCPU');
  assert.ok(
    t.reasons.some((r) => /only 1 core\(s\) spare beside 1 vCPU\(s\): one stream/.test(r)),
    t.reasons.join('; '),
  );
  assert.equal(chooseTuning({ ...lab, hostCpus: 4 }).multifdChannels, 6);
  assert.equal(chooseTuning({ ...lab, hostCpus: 3 }).multifdChannels, 4);
  assert.equal(chooseTuning({ ...lab, hostCpus: 32, vcpus: 4 }).multifdChannels, 8);
  assert.equal(chooseTuning({ ...lab, hostCpus: 4, vcpus: 4 }).multifdChannels, 0);
  assert.equal(t.xbzrleCacheBytes, undefined);
  assert.equal(t.targetDowntimeMs, 30);
  assert.equal(t.maxDowntimeMs, 300);
  assert.equal(t.mirrorBufSizeBytes, 16 * MiB);
});

test('1 GbE link: capped at 95 % of the link; the compression choice sets channels or the xbzrle cache', () => {
  const slow = chooseTuning({ ...lab, linkBitsPerSecond: 1e9 });
  assert.equal(slow.slowLink, true);
  assert.equal(slow.maxBandwidthBytesPerSecond, Math.floor((1e9 / 8) * 0.95));
  assert.equal(slow.multifdChannels, 0);
  assert.equal(slow.xbzrleCacheBytes, undefined);
  assert.equal(slow.compression.mode, 'plain', 'no choice given: plain');

  const facts = { linkBytesPerSecond: 1e9 / 8, memoryBytes: GiB, allowPostcopy: false };
  const zstd = chooseCompression({ ...facts, spareCores: 1.8, dirtyBytesPerSecond: 90e6, reDirty: 1 });
  const z = chooseTuning({ ...lab, linkBitsPerSecond: 1e9, compression: zstd });
  assert.equal(z.compression.mode, 'multifd-zstd');
  assert.equal(z.multifdChannels, zstd.channels);
  assert.ok(z.multifdChannels > 0);
  assert.equal(z.xbzrleCacheBytes, undefined);
  assert.ok(z.reasons.includes(zstd.why));

  const xb = chooseCompression({ ...facts, spareCores: 1, dirtyBytesPerSecond: 150e6, reDirty: 3 });
  const x = chooseTuning({ ...lab, linkBitsPerSecond: 1e9, compression: xb });
  assert.equal(x.compression.mode, 'xbzrle');
  assert.equal(x.multifdChannels, 0);
  assert.equal(x.xbzrleCacheBytes, xb.xbzrleCacheBytes);

  const busy = chooseCompression({ ...facts, spareCores: 0.3 });
  const b = chooseTuning({ ...lab, linkBitsPerSecond: 1e9, compression: busy });
  assert.equal(b.compression.mode, 'plain');
  assert.ok(b.reasons.includes(busy.why));
});

test('a 5 Gbit/s link is slow for TCG but fast for KVM', () => {
  assert.equal(chooseTuning({ ...lab, linkBitsPerSecond: 5e9 }).slowLink, false);
  assert.equal(chooseTuning({ ...lab, linkBitsPerSecond: 5e9, accelerator: 'kvm' }).slowLink, true);
});

test('unknown link: cap lifted; post-copy excludes multifd; user downtime respected', () => {
  const t = chooseTuning({
    ...lab,
    linkBitsPerSecond: undefined,
    allowPostcopy: true,
    targetDowntimeMs: 500,
    maxDowntimeMs: 200,
  });
  assert.equal(t.maxBandwidthBytesPerSecond, UNLIMITED_BANDWIDTH);
  assert.equal(t.multifdChannels, 0);
  assert.equal(t.targetDowntimeMs, 200);
  assert.equal(t.maxDowntimeMs, 200);
});

test('mirror buffers share a budget between parallel disks and host memory', () => {
  assert.equal(chooseTuning({ ...lab, diskCount: 4 }).mirrorBufSizeBytes, 16 * MiB);
  assert.equal(chooseTuning({ ...lab, diskCount: 8 }).mirrorBufSizeBytes, 8 * MiB);
  assert.equal(chooseTuning({ ...lab, hostMemoryBytes: 2 * GiB, diskCount: 8 }).mirrorBufSizeBytes, 4 * MiB);
  assert.equal(chooseTuning({ ...lab, hostMemoryBytes: 2 * GiB, diskCount: 64 }).mirrorBufSizeBytes, 4 * MiB);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  chooseCompression,
  compressionChannels,
  choiceNeedsReDirty,
  compressionParameters,
  COMPRESSION_RULES as R,
  idleCores,
  linkBeatsCompression,
  type CompressionInput,
} from './compression.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** The bench's 1 Gbit/s row on the lab: one TCG guest of 1 GiB, a core and a half idle. */
const gbe: CompressionInput = {
  linkBytesPerSecond: 1e9 / 8,
  spareCores: 1.5,
  dirtyBytesPerSecond: 80e6,
  reDirty: 1.1,
  memoryBytes: GiB,
  allowPostcopy: false,
};

test('link-bound copy with idle CPU: multifd-zstd, one channel per idle core, up to 4', () => {
  const c = chooseCompression(gbe);
  assert.equal(c.mode, 'multifd-zstd');
  assert.equal(c.channels, 1);
  assert.equal(c.xbzrleCacheBytes, undefined);
  assert.match(c.why, /link 125 MB\/s is the bound.*guest dirties 80 MB\/s.*multifd-zstd on 1 channel/);
  assert.equal(chooseCompression({ ...gbe, spareCores: 1.8 }).channels, 2);
  assert.equal(chooseCompression({ ...gbe, spareCores: 15 }).channels, 4);
  // zlib is four times slower: one channel cannot beat 1 GbE, four can.
  assert.equal(chooseCompression({ ...gbe, zstd: false }).mode, 'plain');
  assert.equal(chooseCompression({ ...gbe, zstd: false, spareCores: 4 }).mode, 'multifd-zlib');
  // Unknown dirty rate: the bulk copy is still link-bound.
  const unknown = chooseCompression({ ...gbe, dirtyBytesPerSecond: undefined, reDirty: undefined });
  assert.equal(unknown.mode, 'multifd-zstd');
  assert.match(unknown.why, /dirty rate unknown/);
});

test('plain when the guest dirties at most half the link: it converges unthrottled, compression costs downtime', () => {
  const edge = (gbe.linkBytesPerSecond ?? 0) * R.plainConvergesAtOrBelow;
  const calm = chooseCompression({ ...gbe, dirtyBytesPerSecond: edge });
  assert.equal(calm.mode, 'plain');
  assert.match(
    calm.why,
    /guest dirties 63 MB\/s, at most 0.5 x the link's 125 MB\/s: plain converges unthrottled/,
  );
  assert.equal(chooseCompression({ ...gbe, dirtyBytesPerSecond: 0 }).mode, 'plain');
  assert.equal(chooseCompression({ ...gbe, dirtyBytesPerSecond: edge + 1 }).mode, 'multifd-zstd');
});

test('plain: link unknown, too little idle CPU, or a link compression cannot beat', () => {
  assert.match(chooseCompression({ ...gbe, linkBytesPerSecond: undefined }).why, /link rate unknown/);
  const busy = chooseCompression({ ...gbe, spareCores: 0.5 });
  assert.equal(busy.mode, 'plain');
  assert.match(busy.why, /only 0\.5 idle core\(s\).*< 0\.75/);
  assert.equal(chooseCompression({ ...gbe, spareCores: undefined }).mode, 'plain');
  // The lab's full link (~17 Gbit/s): even 4 channels compress less than it carries.
  const fast = chooseCompression({ ...gbe, linkBytesPerSecond: 17e9 / 8, spareCores: 8 });
  assert.equal(fast.mode, 'plain');
  assert.match(fast.why, /faster than 4 zstd channel\(s\) can beat/);
  // The boundary: 1 channel compresses 250 MB/s, which must be 1.25 x the link.
  const edge = R.zstdBytesPerSecondPerCore / R.minGain;
  assert.equal(
    chooseCompression({ ...gbe, linkBytesPerSecond: edge, dirtyBytesPerSecond: edge }).mode,
    'multifd-zstd',
  );
  assert.equal(chooseCompression({ ...gbe, linkBytesPerSecond: edge + 1 }).mode, 'plain');
  // Post-copy excludes multifd.
  assert.match(chooseCompression({ ...gbe, allowPostcopy: true }).why, /post-copy/);
});

test("a link faster than all the host's cores could beat is plain before any probe", () => {
  const full = { ...gbe, linkBytesPerSecond: 17e9 / 8, spareCores: undefined, hostCores: 2 };
  assert.equal(linkBeatsCompression(full), true);
  assert.match(
    chooseCompression(full).why,
    /faster than compression could beat even with all 2 core\(s\) idle/,
  );
  // 1 GbE on the same host: compression could win, so the idle CPU decides.
  assert.equal(linkBeatsCompression({ ...full, linkBytesPerSecond: 1e9 / 8 }), false);
  assert.equal(linkBeatsCompression({ ...full, hostCores: undefined }), false, 'unknown host: probe');
  // 4 channels at most: 64 cores beat no more than 4 do.
  assert.equal(linkBeatsCompression({ ...full, linkBytesPerSecond: 900e6, hostCores: 64 }), true);
});

test('a guest outrunning the link over a small re-dirtied set: xbzrle with a cache sized to the set', () => {
  const hot = { ...gbe, dirtyBytesPerSecond: 150e6, reDirty: 3 };
  const c = chooseCompression(hot);
  assert.equal(c.mode, 'xbzrle');
  assert.equal(c.channels, 0);
  // 150 MB re-dirtied a second, 1.5 x headroom = 215 MiB -> 256 MiB.
  assert.equal(c.xbzrleCacheBytes, 256 * MiB);
  assert.match(c.why, /rewrites the same ~143 MiB \(3\.0x re-dirty\): xbzrle deltas, cache 256 MiB/);
  assert.equal(chooseCompression({ ...hot, dirtyBytesPerSecond: 20e6 }).xbzrleCacheBytes, undefined);
  assert.equal(chooseCompression({ ...hot, dirtyBytesPerSecond: 170e6 }).mode, 'xbzrle', 'still fits');
  assert.equal(chooseCompression({ ...hot, dirtyBytesPerSecond: 200e6 }).mode, 'multifd-zstd', 'too big');
  // The set would need more than a quarter of RAM: compression instead.
  assert.equal(chooseCompression({ ...hot, memoryBytes: 512 * MiB }).mode, 'multifd-zstd');
  // New pages all the time (re-dirty ~1): nothing for deltas.
  assert.equal(chooseCompression({ ...hot, reDirty: 1.2 }).mode, 'multifd-zstd');
  // xbzrle combines with post-copy.
  assert.equal(chooseCompression({ ...hot, allowPostcopy: true }).mode, 'xbzrle');
  // The minimum cache: a tiny set still gets QEMU's 64 MiB.
  const tiny = chooseCompression({ ...hot, linkBytesPerSecond: 10e6, dirtyBytesPerSecond: 11e6 });
  assert.equal(tiny.xbzrleCacheBytes, 64 * MiB);
});

test('the short window (re-dirty) is measured only for a guest that outruns the link', () => {
  const long = { ...gbe, reDirty: undefined };
  assert.equal(choiceNeedsReDirty({ ...long, dirtyBytesPerSecond: 130e6 }), true, 'above the link');
  assert.equal(choiceNeedsReDirty(long), false, '80 MB/s: compression or plain, not xbzrle');
  assert.equal(choiceNeedsReDirty({ ...long, dirtyBytesPerSecond: undefined }), false, 'not measured');
  assert.equal(
    choiceNeedsReDirty({ ...long, dirtyBytesPerSecond: 130e6, spareCores: 0.2 }),
    false,
    'busy host',
  );
  assert.equal(
    choiceNeedsReDirty({ ...long, dirtyBytesPerSecond: 3e9, linkBytesPerSecond: 2e9 }),
    false,
    'fast link',
  );
});

test('QEMU parameters: multifd compression for both sides, nothing for plain or xbzrle', () => {
  assert.deepEqual(compressionParameters({ mode: 'multifd-zstd' }), {
    'multifd-compression': 'zstd',
    'multifd-zstd-level': 1,
  });
  assert.deepEqual(compressionParameters({ mode: 'multifd-zlib' }), {
    'multifd-compression': 'zlib',
    'multifd-zlib-level': 1,
  });
  assert.deepEqual(compressionParameters({ mode: 'xbzrle' }), {});
  assert.deepEqual(compressionParameters({ mode: 'plain' }), {});
  assert.deepEqual(compressionParameters(undefined), {});
});

test('idle cores from two /proc/stat reads', () => {
  const before = 'cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0 0 0\n';
  // 1000 ticks pass, 400 of them idle or iowait, on 2 cores: 0.8 idle cores.
  const after = 'cpu  400 0 300 1100 100 0 0 100 0 0\ncpu0 1 1 1 1 1 1 1 1 1 1\n';
  assert.equal(idleCores(before, after, 2), 0.8);
  assert.equal(idleCores(before, before, 2), undefined, 'no tick passed');
  assert.equal(idleCores('garbage', after, 2), undefined);
});

const inputs = fc.record({
  linkBytesPerSecond: fc.option(fc.double({ min: 1e5, max: 1e11, noNaN: true }), { nil: undefined }),
  spareCores: fc.option(fc.double({ min: 0, max: 128, noNaN: true }), { nil: undefined }),
  dirtyBytesPerSecond: fc.option(fc.double({ min: 0, max: 1e10, noNaN: true }), { nil: undefined }),
  reDirty: fc.option(fc.double({ min: 0, max: 8, noNaN: true }), { nil: undefined }),
  memoryBytes: fc.integer({ min: 64, max: 1024 * 1024 }).map((m) => m * MiB),
  allowPostcopy: fc.boolean(),
  zstd: fc.boolean(),
  hostCores: fc.option(fc.integer({ min: 1, max: 128 }), { nil: undefined }),
});

test('property: every choice is consistent, QEMU-valid and explained; a busy host or fast link stays plain', () => {
  fc.assert(
    fc.property(inputs, fc.double({ min: 0, max: 1, noNaN: true }), (input, reDirtyShare) => {
      const c = chooseCompression(input);
      assert.ok(c.why.length > 0);
      if (c.mode === 'plain') {
        assert.equal(c.channels, 0);
        assert.equal(c.xbzrleCacheBytes, undefined);
      } else {
        // Only a known link slow enough for the idle cores to beat it, with a core idle.
        assert.ok(input.linkBytesPerSecond !== undefined && input.spareCores !== undefined);
        assert.ok(input.spareCores >= R.minSpareCores);
        const perCore = input.zstd ? R.zstdBytesPerSecondPerCore : R.zlibBytesPerSecondPerCore;
        assert.ok(compressionChannels(input.spareCores) * perCore >= input.linkBytesPerSecond * R.minGain);
      }
      if (c.mode === 'multifd-zstd' || c.mode === 'multifd-zlib') {
        assert.ok(c.channels >= 1 && c.channels <= R.maxChannels);
        assert.ok(
          c.channels <= Math.max(1, Math.ceil(input.spareCores ?? 0)),
          'no more channels than idle cores',
        );
        assert.equal(c.xbzrleCacheBytes, undefined, 'QEMU 10: multifd is not compatible with xbzrle');
        assert.equal(input.allowPostcopy, false);
        assert.equal(c.mode === 'multifd-zstd', input.zstd);
      }
      if (c.mode === 'xbzrle') {
        const cache = c.xbzrleCacheBytes ?? 0;
        assert.equal(c.channels, 0);
        assert.ok(Number.isInteger(Math.log2(cache)), 'QEMU wants a power of two');
        assert.ok(cache >= R.xbzrleMinCacheBytes && cache <= input.memoryBytes * R.xbzrleMaxCacheFraction);
        assert.ok((input.dirtyBytesPerSecond ?? 0) >= (input.linkBytesPerSecond ?? Infinity));
      }
      // More idle CPU never turns compression off; less never turns it on from plain.
      if (c.mode !== 'plain' && input.spareCores !== undefined)
        assert.notEqual(chooseCompression({ ...input, spareCores: input.spareCores + 1 }).mode, 'plain');
      // A link too fast for every core is plain whatever the idle CPU and the guest say.
      if (linkBeatsCompression(input)) assert.equal(c.mode, 'plain');
      // The short window is skipped only when the re-dirty factor cannot change the answer.
      if (!choiceNeedsReDirty(input)) {
        const without = chooseCompression({ ...input, reDirty: undefined });
        assert.equal(chooseCompression({ ...input, reDirty: 8 * reDirtyShare }).mode, without.mode);
      }
    }),
    { numRuns: 2000 },
  );
});

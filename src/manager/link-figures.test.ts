import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LINK_FIGURE_MAX_AGE_MS, type LinkFigure } from '../api/index.js';
import {
  afterGiven,
  afterMirror,
  afterProbe,
  chooseLink,
  isStale,
  mirrorRate,
  MIRROR_RATE_MIN_BYTES,
  NO_LINK,
  rowOf,
  stateOf,
} from './link-figures.js';

const now = Date.parse('2026-12-07T12:00:00.000Z');
const ago = (ms: number) => new Date(now - ms).toISOString();
const probed = (bits: number, msAgo = 0): LinkFigure => ({
  bitsPerSecond: bits,
  source: 'probe',
  measuredAt: ago(msAgo),
});

test("a move's link: the caller's figure wins over a probe and a stored figure", () => {
  const choice = chooseLink({
    givenBitsPerSecond: 1e9,
    probe: { ok: true, figure: probed(17e9) },
    stored: probed(2e9, 60_000),
    now,
  });
  assert.equal(choice.figure?.bitsPerSecond, 1e9);
  assert.equal(choice.figure?.source, 'given');
  assert.equal(choice.why, '1.00 Gbit/s, given by the caller');
});

test("a move's link: a fresh probe wins over the stored figure", () => {
  const choice = chooseLink({
    probe: { ok: true, figure: probed(0.94e9) },
    stored: probed(17e9, 3_600_000),
    now,
  });
  assert.deepEqual(choice.figure, probed(0.94e9));
  assert.equal(choice.why, '940 Mbit/s, probed just now');
});

test('a failed probe falls back to the stored figure, and says so', () => {
  const choice = chooseLink({
    probe: { ok: false, reason: 'host h2 is unreachable: ECONNREFUSED' },
    stored: probed(0.95e9, 2 * 3_600_000),
    now,
  });
  assert.equal(choice.figure?.bitsPerSecond, 0.95e9);
  assert.equal(
    choice.why,
    '950 Mbit/s, probed 2 h ago (stored; the probe now failed (host h2 is unreachable: ECONNREFUSED))',
  );
});

test('"link rate unknown" only when no figure could be obtained at all', () => {
  const none = chooseLink({ probe: { ok: false, reason: 'timed out' }, stored: null, now });
  assert.equal(none.figure, null);
  assert.equal(none.why, 'link rate unknown: the probe now failed (timed out) and no figure is stored');
  const mirrored = chooseLink({
    probe: { ok: false, reason: 'timed out' },
    stored: { bitsPerSecond: 1.2e9, source: 'mirror', measuredAt: ago(30 * 60_000) },
    now,
  });
  assert.equal(mirrored.figure?.source, 'mirror');
  assert.match(
    mirrored.why,
    /^1\.20 Gbit\/s, observed while a move's disks mirrored \(a lower bound\) 30 min ago/,
  );
});

test('a figure is stale when missing or older than the maximum age', () => {
  assert.equal(isStale(null, now), true);
  assert.equal(isStale(probed(1e9, LINK_FIGURE_MAX_AGE_MS - 1000), now), false);
  assert.equal(isStale(probed(1e9, LINK_FIGURE_MAX_AGE_MS + 1000), now), true);
  assert.equal(isStale(probed(1e9, 10_000), now, 5_000), true);
});

test('a probe replaces the figure and clears a failure; a failed probe keeps the figure and notes why', () => {
  const at = ago(0);
  const failed = afterProbe(
    { ...NO_LINK, figure: probed(1e9, 60_000) },
    { ok: false, reason: 'refused' },
    at,
  );
  assert.deepEqual(failed.figure, probed(1e9, 60_000));
  assert.deepEqual(failed.probeError, { at, reason: 'refused' });
  const ok = afterProbe(failed, { ok: true, figure: probed(2e9) }, at);
  assert.deepEqual(ok.figure, probed(2e9));
  assert.equal(ok.probeError, null);
});

test("a move's mirror rate is a lower bound: kept always, the figure only where it is higher", () => {
  const at = ago(0);
  const below = afterMirror({ ...NO_LINK, figure: probed(17e9) }, 1.5e9, at);
  assert.deepEqual(below.figure, probed(17e9), 'a disk-bound mirror does not lower a probed link');
  assert.deepEqual(below.mirror, { bitsPerSecond: 1.5e9, observedAt: at });
  const above = afterMirror({ ...NO_LINK, figure: probed(0.5e9) }, 0.9e9, at);
  assert.deepEqual(above.figure, { bitsPerSecond: 0.9e9, source: 'mirror', measuredAt: at });
  assert.equal(afterMirror(NO_LINK, 0.9e9, at).figure?.source, 'mirror', 'the first figure of a pair');
});

test("a caller's figure becomes the pair's latest", () => {
  const at = ago(0);
  const state = afterGiven({ ...NO_LINK, figure: probed(17e9) }, 1e9, at);
  assert.deepEqual(state.figure, { bitsPerSecond: 1e9, source: 'given', measuredAt: at });
});

test("a mirror's rate: the disks' data over its time, only when it copied enough to tell one", () => {
  assert.equal(mirrorRate({ dataBytes: 1024 ** 3, mirrorTimeMs: 8000 }), (1024 ** 3 * 8) / 8);
  assert.equal(mirrorRate({ dataBytes: MIRROR_RATE_MIN_BYTES - 1, mirrorTimeMs: 100 }), undefined);
  assert.equal(mirrorRate({ dataBytes: 1024 ** 3, mirrorTimeMs: 0 }), undefined);
  assert.equal(mirrorRate({ mirrorTimeMs: 1000 }), undefined);
});

test('a stored row and its state convert both ways', () => {
  const state = {
    figure: probed(0.94e9, 1000),
    mirror: { bitsPerSecond: 0.9e9, observedAt: ago(2000) },
    probeError: { at: ago(3000), reason: 'timed out' },
  };
  assert.deepEqual(stateOf(rowOf(state)), state);
  assert.deepEqual(stateOf(rowOf(NO_LINK)), NO_LINK);
  assert.deepEqual(stateOf(undefined), NO_LINK);
});

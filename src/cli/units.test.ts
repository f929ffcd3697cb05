import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatBytes, formatDuration, formatRelativeTime, parseSize, parseTimeFilter } from './units.js';

test('parseSize reads binary units with or without i/B, any case, and decimals', () => {
  assert.deepEqual(parseSize('512M'), { bytes: 512 * 1024 ** 2 });
  assert.deepEqual(parseSize('2G'), { bytes: 2 * 1024 ** 3 });
  assert.deepEqual(parseSize('2GiB'), { bytes: 2 * 1024 ** 3 });
  assert.deepEqual(parseSize('2gb'), { bytes: 2 * 1024 ** 3 });
  assert.deepEqual(parseSize('64k'), { bytes: 65536 });
  assert.deepEqual(parseSize('64Ki'), { bytes: 65536 });
  assert.deepEqual(parseSize('1.5G'), { bytes: 1610612736 });
  assert.deepEqual(parseSize('1T'), { bytes: 1024 ** 4 });
  assert.deepEqual(parseSize(' 4096B '), { bytes: 4096 });
  assert.deepEqual(parseSize('0.5K'), { bytes: 512 });
});

test('parseSize rejects bare numbers, unknown units, fractions of a byte and junk, saying why', () => {
  for (const [input, phrase] of [
    ['512', 'needs a unit'],
    ['2X', 'not a size'],
    ['G', 'not a size'],
    ['-1G', 'not a size'],
    ['', 'not a size'],
    ['1.3B', 'whole number of bytes'],
    ['1iB', 'needs a prefix'],
    ['99999999999T', 'too large'],
  ] as const) {
    const result = parseSize(input);
    assert.ok('error' in result, `${input} should be rejected`);
    assert.match(result.error, new RegExp(phrase), `${input}: ${result.error}`);
  }
});

test('formatBytes picks the unit and one decimal below 10', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(1024), '1 KiB');
  assert.equal(formatBytes(1536 * 1024 ** 2), '1.5 GiB');
  assert.equal(formatBytes(512 * 1024 ** 2), '512 MiB');
  assert.equal(formatBytes(23.4 * 1024 ** 3), '23 GiB');
  assert.equal(formatBytes(1023.9 * 1024), '1 MiB');
  assert.equal(formatBytes(-2048), '-2 KiB');
});

test('formatDuration is compact and readable', () => {
  assert.equal(formatDuration(0.25), '0.3s');
  assert.equal(formatDuration(42), '42s');
  assert.equal(formatDuration(65), '1m 05s');
  assert.equal(formatDuration(3725), '1h 02m');
  assert.equal(formatDuration(90000), '1d 01h');
  assert.equal(formatDuration(Number.NaN), '-');
});

test('formatRelativeTime counts back (or forward) from now', () => {
  const now = new Date('2026-01-10T12:00:00Z');
  assert.equal(formatRelativeTime('2026-01-10T11:59:58Z', now), 'just now');
  assert.equal(formatRelativeTime('2026-01-10T11:59:18Z', now), '42s ago');
  assert.equal(formatRelativeTime('2026-01-10T11:55:00Z', now), '5m ago');
  assert.equal(formatRelativeTime('2026-01-10T09:00:00Z', now), '3h ago');
  assert.equal(formatRelativeTime('2026-01-08T12:00:00Z', now), '2d ago');
  assert.equal(formatRelativeTime('2026-01-10T12:05:00Z', now), 'in 5m');
  assert.equal(formatRelativeTime('2025-06-01T00:00:00Z', now), '2025-06-01');
  assert.equal(formatRelativeTime(undefined, now), '-');
});

test('parseTimeFilter takes ages and ISO times, rejects the rest', () => {
  const now = new Date('2026-01-10T12:00:00Z');
  assert.deepEqual(parseTimeFilter('30m', now), { iso: '2026-01-10T11:30:00.000Z' });
  assert.deepEqual(parseTimeFilter('2h', now), { iso: '2026-01-10T10:00:00.000Z' });
  assert.deepEqual(parseTimeFilter('7d', now), { iso: '2026-01-03T12:00:00.000Z' });
  assert.deepEqual(parseTimeFilter('1w', now), { iso: '2026-01-03T12:00:00.000Z' });
  assert.deepEqual(parseTimeFilter('2026-01-09', now), { iso: '2026-01-09T00:00:00.000Z' });
  assert.deepEqual(parseTimeFilter('2026-01-09T08:00:00+02:00', now), { iso: '2026-01-09T06:00:00.000Z' });
  for (const bad of ['yesterday', '5y', '2026-01-09T08:00', '2026-13-40', '']) {
    const r = parseTimeFilter(bad, now);
    assert.ok('error' in r, bad);
    assert.match(r.error, /is not a time/);
  }
});

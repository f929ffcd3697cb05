import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  describeLinkFigure,
  figureAge,
  formatBitRate,
  LINK_PROBE_MS,
  LinkProbeRequest,
  LinkSenderRequest,
  ProbeLinksRequest,
} from './links.js';
import { checkPart } from './route-table.js';

test('a probe sends 50-5000 ms, 300 by default; other durations name the field and the rule', () => {
  assert.equal(LinkSenderRequest.parse({}).durationMs, LINK_PROBE_MS.default);
  assert.equal(ProbeLinksRequest.parse({}).durationMs, 300);
  for (const [value, rule] of [
    [49, 'must be at least 50 (ms)'],
    [5001, 'must be at most 5000 (ms)'],
    [250.5, 'must be a whole number of milliseconds'],
  ] as const) {
    const checked = checkPart(ProbeLinksRequest, { durationMs: value });
    assert.equal(checked.ok, false);
    if (!checked.ok) {
      assert.equal(checked.field, 'durationMs');
      assert.match(checked.detail, new RegExp(rule.replace(/[()]/g, '\\$&')));
    }
  }
});

test('a probe request takes only a sender of an IPv4 address, a port and a 64-hex-digit secret', () => {
  const sender = { address: '10.250.0.12', port: 49152, secret: 'ab'.repeat(32) };
  assert.equal(checkPart(LinkProbeRequest, { sender }).ok, true);
  const bad = (body: unknown, field: string) => {
    const checked = checkPart(LinkProbeRequest, body);
    assert.equal(checked.ok, false, JSON.stringify(body));
    if (!checked.ok) assert.equal(checked.field, field);
  };
  bad({ sender: { ...sender, secret: 'AB'.repeat(32) } }, 'sender.secret');
  bad({ sender: { ...sender, secret: 'ab' } }, 'sender.secret');
  bad({ sender: { ...sender, address: 'example.org' } }, 'sender.address');
  bad({ sender: { ...sender, port: 0 } }, 'sender.port');
  bad({ sender: { ...sender, extra: 1 } }, 'sender.extra');
  bad({ sender, durationMs: 1e6 }, 'durationMs');
  const unknown = checkPart(ProbeLinksRequest, { too: 'h2' });
  assert.equal(unknown.ok, false);
  if (!unknown.ok) assert.equal(unknown.field, 'too');
});

test('a figure reads as its rate, how it was obtained and its age', () => {
  const now = Date.parse('2026-12-07T12:00:00.000Z');
  const at = (s: number) => new Date(now - s * 1000).toISOString();
  assert.equal(formatBitRate(17.2e9), '17.20 Gbit/s');
  assert.equal(formatBitRate(0.944e9), '944 Mbit/s');
  assert.equal(figureAge(at(2), now), 'just now');
  assert.equal(figureAge(at(90), now), '90 s ago');
  assert.equal(figureAge(at(600), now), '10 min ago');
  assert.equal(figureAge(at(3 * 3600), now), '3 h ago');
  assert.equal(figureAge(at(3 * 86_400), now), '3 d ago');
  assert.equal(
    describeLinkFigure({ bitsPerSecond: 0.95e9, source: 'probe', measuredAt: at(600) }, now),
    '950 Mbit/s, probed 10 min ago',
  );
  assert.equal(
    describeLinkFigure({ bitsPerSecond: 1e9, source: 'given', measuredAt: at(600) }, now),
    '1.00 Gbit/s, given by the caller',
  );
});

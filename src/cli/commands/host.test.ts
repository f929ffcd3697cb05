import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HostLink } from '../../api/index.js';
import { renderLinks } from './host.js';

const now = Date.parse('2026-12-07T12:00:00.000Z');
const at = (s: number) => new Date(now - s * 1000).toISOString();
const link = (over: Partial<HostLink>): HostLink => ({
  from: 'h1',
  to: 'h2',
  figure: null,
  stale: true,
  mirror: null,
  probeError: null,
  ...over,
});

test('host show: each link with its rate, source and age; a stale figure, a mirror and a failed probe said', () => {
  const text = renderLinks(
    [
      link({
        figure: { bitsPerSecond: 0.94e9, source: 'probe', measuredAt: at(120) },
        stale: false,
        mirror: { bitsPerSecond: 0.9e9, observedAt: at(3600) },
      }),
      link({
        from: 'h2',
        to: 'h1',
        figure: { bitsPerSecond: 1.2e9, source: 'mirror', measuredAt: at(3 * 86_400) },
        probeError: { at: at(30), reason: 'host h1 is unreachable: ECONNREFUSED' },
      }),
      link({ from: 'h1', to: 'h3' }),
    ],
    now,
  );
  const lines = text.split('\n');
  assert.match(lines[0] ?? '', /FROM\s+TO\s+RATE\s+SOURCE\s+AGE\s+LAST MIRROR\s+LAST PROBE FAILED/);
  assert.match(lines[1] ?? '', /h1\s+h2\s+940 Mbit\/s\s+probe\s+2 min ago\s+900 Mbit\/s 60 min ago\s+-$/);
  assert.match(
    lines[2] ?? '',
    /h2\s+h1\s+1\.20 Gbit\/s\s+move mirror \(lower bound\)\s+3 d ago \(stale\)\s+-\s+30 s ago: host h1 is unreachable/,
  );
  assert.match(lines[3] ?? '', /h1\s+h3\s+unknown\s+-\s+-\s+-\s+-$/);
  assert.equal(renderLinks([], now), 'No other hosts: no links.');
});

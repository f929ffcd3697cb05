import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_PLACEMENT_SETTINGS } from '../../api/index.js';
import { rankSuggestions, type SuggestTarget } from './suggest.js';

const GiB = 2 ** 30;
const t = (host: string, over: Partial<SuggestTarget> = {}): SuggestTarget => ({
  host,
  datastore: 'local',
  storageId: null,
  cls: 'standard',
  connected: true,
  maintenance: 'none',
  memoryFreeBytes: 8 * GiB,
  capacityBytes: 100 * GiB,
  freeBytes: 50 * GiB,
  iopsBudget: 400,
  limits: { iops: 400, bytesPerSecond: null },
  iopsUsed: 0,
  ...over,
});
const S = DEFAULT_PLACEMENT_SETTINGS;

test('ranks by the room left: more free memory, space and IOPS headroom first', () => {
  const r = rankSuggestions(
    [
      t('busy', { iopsUsed: 300 }),
      t('roomy', { memoryFreeBytes: 32 * GiB, freeBytes: 90 * GiB }),
      t('plain'),
    ],
    { memoryBytes: 2 * GiB, diskBytes: 10 * GiB },
    S,
  );
  assert.deepEqual(
    r.candidates.map((c) => c.host),
    ['roomy', 'plain', 'busy'],
  );
  assert.equal(r.refused.length, 0);
  assert.ok(r.candidates.every((c) => c.reasons.length === 3));
});

test('refuses, with the reason, what does not fit or is of another class', () => {
  const r = rankSuggestions(
    [
      t('full', { freeBytes: 20 * GiB }),
      t('small', { memoryFreeBytes: 2 * GiB }),
      t('down', { connected: false }),
      t('draining', { cls: 'fast', maintenance: 'entering' }),
      t('beast', { cls: 'fast', iopsBudget: null }),
    ],
    { memoryBytes: 2 * GiB, diskBytes: 10 * GiB, cls: 'fast' },
    S,
  );
  assert.deepEqual(
    r.candidates.map((c) => [c.host, c.class]),
    [['beast', 'fast']],
  );
  assert.deepEqual(
    r.refused.map((x) => x.host),
    ['full', 'small', 'down', 'draining'],
  );
  assert.equal(r.refused[3]?.reason, 'host draining is entering maintenance');
  const any = rankSuggestions(
    [t('full', { freeBytes: 20 * GiB }), t('small', { memoryFreeBytes: 2 * GiB })],
    { memoryBytes: 2 * GiB, diskBytes: 10 * GiB },
    S,
  );
  assert.match(any.refused[0]?.reason ?? '', /15 %/);
  assert.match(any.refused[1]?.reason ?? '', /memory/);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formOf, patchOf, THRESHOLD_FIELDS } from './thresholds.js';
import { DEFAULT_STORAGE_THRESHOLDS } from '../../../api/browser.js';

test('every threshold has a field, once', () => {
  const keys = THRESHOLD_FIELDS.map((f) => f.key).sort();
  assert.deepEqual(keys, Object.keys(DEFAULT_STORAGE_THRESHOLDS).sort());
});

test('the form shows overrides and leaves the rest empty', () => {
  const form = formOf({ freeWarningPercent: 30 });
  assert.equal(form.freeWarningPercent, '30');
  assert.equal(form.freeCriticalPercent, '');
});

test('an unchanged form patches nothing', () => {
  const overrides = { freeWarningPercent: 30, vmLatencyWarningMs: 40 };
  assert.deepEqual(patchOf(formOf(overrides), overrides), { ok: true, patch: {} });
});

test('a changed number sets an override and an emptied field drops one', () => {
  const overrides = { freeWarningPercent: 30, vmLatencyWarningMs: 40 };
  const form = {
    ...formOf(overrides),
    freeWarningPercent: '',
    freeCriticalPercent: ' 12.5 ',
    vmLatencyWarningMs: '40',
  };
  assert.deepEqual(patchOf(form, overrides), {
    ok: true,
    patch: { freeWarningPercent: null, freeCriticalPercent: 12.5 },
  });
});

test('text that is no number is refused, naming the field', () => {
  const result = patchOf({ datastoreLatencyP90Ms: 'fast' }, {});
  assert.deepEqual(result, {
    ok: false,
    field: 'datastoreLatencyP90Ms',
    message: 'Datastore latency p90 (ms): must be a number',
  });
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkedPatchOf, effectiveAfter, formOf, patchOf, THRESHOLD_FIELDS } from './thresholds.js';
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

test('the effective values after a patch: set, kept and dropped overrides', () => {
  const t = effectiveAfter(
    DEFAULT_STORAGE_THRESHOLDS,
    { freeWarningPercent: 30, vmLatencyWarningMs: 40 },
    {
      freeWarningPercent: null,
      freeCriticalPercent: 10,
    },
  );
  assert.equal(t.freeWarningPercent, 25);
  assert.equal(t.freeCriticalPercent, 10);
  assert.equal(t.vmLatencyWarningMs, 40);
});

test('levels out of order are refused before sending, naming the field like the manager', () => {
  const result = checkedPatchOf({ freeCriticalPercent: '40' }, {}, DEFAULT_STORAGE_THRESHOLDS);
  assert.deepEqual(result, {
    ok: false,
    field: 'freeCriticalPercent',
    message: 'Free space critical (%): must not be above freeWarningPercent (25)',
  });
  assert.deepEqual(checkedPatchOf({ freeCriticalPercent: '20' }, {}, DEFAULT_STORAGE_THRESHOLDS), {
    ok: true,
    patch: { freeCriticalPercent: 20 },
  });
});

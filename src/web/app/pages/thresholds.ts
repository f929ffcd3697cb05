// The threshold form's pure half: each field's label, and the merge patch a form's text asks for
// (an emptied field drops its override: back to the default).
import {
  thresholdOrderProblem,
  type StorageThresholdPatch,
  type StorageThresholds,
} from '../../../api/browser.js';

export type ThresholdKey = keyof StorageThresholds;

/** Every threshold with how a person names it, in the order the form shows them. */
export const THRESHOLD_FIELDS: readonly { key: ThresholdKey; label: string }[] = [
  { key: 'freeWarningPercent', label: 'Free space warning (%)' },
  { key: 'freeCriticalPercent', label: 'Free space critical (%)' },
  { key: 'overcommitWarningRatio', label: 'Over-commitment warning (ratio)' },
  { key: 'overcommitCriticalRatio', label: 'Over-commitment critical (ratio)' },
  { key: 'daysUntilFullInfo', label: 'Days until full info' },
  { key: 'daysUntilFullWarning', label: 'Days until full warning' },
  { key: 'daysUntilFullCritical', label: 'Days until full critical' },
  { key: 'trendWindowHours', label: 'Trend window (hours)' },
  { key: 'trendMinPoints', label: 'Trend minimum points' },
  { key: 'trendMinSpanSeconds', label: 'Trend minimum span (s)' },
  { key: 'datastoreLatencyP90Ms', label: 'Datastore latency p90 (ms)' },
  { key: 'vmLatencyWarningMs', label: 'VM disk latency warning (ms)' },
  { key: 'vmLatencyCriticalMs', label: 'VM disk latency critical (ms)' },
  { key: 'vmThroughputWarningBytesPerSecond', label: 'VM throughput warning (bytes/s)' },
  { key: 'vmThroughputCriticalBytesPerSecond', label: 'VM throughput critical (bytes/s)' },
  { key: 'guestUsedWarningPercent', label: 'Guest filesystem used warning (%)' },
  { key: 'guestUsedCriticalPercent', label: 'Guest filesystem used critical (%)' },
];

export type ThresholdForm = Partial<Record<ThresholdKey, string>>;

/** The form's text for a datastore's overrides (fields without one are empty: the default). */
export function formOf(overrides: Partial<StorageThresholds>): ThresholdForm {
  const out: ThresholdForm = {};
  for (const { key } of THRESHOLD_FIELDS) {
    const value = overrides[key];
    out[key] = value === undefined ? '' : String(value);
  }
  return out;
}

export type PatchResult =
  { ok: true; patch: StorageThresholdPatch } | { ok: false; field: ThresholdKey; message: string };

/**
 * The merge patch from the current overrides to what the form says: a changed number sets an
 * override, an emptied field sends null. Text that is no number is refused here, naming the field;
 * the manager checks ranges and order (and names the field when it refuses).
 */
export function patchOf(form: ThresholdForm, overrides: Partial<StorageThresholds>): PatchResult {
  const patch: StorageThresholdPatch = {};
  for (const { key, label } of THRESHOLD_FIELDS) {
    const text = (form[key] ?? '').trim();
    const before = overrides[key];
    if (text === '') {
      if (before !== undefined) patch[key] = null;
      continue;
    }
    const value = Number(text);
    if (!Number.isFinite(value)) return { ok: false, field: key, message: `${label}: must be a number` };
    if (value !== before) patch[key] = value;
  }
  return { ok: true, patch };
}

/** What the rules would use after a patch: the defaults, the overrides kept and those it sets. */
export function effectiveAfter(
  defaults: StorageThresholds,
  overrides: Partial<StorageThresholds>,
  patch: StorageThresholdPatch,
): StorageThresholds {
  const out: StorageThresholds = { ...defaults, ...overrides };
  for (const { key } of THRESHOLD_FIELDS) {
    const value = patch[key];
    if (value === null) out[key] = defaults[key];
    else if (value !== undefined) out[key] = value;
  }
  return out;
}

/**
 * The form's patch, refused here when the manager would refuse it for levels out of order (the
 * same check, so the form says so at once and sends nothing).
 */
export function checkedPatchOf(
  form: ThresholdForm,
  overrides: Partial<StorageThresholds>,
  defaults: StorageThresholds,
): PatchResult {
  const result = patchOf(form, overrides);
  if (!result.ok) return result;
  const problem = thresholdOrderProblem(effectiveAfter(defaults, overrides, result.patch));
  if (!problem) return result;
  const label = THRESHOLD_FIELDS.find((f) => f.key === problem.field)?.label ?? problem.field;
  return { ok: false, field: problem.field as ThresholdKey, message: `${label}: ${problem.message}` };
}

// The threshold form's pure half: each field's label, and the merge patch a form's text asks for
// (an emptied field drops its override: back to the default).
import type { StorageThresholdPatch, StorageThresholds } from '../../../api/browser.js';

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

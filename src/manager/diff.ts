import { isDeepStrictEqual } from 'node:util';
import type { ChangeAction, FieldChange } from '../api/index.js';

/*
 * Change-record diffing: which watched fields differ between two versions of an object, and
 * whether that is a state change or a setting change. Volatile figures (free bytes, pids) are not
 * watched, so a poll that only sees them move records nothing.
 */

export type Snapshot = Record<string, unknown>;

/** The differing `fields` of before/after, in the given order; undefined and null count as equal. */
export function diffFields(before: Snapshot, after: Snapshot, fields: readonly string[]): FieldChange[] {
  const changes: FieldChange[] = [];
  for (const field of fields) {
    const a = before[field] ?? null;
    const b = after[field] ?? null;
    if (!isDeepStrictEqual(a, b)) changes.push({ field, before: a, after: b });
  }
  return changes;
}

export interface ClassifiedChange {
  action: ChangeAction;
  changes: FieldChange[];
}

/**
 * Splits a diff into at most two records: `state-changed` for the `state` field, and
 * `setting-changed` for every other field.
 */
export function classify(changes: FieldChange[]): ClassifiedChange[] {
  const state = changes.filter((c) => c.field === 'state');
  const settings = changes.filter((c) => c.field !== 'state');
  const out: ClassifiedChange[] = [];
  if (state.length) out.push({ action: 'state-changed', changes: state });
  if (settings.length) out.push({ action: 'setting-changed', changes: settings });
  return out;
}

export interface CollectionDiff<T> {
  added: T[];
  removed: T[];
  both: { before: T; after: T }[];
}

/** Matches two lists of keyed items (disks by id, VMs by id, ...). */
export function diffCollections<T>(before: T[], after: T[], key: (item: T) => string): CollectionDiff<T> {
  const old = new Map(before.map((item) => [key(item), item]));
  const added: T[] = [];
  const both: { before: T; after: T }[] = [];
  for (const item of after) {
    const prior = old.get(key(item));
    if (prior === undefined) added.push(item);
    else {
      both.push({ before: prior, after: item });
      old.delete(key(item));
    }
  }
  return { added, removed: [...old.values()], both };
}

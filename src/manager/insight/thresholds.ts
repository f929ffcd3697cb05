import {
  DEFAULT_STORAGE_THRESHOLDS,
  StorageThresholdOverrides,
  thresholdOrderProblem,
  type DatastoreThresholds,
  type FieldChange,
} from '../../api/index.js';
import { recordChanges, nowIso, type Actor } from '../changes.js';
import type { Db, Tx } from '../db.js';
import { InvalidInput, NotFound } from '../errors.js';
import { hostRow } from '../inventory.js';
import { effectiveThresholds } from './rules.js';

/*
 * Per-datastore thresholds of the storage rules: overrides over the documented defaults
 * (DEFAULT_STORAGE_THRESHOLDS), one row per datastore, each change in the change log.
 */

async function datastoreOf(tx: Tx, hostRef: string, datastore: string) {
  const host = await hostRow(tx, hostRef, 'host');
  const row = await tx
    .selectFrom('datastores')
    .select(['id', 'name'])
    .where('host_id', '=', host.id)
    .where('name', '=', datastore)
    .executeTakeFirst();
  if (!row) throw new NotFound('datastore', `${host.name}/${datastore}`, 'datastore');
  return { host: host.name, id: row.id, name: row.name };
}

async function storedOverrides(tx: Tx, host: string, datastore: string): Promise<StorageThresholdOverrides> {
  const row = await tx
    .selectFrom('storage_thresholds')
    .select('overrides')
    .where('host', '=', host)
    .where('datastore', '=', datastore)
    .executeTakeFirst();
  const parsed = StorageThresholdOverrides.safeParse(row ? JSON.parse(row.overrides) : {});
  return parsed.success ? parsed.data : {};
}

export async function getThresholds(
  db: Db,
  hostRef: string,
  datastore: string,
): Promise<DatastoreThresholds> {
  const ds = await datastoreOf(db, hostRef, datastore);
  const overrides = await storedOverrides(db, ds.host, ds.name);
  return {
    host: ds.host,
    datastore: ds.name,
    effective: effectiveThresholds(overrides),
    overrides,
    defaults: { ...DEFAULT_STORAGE_THRESHOLDS },
  };
}

/** Replaces a datastore's overrides (`{}` clears them); refused when a warning level passes its critical one. */
export async function setThresholds(
  db: Db,
  actor: Actor,
  hostRef: string,
  datastore: string,
  overrides: StorageThresholdOverrides,
): Promise<DatastoreThresholds> {
  const problem = thresholdOrderProblem(effectiveThresholds(overrides));
  if (problem) throw new InvalidInput(`${problem.field}: ${problem.message}`, problem.field);
  await db.transaction().execute(async (tx) => {
    const ds = await datastoreOf(tx, hostRef, datastore);
    const before = await storedOverrides(tx, ds.host, ds.name);
    const fields = new Set([...Object.keys(before), ...Object.keys(overrides)]) as Set<
      keyof StorageThresholdOverrides
    >;
    const changes: FieldChange[] = [...fields]
      .filter((f) => before[f] !== overrides[f])
      .sort()
      .map((f) => ({ field: `thresholds.${f}`, before: before[f] ?? null, after: overrides[f] ?? null }));
    if (changes.length === 0) return;
    const at = nowIso();
    if (Object.keys(overrides).length === 0) {
      await tx
        .deleteFrom('storage_thresholds')
        .where('host', '=', ds.host)
        .where('datastore', '=', ds.name)
        .execute();
    } else {
      const values = { overrides: JSON.stringify(overrides), updated_at: at, updated_by: actor.name };
      await tx
        .insertInto('storage_thresholds')
        .values({ host: ds.host, datastore: ds.name, ...values })
        .onConflict((oc) => oc.columns(['host', 'datastore']).doUpdateSet(values))
        .execute();
    }
    await recordChanges(
      tx,
      actor,
      [
        {
          object: { kind: 'datastore', id: ds.id, name: `${ds.host}/${ds.name}` },
          action: 'setting-changed',
          changes,
          host: ds.host,
        },
      ],
      at,
    );
  });
  return getThresholds(db, hostRef, datastore);
}

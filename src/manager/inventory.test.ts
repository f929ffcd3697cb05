// Reconciliation keeps a host's datastores and virtual switches in step with its agent's report:
// created, deleted and setting-changed records, free space updated without a record.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { listChanges } from './changes.js';
import type { Db } from './db.js';
import { hostRow, listDatastores, listVSwitches } from './inventory.js';
import { applySnapshot } from './reconcile.js';
import { agentSnapshot, seedHost } from './test-inventory.js';
import { testDb, violates } from './test-postgres.js';

let dir: string;
let db: Db;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-inventory-'));
  db = await testDb(dir);
  await seedHost(db, 'h1', 1, []);
  await seedHost(db, 'h2', 2, []);
});
after(async () => {
  await db.destroy();
  await rm(dir, { recursive: true, force: true });
});

const changesOf = async (kind: 'datastore' | 'vswitch') =>
  (await listChanges(db, { limit: 100, kind })).items.map((c) => [
    c.object.name,
    c.action,
    c.changes.map((f) => f.field),
  ]);

test("a host's datastores and switches follow its report; free space alone leaves no record", async () => {
  const base = agentSnapshot('h1', []);
  const before = (await changesOf('datastore')).length;
  const host = await hostRow(db, 'h1');
  await applySnapshot(db, host, {
    ...base,
    datastores: [
      { ...base.datastores[0]!, freeBytes: 1234 },
      {
        name: 'fast',
        path: '/f',
        default: false,
        capacityBytes: 100,
        freeBytes: 50,
        class: 'fast',
        kind: 'local',
      },
    ],
    vswitches: [{ name: 'vmsw0', bridge: 'br9', uplink: 'eth1' }],
  });
  const page = await listDatastores(db, { limit: 10, host: 'h1' });
  assert.deepEqual(
    page.items.map((d) => [d.name, d.freeBytes]),
    [
      ['fast', 50],
      ['local', 1234],
    ],
  );
  const afterFirst = await changesOf('datastore');
  assert.equal(afterFirst.length, before + 1, 'one record: the new datastore, none for free space');
  assert.deepEqual(afterFirst[0], ['h1/fast', 'created', []]);
  assert.deepEqual((await changesOf('vswitch'))[0], ['h1/vmsw0', 'setting-changed', ['bridge', 'uplink']]);
  assert.deepEqual(
    (await listVSwitches(db, { limit: 10, host: 'h1' })).items.map((v) => [v.bridge, v.uplink]),
    [['br9', 'eth1']],
  );

  await applySnapshot(db, await hostRow(db, 'h1'), {
    ...base,
    datastores: [{ ...base.datastores[0]!, capacityBytes: 7 }],
    vswitches: [],
  });
  const [first, second, third] = await changesOf('datastore');
  assert.deepEqual(first, ['h1/local', 'setting-changed', ['capacityBytes']]);
  assert.deepEqual(second, ['h1/fast', 'deleted', []]);
  assert.deepEqual(third, ['h1/fast', 'created', []]);
  assert.deepEqual((await changesOf('vswitch'))[0], ['h1/vmsw0', 'deleted', []]);
});

test('lists page across hosts in host then name order', async () => {
  const names: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await listDatastores(db, { limit: 1, ...(cursor ? { cursor } : {}) });
    names.push(...page.items.map((d) => `${d.host}/${d.name}`));
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  assert.deepEqual(names, ['h1/local', 'h2/local']);
});

test('a shared datastore is stored with its storage id; the database holds id present exactly when shared', async () => {
  const base = agentSnapshot('h2', []);
  const storageId = '6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f';
  const shared = {
    name: 'san',
    path: '/mnt/san',
    default: false,
    capacityBytes: 100,
    freeBytes: 60,
    class: 'standard',
    kind: 'shared' as const,
    storageId,
  };
  await applySnapshot(db, await hostRow(db, 'h2'), { ...base, datastores: [...base.datastores, shared] });
  const page = await listDatastores(db, { limit: 10, host: 'h2' });
  assert.deepEqual(
    page.items.map((d) => [d.name, d.kind, d.storageId]),
    [
      ['local', 'local', undefined],
      ['san', 'shared', storageId],
    ],
  );
  // An agent that remounted other storage at the path: a setting change with a record.
  const other = '7a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d';
  await applySnapshot(db, await hostRow(db, 'h2'), {
    ...base,
    datastores: [...base.datastores, { ...shared, storageId: other }],
  });
  assert.deepEqual((await changesOf('datastore'))[0], ['h2/san', 'setting-changed', ['storageId']]);
  const row = await db
    .selectFrom('datastores')
    .selectAll()
    .where('name', '=', 'san')
    .executeTakeFirstOrThrow();
  // The CHECKs of 0014: a kind outside the two, a shared row without an id, a local one with one.
  for (const bad of [
    { kind: 'nfs' as 'shared' },
    { kind: 'shared' as const, storage_id: null },
    { kind: 'local' as const, storage_id: other },
  ])
    await assert.rejects(
      db.updateTable('datastores').set(bad).where('id', '=', row.id).execute(),
      violates('check', JSON.stringify(bad)),
      JSON.stringify(bad),
    );
});

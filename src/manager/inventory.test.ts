// Reconciliation keeps a host's datastores and virtual switches in step with its agent's report:
// created, deleted and setting-changed records, free space updated without a record.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { listChanges } from './changes.js';
import { openDatabase, type Db } from './db.js';
import { hostRow, listDatastores, listVSwitches } from './inventory.js';
import { applySnapshot } from './reconcile.js';
import { agentSnapshot, seedHost } from './test-inventory.js';

let dir: string;
let db: Db;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-inventory-'));
  db = await openDatabase(dir);
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
      { name: 'fast', path: '/f', default: false, capacityBytes: 100, freeBytes: 50, class: 'fast' },
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

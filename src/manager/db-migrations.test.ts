// Migrations on databases that already hold rows: 0004 rates change records, 0011 numbers jobs.
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { test } from 'node:test';
import { migrations, type DB } from './db.js';

test('0004 rates the change records made before risks existed', async () => {
  const db = new Kysely<DB>({ dialect: new SqliteDialect({ database: new Database(':memory:') }) });
  const migrator = new Migrator({ db, provider: { getMigrations: async () => ({ ...migrations }) } });
  assert.equal((await migrator.migrateTo('0003-vm-copies')).error, undefined);
  const record = (kind: string, action: string, changes: unknown[]) => ({
    at: '2026-11-30T10:00:00.000Z',
    actor: 'admin',
    object_kind: kind,
    object_id: `${kind}-1`,
    object_name: `${kind}-1`,
    action,
    changes: JSON.stringify(changes),
    host: null,
    job_id: null,
  });
  // The table as 0003 left it: no risk columns yet.
  const old = db as unknown as Kysely<{ changes: ReturnType<typeof record> }>;
  await old
    .insertInto('changes')
    .values([
      record('host', 'deleted', []),
      record('vm', 'created', []),
      record('token', 'created', [{ field: 'role', before: null, after: 'admin' }]),
      record('vm', 'state-changed', [{ field: 'move', before: 'started', after: 'failed' }]),
      record('nic', 'deleted', []),
    ])
    .execute();
  assert.equal((await migrator.migrateToLatest()).error, undefined);
  const rows = await db
    .selectFrom('changes')
    .select(['object_kind', 'risk', 'risk_rule'])
    .orderBy('id')
    .execute();
  assert.deepEqual(
    rows.map((r) => [r.object_kind, r.risk, r.risk_rule]),
    [
      ['host', 'high', 'host-removed'],
      ['vm', 'low', 'created'],
      ['token', 'medium', 'token-created'],
      ['vm', 'high', 'move-failed'],
      // The VM's state was not recorded then: its NIC counts as a stopped VM's.
      ['nic', 'medium', 'nic-changed'],
    ],
  );
  await db.destroy();
});

test('0011 numbers existing jobs and recommendations by time, then as inserted; new rows get the next number', async () => {
  // Foreign keys off: recommendations need no VM rows here.
  const sqlite = new Database(':memory:');
  sqlite.pragma('foreign_keys = OFF');
  const db = new Kysely<DB>({ dialect: new SqliteDialect({ database: sqlite }) });
  const migrator = new Migrator({ db, provider: { getMigrations: async () => ({ ...migrations }) } });
  assert.equal((await migrator.migrateTo('0009-retained-copies')).error, undefined);
  const same = '2026-12-07T10:00:00.000Z';
  const later = '2026-12-07T11:00:00.000Z';
  const job = (id: string, at: string) => ({
    id,
    kind: 'vm-move',
    state: 'succeeded' as const,
    target_kind: 'vm',
    target_id: 'vm-1',
    target_name: 'web-1',
    created_by: 'admin',
    params: '{}',
    progress: '{}',
    checkpoint: null,
    result: null,
    error: null,
    cancel_requested: 0,
    created_at: at,
    started_at: null,
    finished_at: null,
    updated_at: at,
  });
  const rec = (id: string, at: string) => ({
    id,
    vm_id: 'vm-1',
    vm_name: 'web-1',
    kind: 'to-fast',
    from_host: 'h1',
    from_datastore: 'ds1',
    to_host: 'h2',
    to_datastore: 'fast',
    to_class: 'fast',
    reason: '{}',
    predicted: '{}',
    state: 'pending' as const,
    created_at: at,
    updated_at: at,
    job_id: null,
  });
  // Ids in the opposite order to their insertion, as random ids may come; one row later in time
  // inserted first.
  await db
    .insertInto('jobs')
    .values([job('zzz', later), job('ccc', same), job('bbb', same), job('aaa', same)])
    .execute();
  await db
    .insertInto('placement_recommendations')
    .values([rec('zzz', later), rec('ccc', same), rec('bbb', same), rec('aaa', same)])
    .execute();
  assert.equal((await migrator.migrateToLatest()).error, undefined);
  const seqs = async (table: 'jobs' | 'placement_recommendations') =>
    (await db.selectFrom(table).select(['id', 'seq']).orderBy('seq').execute()).map(
      (r) => `${r.id}:${r.seq}`,
    );
  for (const table of ['jobs', 'placement_recommendations'] as const)
    assert.deepEqual(await seqs(table), ['ccc:1', 'bbb:2', 'aaa:3', 'zzz:4'], table);
  // Rows inserted after: the next numbers, in insertion order, within one statement too.
  await db
    .insertInto('jobs')
    .values([job('yyy', same), job('xxx', same)])
    .execute();
  await db.insertInto('jobs').values(job('www', same)).execute();
  await db.insertInto('placement_recommendations').values(rec('yyy', same)).execute();
  assert.deepEqual((await seqs('jobs')).slice(4), ['yyy:5', 'xxx:6', 'www:7']);
  assert.deepEqual((await seqs('placement_recommendations')).slice(4), ['yyy:5']);
  await db.destroy();
});

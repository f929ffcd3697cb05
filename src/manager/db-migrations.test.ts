// Migration 0004 on a database that already holds change records: each gets its risk and rule.
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

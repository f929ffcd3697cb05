// Migrations on databases that already hold rows: 0004 rates change records, 0011 numbers jobs;
// and the rules the schema holds. On SQLite, and on PostgreSQL under SILOBREAK_TEST_DATABASE=postgres.
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { Kysely, Migrator, sql, SqliteDialect } from 'kysely';
import { test } from 'node:test';
import { recordChanges } from './changes.js';
import { migrations, nameWriter, postgresKysely, type DB } from './db.js';
import { createTestDatabase, testDatabaseKind, violates } from './test-postgres.js';

const onPostgres = testDatabaseKind() === 'postgres';

/** A new, empty database of the kind under test; foreign keys off where a test needs no parent rows. */
async function freshDb(foreignKeys = true): Promise<Kysely<DB>> {
  if (onPostgres) {
    const url = new URL(await createTestDatabase());
    // Replica sessions fire no foreign-key triggers.
    if (!foreignKeys) url.searchParams.set('options', '-c session_replication_role=replica');
    return postgresKysely(url.toString());
  }
  const sqlite = new Database(':memory:');
  sqlite.pragma(`foreign_keys = ${foreignKeys ? 'ON' : 'OFF'}`);
  return new Kysely<DB>({ dialect: new SqliteDialect({ database: sqlite }) });
}

test('0004 rates the change records made before risks existed', async () => {
  const db = await freshDb();
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
  const db = await freshDb(false);
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

test('0012 keeps the oldest VM of a name and of a MAC, then the database refuses a second one', async () => {
  const db = await freshDb();
  const migrator = new Migrator({ db, provider: { getMigrations: async () => ({ ...migrations }) } });
  assert.equal((await migrator.migrateTo('0009-retained-copies')).error, undefined);
  const now = '2026-11-30T10:00:00.000Z';
  await db
    .insertInto('hosts')
    .values({
      id: 'h1',
      name: 'h1',
      agent_url: 'http://h1:1',
      agent_token: 'x',
      state: 'connected',
      pool_id: null,
      fabric_address: '10.0.0.1',
      agent_version: '0',
      qemu_version: '0',
      accelerator: 'tcg',
      accelerator_warning: null,
      cpus: 1,
      memory_bytes: 1,
      memory_free_bytes: 1,
      machine_type: 'q35',
      cpu_model: 'qemu64',
      tools_version: null,
      last_seen_at: now,
      last_error: null,
      created_at: now,
    } as never)
    .execute();
  const vm = (id: string, name: string, createdAt: string) => ({
    id,
    host_id: 'h1',
    name,
    state: 'stopped',
    pid: null,
    vcpus: 1,
    memory_mib: 64,
    guest_ip: null,
    guest_gateway: null,
    machine_type: 'q35',
    cpu_model: 'qemu64',
    accelerator: 'tcg' as const,
    created_at: createdAt,
    started_at: null,
    updated_at: now,
    tools_disk: 0,
    tools_version: null,
    tools_started_at: null,
  });
  const nic = (vmId: string, mac: string) => ({
    vm_id: vmId,
    nic_id: 'net0',
    position: 0,
    vswitch: 'sw',
    mac,
    tap: 't',
  });
  await db
    .insertInto('vms')
    .values([
      vm('a', 'web', '2026-01-01T00:00:00.000Z'),
      vm('b', 'web', '2026-01-02T00:00:00.000Z'),
      vm('c', 'db', '2026-01-01T00:00:00.000Z'),
      vm('d', 'cache', '2026-01-03T00:00:00.000Z'),
    ])
    .execute();
  await db
    .insertInto('vm_nics')
    .values([nic('a', '52:54:00:00:00:0a'), nic('c', '52:54:00:00:00:0c'), nic('d', '52:54:00:00:00:0c')])
    .execute();
  assert.equal((await migrator.migrateToLatest()).error, undefined);
  const left = await db.selectFrom('vms').select(['id', 'name']).orderBy('id').execute();
  assert.deepEqual(
    left.map((r) => `${r.id} ${r.name}`),
    ['a web', 'c db'],
  );
  // The indexes hold from now on, whoever writes.
  await assert.rejects(
    db
      .insertInto('vms')
      .values(vm('e', 'web', now))
      .execute(),
    violates('unique', 'vms.name'),
  );
  await db
    .insertInto('vms')
    .values(vm('f', 'free', now))
    .execute();
  await assert.rejects(
    db.insertInto('vm_nics').values(nic('f', '52:54:00:00:00:0a')).execute(),
    violates('unique', 'vm_nics.mac'),
  );
  await db.destroy();
});

test('0014 makes the datastores from before local, with no storage id', async () => {
  const db = await freshDb(false);
  const migrator = new Migrator({ db, provider: { getMigrations: async () => ({ ...migrations }) } });
  assert.equal((await migrator.migrateTo('0013-fabric-pki')).error, undefined);
  await sql`insert into datastores (id, host_id, name, path, is_default, capacity_bytes, free_bytes, class)
    values ('d1', 'h1', 'local', '/d', 1, 10, 5, 'standard')`.execute(db);
  assert.equal((await migrator.migrateTo('0014-shared-datastores')).error, undefined);
  const rows = await db.selectFrom('datastores').select(['name', 'kind', 'storage_id']).execute();
  assert.deepEqual(rows, [{ name: 'local', kind: 'local', storage_id: null }]);
  await db.destroy();
});

test('0015 holds the cluster rules: lease host ids 1-2000, unique per cluster, only in a cluster; maintenance and HA values; a cluster with hosts is not deleted', async () => {
  const db = await freshDb();
  const migrator = new Migrator({ db, provider: { getMigrations: async () => ({ ...migrations }) } });
  assert.equal((await migrator.migrateToLatest()).error, undefined);
  const now = '2026-12-10T10:00:00.000Z';
  const host = (id: string) => ({
    id,
    name: id,
    agent_url: `https://${id}:1`,
    cert_serial: null,
    cert_not_after: null,
    crl_number: 0,
    state: 'connected' as const,
    pool_id: null,
    fabric_address: '10.0.0.1',
    agent_version: '0',
    qemu_version: '0',
    accelerator: 'tcg' as const,
    accelerator_warning: null,
    cpus: 1,
    memory_bytes: 1,
    memory_free_bytes: 1,
    machine_type: 'q35',
    cpu_model: 'qemu64',
    tools_version: null,
    last_seen_at: now,
    last_error: null,
    created_at: now,
    agent_events: null,
  });
  // Hosts made before (or without) clusters: standalone, out of maintenance (the columns left out).
  await db
    .insertInto('hosts')
    .values(host('h1') as never)
    .execute();
  for (const id of ['h2', 'h3'])
    await db
      .insertInto('hosts')
      .values({ ...host(id), cluster_id: null, lease_host_id: null, maintenance: 'none' })
      .execute();
  assert.deepEqual(
    await db
      .selectFrom('hosts')
      .select(['cluster_id', 'lease_host_id', 'maintenance'])
      .where('id', '=', 'h1')
      .executeTakeFirst(),
    { cluster_id: null, lease_host_id: null, maintenance: 'none' },
  );
  await db.insertInto('clusters').values({ id: 'c1', name: 'c1', created_at: now }).execute();
  await db.insertInto('clusters').values({ id: 'c2', name: 'c2', created_at: now }).execute();
  await assert.rejects(
    db.insertInto('clusters').values({ id: 'c3', name: 'c1', created_at: now }).execute(),
    violates('unique', 'clusters.name'),
  );
  const join = (id: string, cluster: string | null, lease: number | null) =>
    db.updateTable('hosts').set({ cluster_id: cluster, lease_host_id: lease }).where('id', '=', id).execute();
  await join('h1', 'c1', 1);
  await join('h2', 'c2', 1);
  await assert.rejects(join('h3', 'c1', 1), violates('unique', 'hosts.cluster_id, hosts.lease_host_id'));
  for (const lease of [0, 2001, 1.5])
    await assert.rejects(join('h3', 'c1', lease), violates('check', `lease ${lease}`, lease === 1.5));
  await assert.rejects(join('h3', 'c1', null), violates('check'));
  await assert.rejects(join('h3', null, 2), violates('check'));
  await assert.rejects(join('h3', 'nope', 2), violates('foreign-key'));
  await join('h3', 'c1', 2000);
  await assert.rejects(db.deleteFrom('clusters').where('id', '=', 'c1').execute(), violates('foreign-key'));
  await assert.rejects(
    db
      .updateTable('hosts')
      .set({ maintenance: 'upgrading' as never })
      .where('id', '=', 'h1')
      .execute(),
    violates('check'),
  );
  // VMs: HA defaults, and the database refuses values out of range.
  const vm = {
    id: 'v1',
    host_id: 'h1',
    name: 'web',
    state: 'running',
    pid: null,
    vcpus: 1,
    memory_mib: 64,
    guest_ip: null,
    guest_gateway: null,
    machine_type: 'q35',
    cpu_model: 'qemu64',
    accelerator: 'tcg' as const,
    created_at: now,
    started_at: null,
    updated_at: now,
    tools_disk: 0,
    tools_version: null,
    tools_started_at: null,
  };
  await db.insertInto('vms').values(vm).execute();
  assert.deepEqual(
    await db
      .selectFrom('vms')
      .select(['ha_protected', 'ha_priority', 'ha_preferred_hosts'])
      .executeTakeFirst(),
    { ha_protected: 0, ha_priority: 500, ha_preferred_hosts: '[]' },
  );
  const set = (values: Record<string, unknown>) =>
    db.updateTable('vms').set(values).where('id', '=', 'v1').execute();
  for (const values of [
    { ha_protected: 2 },
    { ha_priority: -1 },
    { ha_priority: 1001 },
    { ha_priority: 2.5 },
    { ha_preferred_hosts: '{"a":1}' },
    { ha_preferred_hosts: 'not json' },
  ])
    await assert.rejects(
      set(values),
      violates('check', JSON.stringify(values), values.ha_priority === 2.5),
      JSON.stringify(values),
    );
  await set({ ha_protected: 1, ha_priority: 1000, ha_preferred_hosts: '["h2"]' });
  await db.destroy();
});

test('0019 leaves the change records from before without a manager; a record names the one its handle has', async () => {
  const db = await freshDb();
  const migrator = new Migrator({ db, provider: { getMigrations: async () => ({ ...migrations }) } });
  assert.equal((await migrator.migrateTo('0018-postgres-percentile')).error, undefined);
  await sql`insert into changes (at, actor, object_kind, object_id, object_name, action, changes, risk, risk_rule)
    values ('2026-12-01T10:00:00.000Z', 'admin', 'pool', 'p1', 'blue', 'created', '[]', 'low', 'created')`.execute(
    db,
  );
  assert.equal((await migrator.migrateToLatest()).error, undefined);
  nameWriter(db, 'm2');
  await db
    .transaction()
    .execute((tx) =>
      recordChanges(tx, { name: 'admin' }, [
        { object: { kind: 'pool', id: 'p1', name: 'blue' }, action: 'deleted' },
      ]),
    );
  const rows = await db.selectFrom('changes').select(['action', 'manager']).orderBy('id').execute();
  assert.deepEqual(rows, [
    { action: 'created', manager: null },
    { action: 'deleted', manager: 'm2' },
  ]);
  await db.destroy();
});

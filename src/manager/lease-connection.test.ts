// The lease on PostgreSQL has a connection of its own (issue 31): transactions there each hold a
// pool connection while they wait for the transactions' lock (db.ts), so 16 parallel writes took
// all of them and a lone leader's renewal waited past its step-down (bench/api). Real server: the
// test process's own PostgreSQL (test-postgres.ts), whichever database the unit run is on.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { sql } from 'kysely';
import { leaseDatabase, openDatabase, type Db } from './db.js';
import { claimLease } from './leader.js';
import { createTestDatabase, dropTestDatabase } from './test-postgres.js';

let url: string;
let db: Db;

before(async () => {
  url = await createTestDatabase();
  db = await openDatabase(url);
});

after(async () => {
  await db.destroy();
  await dropTestDatabase(url);
});

test('with every pool connection held by transactions waiting for the lock, the lease is still claimed and renewed', async () => {
  let held = false;
  let released = false;
  // One transaction holds the lock for 2 s; 12 more wait for it, each on a connection (10 in the pool).
  const holder = db.transaction().execute(async (tx) => {
    held = true;
    await sql`select pg_sleep(2)`.execute(tx);
    released = true;
  });
  while (!held) await new Promise((r) => setTimeout(r, 10));
  const waiting = Array.from({ length: 12 }, () =>
    db.transaction().execute(async (tx) => sql`select 1`.execute(tx)),
  );
  await new Promise((r) => setTimeout(r, 100));
  // A read on the main pool waits for them (the starvation the lease must not suffer).
  const read = db
    .selectFrom('manager_leader')
    .select('epoch')
    .execute()
    .then(() => released);
  const me = { id: 'lease-test', name: 'lease-test', url: 'http://127.0.0.1:1' };
  const claimed = await claimLease(leaseDatabase(db), me, { now: Date.now(), atStart: true });
  assert.equal(claimed.leading, true, 'the lease taken');
  const renewed = await claimLease(leaseDatabase(db), me, { now: Date.now(), heldEpoch: claimed.row.epoch });
  assert.equal(renewed.leading, true, 'and renewed');
  assert.equal(released, false, 'both while the lock was still held and every connection taken');
  assert.equal(await read, true, "the main pool's read had to wait for the lock's holder");
  await Promise.all([holder, ...waiting]);
});

test('on SQLite the lease uses the database handle itself', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'sb-lease-sqlite-'));
  const sqlite = await openDatabase(dir);
  t.after(async () => {
    await sqlite.destroy();
    await rm(dir, { recursive: true, force: true });
  });
  assert.equal(leaseDatabase(sqlite), sqlite);
  assert.notEqual(leaseDatabase(db), db, 'PostgreSQL: a handle of its own');
});

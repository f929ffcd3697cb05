// The manager's database on a PostgreSQL primary and its synchronous standby (issue 31: "A
// replica"), on real servers: every commit acknowledged before the primary's crash is on the
// promoted standby, and the same database handle carries on there once the standby is promoted.
// The managers and a guest on top of it: src/db-failover.lab.test.ts.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { sql } from 'kysely';
import { openDatabase, type Db } from './db.js';
import { DatabaseUnavailable } from './db-primary.js';
import { startReplicatedPair, type ReplicatedPair } from './test-postgres.js';

let pair: ReplicatedPair;
let urls: { primary: string; standby: string };
let db: Db;

before(async () => {
  pair = await startReplicatedPair();
  urls = await pair.createDatabase();
});
after(async () => {
  await db?.destroy();
});

const tokenNames = async (handle: Db) =>
  (await handle.selectFrom('tokens').select('name').orderBy('name').execute()).map((r) => r.name);

test('the standby is not used while the primary takes writes, whichever comes first in the list', async () => {
  // The standby first: it is in recovery, so the primary is chosen.
  db = await openDatabase([urls.standby, urls.primary]);
  const { rows } = await sql<{ recovery: boolean }>`select pg_is_in_recovery() as recovery`.execute(db);
  assert.equal(rows[0]?.recovery, false);
});

test('the primary crashes (SIGKILL) and the standby is promoted: every acknowledged commit is there, and the handle carries on', async () => {
  const written: string[] = [];
  for (let i = 0; i < 50; i++) {
    const name = `before-${String(i).padStart(2, '0')}`;
    await db
      .insertInto('tokens')
      .values({ name, role: 'read-only', hash: `h${i}`, created_at: new Date().toISOString() })
      .execute();
    written.push(name);
  }
  pair.killPrimary();
  const killedAt = Date.now();
  // A write asked meanwhile: on a pooled connection whose server is dying it fails at once with
  // DatabaseUnavailable, its outcome unknown (a backend that had not noticed its postmaster's
  // death yet may have committed it, replicated, before it went: seen here); asked again, it waits
  // for a primary (within DATABASE_WAIT_MS) and runs on the promoted standby, or finds it done.
  const insertDuring = () =>
    db
      .insertInto('tokens')
      .values({ name: 'during', role: 'read-only', hash: 'h', created_at: new Date().toISOString() })
      .execute();
  let failedFast = 0;
  const during = insertDuring().catch((error: unknown) => {
    assert.ok(error instanceof DatabaseUnavailable, String(error));
    failedFast++;
    return insertDuring().catch((again: unknown) => {
      if ((again as { code?: unknown }).code !== '23505') throw again;
    });
  });
  await new Promise((r) => setTimeout(r, 1_000));
  pair.promoteStandby();
  await during;
  const ms = Date.now() - killedAt;
  const names = await tokenNames(db);
  for (const name of written) assert.ok(names.includes(name), `${name} lost`);
  assert.ok(names.includes('during'));
  const { rows } = await sql<{ recovery: boolean }>`select pg_is_in_recovery() as recovery`.execute(db);
  assert.equal(rows[0]?.recovery, false);
  console.log(
    `# ${written.length} commits before the kill, all on the promoted standby; a write asked at the kill done ${ms} ms later (${failedFast} fast failure before)`,
  );
});

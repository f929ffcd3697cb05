// The managers' lease (leader.ts) against a real SQLite file: two database handles on one file
// are two managers. The lease functions take the time as an argument, so expiry is tested without
// waiting; the Leadership class is tested with its real timers.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { sql } from 'kysely';
import { openDatabase, type Db } from './db.js';
import {
  claimLease,
  LEASE_EXPIRY_MS,
  LEASE_RENEW_MS,
  LEASE_STEP_DOWN_MS,
  Leadership,
  releaseLease,
  type LeaseClaimant,
} from './leader.js';

let dir: string;
let a: Db;
let b: Db;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-leader-'));
  a = await openDatabase(dir);
  b = await openDatabase(dir);
});
after(async () => {
  await a.destroy();
  await b.destroy();
  await rm(dir, { recursive: true, force: true });
});

const one: LeaseClaimant = { id: 'incarnation-1', name: 'one', url: 'http://one' };
const two: LeaseClaimant = { id: 'incarnation-2', name: 'two', url: 'http://two' };
const T0 = Date.parse('2026-12-07T12:00:00.000Z');

async function resetLease(): Promise<void> {
  await a
    .updateTable('manager_leader')
    .set({
      holder: null,
      holder_name: null,
      holder_url: null,
      epoch: 0,
      expires_at: new Date(0).toISOString(),
    })
    .execute();
}

test('of two managers claiming a free lease at once, exactly one leads, under epoch 1', async () => {
  await resetLease();
  const [x, y] = await Promise.all([claimLease(a, one, { now: T0 }), claimLease(b, two, { now: T0 })]);
  assert.equal([x, y].filter((r) => r.leading).length, 1);
  assert.equal(x.row.epoch === 1 || y.row.epoch === 1, true);
  const row = await b.selectFrom('manager_leader').selectAll().executeTakeFirstOrThrow();
  assert.equal(row.epoch, 1);
  assert.equal(row.holder, x.leading ? one.id : two.id);
});

test('the leader renews under its epoch; the other cannot take the lease before it expires', async () => {
  await resetLease();
  assert.equal((await claimLease(a, one, { now: T0 })).leading, true);
  for (let i = 1; i <= 3; i++) {
    const now = T0 + i * LEASE_RENEW_MS;
    const renewed = await claimLease(a, one, { now, heldEpoch: 1 });
    assert.equal(renewed.leading, true);
    assert.equal(renewed.row.epoch, 1, 'a renewal keeps the epoch');
    assert.equal(renewed.row.expires_at, new Date(now + LEASE_EXPIRY_MS).toISOString());
    // Just before the renewed lease runs out, the other manager still cannot take it.
    const taker = await claimLease(b, two, { now: now + LEASE_EXPIRY_MS - 1 });
    assert.equal(taker.leading, false);
    assert.equal(taker.row.holder_name, 'one');
  }
});

test('an expired lease is taken over with a higher epoch, and the old leader can no longer renew', async () => {
  await resetLease();
  assert.equal((await claimLease(a, one, { now: T0 })).leading, true);
  // The leader died after its claim: one millisecond past expiry the other takes over.
  const taken = await claimLease(b, two, { now: T0 + LEASE_EXPIRY_MS + 1 });
  assert.equal(taken.leading, true);
  assert.equal(taken.row.epoch, 2);
  assert.equal(taken.row.holder, two.id);
  // The old leader comes back (a stalled process) and tries to renew: refused, it learns who leads.
  const stale = await claimLease(a, one, { now: T0 + LEASE_EXPIRY_MS + 2, heldEpoch: 1 });
  assert.equal(stale.leading, false);
  assert.equal(stale.row.holder_name, 'two');
  assert.equal(stale.row.epoch, 2);
  // Nor may it take the lease back while the new leader renews.
  assert.equal((await claimLease(a, one, { now: T0 + LEASE_EXPIRY_MS + 3 })).leading, false);
  // A release by the old holder does nothing to the new one's lease.
  await releaseLease(a, one, 1);
  assert.equal((await claimLease(b, two, { now: T0 + LEASE_EXPIRY_MS + 4, heldEpoch: 2 })).leading, true);
});

test("at its start a manager takes its own name's lease at once (its previous run died); later only an expired one", async () => {
  await resetLease();
  assert.equal((await claimLease(a, one, { now: T0 })).leading, true);
  const restarted: LeaseClaimant = { ...one, id: 'incarnation-1b' };
  // Not at start: the lease is live, another incarnation must wait like anyone.
  assert.equal((await claimLease(b, restarted, { now: T0 + 1 })).leading, false);
  const atStart = await claimLease(b, restarted, { now: T0 + 1, atStart: true });
  assert.equal(atStart.leading, true);
  assert.equal(atStart.row.epoch, 2);
  // Another name gains nothing from atStart.
  assert.equal((await claimLease(a, two, { now: T0 + 2, atStart: true })).leading, false);
});

test('a released lease is taken at once by the next manager', async () => {
  await resetLease();
  assert.equal((await claimLease(a, one, { now: T0 })).leading, true);
  await releaseLease(a, one, 1);
  const next = await claimLease(b, two, { now: T0 + 1 });
  assert.equal(next.leading, true);
  assert.equal(next.row.epoch, 2);
});

/** A Leadership on `db` recording its transitions. */
function leadership(db: Db, name: string) {
  const events: string[] = [];
  const l = new Leadership({
    db,
    name,
    url: () => `http://${name}`,
    version: 'test',
    log: () => {},
    onGain: async (epoch) => {
      events.push(`gain ${epoch}`);
    },
    onLose: async (epoch) => {
      events.push(`lose ${epoch}`);
    },
  });
  return { l, events };
}

const until = async (what: () => boolean, ms: number) => {
  const deadline = Date.now() + ms;
  while (!what()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

test('Leadership: the first leads, the second follows and its fence refuses; a clean stop hands over at once', async () => {
  await resetLease();
  const first = leadership(a, 'first');
  const second = leadership(b, 'second');
  await first.l.start();
  await second.l.start();
  assert.deepEqual(first.events, ['gain 1']);
  assert.equal(first.l.fence(), 1);
  assert.deepEqual(second.events, []);
  assert.throws(
    () => second.l.fence(),
    (e: Error & { code?: string }) => e.code === 'stale-epoch' && /first does/.test(e.message),
  );
  const view = await second.l.view();
  assert.equal(view.leader?.name, 'first');
  assert.equal(view.leader?.epoch, 1);
  assert.deepEqual(view.managers.map((m) => m.name).sort(), ['first', 'second']);
  const stoppedAt = Date.now();
  await first.l.stop();
  await until(() => second.l.epoch === 2, 5_000);
  assert.ok(Date.now() - stoppedAt < LEASE_EXPIRY_MS, 'a released lease need not expire first');
  assert.deepEqual(second.events, ['gain 2']);
  assert.deepEqual(
    (await second.l.view()).managers.map((m) => m.name),
    ['second'],
  );
  await second.l.stop();
});

test('Leadership: a leader whose lease another manager took steps down at its next renewal, fence closed', async () => {
  await resetLease();
  const first = leadership(a, 'first');
  await first.l.start();
  assert.equal(first.l.epoch, 1);
  // Another manager takes the lease as if it had expired (a stalled leader's view).
  await b
    .updateTable('manager_leader')
    .set({ expires_at: new Date(0).toISOString() })
    .execute();
  assert.equal((await claimLease(b, two, { now: Date.now() })).leading, true);
  await until(() => first.l.epoch === undefined, LEASE_RENEW_MS + 2_000);
  assert.deepEqual(first.events, ['gain 1', 'lose 1']);
  assert.throws(() => first.l.fence(), /does not lead: manager two does/);
  await first.l.stop();
});

test('Leadership: a leader that cannot renew (the database locked) steps down on its own timer, before the lease expires', async () => {
  await resetLease();
  const first = leadership(a, 'first');
  await first.l.start();
  const gainedAt = Date.now();
  // A third connection holds the write lock; the leader's handle does not wait for it (the event
  // loop of a better-sqlite3 handle would block while it waits), so every renewal fails.
  await sql.raw('pragma busy_timeout = 0').execute(a);
  const locker = new Database(path.join(dir, 'manager.db'));
  locker.exec('begin immediate');
  try {
    await until(() => first.l.epoch === undefined, LEASE_EXPIRY_MS);
    const steppedDownAfter = Date.now() - gainedAt;
    assert.ok(
      steppedDownAfter <= LEASE_STEP_DOWN_MS + 500,
      `stepped down after ${steppedDownAfter} ms, before its lease could be taken (${LEASE_EXPIRY_MS} ms)`,
    );
    assert.ok(
      steppedDownAfter >= LEASE_STEP_DOWN_MS - 100,
      `not before the step-down time (${steppedDownAfter} ms)`,
    );
    assert.deepEqual(first.events, ['gain 1', 'lose 1']);
  } finally {
    locker.exec('rollback');
    locker.close();
    await sql.raw('pragma busy_timeout = 5000').execute(a);
  }
  await first.l.stop();
});

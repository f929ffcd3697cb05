// The pre-move checks' facts at a manager that does not lead (issue 31): it may not ask agents, so
// a move asked there is checked on the inventory as the leader keeps it, not refused as if the
// hosts did not answer; a host that does not answer the leader still fails.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { openDatabase, type Db } from '../db.js';
import { hostRow } from '../inventory.js';
import { notLeading } from '../leader.js';
import { KeyedMutex } from '../locks.js';
import { seedHost } from '../test-inventory.js';
import { hostFacts } from './facts.js';

let dir: string;
let db: Db;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-facts-'));
  db = await openDatabase(dir);
  await seedHost(db, 'h1', 1, []);
  await seedHost(db, 'h2', 2, []);
  await db
    .updateTable('hosts')
    .set({ state: 'unreachable', last_error: 'connect ECONNREFUSED' })
    .where('name', '=', 'h2')
    .execute();
});
after(async () => {
  await db.destroy();
  await rm(dir, { recursive: true, force: true });
});

const deps = (fail: () => never) => ({ db, hostLocks: new KeyedMutex(), clientFor: fail });

test("a follower's facts come from the inventory: a connected host counts as reachable, an unreachable one not", async () => {
  const fenced = deps(() => {
    throw notLeading('manager m2 does not lead: manager m1 does');
  });
  const h1 = await hostFacts(fenced, await hostRow(db, 'h1'));
  assert.equal(h1.facts.reachable, true);
  assert.equal(h1.facts.fromInventory, true);
  assert.ok(h1.facts.datastores.length > 0, 'the datastores as stored');
  const h2 = await hostFacts(fenced, await hostRow(db, 'h2'));
  assert.equal(h2.facts.reachable, false);
  assert.equal(h2.facts.unreachableReason, 'connect ECONNREFUSED');
});

test('at the leader a host that does not answer is unreachable, whatever the inventory says', async () => {
  const down = deps(() => {
    throw new Error('connect ECONNREFUSED 10.0.0.1:8470');
  });
  const h1 = await hostFacts(down, await hostRow(db, 'h1'));
  assert.equal(h1.facts.reachable, false);
  assert.equal(h1.facts.fromInventory, undefined);
  assert.match(h1.facts.unreachableReason ?? '', /h1 is unreachable: connect ECONNREFUSED/);
});

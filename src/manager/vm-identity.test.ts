// A VM's identity as the manager's database holds it (issue 28, row 1): NICs created without a
// MAC get one that no VM and no pending create holds anywhere on the fabric (an agent would only
// avoid its own host's), and a reported VM whose name or MAC is taken is named with why.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { seedHost, startTestManager, testMac, testVm, type TestManager } from './test-inventory.js';
import { Conflict } from './errors.js';
import { claimVmIdentity, identityConflicts, withFreeMacs } from './vm-identity.js';

let t: TestManager;

before(async () => {
  t = await startTestManager('sb-vm-identity-');
  await seedHost(t.manager.db, 'h1', 9, [testVm('web1', 'running', 1), testVm('db1', 'stopped', 2)]);
});
after(() => t.close());

test('a NIC without a MAC gets one no VM on the fabric holds; one given is kept', async () => {
  // The generator first offers web1's and db1's MACs, then a free one.
  const offers = [
    [0, 0, 1],
    [0, 0, 2],
    [0, 0, 1],
    [0, 0, 9],
    [0, 0, 10],
  ];
  const random = () => Uint8Array.from(offers.shift() ?? [0, 0, 99]);
  const spec = {
    nics: [{ vswitch: 'vmsw0' }, { vswitch: 'vmsw0', mac: '52:54:00:aa:bb:cc' }, { vswitch: 'vmsw0' }],
  };
  const filled = await withFreeMacs(t.manager.db, spec, random);
  assert.deepEqual(
    filled.nics.map((n) => n.mac),
    [testMac(9), '52:54:00:aa:bb:cc', testMac(10)],
  );
});

test("a reported VM whose name or MAC is another VM's is named with why; its own are no conflict", async () => {
  const twin = { ...testVm('web1', 'stopped', 50) };
  const macTwin = { ...testVm('other', 'stopped', 51), nics: testVm('x', 'stopped', 2).nics };
  const self = testVm('web1', 'running', 1);
  const pair = [
    testVm('p', 'stopped', 60),
    { ...testVm('q', 'stopped', 61), nics: testVm('p', 'stopped', 60).nics },
  ];
  const found = await identityConflicts(t.manager.db, [twin, macTwin, self, ...pair]);
  assert.deepEqual([...found.keys()], [twin.id, macTwin.id, pair[1]?.id]);
  assert.match(found.get(twin.id) ?? '', /its name web1 is already VM web1 on host h1's/);
  assert.match(found.get(macTwin.id) ?? '', /its MAC 52:54:00:00:00:02 is already used by VM db1 on host h1/);
  assert.match(found.get(pair[1]?.id ?? '') ?? '', /also used by another VM of this host/);
});

test("a claim whose job ended (a crash before its clean-up) holds nothing; a queued job's holds its name", async () => {
  const db = t.manager.db;
  const job = async (id: string, state: 'queued' | 'failed') => {
    const now = new Date().toISOString();
    await db
      .insertInto('jobs')
      .values({
        id,
        kind: 'vm-create',
        state,
        target_kind: 'vm',
        target_id: id,
        target_name: id,
        created_by: 'test',
        params: '{}',
        progress: '{}',
        cancel_requested: 0,
        created_at: now,
        updated_at: now,
      })
      .execute();
  };
  const claim = (jobId: string, name: string, vmId: string) =>
    db.transaction().execute((tx) => claimVmIdentity(tx, jobId, { id: vmId, name, nics: [] }));
  const ended = '00000000-0000-4000-8000-0000000000e1';
  const queued = '00000000-0000-4000-8000-0000000000e2';
  await job(ended, 'failed');
  await job(queued, 'queued');
  // Left behind by a create whose job failed without releasing them.
  await db
    .insertInto('vm_claims')
    .values({ field: 'name', value: 'left', vm_id: '00000000-0000-4000-8000-0000000000a1', job_id: ended })
    .execute();
  await claim(queued, 'left', '00000000-0000-4000-8000-0000000000a2');
  const held = await db
    .selectFrom('vm_claims')
    .select(['value', 'job_id'])
    .where('value', '=', 'left')
    .execute();
  assert.deepEqual(held, [{ value: 'left', job_id: queued }]);
  // The queued job's claim stands: another create of that name is refused naming the field.
  await assert.rejects(
    claim(ended, 'left', '00000000-0000-4000-8000-0000000000a3'),
    (e: unknown) =>
      e instanceof Conflict && e.field === 'spec.name' && /VM job .* is creating/.test(e.message),
  );
  // A stale claim of a MAC a create wants goes too (by its key, with the name's), and one of a
  // value nobody wants is left alone: it holds nothing meanwhile.
  const mac = '52:54:00:ee:00:01';
  await db
    .insertInto('vm_claims')
    .values([
      { field: 'mac', value: mac, vm_id: '00000000-0000-4000-8000-0000000000a4', job_id: ended },
      { field: 'name', value: 'idle', vm_id: '00000000-0000-4000-8000-0000000000a4', job_id: ended },
    ])
    .execute();
  const third = '00000000-0000-4000-8000-0000000000e3';
  await job(third, 'queued');
  await db.transaction().execute((tx) =>
    claimVmIdentity(tx, third, {
      id: '00000000-0000-4000-8000-0000000000a5',
      name: 'third',
      nics: [{ vswitch: 'vmsw0', mac }],
    }),
  );
  const claims = await db
    .selectFrom('vm_claims')
    .select(['field', 'value', 'job_id'])
    .where('value', 'in', [mac, 'idle'])
    .orderBy('value')
    .execute();
  assert.deepEqual(claims, [
    { field: 'mac', value: mac, job_id: third },
    { field: 'name', value: 'idle', job_id: ended },
  ]);
});

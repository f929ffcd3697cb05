// POST /api/v1/upgrades/plan against a real manager (SQLite in a temp dir, no agents): hosts and
// VMs enter the inventory the way a join's reconciliation enters them; the plan reads it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { OpenApiDocument, strandedVms, type HostInfo, type Vm } from '../../api/index.js';
import { SYSTEM } from '../changes.js';
import { insertHost, markHostUnreachable, hostRow } from '../inventory.js';
import { applySnapshot } from '../reconcile.js';
import {
  agentSnapshot,
  dbSnapshot,
  rejects,
  startTestManager,
  testVm,
  type TestManager,
} from '../test-inventory.js';

let t: TestManager;
let port = 9;

/** A host joined with its report (QEMU, memory… as `info` says) and these VMs. */
async function seed(name: string, vms: Vm[], info: Partial<HostInfo> = {}): Promise<void> {
  const snap = agentSnapshot(name, vms);
  snap.info = { ...snap.info, ...info };
  const db = t.manager.db;
  const row = await db.transaction().execute((tx) =>
    insertHost(tx, SYSTEM, {
      agentUrl: `https://127.0.0.1:${port++}`,
      certificate: { serial: '01', notAfter: new Date(Date.now() + 365 * 86_400_000).toISOString() },
      crlNumber: 0,
      info: snap.info,
      poolId: null,
    }),
  );
  await applySnapshot(db, row, snap, { joining: true });
}

before(async () => {
  t = await startTestManager('sb-upgrade-api-');
  await seed('h1', [testVm('a', 'running', 1), testVm('b', 'running', 2), testVm('off', 'stopped', 3)], {
    qemuVersion: '10.0.2',
  });
  await seed('h2', [testVm('c', 'running', 4)], { qemuVersion: '10.0.2' });
  await seed('h3', [], { qemuVersion: '10.0.2', memoryFreeBytes: Math.round(6.2 * 2 ** 30) });
  // Already on a newer QEMU: its VM can go nowhere else.
  await seed('new', [testVm('n', 'running', 5)], { qemuVersion: '10.1.0' });
});

after(() => t.close());

test('a plan: hosts in order, each VM to a host with room, stopped VMs staying; nothing changes', async () => {
  const before = await dbSnapshot(t.manager.db);
  const plan = await t.admin.planUpgrade({ hosts: ['h1', 'h2'], targetQemuVersion: '10.1.0' });
  assert.deepEqual(
    plan.steps.map((s) => [s.host, s.moves.map((m) => `${m.vm}->${m.to}`), s.stays.map((v) => v.vm)]),
    [
      // h2 has one VM to move: it goes to the host with the most free memory (h3, 6.2 GiB), not
      // to h1 or `new` (6 GiB). Then h1: a to the upgraded h2 (6 GiB and c's 128 MiB back), b to h3.
      ['h2', ['c->h3'], []],
      ['h1', ['a->h2', 'b->h3'], ['off']],
    ],
  );
  assert.deepEqual(plan.steps[0]?.qemuVersion, { from: '10.0.2', to: '10.1.0' });
  assert.equal(plan.steps[0]?.cluster, null);
  assert.match(
    plan.steps[1]?.moves[0]?.why ?? '',
    /most free memory; .* free after; disks mirrored \(65 MiB on local\)/,
  );
  assert.equal(plan.targetQemuVersion, '10.1.0');
  assert.equal(await dbSnapshot(t.manager.db), before, 'a plan changes nothing');
  assert.deepEqual(t.breaches, []);
});

test('a plan that strands a VM is 422 upgrade-stranded with the VM, its host and each rule of each host', async () => {
  const before = await dbSnapshot(t.manager.db);
  const error = await rejects(t.admin.planUpgrade({ hosts: ['new'] }), 422);
  assert.equal(error.code, 'upgrade-stranded');
  assert.match(
    error.message,
    /strands 1 VM: n on new \(step 1: h1 qemu-version; h2 qemu-version; h3 qemu-version\)/,
  );
  const stranded = strandedVms(error);
  assert.deepEqual(
    stranded?.map((s) => [s.step, s.vm, s.host, s.targets.map((x) => [x.host, x.failed.map((f) => f.rule)])]),
    [
      [
        1,
        'n',
        'new',
        [
          ['h1', ['qemu-version']],
          ['h2', ['qemu-version']],
          ['h3', ['qemu-version']],
        ],
      ],
    ],
  );
  assert.match(
    stranded?.[0]?.targets[0]?.failed[0]?.detail ?? '',
    /n runs on QEMU 10\.1\.0, h1 has the older 10\.0\.2/,
  );
  // The same body for any client: a problem with the `stranded` member.
  const raw = await fetch(`${t.manager.url}/api/v1/upgrades/plan`, {
    method: 'POST',
    headers: { authorization: `Bearer ${t.manager.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ hosts: ['new'] }),
  });
  assert.equal(raw.status, 422);
  assert.equal(raw.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  const body = (await raw.json()) as { code: string; title: string; stranded: unknown[] };
  assert.equal(body.code, 'upgrade-stranded');
  assert.equal(body.title, 'Upgrade plan strands a VM');
  assert.equal(body.stranded.length, 1);
  assert.equal(await dbSnapshot(t.manager.db), before);
  assert.deepEqual(t.breaches, []);
});

test('bad requests name the field and change nothing; a read-only token may not plan', async () => {
  const before = await dbSnapshot(t.manager.db);
  await rejects(t.admin.planUpgrade({}), 400, 'hosts');
  await rejects(t.admin.planUpgrade({ hosts: ['h1'], cluster: 'c1' }), 400, 'hosts');
  await rejects(t.admin.planUpgrade({ hosts: [] }), 400, 'hosts');
  await rejects(t.admin.planUpgrade({ hosts: ['h1', 'h1'] }), 400, 'hosts.1');
  await rejects(t.admin.planUpgrade({ hosts: ['h1'], targetQemuVersion: 'ten' }), 400, 'targetQemuVersion');
  await rejects(
    t.admin.http.raw('POST', '/api/v1/upgrades/plan', { hosts: ['h1'], dryrun: true }),
    400,
    'dryrun',
  );
  await rejects(t.admin.planUpgrade({ hosts: ['h2', 'nope'] }), 404, 'hosts.1');
  await rejects(t.admin.planUpgrade({ cluster: 'c9' }), 404, 'cluster');
  const down = await rejects(
    t.admin.planUpgrade({ hosts: ['h1', 'new'], targetQemuVersion: '10.0.9' }),
    400,
    'targetQemuVersion',
  );
  assert.match(
    down.message,
    /10\.0\.9 is older than the QEMU of new \(10\.1\.0\): an upgrade does not go back/,
  );
  await rejects(t.viewer.planUpgrade({ hosts: ['h1'] }), 403);
  assert.equal(await dbSnapshot(t.manager.db), before);
  assert.deepEqual(t.breaches, []);
});

test('a host to upgrade must answer: an unreachable one is a 409 naming it; as a target it fails host-up', async () => {
  const db = t.manager.db;
  await markHostUnreachable(db, await hostRow(db, 'h3'), 'connect ECONNREFUSED');
  try {
    const e = await rejects(t.admin.planUpgrade({ hosts: ['h1', 'h3'] }), 409, 'hosts.1');
    assert.match(e.message, /host h3 is unreachable/);
    const plan = await t.admin.planUpgrade({ hosts: ['h2'] });
    assert.deepEqual(
      plan.steps[0]?.moves.map((m) => [m.to, /not h3: host-up/.test(m.why)]),
      [['h1', true]],
    );
  } finally {
    await db
      .updateTable('hosts')
      .set({ state: 'connected', last_error: null })
      .where('name', '=', 'h3')
      .execute();
  }
});

test('the OpenAPI document declares the route and the 422 problem with its stranded VMs', async () => {
  const doc = OpenApiDocument.parse(await t.admin.openApi());
  const op = doc.paths['/api/v1/upgrades/plan']?.post;
  assert.ok(op, 'the route is in the document');
  const problem = op.responses['422']?.content?.['application/problem+json']?.schema as {
    properties: Record<string, unknown>;
  };
  assert.ok(problem.properties.stranded, 'the 422 problem has the stranded member');
  assert.deepEqual((problem.properties.code as { enum: string[] }).enum, ['upgrade-stranded']);
});

// The Change Explorer's API against a real manager (SQLite in a temp dir, no agent): changes made
// through the API and seen by reconciliation get their risk, every filter finds them, and the
// timeline's buckets add up to the list. Also the manager's /metrics from stored move jobs.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ApiError, ManagerClient, type ChangeListQuery, type ChangeRecord } from '../api/index.js';
import { bucketStarts } from './changes.js';
import { hostRow } from './inventory.js';
import { startManager, type RunningManager } from './manager.js';
import { applySnapshot } from './reconcile.js';
import { agentSnapshot, seedHost, testVm } from './test-inventory.js';
import { testDatabase } from './test-postgres.js';

let dir: string;
let manager: RunningManager;
let admin: ManagerClient;

async function status(call: Promise<unknown>): Promise<{ status: number; field: string | undefined }> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof ApiError, String(error));
    return { status: error.status, field: error.field };
  }
  assert.fail('expected an error');
}

const list = async (q: ChangeListQuery = {}): Promise<ChangeRecord[]> =>
  (await admin.listChanges({ limit: 1000, ...q })).items;
const rated = (records: ChangeRecord[]) =>
  records.map((r) => `${r.object.name} ${r.action} ${r.risk} ${r.riskRule}`);

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-manager-changes-'));
  manager = await startManager({
    ...(await testDatabase(dir)),
    dataDir: dir,
    name: 'explorer-1',
    reconcileIntervalSeconds: 3600,
    log: () => {},
  });
  admin = new ManagerClient(manager.url, manager.adminToken ?? '');
  // Through the API: tokens, a pool and its membership.
  await admin.createToken({ name: 'ops', role: 'read-only' });
  await admin.deleteToken('ops');
  await seedHost(manager.db, 'h1', 9, [testVm('web1', 'running', 1), testVm('db1', 'stopped', 2)]);
  await seedHost(manager.db, 'h2', 10, []);
  await admin.createPool({ name: 'blue' });
  await admin.addPoolHost('blue', 'h2');
  // Seen by reconciliation: web1 (running) gets more memory and loses its NIC; db1 shrinks.
  const web1 = { ...testVm('web1', 'running', 1), memoryMiB: 256, nics: [] };
  const db1 = { ...testVm('db1', 'stopped', 2), vcpus: 1, memoryMiB: 64 };
  await applySnapshot(manager.db, await hostRow(manager.db, 'h1'), agentSnapshot('h1', [web1, db1]));
  await admin.removePoolHost('blue', 'h2');
  await admin.removeHost('h2');
});

after(async () => {
  await manager.close();
  await rm(dir, { recursive: true, force: true });
});

test('changes made through the API and seen by reconciliation carry the risk their rule gives', async () => {
  const all = rated(await list());
  for (const expected of [
    'ops created medium token-created',
    'ops deleted medium token-deleted',
    'blue created low created',
    'blue setting-changed medium pool-membership',
    'h2 deleted high host-removed',
    'web1 created low created',
    'web1 setting-changed high running-vm-memory',
    'web1/net0 deleted high running-vm-nic',
    'db1 setting-changed high resource-shrunk',
  ])
    assert.ok(all.includes(expected), `${expected} in\n${all.join('\n')}`);
});

test('each filter finds its records: risk (one or several), kind, object by name, actor, search, time', async () => {
  const all = await list();
  const high = await list({ risk: 'high' });
  assert.deepEqual(
    high.map((r) => r.id),
    all.filter((r) => r.risk === 'high').map((r) => r.id),
  );
  assert.ok(high.length >= 4);
  const notLow = await list({ risk: 'high,medium' });
  assert.deepEqual(
    notLow.map((r) => r.id),
    all.filter((r) => r.risk !== 'low').map((r) => r.id),
  );
  assert.deepEqual(
    (await list({ kind: 'token' })).map((r) => [r.object.name, r.action, r.actor]),
    [
      ['ops', 'deleted', 'admin'],
      ['ops', 'created', 'admin'],
      ['admin', 'created', 'system'],
    ],
  );
  // The object and its parts, by name, case-insensitive; not a mere prefix of another name.
  const web1 = await list({ object: 'WEB1' });
  assert.ok(web1.length >= 3);
  assert.ok(web1.every((r) => r.object.name === 'web1' || r.object.name.startsWith('web1/')));
  assert.ok(web1.some((r) => r.object.name === 'web1/net0'));
  assert.deepEqual(await list({ object: 'web' }), []);
  assert.deepEqual((await list({ actor: 'admin' })).map((r) => r.object.name).sort(), [
    'blue',
    'blue',
    'blue',
    'h2',
    'ops',
    'ops',
  ]);
  // Search over names, actors and the values before and after.
  assert.deepEqual(
    (await list({ text: 'read-only' })).map((r) => r.object.name),
    ['ops', 'ops'],
  );
  assert.ok((await list({ text: 'DB1' })).every((r) => r.object.name.startsWith('db1')));
  assert.deepEqual(await list({ risk: 'high', text: 'blue' }), []);
  const newest = all[0];
  assert.ok(newest);
  assert.deepEqual(
    (await list({ since: newest.at })).map((r) => r.id),
    all.filter((r) => r.at >= newest.at).map((r) => r.id),
  );
  assert.deepEqual(await list({ until: all[all.length - 1]?.at ?? '' }), []);
});

test('every record names the manager that wrote it; the manager filter finds its records', async () => {
  const all = await list();
  assert.ok(all.length >= 10);
  // Through the API, by reconciliation, the admin token made at the start: all by this manager.
  assert.deepEqual(
    all.filter((r) => r.manager !== 'explorer-1').map((r) => `${r.object.name} ${r.action}`),
    [],
  );
  assert.deepEqual(
    (await list({ manager: 'explorer-1' })).map((r) => r.id),
    all.map((r) => r.id),
  );
  assert.deepEqual(await list({ manager: 'explorer-2' }), []);
  assert.deepEqual(await list({ manager: 'EXPLORER-1' }), [], 'a name matches exactly');
  // A second manager on the same database: its records carry its name, the first one's stay.
  const second = await startManager({
    ...(await testDatabase(dir)),
    dataDir: dir,
    name: 'explorer-2',
    reconcileIntervalSeconds: 3600,
    log: () => {},
  });
  try {
    await new ManagerClient(second.url, manager.adminToken ?? '').createPool({ name: 'by-second' });
    const bySecond = await list({ manager: 'explorer-2' });
    assert.deepEqual(
      bySecond.map((r) => [r.object.name, r.action, r.actor, r.manager]),
      [['by-second', 'created', 'admin', 'explorer-2']],
    );
    assert.equal((await list({ manager: 'explorer-1' })).length, all.length);
    const timeline = await admin.changeTimeline({ manager: 'explorer-2' });
    assert.equal(timeline.total, 1);
  } finally {
    await second.close();
  }
});

test('without since the list covers the last 7 days; an older record is found with since', async () => {
  const old = new Date(Date.now() - 8 * 86_400_000).toISOString();
  await manager.db
    .insertInto('changes')
    .values({
      id: undefined,
      at: old,
      actor: 'archaeologist',
      object_kind: 'pool',
      object_id: 'p-old',
      object_name: 'ancient',
      action: 'deleted',
      changes: '[]',
      host: null,
      job_id: null,
      risk: 'medium',
      risk_rule: 'pool-deleted',
    })
    .execute();
  assert.deepEqual(await list({ actor: 'archaeologist' }), []);
  // Written past any manager (as records from before migration 0019 are): no manager named.
  const found = await list({
    actor: 'archaeologist',
    since: new Date(Date.now() - 9 * 86_400_000).toISOString(),
  });
  assert.deepEqual(
    found.map((r) => [r.object.name, r.risk, r.riskRule, r.manager]),
    [['ancient', 'medium', 'pool-deleted', null]],
  );
});

test('the timeline: every bucket present, series per risk or kind, counts summing to the list', async () => {
  const all = await list();
  for (const bucket of ['hour', 'day'] as const) {
    for (const by of ['risk', 'kind'] as const) {
      const t = await admin.changeTimeline({ bucket, by });
      assert.equal(t.total, all.length, `${bucket}/${by}`);
      assert.equal(
        t.series.reduce((sum, s) => sum + s.counts.reduce((a, b) => a + b, 0), 0),
        all.length,
      );
      assert.ok(t.series.every((s) => s.counts.length === t.buckets.length));
      // A week by the hour: 168 or 169 buckets, consecutive.
      const step = bucket === 'hour' ? 3_600_000 : 86_400_000;
      assert.ok(
        t.buckets.length >= 7 * (86_400_000 / step) && t.buckets.length <= 7 * (86_400_000 / step) + 1,
      );
      t.buckets.forEach(
        (b, i) => i && assert.equal(Date.parse(b) - Date.parse(t.buckets[i - 1] ?? ''), step),
      );
    }
  }
  const byRisk = await admin.changeTimeline({ by: 'risk' });
  assert.deepEqual(
    byRisk.series.map((s) => s.name),
    ['high', 'medium', 'low'],
  );
  const high = byRisk.series[0]?.counts.reduce((a, b) => a + b, 0);
  assert.equal(high, all.filter((r) => r.risk === 'high').length);
  const byKind = await admin.changeTimeline({ by: 'kind', bucket: 'day' });
  assert.deepEqual(
    byKind.series.map((s) => s.name).sort(),
    [...new Set(all.map((r) => r.object.kind))].sort(),
  );
  // Filters apply as in the list.
  const filtered = await admin.changeTimeline({ risk: 'high,medium', object: 'web1' });
  assert.equal(filtered.total, (await list({ risk: 'high,medium', object: 'web1' })).length);
  assert.deepEqual(
    filtered.series.map((s) => s.name),
    ['high', 'medium'],
  );
});

test('bad change queries are 400s naming the field', async () => {
  assert.deepEqual(await status(admin.listChanges({ risk: 'severe' })), { status: 400, field: 'risk' });
  assert.deepEqual(await status(admin.listChanges({ risk: 'high,' })), { status: 400, field: 'risk' });
  for (const manager of ['two words', 'x'.repeat(64), 'm1;drop', '-m1']) {
    assert.deepEqual(await status(admin.listChanges({ manager })), { status: 400, field: 'manager' });
    assert.deepEqual(await status(admin.changeTimeline({ manager })), { status: 400, field: 'manager' });
  }
  // The client leaves an empty value out; sent, it is refused as well.
  const empty = await fetch(`${manager.url}/api/v1/changes?manager=`, {
    headers: { authorization: `Bearer ${manager.adminToken ?? ''}` },
  });
  assert.equal(empty.status, 400);
  const problem = (await empty.json()) as { field?: string; detail?: string };
  assert.equal(problem.field, 'manager');
  assert.match(problem.detail ?? '', /^manager: must be 1-63 letters/);
  assert.deepEqual(await status(admin.changeTimeline({ bucket: 'week' as 'hour' })), {
    status: 400,
    field: 'bucket',
  });
  assert.deepEqual(await status(admin.changeTimeline({ by: 'actor' as 'kind' })), {
    status: 400,
    field: 'by',
  });
  const res = await fetch(`${manager.url}/api/v1/changes/timeline?colour=red`, {
    headers: { authorization: `Bearer ${manager.adminToken ?? ''}` },
  });
  assert.equal(res.status, 400);
  assert.equal(((await res.json()) as { field?: string }).field, 'colour');
  assert.deepEqual(await status(admin.changeTimeline({ since: '2000-01-01T00:00:00Z' })), {
    status: 400,
    field: 'since',
  });
  const now = new Date().toISOString();
  assert.deepEqual(await status(admin.changeTimeline({ since: now, until: now })), {
    status: 400,
    field: 'until',
  });
});

test('bucket starts: rounded down to the bucket, up to the end', () => {
  assert.deepEqual(bucketStarts('hour', '2026-01-01T10:30:00.000Z', '2026-01-01T12:00:00.000Z'), [
    '2026-01-01T10:00:00.000Z',
    '2026-01-01T11:00:00.000Z',
  ]);
  assert.deepEqual(bucketStarts('day', '2026-01-01T10:30:00.000Z', '2026-01-02T00:00:01.000Z'), [
    '2026-01-01T00:00:00.000Z',
    '2026-01-02T00:00:00.000Z',
  ]);
});

test('/api/v1/metrics: moves by outcome and the downtime histograms from the stored jobs', async () => {
  const result = (downtimeMs: number, guestDowntimeMs: number) =>
    JSON.stringify({
      vm: { id: testVm('web1', 'running', 1).id, name: 'web1' },
      mode: 'live',
      from: 'h1',
      to: 'h2',
      totalTimeMs: 12_000,
      downtimeMs,
      guestDowntimeMs,
      keptSource: false,
      stats: {},
    });
  const job = (i: number, state: 'succeeded' | 'failed', r: string | null) => ({
    id: `00000000-0000-4000-8000-1000000000${String(i).padStart(2, '0')}`,
    kind: 'vm-move',
    state,
    target_kind: 'vm',
    target_id: 'x',
    target_name: 'web1',
    created_by: 'admin',
    params: '{}',
    progress: '{"phase":"","percent":100,"message":"","details":{}}',
    checkpoint: null,
    result: r,
    error: null,
    cancel_requested: 0,
    created_at: new Date().toISOString(),
    started_at: null,
    finished_at: null,
    updated_at: new Date().toISOString(),
  });
  await manager.db
    .insertInto('jobs')
    .values([
      job(1, 'succeeded', result(40, 60)),
      job(2, 'succeeded', result(300, 700)),
      job(3, 'failed', null),
    ])
    .execute();
  const text = await admin.metrics();
  assert.match(text, /^silobreak_moves_total\{kind="vm-move",outcome="succeeded"\} 2$/m);
  assert.match(text, /^silobreak_moves_total\{kind="vm-move",outcome="failed"\} 1$/m);
  assert.match(text, /^silobreak_moves_total\{kind="vm-move-storage",outcome="succeeded"\} 0$/m);
  assert.match(text, /^silobreak_move_downtime_seconds_bucket\{le="0.05",kind="vm-move"\} 1$/m);
  assert.match(text, /^silobreak_move_downtime_seconds_bucket\{le="0.5",kind="vm-move"\} 2$/m);
  assert.match(text, /^silobreak_move_downtime_seconds_count\{kind="vm-move"\} 2$/m);
  const sum = /^silobreak_move_downtime_seconds_sum\{kind="vm-move"\} ([0-9.e-]+)$/m.exec(text)?.[1];
  assert.ok(Math.abs(Number(sum) - 0.34) < 1e-9, `sum ${sum}`);
  assert.match(text, /^silobreak_move_guest_downtime_seconds_bucket\{le="0.5",kind="vm-move"\} 1$/m);
  const anonymous = await fetch(`${manager.url}/api/v1/metrics`);
  assert.equal(anonymous.status, 401);
  const res = await fetch(`${manager.url}/api/v1/metrics`, {
    headers: { authorization: `Bearer ${manager.adminToken ?? ''}` },
  });
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
});

test('the timeline puts each record in the bucket holding its time, however its time is written', async () => {
  const times = [
    '2026-01-02T05:59:59Z',
    '2026-01-02T06:00:00.000Z',
    '2026-01-02T06:30:00.5Z',
    '2026-01-02T23:59:59.999Z',
  ];
  for (const at of times)
    await manager.db
      .insertInto('changes')
      .values({
        id: undefined,
        at,
        actor: 'bucketeer',
        object_kind: 'pool',
        object_id: 'p-b',
        object_name: 'Buckets',
        action: 'created',
        changes: '[]',
        host: null,
        job_id: null,
        risk: 'low',
        risk_rule: 'pool-created',
      })
      .execute();
  const window = { actor: 'bucketeer', since: '2026-01-02T00:00:00.000Z', until: '2026-01-03T00:00:00.000Z' };
  const counts = async (bucket: 'hour' | 'day', text?: string) => {
    const t = await admin.changeTimeline({ ...window, bucket, ...(text ? { text } : {}) });
    const low = t.series.find((s) => s.name === 'low')?.counts ?? [];
    return Object.fromEntries(t.buckets.flatMap((b, i) => (low[i] ? [[b, low[i]]] : [])));
  };
  assert.deepEqual(await counts('hour'), {
    '2026-01-02T05:00:00.000Z': 1,
    '2026-01-02T06:00:00.000Z': 2,
    '2026-01-02T23:00:00.000Z': 1,
  });
  assert.deepEqual(await counts('day'), { '2026-01-02T00:00:00.000Z': 4 });
  // Text matches whatever the case, in the timeline as in the list.
  assert.deepEqual(await counts('day', 'bUCKETS'), { '2026-01-02T00:00:00.000Z': 4 });
  assert.equal((await admin.listChanges({ ...window, text: 'BUCKETEER' })).items.length, 4);
  assert.deepEqual(await counts('day', 'buckets!'), {});
});

// Placement through the REST API of a real manager (SQLite in a temp dir, no agents): three hosts
// entered the way reconciliation enters them, host h3's datastore of class `fast`, and a busy VM
// whose demand the Storage Explorer's store holds (samples ingested as the collector would).
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { z } from 'zod';
import { after, before, test } from 'node:test';
import {
  DEFAULT_PLACEMENT_MODE,
  DEFAULT_PLACEMENT_SETTINGS,
  LATENCY_BOUNDS_NS,
  ManagerClient,
  type DiskStats,
  type HostStats,
} from '../../api/index.js';
import { ingestHostStats } from '../insight/index.js';
import type { RunningManager } from '../manager.js';
import {
  dbSnapshot,
  rejects,
  seedHost,
  startTestManager,
  testVm,
  type TestManager,
} from '../test-inventory.js';

let t: TestManager;
let manager: RunningManager;
let admin: ManagerClient;
let viewer: ManagerClient;

const busy = testVm('busy', 'running', 1);
const idle = testVm('idle', 'running', 2);
/** On h2; its demand (held at h2's limit) comes in its own test, at the end. */
const throttled = testVm('throttled', 'running', 3);
const GiB = 2 ** 30;

/** The tables a placement call could change, as one string. */
const placementRows = () =>
  dbSnapshot(manager.db, [
    'placement_config',
    'vm_placement',
    'placement_recommendations',
    'placement_schedules',
    'placement_moves',
    'jobs',
    'changes',
  ]);

/**
 * A disk of `vm` making `writes` random 4 KiB writes a second at `writeMs` on average (in the
 * latency bin ending at `binMs`) and `readsPerS` reads at 1 ms, `t` seconds into its counters.
 */
function disk(
  vm: typeof busy,
  t: number,
  writes: number,
  readsPerS: number,
  [writeMs, binMs] = [60, 75],
): DiskStats {
  const bins = (ops: number, boundMs: number) => {
    const b = new Array<number>(LATENCY_BOUNDS_NS.length + 1).fill(0);
    b[LATENCY_BOUNDS_NS.indexOf(boundMs * 1e6)] = ops;
    return b;
  };
  const w = writes * t;
  const r = readsPerS * t;
  return {
    vm: vm.name,
    vmId: vm.id,
    disk: 'root',
    datastore: 'local',
    format: 'qcow2',
    formatVersion: '1.1',
    virtualSizeBytes: GiB,
    allocatedBytes: GiB / 2,
    counterEpoch: 'pid-1',
    counters: {
      readOps: r,
      writeOps: w,
      flushOps: 0,
      readBytes: r * 4096,
      writeBytes: w * 4096,
      readTotalNs: r * 1_000_000,
      writeTotalNs: w * writeMs * 1_000_000,
      flushTotalNs: 0,
    },
    histograms: {
      boundariesNs: [...LATENCY_BOUNDS_NS],
      read: bins(r, 1),
      write: bins(w, binMs),
      flush: bins(0, 1),
    },
  };
}

/** A host's sample with these disks on its datastore `local`. */
const hostStats = (host: string, at: number, disks: DiskStats[]): HostStats => ({
  host,
  sampledAt: new Date(at).toISOString(),
  datastores: [
    {
      name: 'local',
      fsType: 'ext4',
      capacityBytes: 10 * GiB,
      freeBytes: 5 * GiB,
      provisionedBytes: 2 * GiB,
      allocatedBytes: GiB,
    },
  ],
  disks,
  guests: [],
});

/** `busy` makes 500 random 4 KiB writes a second at 50-75 ms on h1; `idle` 2 reads a second. */
const stats = (at: number, t: number): HostStats =>
  hostStats('h1', at, [disk(busy, t, 500, 0), disk(idle, t, 0, 2)]);

before(async () => {
  t = await startTestManager('sb-placement-api-', { statsIntervalSeconds: 3600 });
  ({ manager, admin, viewer } = t);
  await seedHost(manager.db, 'h1', 9, [busy, idle]);
  await seedHost(manager.db, 'h2', 10, [throttled]);
  await seedHost(manager.db, 'h3', 11, []);
  // h3's datastore is the fast one (the datastores' class column, migration 0007).
  await sql`update datastores set class = 'fast' where host_id = (select id from hosts where name = 'h3')`.execute(
    manager.db,
  );
  // And its IOPS limit (facts.ts IOPS_BUDGET_COLUMNS): h1's is a SAN tier's 1000.
  await sql`update datastores set limit_iops = 1000 where host_id = (select id from hosts where name = 'h1')`.execute(
    manager.db,
  );
  const now = Date.now();
  await ingestHostStats(manager.db, stats(now - 120_000, 0));
  await ingestHostStats(manager.db, stats(now - 60_000, 60));
  await ingestHostStats(manager.db, stats(now, 120));
});

after(async () => {
  await t.close();
});

test('a new manager starts in recommend mode with the documented defaults', async () => {
  const config = await admin.placementConfig();
  assert.equal(config.mode, DEFAULT_PLACEMENT_MODE);
  assert.equal(config.mode, 'recommend');
  assert.deepEqual(config.settings, DEFAULT_PLACEMENT_SETTINGS);
  assert.deepEqual(config.overrides, {});
});

test('status shows each VM with its class, demand and placement settings', async () => {
  const status = await viewer.placementStatus();
  const b = status.vms.find((v) => v.vm === 'busy');
  assert.ok(b);
  assert.equal(b.class, 'standard');
  assert.equal(b.demand, 'hot');
  assert.ok(Math.abs((b.iops ?? 0) - 500) < 1, `iops ${b.iops}`);
  assert.ok((b.latencyMs ?? 0) >= 50);
  assert.equal(b.priority, 50);
  assert.equal(status.vms.find((v) => v.vm === 'idle')?.demand, 'cool');
});

test('bad settings and modes name the field and change nothing', async () => {
  const before = await placementRows();
  await rejects(
    admin.http.request('PUT', '/api/v1/placement/mode', z.unknown(), { mode: 'fast' }),
    400,
    'mode',
  );
  await rejects(admin.setPlacementSettings({ coolIops: 300 }), 400, 'coolIops');
  await rejects(admin.setPlacementSettings({ holdSeconds: -1 }), 400, 'holdSeconds');
  // Shorter than one bucket of the Storage Explorer's finest tier.
  await rejects(admin.setPlacementSettings({ demandWindowSeconds: 29 }), 400, 'demandWindowSeconds');
  await rejects(
    admin.http.request('PUT', '/api/v1/placement/settings', z.unknown(), { hotIOPS: 5 }),
    400,
    'hotIOPS',
  );
  await rejects(viewer.setPlacementMode('automatic'), 403);
  assert.equal(await placementRows(), before);
});

test('in recommend mode a VM hot for the hold time is recommended onto the fast class, with its reason', async () => {
  await admin.setPlacementSettings({ holdSeconds: 0 });
  const round = await admin.evaluatePlacement();
  assert.equal(round.length, 1);
  const rec = round[0];
  assert.ok(rec);
  assert.equal(rec.kind, 'to-fast');
  assert.equal(rec.vm, 'busy');
  assert.deepEqual(rec.from, { host: 'h1', datastore: 'local' });
  assert.deepEqual(rec.to, { host: 'h3', datastore: 'local', class: 'fast' });
  assert.equal(rec.reason.metric, 'iops');
  assert.equal(rec.reason.threshold, DEFAULT_PLACEMENT_SETTINGS.hotIops);
  assert.equal(rec.reason.windowSeconds, DEFAULT_PLACEMENT_SETTINGS.demandWindowSeconds);
  assert.ok(Math.abs(rec.predicted.iops - 500) < 1);
  assert.equal(rec.state, 'pending');
  // The next round keeps the same recommendation rather than making another.
  const again = await admin.evaluatePlacement();
  assert.deepEqual(
    again.map((r) => r.id),
    [rec.id],
  );
  const listed = await viewer.listRecommendations();
  assert.deepEqual(
    listed.items.map((r) => r.id),
    [rec.id],
  );
  // The mode and settings changes are in the change log, by their actor.
  const changes = await admin.listChanges({ kind: 'placement' });
  assert.ok(
    changes.items.some((c) => c.actor === 'admin' && c.changes.some((f) => f.field === 'holdSeconds')),
  );
});

test('applying checks the move afresh: unreachable hosts refuse it and the recommendation stays pending', async () => {
  const [rec] = (await admin.listRecommendations()).items;
  assert.ok(rec);
  const before = await placementRows();
  const refused = await rejects(admin.applyRecommendation(rec.id), 400);
  assert.match(refused.message, /refused, nothing was changed: .*unreachable/);
  assert.equal(await placementRows(), before);
  await rejects(admin.applyRecommendation('00000000-0000-4000-8000-00000000ffff'), 404, 'id');
  await rejects(viewer.applyRecommendation(rec.id), 403);
  // Dismissed: no longer pending, not applicable; the next round may make it again.
  const dismissed = await admin.dismissRecommendation(rec.id);
  assert.equal(dismissed.state, 'dismissed');
  await rejects(admin.applyRecommendation(rec.id), 409, 'id');
  await rejects(admin.dismissRecommendation(rec.id), 409, 'id');
  const next = await admin.evaluatePlacement();
  assert.equal(next.length, 1);
  assert.notEqual(next[0]?.id, rec.id);
});

test('a pinned VM is not recommended; mode off expires what is pending', async () => {
  await admin.patchVmPlacement('busy', { pinned: true });
  assert.deepEqual(await admin.evaluatePlacement(), []);
  const all = await admin.listRecommendations({ state: 'all' });
  assert.deepEqual([...new Set(all.items.map((r) => r.state))].sort(), ['dismissed', 'expired']);
  await admin.patchVmPlacement('busy', { pinned: false });
  assert.equal((await admin.evaluatePlacement()).length, 1);
  await admin.setPlacementMode('off');
  assert.deepEqual((await admin.listRecommendations()).items, []);
  assert.deepEqual(await admin.evaluatePlacement(), []);
  await admin.setPlacementMode('recommend');
});

test("a VM's placement settings: priority by name or number, pin, home; recorded; bad ones name the field", async () => {
  const set = await admin.patchVmPlacement('idle', {
    priority: 'high',
    home: { host: 'h2', datastore: 'local' },
  });
  assert.equal(set.priority, 75);
  assert.deepEqual(set.home, { host: 'h2', datastore: 'local' });
  assert.equal((await admin.patchVmPlacement('idle', { priority: 10 })).priority, 10);
  const records = await admin.listChanges({ object: 'idle' });
  assert.ok(
    records.items.some((c) => c.changes.some((f) => f.field === 'placement.priority' && f.after === 75)),
  );
  const before = await placementRows();
  await rejects(
    admin.patchVmPlacement('idle', { home: { host: 'h2', datastore: 'nope' } }),
    400,
    'home.datastore',
  );
  await rejects(
    admin.patchVmPlacement('idle', { home: { host: 'h9', datastore: 'local' } }),
    404,
    'home.host',
  );
  await rejects(
    admin.http.request('PUT', '/api/v1/vms/idle/placement', z.unknown(), { priority: 'urgent' }),
    400,
    'priority',
  );
  await rejects(admin.patchVmPlacement('nobody', { pinned: true }), 404);
  assert.equal(await placementRows(), before);
  assert.equal((await viewer.vmPlacement('idle')).priority, 10);
});

test('schedules: added with their next window, listed, removed; bad ones name the field and change nothing', async () => {
  const s = await admin.addPlacementSchedule({ vm: 'idle', class: 'fast', cron: '0 1 * * *', for: '4h' });
  assert.equal(s.vm, 'idle');
  assert.equal(s.durationSeconds, 4 * 3600);
  assert.ok(s.nextStart && s.nextEnd);
  assert.equal(Date.parse(s.nextEnd) - Date.parse(s.nextStart), 4 * 3600_000);
  assert.match(s.nextStart, /T01:00:00/);
  assert.deepEqual(
    (await viewer.listPlacementSchedules()).items.map((x) => x.id),
    [s.id],
  );
  const before = await placementRows();
  await rejects(
    admin.addPlacementSchedule({ vm: 'idle', class: 'fast', cron: '0 25 * * *', for: '4h' }),
    400,
    'cron',
  );
  await rejects(
    admin.addPlacementSchedule({ vm: 'idle', class: 'fast', cron: '0 1 * *', for: '4h' }),
    400,
    'cron',
  );
  await rejects(
    admin.addPlacementSchedule({ vm: 'idle', class: 'gold', cron: '0 1 * * *', for: '4h' }),
    400,
    'class',
  );
  await rejects(
    admin.addPlacementSchedule({ vm: 'idle', class: 'fast', cron: '0 1 * * *', for: '4x' }),
    400,
    'for',
  );
  await rejects(
    admin.addPlacementSchedule({ vm: 'ghost', class: 'fast', cron: '0 1 * * *', for: '4h' }),
    404,
    'vm',
  );
  assert.equal(await placementRows(), before);
  await admin.removePlacementSchedule(s.id);
  assert.deepEqual((await admin.listPlacementSchedules()).items, []);
  await rejects(admin.removePlacementSchedule(s.id), 404);
});

test('suggest ranks the datastores that fit, filters by class, and says why the others do not fit', async () => {
  const any = await admin.suggestPlacement({ memoryBytes: GiB, diskBytes: GiB });
  assert.deepEqual(any.candidates.map((c) => c.host).sort(), ['h1', 'h2', 'h3']);
  // h1 serves the busy VM's 500 IOPS of its 1000: it ranks last.
  assert.equal(any.candidates[2]?.host, 'h1');
  assert.ok(any.candidates.every((c) => c.reasons.length > 0));
  const fast = await admin.suggestPlacement({ memoryBytes: GiB, diskBytes: GiB, class: 'fast' });
  assert.deepEqual(
    fast.candidates.map((c) => c.host),
    ['h3'],
  );
  assert.equal(fast.refused.length, 2);
  const huge = await admin.suggestPlacement({ memoryBytes: 64 * GiB, diskBytes: GiB });
  assert.deepEqual(huge.candidates, []);
  assert.ok(huge.refused.every((r) => /memory/.test(r.reason)));
  await rejects(
    admin.http.request('POST', '/api/v1/placement/suggest', z.unknown(), { memoryBytes: -1, diskBytes: 0 }),
    400,
    'memoryBytes',
  );
  await rejects(admin.suggestPlacement({ memoryBytes: GiB, diskBytes: 0, pool: 'nopool' }), 404, 'pool');
});

test('in automatic mode a move the checks refuse is not started: no job, no budget used, still pending', async () => {
  await admin.setPlacementMode('automatic');
  const round = await admin.evaluatePlacement();
  assert.deepEqual(
    round.map((r) => [r.vm, r.state, r.jobId]),
    [['busy', 'pending', null]],
  );
  const moves = await manager.db.selectFrom('placement_moves').selectAll().execute();
  assert.deepEqual(moves, []);
  assert.deepEqual((await admin.listJobs()).items, []);
  await admin.setPlacementMode('recommend');
});

test("a VM held at its datastore's limit is hot with the default thresholds: status and recommendation say so", async () => {
  // `throttled` on h2 makes 400 random writes a second at ~4 ms: what a guest held by a
  // 400-IOPS throttle sees. busy is pinned so the one move a round may start is throttled's.
  await admin.patchVmPlacement('busy', { pinned: true });
  const now = Date.now();
  for (const [ago, t] of [
    [120_000, 0],
    [60_000, 60],
    [0, 120],
  ] as const)
    await ingestHostStats(manager.db, hostStats('h2', now - ago, [disk(throttled, t, 400, 0, [4, 5])]));
  const limit = (iops: number | null) =>
    sql`update datastores set limit_iops = ${iops} where host_id = (select id from hosts where name = 'h2')`.execute(
      manager.db,
    );
  const statusOf = async () => (await viewer.placementStatus()).vms.find((v) => v.vm === 'throttled');
  // Without a limit, 400 IOPS served at 4-5 ms is busy but served well: between.
  await limit(null);
  const free = await statusOf();
  assert.equal(free?.demand, 'between');
  assert.ok((free?.latencyMs ?? Infinity) < DEFAULT_PLACEMENT_SETTINGS.hotLatencyMs, `${free?.latencyMs}`);
  assert.match(
    free?.demandReason ?? '',
    /^IOPS 400 ≥ 200, but p90 latency [0-9.]+ ms < 15 ms and at no limit$/,
  );
  assert.deepEqual(await admin.evaluatePlacement(), []);
  // h2 limited to 400 IOPS (as QEMU throttles it): held at that limit, hot, recommended.
  await limit(400);
  const held = await statusOf();
  assert.equal(held?.demand, 'hot');
  assert.equal(held?.demandReason, "held at its datastore's 400-IOPS limit: 400 IOPS, at least 90 % of it");
  // The next round would move it: nothing holds it back.
  assert.equal(held?.waitingReason, null);
  const busy = (await viewer.placementStatus()).vms.find((v) => v.vm === 'busy');
  assert.equal(busy?.waitingReason, 'it is pinned', JSON.stringify(busy));
  const round = await admin.evaluatePlacement();
  assert.deepEqual(
    round.map((r) => [r.vm, r.kind, r.to.class, r.reason.metric]),
    [['throttled', 'to-fast', 'fast', 'iops-limit']],
  );
  assert.match(
    round[0]?.reason.text ?? '',
    /^held at its datastore's 400-IOPS limit: 400 IOPS, at least 90 % of it, for \d+ s \(hold 0 s\)$/,
  );
  await admin.patchVmPlacement('busy', { pinned: false });
});

test('every answer stayed inside the route table', () => {
  assert.deepEqual(t.breaches, []);
});

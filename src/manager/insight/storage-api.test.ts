// The Storage Explorer through the REST API of a real manager (SQLite in a temp dir) whose host
// is a fake agent: a loopback HTTPS server answering GET /v1/stats with sample sequences the test
// writes, collected by the manager's own collector (collectStatsNow).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  ApiError,
  LATENCY_BOUNDS_NS,
  ManagerClient,
  type DiskStats,
  type HostStats,
  type StorageIssue,
} from '../../api/index.js';
import { startManager, type RunningManager } from '../manager.js';
import { fakeAgentTls, seedHost, testVm } from '../test-inventory.js';
import { testDatabase } from '../test-postgres.js';

const GiB = 2 ** 30;
const STEP_S = 60;
const STEPS = 20;

let dir: string;
let manager: RunningManager;
let admin: ManagerClient;
let agent: Server;
/** What the fake agent answers now. */
let current: HostStats;

const web = testVm('web1', 'running', 1);
const db1 = testVm('db1', 'stopped', 2);

/** Bins with every operation in the bin that ends at `boundMs`. */
function binsAt(ops: number, boundMs: number): number[] {
  const bins = new Array<number>(LATENCY_BOUNDS_NS.length + 1).fill(0);
  bins[LATENCY_BOUNDS_NS.indexOf(boundMs * 1e6)] = ops;
  return bins;
}

/**
 * The host's stats `t` seconds into the run: web1 reads 100/s at 1-2 ms and writes 50/s at 50-75 ms
 * (60 ms on average), db1 is stopped on an old qcow2 compat level, the datastore loses 1 GiB a
 * minute with 250 GiB provisioned on 100 GiB, and web1's guest filesystem is 95 % full.
 */
function statsAt(at: Date, t: number, free: number, epoch = 'pid-1'): HostStats {
  const reads = 100 * t;
  const writes = 50 * t;
  const webDisk: DiskStats = {
    vm: 'web1',
    vmId: web.id,
    disk: 'root',
    datastore: 'local',
    format: 'qcow2',
    formatVersion: '1.1',
    virtualSizeBytes: 200 * GiB,
    allocatedBytes: 20 * GiB,
    counterEpoch: epoch,
    counters: {
      readOps: reads,
      writeOps: writes,
      flushOps: t,
      readBytes: reads * 4096,
      writeBytes: writes * 65536,
      readTotalNs: reads * 1_500_000,
      writeTotalNs: writes * 60_000_000,
      flushTotalNs: t * 1_000_000,
    },
    histograms: {
      boundariesNs: [...LATENCY_BOUNDS_NS],
      read: binsAt(reads, 2),
      write: binsAt(writes, 75),
      flush: binsAt(t, 2),
    },
  };
  const dbDisk: DiskStats = {
    ...webDisk,
    vm: 'db1',
    vmId: db1.id,
    formatVersion: '0.10',
    virtualSizeBytes: 50 * GiB,
    allocatedBytes: 5 * GiB,
    counterEpoch: null,
    counters: null,
    histograms: null,
  };
  return {
    host: 'h1',
    sampledAt: at.toISOString(),
    datastores: [
      {
        name: 'local',
        fsType: 'ext4',
        capacityBytes: 100 * GiB,
        freeBytes: free,
        provisionedBytes: 250 * GiB,
        allocatedBytes: 25 * GiB,
      },
    ],
    disks: [webDisk, dbDisk],
    guests: [
      {
        vm: 'web1',
        vmId: web.id,
        agentVersion: '7.2.0',
        filesystems: [{ mountpoint: '/', type: 'ext4', totalBytes: 10 * GiB, usedBytes: 9.5 * GiB }],
      },
      { vm: 'db1', vmId: db1.id, agentVersion: null, filesystems: null },
    ],
  };
}

/** Samples STEP_S apart ending now: free space shrinks by 1 GiB a minute from 60 GiB. */
const startMs = Date.now() - STEPS * STEP_S * 1000;
const freeAt = (i: number) => 60 * GiB - i * GiB;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-storage-api-'));
  manager = await startManager({
    ...(await testDatabase(dir)),
    dataDir: dir,
    reconcileIntervalSeconds: 3600,
    statsIntervalSeconds: 3600,
    log: () => {},
  });
  // An agent's HTTPS, with a certificate of the manager's CA (as a joined host has).
  agent = createServer(await fakeAgentTls(dir), (req, res) => {
    if (req.url === '/v1/stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(current));
    } else {
      res.writeHead(404, { 'content-type': 'application/problem+json' });
      res.end(
        JSON.stringify({
          type: 'about:blank',
          title: 'Not Found',
          status: 404,
          code: 'not-found',
          detail: 'fake agent',
        }),
      );
    }
  });
  await new Promise<void>((resolve) => agent.listen(0, '127.0.0.1', resolve));
  admin = new ManagerClient(manager.url, manager.adminToken ?? '');
  await seedHost(manager.db, 'h1', (agent.address() as AddressInfo).port, [web, db1]);
  for (let i = 0; i <= STEPS; i++) {
    current = statsAt(new Date(startMs + i * STEP_S * 1000), i * STEP_S, freeAt(i));
    await manager.collectStatsNow();
  }
});

after(async () => {
  await manager.close();
  await new Promise((resolve) => agent.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

const active = async () => (await admin.listStorageIssues()).items;
const find = (issues: StorageIssue[], rule: string, name?: string) =>
  issues.find((i) => i.rule === rule && (name === undefined || i.subject.name === name));

test('growing counters give IOPS, throughput, average and p90/p99 latency per direction', async () => {
  const { items } = await admin.listStorageDisks({ q: 'web1' });
  assert.equal(items.length, 1);
  const row = items[0];
  assert.ok(row);
  assert.equal(row.host, 'h1');
  assert.equal(row.formatVersion, '1.1');
  assert.ok(Math.abs((row.read.iops ?? 0) - 100) < 0.01, `read iops ${row.read.iops}`);
  assert.ok(Math.abs((row.write.iops ?? 0) - 50) < 0.01);
  assert.ok(Math.abs((row.read.bytesPerSecond ?? 0) - 100 * 4096) < 1);
  assert.equal(row.read.avgLatencyMs, 1.5);
  assert.equal(row.write.avgLatencyMs, 60);
  // All reads in [1, 2) ms: p90 = 1 + 0.9; all writes in [50, 75) ms: p99 = 50 + 25 * 0.99.
  assert.equal(row.read.p90LatencyMs, 1.9);
  assert.equal(row.write.p99LatencyMs, 74.75);
  assert.equal(row.flushAvgLatencyMs, 1);
  assert.equal(row.guestUsedBytes, 9.5 * GiB);
  assert.equal(row.guestFullestPercent, 95);
  const [stopped] = (await admin.listStorageDisks({ q: 'db1' })).items;
  assert.equal(stopped?.iops, null, 'a disk without counters has no figures, not 0');
  assert.equal(stopped?.guestUsedBytes, null, 'no guest agent: unknown, not 0');
});

test('datastore row: capacity, provisioned, over-commitment and a days-until-full within 20 % of the truth', async () => {
  const { items } = await admin.listStorageDatastores();
  const ds = items[0];
  assert.ok(ds);
  assert.equal(ds.overcommitRatio, 2.5);
  assert.equal(ds.disks, 2);
  assert.equal(ds.freeBytes, freeAt(STEPS));
  // Truth: the free space left at 1 GiB a minute.
  const truthDays = freeAt(STEPS) / GiB / (24 * 60);
  assert.ok(ds.daysUntilFull !== null, 'a trend');
  assert.ok(Math.abs(ds.daysUntilFull - truthDays) / truthDays < 0.2, `${ds.daysUntilFull} vs ${truthDays}`);
  assert.ok((ds.read.iops ?? 0) > 99, 'the datastore sums its disks');
});

test('issues: over-commitment, days until full, format mismatch, guest disk space, VM latency', async () => {
  const issues = await active();
  const over = find(issues, 'over-commitment');
  assert.equal(over?.severity, 'critical', 'ratio 2.5 with free space shrinking');
  assert.equal(find(issues, 'days-until-full')?.severity, 'critical');
  const mismatch = find(issues, 'format-version-mismatch');
  assert.equal(mismatch?.subject.name, 'db1/root');
  assert.equal(mismatch?.severity, 'warning', 'compat 0.10 beside 1.1 on the same datastore');
  const guest = find(issues, 'vm-low-disk-space');
  assert.equal(guest?.severity, 'critical');
  assert.equal(guest?.subject.name, 'web1:/');
  assert.equal(find(issues, 'vm-latency')?.severity, 'warning', '60 ms average writes over 5 minutes');
  assert.equal(find(issues, 'high-latency')?.subject.name, 'h1/local', 'p90 72.5 ms > 15 ms');
  assert.equal(find(issues, 'low-capacity'), undefined, '40 % free');
  const [ds] = (await admin.listStorageDatastores()).items;
  assert.equal(ds?.issues, issues.filter((i) => i.subject.host === 'h1').length);
});

test('low capacity opens an issue, which ends when space is freed', async () => {
  const base = Date.now();
  current = statsAt(new Date(base), STEPS * STEP_S + 60, 10 * GiB);
  await manager.collectStatsNow();
  const low = find(await active(), 'low-capacity');
  assert.equal(low?.severity, 'critical');
  assert.equal(low?.value, 10);
  current = statsAt(new Date(base + 1000), STEPS * STEP_S + 61, 80 * GiB);
  await manager.collectStatsNow();
  assert.equal(find(await active(), 'low-capacity'), undefined);
  const all = (await admin.listStorageIssues({ state: 'all', rule: 'low-capacity' })).items;
  assert.equal(all.length, 1);
  assert.equal(all[0]?.active, false);
  assert.ok(all[0]?.endedAt && all[0].endedAt >= all[0].startedAt);
});

test('a counter reset (new QEMU process) starts a new series: no negative rates', async () => {
  current = statsAt(new Date(), 5, 80 * GiB, 'pid-2');
  const result = await manager.collectStatsNow();
  assert.equal(result.intervals, 0);
  const [row] = (await admin.listStorageDisks({ q: 'web1' })).items;
  assert.ok((row?.read.iops ?? -1) >= 0 && (row?.write.iops ?? -1) >= 0);
});

test('sort by any column, search, and pages by cursor', async () => {
  const byIops = await admin.listStorageDisks({ sort: 'iops' });
  assert.deepEqual(
    byIops.items.map((r) => r.vm),
    ['web1', 'db1'],
    'descending by default, unknown last',
  );
  const asc = await admin.listStorageDisks({ sort: 'iops', order: 'asc' });
  assert.deepEqual(
    asc.items.map((r) => r.vm),
    ['web1', 'db1'],
    'null stays last',
  );
  const first = await admin.listStorageDisks({ sort: 'vm', limit: 1 });
  assert.equal(first.items[0]?.vm, 'db1');
  assert.ok(first.nextCursor);
  const second = await admin.listStorageDisks({ sort: 'vm', limit: 1, cursor: first.nextCursor });
  assert.equal(second.items[0]?.vm, 'web1');
  assert.equal(second.nextCursor, null);
  await assert.rejects(admin.listStorageDisks({ sort: 'iops', cursor: first.nextCursor }), (e) => {
    assert.ok(e instanceof ApiError && e.status === 400 && e.field === 'cursor');
    return true;
  });
  assert.equal((await admin.listStorageDisks({ q: 'nothing-like-it' })).items.length, 0);
  assert.equal((await admin.listStorageDisks({ q: '0.10' })).items[0]?.vm, 'db1');
  const windowed = await admin.listStorageDisks({ q: 'web1', window: '5m' });
  const covered = windowed.items[0]?.coveredSeconds ?? 0;
  assert.ok(
    covered > 0 && covered <= 600 + STEP_S,
    `a 5-minute window covers 5 to 10 minutes (${covered} s)`,
  );
  await assert.rejects(admin.listStorageDisks({ window: '9d' }), /window/);
  await assert.rejects(admin.listStorageDisks({ window: 'soon' }), /window/);
});

test('thresholds per datastore: validated, recorded in the change log, used by the rules', async () => {
  const before = await admin.getStorageThresholds('h1', 'local');
  assert.equal(before.effective.freeWarningPercent, 25);
  await assert.rejects(admin.setStorageThresholds('h1', 'local', { freeCriticalPercent: 50 }), (e) => {
    assert.ok(e instanceof ApiError && e.status === 400 && e.field === 'freeCriticalPercent', String(e));
    return true;
  });
  await assert.rejects(
    admin.setStorageThresholds('h1', 'nope', {}),
    (e) => e instanceof ApiError && e.status === 404,
  );
  const set = await admin.setStorageThresholds('h1', 'local', {
    freeWarningPercent: 90,
    freeCriticalPercent: 5,
  });
  assert.equal(set.effective.freeWarningPercent, 90);
  assert.equal(set.overrides.freeCriticalPercent, 5);
  const [change] = (await admin.listChanges({ kind: 'datastore', limit: 1 })).items;
  assert.equal(change?.actor, 'admin');
  assert.deepEqual(
    change?.changes.map((c) => [c.field, c.before, c.after]),
    [
      ['thresholds.freeCriticalPercent', null, 5],
      ['thresholds.freeWarningPercent', null, 90],
    ],
  );
  await manager.collectStatsNow();
  assert.equal(find(await active(), 'low-capacity')?.severity, 'warning', '80 % free is below the 90 % set');
  const viewer = new ManagerClient(
    manager.url,
    (await admin.createToken({ name: 'storage-viewer', role: 'read-only' })).secret,
  );
  await assert.rejects(
    viewer.setStorageThresholds('h1', 'local', {}),
    (e) => e instanceof ApiError && e.status === 403,
  );
  await admin.setStorageThresholds('h1', 'local', {});
  assert.deepEqual((await admin.getStorageThresholds('h1', 'local')).overrides, {});
});

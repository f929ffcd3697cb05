// The metrics store against real SQLite: tiers add up to the same sums, retention prunes each
// tier by its age, a disk keeps its series when its VM moves to another host.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  EXPLORER_WINDOWS,
  LATENCY_BOUNDS_NS,
  parseWindow,
  type DiskStats,
  type HostStats,
  type StorageDiskRow,
} from '../../api/index.js';
import type { Db } from '../db.js';
import { bucketTier, listStorageDisks } from './explorer.js';
import { P90, P99, percentileMs } from './rates.js';
import {
  IO_TIERS,
  RETENTION_SECONDS,
  SUBJECT_DISK,
  WINDOWS,
  ingestHostStats,
  ingestMany,
  maintainWindows,
  prune,
  windowStart,
} from './store.js';
import { testDb } from '../test-postgres.js';

let dir: string;
let db: Db;
const VM = '00000000-0000-4000-8000-000000000001';

function hostStats(host: string, atMs: number, ops: number, datastores = ['local']): HostStats {
  const d: DiskStats = {
    vm: 'web1',
    vmId: VM,
    disk: 'root',
    datastore: 'local',
    format: 'qcow2',
    formatVersion: '1.1',
    virtualSizeBytes: 1000,
    allocatedBytes: 100,
    counterEpoch: `${host}-pid`,
    counters: {
      readOps: ops,
      writeOps: ops,
      flushOps: 0,
      readBytes: ops * 512,
      writeBytes: ops * 512,
      readTotalNs: ops * 1000,
      writeTotalNs: ops * 2000,
      flushTotalNs: 0,
    },
    histograms: null,
  };
  return {
    host,
    sampledAt: new Date(atMs).toISOString(),
    datastores: datastores.map((name) => ({
      name,
      fsType: 'ext4',
      capacityBytes: 1000,
      freeBytes: 500,
      provisionedBytes: 1000,
      allocatedBytes: 100,
    })),
    disks: [d],
    guests: [],
  };
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-insight-store-'));
  db = await testDb(dir);
});
after(async () => {
  await db.destroy();
  await rm(dir, { recursive: true, force: true });
});

const t0 = Date.UTC(2026, 0, 1, 0, 0, 0);

test('each tier holds the same sums as the intervals', async () => {
  const samples = Array.from({ length: 40 }, (_, i) => hostStats('h1', t0 + i * 10_000, i * i));
  const result = await ingestMany(db, samples);
  assert.equal(result.intervals, 39, 'the first sample only starts the series');
  const totals = await db
    .selectFrom('io_series')
    .select((eb) => [
      'res',
      eb.fn.sum<number>('rd_ops').as('ops'),
      eb.fn.sum<number>('seconds').as('seconds'),
      eb.fn.countAll<number>().as('rows'),
    ])
    .where('kind', '=', SUBJECT_DISK)
    .groupBy('res')
    .orderBy('res')
    .execute();
  assert.deepEqual(
    totals.map((r) => r.res),
    IO_TIERS.map((t) => t.res),
  );
  for (const r of totals) {
    assert.equal(Number(r.ops), 39 * 39, `tier ${r.res}`);
    assert.equal(Number(r.seconds), 390);
  }
  assert.equal(
    Number(totals.find((r) => r.res === 300)?.rows),
    2,
    '390 s from midnight: two 5-minute buckets',
  );
});

test('pruning drops each tier past its age and keeps the rest', async () => {
  const last = t0 + 39 * 10_000;
  const count = async (res: number) =>
    Number(
      (
        await db
          .selectFrom('io_series')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('res', '=', res)
          .where('kind', '=', SUBJECT_DISK)
          .executeTakeFirstOrThrow()
      ).n,
    );
  await prune(db, last + 3600_000);
  assert.equal(await count(300), 2, '5-minute buckets are kept 3 hours');
  await prune(db, last + 3 * 3600_000 + 600_000);
  assert.equal(await count(300), 0);
  assert.equal(await count(3600), 1);
  await prune(db, last + 2 * 86_400_000);
  assert.equal(await count(3600), 1);
  await prune(db, last + (RETENTION_SECONDS + 2 * 86_400) * 1000);
  assert.equal(await count(3600), 0);
  assert.equal(await count(86_400), 0);
});

test('sliding windows hold the sums of their source buckets as time moves on', async () => {
  const base = Date.UTC(2026, 1, 1, 0, 0, 0);
  const vm = '00000000-0000-4000-8000-0000000000aa';
  const sample = (i: number) => {
    const s = hostStats('hw', base + i * 60_000, i * 7);
    return { ...s, disks: s.disks.map((d) => ({ ...d, vmId: vm, vm: 'win' })) };
  };
  const windowOps = async (code: number) =>
    Number(
      (
        await db
          .selectFrom('io_series')
          .innerJoin('stat_disks', 'stat_disks.id', 'io_series.subject')
          .select('rd_ops')
          .where('res', '=', code)
          .where('kind', '=', SUBJECT_DISK)
          .where('stat_disks.vm_id', '=', vm)
          .executeTakeFirst()
      )?.rd_ops ?? 0,
    );
  const bucketOps = async (res: number, from: number) =>
    Number(
      (
        await db
          .selectFrom('io_series')
          .innerJoin('stat_disks', 'stat_disks.id', 'io_series.subject')
          .select((eb) => eb.fn.sum<number>('rd_ops').as('n'))
          .where('res', '=', res)
          .where('bucket', '>=', from)
          .where('kind', '=', SUBJECT_DISK)
          .where('stat_disks.vm_id', '=', vm)
          .executeTakeFirstOrThrow()
      ).n ?? 0,
    );
  const [hour] = WINDOWS;
  assert.ok(hour);
  // Three hours of a sample a minute, the windows moved on after each (as the collector does).
  for (let i = 0; i <= 180; i++) {
    await ingestHostStats(db, sample(i));
    await maintainWindows(db, base + i * 60_000);
    if (i % 37 === 0 || i === 180) {
      const now = Math.floor((base + i * 60_000) / 1000);
      for (const w of WINDOWS)
        assert.equal(
          await windowOps(w.code),
          await bucketOps(w.source, windowStart(w, now)),
          `minute ${i}, window ${w.seconds} s`,
        );
    }
  }
  // 7 ops a minute over 60-65 minutes of buckets: the window is an hour, not since boot.
  const ops = await windowOps(hour.code);
  assert.ok(ops >= 7 * 60 && ops <= 7 * 65, String(ops));
  // Silence: after an hour without samples the hour window is empty (its row goes).
  await maintainWindows(db, base + 250 * 60_000);
  assert.equal(await windowOps(hour.code), 0);
  // The 24 h window still has all three hours.
  assert.equal(await windowOps(WINDOWS[1]?.code ?? 0), 180 * 7);
});

test('a VM that moves keeps its disk row (same VM id and disk), a VM that is gone is not listed', async () => {
  const now = Date.now();
  await ingestHostStats(db, hostStats('h1', now - 20_000, 10));
  await ingestHostStats(db, hostStats('h1', now - 10_000, 20));
  const before = await listStorageDisks(db, { window: '5m', sort: 'vm', limit: 10, q: 'web1' }, now);
  assert.equal(before.items[0]?.host, 'h1');
  assert.ok((before.items[0]?.iops ?? 0) > 0);
  // On h2 with a new QEMU process: the same row, a new series (no interval across the move).
  const moved = await ingestHostStats(db, hostStats('h2', now - 5_000, 3));
  assert.equal(moved.intervals, 0);
  await ingestHostStats(db, { ...hostStats('h1', now - 4_000, 0), disks: [] });
  const after = await listStorageDisks(db, { window: '5m', sort: 'vm', limit: 10, q: 'web1' }, now);
  assert.equal(after.items.length, 1, 'h1 no longer reporting it does not hide it: it lives on h2');
  assert.equal(after.items[0]?.host, 'h2');
  await ingestHostStats(db, { ...hostStats('h2', now - 3_000, 0), disks: [] });
  assert.equal(
    (await listStorageDisks(db, { window: '5m', sort: 'vm', limit: 10, q: 'web1' }, now)).items.length,
    0,
  );
});

test('a datastore its host stops reporting goes, with its series', async () => {
  const now = Date.now();
  await ingestHostStats(db, hostStats('h3', now, 1, ['local', 'second']));
  const names = async () =>
    (
      await db.selectFrom('stat_datastores').select('name').where('host', '=', 'h3').orderBy('name').execute()
    ).map((r) => r.name);
  assert.deepEqual(await names(), ['local', 'second']);
  await ingestHostStats(db, hostStats('h3', now + 1000, 2, ['local']));
  assert.deepEqual(await names(), ['local']);
});

test('paging by cursor through any sort gives every disk once, in the order of one big page', async () => {
  const now = Date.now();
  const many = (atMs: number, step: number): HostStats => {
    const base = hostStats('hp', atMs, 0);
    const template = base.disks[0];
    assert.ok(template);
    return {
      ...base,
      disks: Array.from({ length: 23 }, (_, i) => ({
        ...template,
        vm: `pg-${String(i % 7).padStart(2, '0')}`,
        vmId: `00000000-0000-4000-8000-${String(500 + i).padStart(12, '0')}`,
        counterEpoch: 'pg',
        // Some disks idle (ties), some with no counters (null figures).
        counters:
          i % 5 === 4
            ? null
            : {
                ...(template.counters ?? hostStats('x', 0, 0).disks[0]!.counters!),
                readOps: step * (i % 3) * 10,
                readTotalNs: step * i * 1000,
              },
      })),
    };
  };
  await ingestHostStats(db, many(now - 20_000, 1));
  await ingestHostStats(db, many(now - 10_000, 2));
  for (const sort of ['iops', 'readLatency', 'vm', 'readP90'] as const)
    for (const order of ['asc', 'desc'] as const) {
      const q = { window: '15m', sort, order, q: 'pg-', limit: 1000 };
      const all = (await listStorageDisks(db, q, now)).items.map((r) => r.vmId);
      assert.equal(all.length, 23);
      const paged: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await listStorageDisks(db, { ...q, limit: 4, cursor }, now);
        paged.push(...page.items.map((r) => r.vmId));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      assert.deepEqual(paged, all, `${sort} ${order}`);
    }
});

test('a percentile sort orders disks by the percentile shown, in a kept window and in a tier', async () => {
  const now = Date.now();
  await maintainWindows(db, now);
  const n = LATENCY_BOUNDS_NS.length + 1;
  // Disk i: reads mostly in one bin and writes in another, ranked differently (a sort reading the
  // other direction's or the other percentile's bins gives another order); a 2 % tail three bins
  // up makes p99 rank otherwise than p90. Disks 12, 13 repeat 0, 1 (ties); 14 has no histograms.
  const shape = (bin: number, tail: number, ops: number) => {
    const c = new Array<number>(n).fill(0);
    c[bin] = (c[bin] ?? 0) + ops * 0.98;
    c[tail] = (c[tail] ?? 0) + ops * 0.02;
    return c;
  };
  const bins = (i: number, ops: number) => {
    const k = i % 12;
    return {
      read: shape((k * 5) % 12, ((k * 7) % 12) + 3, ops),
      write: shape(11 - k, ((k * 5) % 12) + 2, ops),
    };
  };
  const sample = (atMs: number, ops: number): HostStats => {
    const base = hostStats('hpct', atMs, ops);
    const template = base.disks[0];
    assert.ok(template);
    return {
      ...base,
      disks: Array.from({ length: 15 }, (_, i) => ({
        ...template,
        vm: `pct-${String(i).padStart(2, '0')}`,
        vmId: `00000000-0000-4000-8000-${String(700 + i).padStart(12, '0')}`,
        counterEpoch: 'pct',
        histograms:
          i === 14
            ? null
            : { boundariesNs: [...LATENCY_BOUNDS_NS], ...bins(i, ops), flush: new Array<number>(n).fill(0) },
      })),
    };
  };
  await ingestHostStats(db, sample(now - 20_000, 0));
  await ingestHostStats(db, sample(now - 10_000, 1000));
  const shown = {
    readP90: (r: StorageDiskRow) => r.read.p90LatencyMs,
    readP99: (r: StorageDiskRow) => r.read.p99LatencyMs,
    writeP90: (r: StorageDiskRow) => r.write.p90LatencyMs,
    writeP99: (r: StorageDiskRow) => r.write.p99LatencyMs,
  };
  for (const window of ['1h', '15m', '5m', '2h'])
    for (const [sort, value] of Object.entries(shown) as [
      keyof typeof shown,
      (r: StorageDiskRow) => number | null,
    ][])
      for (const order of ['asc', 'desc'] as const) {
        const q = { window, sort, order, q: 'pct-', limit: 100 };
        const rows = (await listStorageDisks(db, q, now)).items;
        assert.equal(rows.length, 15);
        // The figures are those of the histograms ingested.
        for (const r of rows) {
          const i = Number(r.vm.slice(4));
          const b = i === 14 ? null : bins(i, 1000);
          const p = sort.endsWith('90') ? P90 : P99;
          const expected = b && percentileMs(sort.startsWith('read') ? b.read : b.write, p);
          assert.equal(
            value(r),
            expected === null ? null : Math.round(expected * 1000) / 1000,
            `${r.vm} ${sort}`,
          );
        }
        const key = (r: StorageDiskRow) => `${r.vmId}/${r.disk}`;
        const expected = [...rows].sort((a, b) => {
          const x = value(a);
          const y = value(b);
          if (x === null || y === null) return x === y ? key(a).localeCompare(key(b)) : x === null ? 1 : -1;
          return (order === 'asc' ? x - y : y - x) || key(a).localeCompare(key(b));
        });
        assert.deepEqual(rows.map(key), expected.map(key), `${window} ${sort} ${order}`);
        assert.equal(value(rows[14]!), null, 'no histograms: last');
        const paged: string[] = [];
        let cursor: string | undefined;
        do {
          const page = await listStorageDisks(db, { ...q, limit: 4, cursor }, now);
          paged.push(...page.items.map(key));
          cursor = page.nextCursor ?? undefined;
        } while (cursor);
        assert.deepEqual(paged, rows.map(key), `${window} ${sort} ${order}, paged`);
      }
});

test('every window the console offers is kept; a kept window reads the buckets the explorer summed for it', () => {
  for (const text of EXPLORER_WINDOWS)
    assert.ok(
      WINDOWS.some((w) => w.seconds === parseWindow(text)),
      `${text}: no kept window`,
    );
  // The 7 d window has always been kept from hourly buckets; the others are those bucketTier reads.
  for (const w of WINDOWS.filter((x) => x.seconds !== 7 * 86_400))
    for (const nowMs of [t0, t0 + 1_234_567, Date.now()])
      assert.deepEqual(
        bucketTier(w.seconds, nowMs),
        { res: w.source, since: windowStart(w, Math.floor(nowMs / 1000)) },
        `${w.seconds} s`,
      );
});

test('a kept window not started yet (a manager just upgraded) reads its buckets instead', async () => {
  const fresh = await testDb(await mkdtemp(path.join(tmpdir(), 'sb-insight-fresh-')));
  try {
    const now = Date.now();
    await ingestHostStats(fresh, hostStats('hf', now - 20_000, 10));
    await ingestHostStats(fresh, hostStats('hf', now - 10_000, 20));
    const iops = async () =>
      (await listStorageDisks(fresh, { window: '15m', sort: 'vm', limit: 10 }, now)).items[0]?.iops;
    const before = await iops();
    assert.ok((before ?? 0) > 0, String(before));
    await maintainWindows(fresh, now);
    assert.equal(await iops(), before);
  } finally {
    await fresh.destroy();
  }
});

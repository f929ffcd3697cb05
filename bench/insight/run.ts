// Benchmark of the manager's metrics store and explorers at fabric scale: a fresh manager database
// holding 10,000 disks (200 hosts x 50 VMs, 2 datastores per host) with 8 days of samples, and
// 200,000 change records. Times the Storage Explorer's queries and the change search (p50/p99 of
// repeated calls, in-process: SQLite and the row shaping, no HTTP), one rule evaluation of the
// whole fabric, one prune, the live ingest rate and the database size on disk.
//
//   npm run bench:insight [-- --hosts 200 --vms 50 --live-minutes 3 --runs 15]
//
// How the 8 days get there in minutes: the last `--live-minutes` are ingested sample by sample
// (every host's GET /v1/stats every 10 s) through ingestHostStats, exactly as the collector
// does, and that is the ingest rate reported. Older history is bulk-loaded into the tiers the
// store keeps for it (5-minute buckets for 3 hours, hourly and daily buckets for 8 days, datastore
// space points) with loadSeries/loadDatastorePoints, the store's own upserts; then the sliding
// windows are summed from them once (maintainWindows), as after a manager restart.
//
// Results: bench/insight/results/<time>.{txt,json}.
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type {
  DiskStats,
  HostStats,
  SeriesPoint,
  StorageDatastoreQuery,
  StorageDiskQuery,
  Vm,
} from '../../src/api/index.js';
import {
  ChangeTimelineQuery,
  EXPLORER_WINDOWS,
  StorageDatastoreQuery as DsQuery,
  StorageDiskQuery as DiskQuery,
} from '../../src/api/index.js';
import {
  applySnapshot,
  changeTimeline,
  insertHost,
  insight,
  listChanges,
  openDatabase,
  recordChanges,
  SYSTEM,
  type Db,
} from '../../src/manager/index.js';

const { values: args } = parseArgs({
  options: {
    hosts: { type: 'string', default: '200' },
    vms: { type: 'string', default: '50' },
    'live-minutes': { type: 'string', default: '3' },
    runs: { type: 'string', default: '15' },
    changes: { type: 'string', default: '200000' },
    keep: { type: 'boolean', default: false },
  },
});
const HOSTS = Number(args.hosts);
const VMS = Number(args.vms);
const LIVE_MINUTES = Number(args['live-minutes']);
const RUNS = Number(args.runs);
const CHANGES = Number(args.changes);
const POLL_S = 10;
const DAYS = 8;
const GiB = 2 ** 30;
/** The agent's latency bounds (src/agent: 0.1 ... 500 ms), so ingestion re-bins like in production. */
const AGENT_BOUNDS_NS = [100, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 50_000, 100_000, 500_000].map(
  (us) => us * 1000,
);

/** A small deterministic generator: the same fabric every run. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface DiskModel {
  host: string;
  datastore: string;
  vm: string;
  vmId: string;
  readIops: number;
  writeIops: number;
  /** Share of operations per agent bin (sums to 1). */
  shape: number[];
  compat: string;
}

const hostName = (h: number) => `host-${String(h).padStart(3, '0')}`;
const uuid = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

function buildFabric(): DiskModel[] {
  const r = rng(42);
  const disks: DiskModel[] = [];
  for (let h = 0; h < HOSTS; h++)
    for (let v = 0; v < VMS; v++) {
      const n = h * VMS + v;
      // Most disks fast (peak 0.5-2 ms), one in twenty slow (peak 20-50 ms).
      const slow = r() < 0.05;
      const peak = slow ? 7 + Math.floor(r() * 2) : 2 + Math.floor(r() * 2);
      const shape = Array.from({ length: AGENT_BOUNDS_NS.length + 1 }, (_, i) =>
        Math.exp(-Math.abs(i - peak)),
      );
      const total = shape.reduce((a, b) => a + b, 0);
      disks.push({
        host: hostName(h),
        datastore: v % 2 === 0 ? 'local' : 'fast',
        vm: `vm-${String(n).padStart(5, '0')}`,
        vmId: uuid(n + 1),
        readIops: Math.round(r() * 200),
        writeIops: Math.round(r() * 100),
        shape: shape.map((x) => x / total),
        compat: r() < 0.02 ? '0.10' : '1.1',
      });
    }
  return disks;
}

const freeAt = (dsIndex: number, t: number, now: number) =>
  // Each datastore loses 0-20 GiB a day: days-until-full rankings have something to rank.
  Math.max(GiB, 2000 * GiB - ((dsIndex % 21) * GiB * (t - (now - DAYS * 86_400))) / 86_400);

function hostStats(host: number, disks: DiskModel[], atS: number, now: number): HostStats {
  const t = atS - (now - 86_400); // seconds of counters: the QEMU processes started a day ago
  const diskStats: DiskStats[] = disks.map((d) => {
    const reads = Math.round(d.readIops * t);
    const writes = Math.round(d.writeIops * t);
    const bins = (ops: number) => d.shape.map((f) => Math.round(f * ops));
    return {
      vm: d.vm,
      vmId: d.vmId,
      disk: 'root',
      datastore: d.datastore,
      format: 'qcow2',
      formatVersion: d.compat,
      virtualSizeBytes: 100 * GiB,
      allocatedBytes: 20 * GiB,
      counterEpoch: `${d.vmId}-1`,
      counters: {
        readOps: reads,
        writeOps: writes,
        flushOps: Math.round(writes / 10),
        readBytes: reads * 16_384,
        writeBytes: writes * 32_768,
        readTotalNs: reads * 1_200_000,
        writeTotalNs: writes * 2_500_000,
        flushTotalNs: writes * 100_000,
      },
      histograms: { boundariesNs: AGENT_BOUNDS_NS, read: bins(reads), write: bins(writes), flush: bins(0) },
    };
  });
  return {
    host: hostName(host),
    sampledAt: new Date(atS * 1000).toISOString(),
    datastores: ['local', 'fast'].map((name, i) => ({
      name,
      fsType: host % 25 === 0 && name === 'fast' ? 'xfs' : 'ext4',
      capacityBytes: 2048 * GiB,
      freeBytes: Math.round(freeAt(host * 2 + i, atS, now)),
      provisionedBytes: (VMS / 2) * 100 * GiB,
      allocatedBytes: (VMS / 2) * 20 * GiB,
    })),
    disks: diskStats,
    guests: disks.map((d, i) => ({
      vm: d.vm,
      vmId: d.vmId,
      agentVersion: i % 10 === 0 ? null : '7.2.0',
      filesystems:
        i % 10 === 0
          ? null
          : [
              {
                mountpoint: '/',
                type: 'ext4',
                totalBytes: 20 * GiB,
                usedBytes: (i % 20 === 1 ? 19.2 : 8) * GiB,
              },
            ],
    })),
  };
}

/**
 * The inventory as joins put it (insertHost, then the agent's report applied): every host with its
 * two datastores and its VMs, one disk each, named and placed as the stats report them. The series
 * routes look the VM or datastore up there before they read the store.
 */
async function joinFabric(db: Db, byHost: DiskModel[][]): Promise<void> {
  const mac = (n: number) =>
    `52:54:00:${[(n >> 16) & 255, (n >> 8) & 255, n & 255].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
  for (const [h, hostDisks] of byHost.entries()) {
    const info = {
      name: hostName(h),
      fabricAddress: `10.251.${h >> 8}.${(h & 255) + 1}`,
      agentVersion: '0.1.0',
      qemuVersion: '10.0.0',
      accelerator: 'tcg' as const,
      cpus: 64,
      memoryBytes: 512 * GiB,
      memoryFreeBytes: 256 * GiB,
      machineType: 'pc-q35-10.0',
      cpuModel: 'qemu64',
    };
    const vms = hostDisks.map((d, v): Vm => ({
      id: d.vmId,
      name: d.vm,
      state: 'running',
      vcpus: 2,
      memoryMiB: 2048,
      disks: [
        {
          id: 'root',
          datastore: d.datastore,
          path: `/srv/${d.datastore}/${d.vm}.qcow2`,
          format: 'qcow2',
          virtualSizeBytes: 100 * GiB,
          allocatedBytes: 20 * GiB,
          nodeName: 'root-fmt',
        },
      ],
      nics: [{ id: 'net0', vswitch: 'vmsw0', mac: mac(h * VMS + v + 1), tap: `tap${v}` }],
      machineType: info.machineType,
      cpuModel: info.cpuModel,
      accelerator: 'tcg',
      createdAt: '2026-11-01T00:00:00.000Z',
    }));
    const row = await db.transaction().execute((tx) =>
      insertHost(tx, SYSTEM, {
        agentUrl: `https://${info.fabricAddress}:7101`,
        certificate: { serial: String(h + 1), notAfter: '2027-12-01T00:00:00.000Z' },
        crlNumber: 0,
        info,
        poolId: null,
      }),
    );
    await applySnapshot(
      db,
      row,
      {
        info,
        datastores: ['local', 'fast'].map((name) => ({
          name,
          path: `/srv/${name}`,
          default: name === 'local',
          kind: 'local' as const,
          capacityBytes: 2048 * GiB,
          freeBytes: 1024 * GiB,
          class: name === 'fast' ? 'fast' : 'standard',
        })),
        vswitches: [{ name: 'vmsw0', bridge: 'vmsw0' }],
        vms,
      },
      { joining: true },
    );
  }
}

/** Points of a series that hold figures (a sample covered some of their bucket). */
const withFigures = (points: readonly SeriesPoint[]) => points.filter((p) => p.coveredSeconds > 0).length;

function quantile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? NaN;
}

async function timeIt(runs: number, fn: (i: number) => Promise<unknown>) {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn(i);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { n: runs, p50: quantile(times, 0.5), p99: quantile(times, 0.99) };
}

const pad = (s: string, n: number) => s.padEnd(n);
const lpad = (s: string, n: number) => s.padStart(n);

async function main() {
  const started = performance.now();
  // Read now: the table used to print the load at the end under "at the start".
  const loadAtStart = loadavg();
  const dir = await mkdtemp(path.join(tmpdir(), 'sb-bench-insight-'));
  const db: Db = await openDatabase(dir);
  const disks = buildFabric();
  const byHost = Array.from({ length: HOSTS }, (_, h) => disks.slice(h * VMS, (h + 1) * VMS));
  const now = Math.floor(Date.now() / 1000);
  const liveStart = now - LIVE_MINUTES * 60;
  const log = (m: string) => console.error(`[${((performance.now() - started) / 1000).toFixed(0)}s] ${m}`);

  // 1. One sample per host creates the rows (ids for the bulk load).
  for (let h = 0; h < HOSTS; h++)
    await insight.ingestHostStats(db, hostStats(h, byHost[h] ?? [], liveStart - 1800, now));
  const diskIds = new Map(
    (await db.selectFrom('stat_disks').select(['id', 'vm_id']).execute()).map((r) => [r.vm_id, r.id ?? 0]),
  );
  const dsRows = await db.selectFrom('stat_datastores').select(['id', 'host', 'name']).execute();
  const dsIds = new Map(dsRows.map((d) => [`${d.host}/${d.name}`, d.id ?? 0]));
  log(`${diskIds.size} disks, ${dsRows.length} datastores`);

  // 2. Bulk history: every tier's buckets before the live period.
  function* history(): Generator<insight.SeriesRow> {
    const tiers = [
      // The 30 s tier's 15 minutes too: the 15 min series reads it.
      { res: 30, from: now - 15 * 60, step: 30 },
      { res: 300, from: now - 3 * 3600, step: 300 },
      { res: 3600, from: now - DAYS * 86_400, step: 3600 },
      { res: 86_400, from: now - DAYS * 86_400, step: 86_400 },
    ];
    for (const tier of tiers) {
      const first = Math.floor(tier.from / tier.res) * tier.res;
      for (let b = first; b + tier.step <= liveStart; b += tier.step) {
        // A datastore's bucket: its disks' sums, their time once (as the store sums them at ingest).
        const perDs = new Map<number, insight.IoSums>();
        for (const d of disks) {
          const s = insight.emptySums();
          s.seconds = tier.step;
          s.readOps = d.readIops * tier.step;
          s.writeOps = d.writeIops * tier.step;
          s.readBytes = s.readOps * 16_384;
          s.writeBytes = s.writeOps * 32_768;
          s.readNs = s.readOps * 1_200_000;
          s.writeNs = s.writeOps * 2_500_000;
          // Store bins: the agent's shape spread like ingestion would (coarse, fine for timing).
          d.shape.forEach((f, i) => {
            s.readBins[i + 2] = f * s.readOps;
            s.writeBins[i + 2] = f * s.writeOps;
          });
          yield {
            kind: insight.SUBJECT_DISK,
            subject: diskIds.get(d.vmId) ?? 0,
            res: tier.res,
            bucket: b,
            sums: s,
          };
          const dsId = dsIds.get(`${d.host}/${d.datastore}`) ?? 0;
          perDs.set(dsId, insight.addSums(perDs.get(dsId) ?? insight.emptySums(), s));
        }
        for (const [ds, s] of perDs)
          yield {
            kind: insight.SUBJECT_DATASTORE,
            subject: ds,
            res: tier.res,
            bucket: b,
            sums: { ...s, seconds: tier.step },
          };
      }
    }
  }
  const tLoad = performance.now();
  let loaded = 0;
  const batch: insight.SeriesRow[] = [];
  for (const row of history()) {
    batch.push(row);
    if (batch.length >= 200_000) {
      loaded += await insight.loadSeries(db, batch);
      batch.length = 0;
    }
  }
  loaded += await insight.loadSeries(db, batch);
  function* dsPoints() {
    for (const [i, ds] of dsRows.entries())
      for (const tier of [
        { res: 300, from: now - DAYS * 86_400, step: 300 },
        { res: 0, from: liveStart - 1800, step: POLL_S },
      ])
        for (let at = tier.from; at < liveStart; at += tier.step)
          yield {
            ds: ds.id ?? 0,
            res: tier.res,
            at,
            capacityBytes: 2048 * GiB,
            freeBytes: Math.round(freeAt(i, at, now)),
            provisionedBytes: (VMS / 2) * 100 * GiB,
            allocatedBytes: (VMS / 2) * 20 * GiB,
          };
  }
  loaded += await insight.loadDatastorePoints(db, dsPoints());
  const tWindows = performance.now();
  await insight.maintainWindows(db, liveStart * 1000);
  const windowsSeconds = (performance.now() - tWindows) / 1000;
  const loadSeconds = (performance.now() - tLoad) / 1000;
  log(
    `bulk-loaded ${loaded} rows in ${loadSeconds.toFixed(0)} s, windows summed in ${windowsSeconds.toFixed(1)} s`,
  );

  // 3. Live ingest: every host every 10 s through the collector's path; the first poll of a disk
  //    after the bulk load only restarts its series.
  const tIngest = performance.now();
  let samples = 0;
  for (let at = liveStart; at <= now; at += POLL_S) {
    for (let h = 0; h < HOSTS; h++) {
      const r = await insight.ingestHostStats(db, hostStats(h, byHost[h] ?? [], at, now));
      samples += r.disks;
    }
    await insight.maintainWindows(db, at * 1000);
  }
  const ingestSeconds = (performance.now() - tIngest) / 1000;
  log(`ingested ${samples} disk samples in ${ingestSeconds.toFixed(0)} s`);

  // 4. 200k change records (the change search's haystack), in the write path's batches.
  const tChanges = performance.now();
  const kinds = ['vm', 'host', 'datastore', 'pool'] as const;
  for (let i = 0; i < CHANGES; i += 500) {
    await db.transaction().execute((tx) =>
      recordChanges(
        tx,
        i % 3000 === 0 ? { name: 'admin' } : SYSTEM,
        Array.from({ length: Math.min(500, CHANGES - i) }, (_, k) => {
          const n = i + k;
          const kind = kinds[n % kinds.length] ?? 'vm';
          return {
            object: {
              kind,
              id: uuid(n % 10_000),
              name: `${kind === 'vm' ? 'vm' : kind}-${String(n % 10_000).padStart(5, '0')}`,
            },
            action: 'setting-changed' as const,
            changes: [
              {
                field: n % 2 ? 'memoryMiB' : 'state',
                before: n % 2 ? 1024 : 'stopped',
                after: n % 2 ? 2048 : 'running',
              },
            ],
            host: hostName(n % HOSTS),
          };
        }),
        new Date((now - DAYS * 86_400 + (i * DAYS * 86_400) / CHANGES) * 1000).toISOString(),
      ),
    );
  }
  const changesSeconds = (performance.now() - tChanges) / 1000;
  log(`${CHANGES} change records in ${changesSeconds.toFixed(0)} s`);

  // 5. The rules over the fabric, and a prune pass.
  const evaluation = await timeIt(3, () => insight.evaluateIssues(db));
  const pruning = await timeIt(1, () => insight.prune(db));
  const issues = await insight.listStorageIssues(db, { state: 'active', limit: 1000 });

  // 6. Queries.
  const ds = (q: StorageDatastoreQuery) => DsQuery.parse(q);
  const dq = (q: StorageDiskQuery) => DiskQuery.parse(q);
  const r = rng(7);
  const vmName = () => `vm-${String(Math.floor(r() * HOSTS * VMS)).padStart(5, '0')}`;
  const rows: { what: string; n: number; p50: number; p99: number }[] = [];
  // Every view is read from SQLite each time (the explorer keeps no rows between queries): "cold"
  // and "warm" rows of earlier runs, when it did, are the same kind of call now.
  const measure = async (what: string, fn: (i: number) => Promise<unknown>) => {
    await fn(-1); // the statement cache
    rows.push({ what, ...(await timeIt(RUNS, fn)) });
    log(what);
  };
  await measure('datastores, 1h, by name', () => insight.listStorageDatastores(db, ds({})));
  await measure('datastores, 7d, by days until full', () =>
    insight.listStorageDatastores(db, ds({ window: '7d', sort: 'daysUntilFull', order: 'asc' })),
  );
  await measure('datastores, 1h, by write p99, search', () =>
    insight.listStorageDatastores(db, ds({ sort: 'writeP99', q: 'host-1' })),
  );
  await measure('disks, 1h, by VM, first page of 100', () => insight.listStorageDisks(db, dq({})));
  await measure('disks, 1h, by write p99 desc', () => insight.listStorageDisks(db, dq({ sort: 'writeP99' })));
  const p99Page1 = await insight.listStorageDisks(db, dq({ sort: 'writeP99' }));
  await measure('disks, 1h, by write p99 desc, 2nd page', () =>
    insight.listStorageDisks(db, dq({ sort: 'writeP99', cursor: p99Page1.nextCursor ?? undefined })),
  );
  await measure('disks, 1h, by read p90 asc', () =>
    insight.listStorageDisks(db, dq({ sort: 'readP90', order: 'asc' })),
  );
  await measure('disks, 24h, by read p99', () =>
    insight.listStorageDisks(db, dq({ window: '24h', sort: 'readP99' })),
  );
  await measure('disks, 7d, by write p90', () =>
    insight.listStorageDisks(db, dq({ window: '7d', sort: 'writeP90' })),
  );
  await measure('disks, 15m, by write p99', () =>
    insight.listStorageDisks(db, dq({ window: '15m', sort: 'writeP99' })),
  );
  await measure('disks, 6h, by read p99', () =>
    insight.listStorageDisks(db, dq({ window: '6h', sort: 'readP99' })),
  );
  await measure('disks, 2h (25 5-minute buckets), by write p99', () =>
    insight.listStorageDisks(db, dq({ window: '2h', sort: 'writeP99' })),
  );
  await measure('disks, 8d, by write p99', () =>
    insight.listStorageDisks(db, dq({ window: '8d', sort: 'writeP99' })),
  );
  await measure('disks, 1h, one host, by write p99', () =>
    insight.listStorageDisks(db, dq({ host: hostName(Math.floor(r() * HOSTS)), sort: 'writeP99' })),
  );
  await measure('disks, 1h, by IOPS, warm (paging, re-sorting)', (i) =>
    insight.listStorageDisks(db, dq({ sort: i % 2 ? 'iops' : 'throughput', order: i % 3 ? 'desc' : 'asc' })),
  );
  await measure('disks, 1h, search a VM name', () => insight.listStorageDisks(db, dq({ q: vmName() })));
  await measure('disks, 1h, one host, by IOPS', () =>
    insight.listStorageDisks(db, dq({ host: hostName(Math.floor(r() * HOSTS)), sort: 'iops' })),
  );
  await measure('disks, 24h, by throughput', () =>
    insight.listStorageDisks(db, dq({ window: '24h', sort: 'throughput' })),
  );
  await measure('disks, 7d, by IOPS', () => insight.listStorageDisks(db, dq({ window: '7d', sort: 'iops' })));
  await measure('disks, 15m (5-minute buckets), by read latency', () =>
    insight.listStorageDisks(db, dq({ window: '15m', sort: 'readLatency' })),
  );
  await measure('disks, 6h (hourly buckets), by IOPS', () =>
    insight.listStorageDisks(db, dq({ window: '6h', sort: 'iops' })),
  );
  await measure('disks, 8d (daily buckets), by IOPS', () =>
    insight.listStorageDisks(db, dq({ window: '8d', sort: 'iops' })),
  );
  await measure('issues, active, first page', () =>
    insight.listStorageIssues(db, { state: 'active', limit: 100 }),
  );
  await measure('changes, newest 100', () => listChanges(db, { limit: 100 }));
  await measure('changes, text search (common)', () => listChanges(db, { limit: 100, text: 'memoryMiB' }));
  await measure('changes, text search (one object)', () => listChanges(db, { limit: 100, text: vmName() }));
  await measure('changes, text search (no match)', () =>
    listChanges(db, { limit: 100, text: 'no-such-thing' }),
  );
  // The Change Explorer's chart: the week (default window) in hours, by risk or kind, with the
  // list's filters.
  const tl = (q: ChangeTimelineQuery) => changeTimeline(db, ChangeTimelineQuery.parse(q));
  await measure('timeline, week by hour, by risk', () => tl({}));
  await measure('timeline, week by hour, by kind', () => tl({ by: 'kind' }));
  await measure('timeline, week, text (one object)', () => tl({ text: vmName() }));
  await measure('timeline, week, text (common)', () => tl({ text: 'memoryMiB' }));
  await measure('timeline, week, kind + risk + text', () =>
    tl({ kind: 'vm', risk: 'high,medium', text: 'vm-00' }),
  );
  await measure('timeline, 1d by hour, text', () =>
    tl({ since: new Date((now - 86_400) * 1000).toISOString(), text: 'vm-00' }),
  );
  await measure('changes, kind + since 1d + text', () =>
    listChanges(db, {
      limit: 100,
      kind: 'vm',
      since: new Date((now - 86_400) * 1000).toISOString(),
      text: 'vm-00',
    }),
  );

  // The datastore page (console: pages/datastore.tsx): its explorer row, its disks sorted by the
  // manager a page (50) at a time, and the active issues it picks its own from (the console reads
  // them once, up to 1000, and filters by subject).
  const pick = () => {
    const d = disks[Math.floor(r() * disks.length)] ?? disks[0];
    if (!d) throw new Error('no disks');
    return d;
  };
  await measure('datastore page: its row, 1h', () => {
    const d = pick();
    return insight.listStorageDatastores(db, ds({ host: d.host, q: d.datastore, limit: 100 }));
  });
  await measure('datastore page: its disks, 1h, by write p99', () => {
    const d = pick();
    return insight.listStorageDisks(
      db,
      dq({ host: d.host, datastore: d.datastore, sort: 'writeP99', limit: 50 }),
    );
  });
  await measure('datastore page: its disks, 7d, by VM', () => {
    const d = pick();
    return insight.listStorageDisks(
      db,
      dq({ window: '7d', host: d.host, datastore: d.datastore, limit: 50 }),
    );
  });
  await measure('issues, active, up to 1000 (console marks)', () =>
    insight.listStorageIssues(db, { state: 'active', limit: 1000 }),
  );

  // 7. The charts' time series (routes .../series). They look the VM or datastore up in the
  //    inventory first: it is joined now, after the other views, so those compare with earlier
  //    runs (a join records a change per host, datastore and VM). A random disk, VM or datastore
  //    each call; "points" says how many of a series' points held figures.
  const tJoin = performance.now();
  await joinFabric(db, byHost);
  const joinSeconds = (performance.now() - tJoin) / 1000;
  log(`joined ${HOSTS} hosts in ${joinSeconds.toFixed(0)} s`);
  const nowMs = now * 1000;
  const seriesPoints = new Map<string, { points: number; withFigures: number }>();
  const seen = (what: string, points: readonly SeriesPoint[]) => {
    const was = seriesPoints.get(what);
    // The fewest with figures over the calls: a series missing buckets shows.
    if (!was || withFigures(points) < was.withFigures)
      seriesPoints.set(what, { points: points.length, withFigures: withFigures(points) });
  };
  for (const window of EXPLORER_WINDOWS) {
    const what = `series, disk, ${window}`;
    await measure(what, async () => {
      const d = pick();
      seen(what, (await insight.diskSeries(db, d.vm, 'root', window, nowMs)).points);
    });
  }
  for (const window of EXPLORER_WINDOWS) {
    const what = `series, VM, ${window}`;
    await measure(what, async () => {
      seen(what, (await insight.vmSeries(db, pick().vmId, window, nowMs)).points);
    });
  }
  for (const window of EXPLORER_WINDOWS) {
    const what = `series, datastore, ${window}`;
    await measure(what, async () => {
      const d = pick();
      seen(what, (await insight.datastoreSeries(db, d.host, d.datastore, window, nowMs)).points);
    });
  }
  for (const row of rows) {
    const p = seriesPoints.get(row.what);
    if (p) row.what = `${row.what} (${p.withFigures}/${p.points} points)`;
  }

  await db.destroy();
  const size = async (f: string) => (await stat(path.join(dir, f)).catch(() => ({ size: 0 }))).size;
  const dbBytes = (await size('manager.db')) + (await size('manager.db-wal'));

  const w = Math.max(...rows.map((x) => x.what.length), 30);
  const lines = [
    `Insight benchmark: ${disks.length} disks (${HOSTS} hosts x ${VMS} VMs, ${dsRows.length} datastores), ${DAYS} days, ${CHANGES} change records`,
    `machine: ${cpus().length} CPUs, load average at the start ${loadAtStart
      .map((l) => l.toFixed(1))
      .join(' ')}`,
    '',
    `| ${pad('query (in-process)', w)} |  n | p50 ms | p99 ms |`,
    `|${'-'.repeat(w + 2)}|---:|-------:|-------:|`,
    ...rows.map(
      (x) =>
        `| ${pad(x.what, w)} | ${lpad(String(x.n), 2)} | ${lpad(x.p50.toFixed(1), 6)} | ${lpad(x.p99.toFixed(1), 6)} |`,
    ),
    '',
    `rule evaluation of the whole fabric: p50 ${evaluation.p50.toFixed(0)} ms (${issues.items.length} active issues)`,
    `prune pass: ${pruning.p50.toFixed(0)} ms`,
    `live ingest: ${samples} disk samples in ${ingestSeconds.toFixed(1)} s = ${Math.round(samples / ingestSeconds)} samples/s ` +
      `(${(ingestSeconds / ((LIVE_MINUTES * 60) / POLL_S + 1)).toFixed(2)} s of each ${POLL_S} s poll round for ${disks.length} disks)`,
    `inventory (${HOSTS} hosts joined, for the series): ${joinSeconds.toFixed(0)} s`,
    `bulk load: ${loaded} rows in ${loadSeconds.toFixed(0)} s, windows summed from them in ${windowsSeconds.toFixed(1)} s; change records: ${CHANGES} in ${changesSeconds.toFixed(0)} s`,
    `database on disk: ${(dbBytes / 2 ** 20).toFixed(0)} MiB`,
    `load average at the end: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}; run time ${((performance.now() - started) / 1000).toFixed(0)} s`,
  ];
  const text = lines.join('\n');
  console.log(text);
  const out = path.join(import.meta.dirname, 'results');
  await mkdir(out, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  await writeFile(path.join(out, `${stamp}.txt`), `${text}\n`);
  await writeFile(
    path.join(out, `${stamp}.json`),
    `${JSON.stringify({ disks: disks.length, hosts: HOSTS, vms: VMS, days: DAYS, changes: CHANGES, rows, seriesPoints: Object.fromEntries(seriesPoints), evaluation, pruning, samples, ingestSeconds, loaded, loadSeconds, dbBytes, loadavgStart: loadAtStart, loadavg: loadavg() }, null, 2)}\n`,
  );
  if (!args.keep) await rm(dir, { recursive: true, force: true });
  else console.error(`database kept in ${dir}`);
}

await main();

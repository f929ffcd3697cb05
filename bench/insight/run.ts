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
import type { DiskStats, HostStats, StorageDatastoreQuery, StorageDiskQuery } from '../../src/api/index.js';
import {
  ChangeTimelineQuery,
  StorageDatastoreQuery as DsQuery,
  StorageDiskQuery as DiskQuery,
} from '../../src/api/index.js';
import {
  changeTimeline,
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
  log(`${diskIds.size} disks, ${dsRows.length} datastores`);

  // 2. Bulk history: every tier's buckets before the live period.
  function* history(): Generator<insight.SeriesRow> {
    const tiers = [
      { res: 300, from: now - 3 * 3600, step: 300 },
      { res: 3600, from: now - DAYS * 86_400, step: 3600 },
      { res: 86_400, from: now - DAYS * 86_400, step: 86_400 },
    ];
    for (const tier of tiers) {
      const first = Math.floor(tier.from / tier.res) * tier.res;
      for (let b = first; b + tier.step <= liveStart; b += tier.step) {
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
        }
        for (const ds of dsRows) perDs.set(ds.id ?? 0, insight.emptySums());
        for (const [ds, s] of perDs) {
          s.seconds = tier.step;
          s.readOps = VMS * 50 * tier.step;
          yield { kind: insight.SUBJECT_DATASTORE, subject: ds, res: tier.res, bucket: b, sums: s };
        }
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

  await db.destroy();
  const size = async (f: string) => (await stat(path.join(dir, f)).catch(() => ({ size: 0 }))).size;
  const dbBytes = (await size('manager.db')) + (await size('manager.db-wal'));

  const w = Math.max(...rows.map((x) => x.what.length), 30);
  const lines = [
    `Insight benchmark: ${disks.length} disks (${HOSTS} hosts x ${VMS} VMs, ${dsRows.length} datastores), ${DAYS} days, ${CHANGES} change records`,
    `machine: ${cpus().length} CPUs, load average at the start ${loadavg()
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
    `${JSON.stringify({ disks: disks.length, hosts: HOSTS, vms: VMS, days: DAYS, changes: CHANGES, rows, evaluation, pruning, samples, ingestSeconds, loaded, loadSeconds, dbBytes, loadavg: loadavg() }, null, 2)}\n`,
  );
  if (!args.keep) await rm(dir, { recursive: true, force: true });
  else console.error(`database kept in ${dir}`);
}

await main();

import type { BlockCounters, HostStats, LatencyHistograms } from '../../api/index.js';
import { rawAll, rawRun, runRaw, type Db, type RawProgram, type RawStatement } from '../db.js';
import { BIN_COUNT, diskInterval, emptySums, zeroBins, type IoSums } from './rates.js';

/*
 * The metrics store: each host's stats sample goes in as (1) the current row of every datastore,
 * disk and guest, (2) the disk's interval since its previous sample, added to the I/O series of
 * the disk and of its datastore in every tier at once (5-minute, hourly and daily sums and
 * histogram bins: a bucket is always up to date, no separate downsampling pass) and to the
 * sliding windows the explorer shows most (1 h, 24 h, 7 d: one row per subject, so those views
 * read 10,000 rows instead of summing 100,000s), and (3) the datastore's space (raw and 5-minute
 * points, for the free-space trend). maintainWindows() moves each window on as time passes by
 * taking out the bucket that left it; prune() drops each tier's rows past its age.
 */

/** How long the store keeps anything (the hourly and daily tiers, ended issues, gone disks). */
export const RETENTION_SECONDS = 8 * 86_400;

/** Tiers of the I/O series: bucket length and how long buckets are kept after they end. */
export const IO_TIERS = [
  // Windows up to 10 min (placement's demand, issue 18) read these: demand shows within a minute.
  { res: 30, keepSeconds: 15 * 60 },
  // Windows up to 2 h and the rules' sustained period read these; the 1 h window subtracts them.
  { res: 300, keepSeconds: 3 * 3600 },
  { res: 3600, keepSeconds: RETENTION_SECONDS },
  { res: 86_400, keepSeconds: RETENTION_SECONDS },
] as const;

/**
 * Sliding windows kept as one row per subject (io_series.res = code, bucket 0): the sums of the
 * source tier's buckets from the window's start on, which is the current bucket less `seconds`
 * (so a window covers between `seconds` and `seconds` + one bucket).
 */
export const WINDOWS = [
  { code: -1, seconds: 3600, source: 300 },
  { code: -2, seconds: 86_400, source: 3600 },
  { code: -3, seconds: 7 * 86_400, source: 3600 },
  // The console's other windows (EXPLORER_WINDOWS), each from the tier the explorer read for it
  // before (explorer.ts bucketTier): the same buckets, one row per subject instead of 3 to 25,
  // so a percentile sort over 10,000 disks sums no bins at read time.
  { code: -4, seconds: 15 * 60, source: 300 },
  { code: -5, seconds: 6 * 3600, source: 3600 },
  { code: -6, seconds: 8 * 86_400, source: 86_400 },
] as const;

/** Tiers of datastore space: raw for short trends, 5-minute points for the trend window. */
export const DS_TIERS = [
  { res: 0, keepSeconds: 30 * 60 },
  { res: 300, keepSeconds: RETENTION_SECONDS },
] as const;

export const SUBJECT_DISK = 0;
export const SUBJECT_DATASTORE = 1;

const bucketOf = (epochSeconds: number, res: number) =>
  res === 0 ? epochSeconds : Math.floor(epochSeconds / res) * res;

/** Where a window starts at `now` (epoch seconds). */
export const windowStart = (w: (typeof WINDOWS)[number], now: number) => bucketOf(now, w.source) - w.seconds;

export const SUM_COLUMNS = [
  'seconds',
  'rd_ops',
  'wr_ops',
  'fl_ops',
  'rd_bytes',
  'wr_bytes',
  'rd_ns',
  'wr_ns',
  'fl_ns',
];
export const READ_BIN_COLUMNS = Array.from({ length: BIN_COUNT }, (_, i) => `r${i}`);
export const WRITE_BIN_COLUMNS = Array.from({ length: BIN_COUNT }, (_, i) => `w${i}`);
const BIN_COLUMNS = [...READ_BIN_COLUMNS, ...WRITE_BIN_COLUMNS];
/** Every summed column of io_series, in the order sumsValues() gives them. */
export const IO_VALUE_COLUMNS = [...SUM_COLUMNS, ...BIN_COLUMNS];

export function sumsValues(s: IoSums): number[] {
  return [
    s.seconds,
    s.readOps,
    s.writeOps,
    s.flushOps,
    s.readBytes,
    s.writeBytes,
    s.readNs,
    s.writeNs,
    s.flushNs,
    ...s.readBins,
    ...s.writeBins,
  ];
}

/** A row of summed columns (named as IO_VALUE_COLUMNS, any prefix-free alias) back into sums. */
export function sumsFromRow(row: Record<string, unknown>): IoSums {
  const n = (k: string) => Number(row[k] ?? 0);
  return {
    seconds: n('seconds'),
    readOps: n('rd_ops'),
    writeOps: n('wr_ops'),
    flushOps: n('fl_ops'),
    readBytes: n('rd_bytes'),
    writeBytes: n('wr_bytes'),
    readNs: n('rd_ns'),
    writeNs: n('wr_ns'),
    flushNs: n('fl_ns'),
    // Rows of a query that summed no bins get empty ones.
    readBins: 'r0' in row ? READ_BIN_COLUMNS.map(n) : zeroBins(),
    writeBins: 'w0' in row ? WRITE_BIN_COLUMNS.map(n) : zeroBins(),
  };
}

/**
 * `agg`: one subject kind's sums per subject over a tier's buckets from a start (params: res,
 * bucket, kind), for a query to join on `agg.subject`. Summed first and joined after: the series
 * are time-major, so one range scan serves every subject.
 */
export function aggCte(columns: readonly string[] = IO_VALUE_COLUMNS, res?: number): string {
  // A sliding window has one row per subject: selected as is, the join is a primary-key lookup
  // instead of a grouped, materialised and indexed temporary table.
  if (res !== undefined && res < 0)
    return `with agg as (select subject, ${columns.join(', ')}
      from io_series where res = ? and bucket = ? and kind = ?)`;
  return `with agg as (select subject, ${columns.map((c) => `sum(${c}) as ${c}`).join(', ')}
    from io_series where res = ? and bucket >= ? and kind = ? group by subject)`;
}
export const aggColumns = (columns: readonly string[] = IO_VALUE_COLUMNS) =>
  columns.map((c) => `agg.${c}`).join(', ');

/**
 * A statement over many rows (`values (...), (...)`, the same text on both databases): one round
 * trip for a host's rows on PostgreSQL instead of one per row (a 2,000-disk round took seconds).
 * `row` is one row's tuple (`?` each value); the text for n rows is built once and kept.
 */
class Batched {
  readonly width: number;
  private readonly texts = new Map<number, string>();
  constructor(
    private readonly head: string,
    private readonly row: string,
    private readonly tail = '',
  ) {
    this.width = row.split('?').length - 1;
  }
  text(rows: number): string {
    let text = this.texts.get(rows);
    if (text === undefined)
      this.texts.set(rows, (text = `${this.head} ${Array(rows).fill(this.row).join(', ')} ${this.tail}`));
    return text;
  }
  /** Rows per statement: at most MAX_PARAMS parameters (SQLite's limit is 32,766, PostgreSQL's 65,535). */
  get perStatement(): number {
    return Math.max(1, Math.floor(MAX_PARAMS / this.width));
  }
}
const MAX_PARAMS = 8000;
const tuple = (n: number) => `(${Array(n).fill('?').join(', ')})`;

/** Rows `from`.. of a batch as one statement's parameters (a loop: spreading thousands costs). */
function batchParams(statement: Batched, rows: readonly unknown[][], from: number): RawStatement['params'] {
  const params: unknown[] = [];
  const end = Math.min(rows.length, from + statement.perStatement);
  for (let i = from; i < end; i++) for (const value of rows[i]!) params.push(value);
  return params;
}
/** A batched statement's returned rows, over as many statements as the rows need. */
function* batchAll<R>(statement: Batched, rows: readonly unknown[][]): Generator<RawStatement, R[], unknown> {
  const out: R[] = [];
  for (let i = 0; i < rows.length; i += statement.perStatement) {
    const sql = statement.text(Math.min(statement.perStatement, rows.length - i));
    for (const row of (yield { sql, params: batchParams(statement, rows, i), mode: 'all' }) as R[])
      out.push(row);
  }
  return out;
}
/** Runs a batched statement over `rows` (none: no statement). */
function* batchRun(statement: Batched, rows: readonly unknown[][]): Generator<RawStatement, void, unknown> {
  for (let i = 0; i < rows.length; i += statement.perStatement) {
    const sql = statement.text(Math.min(statement.perStatement, rows.length - i));
    yield { sql, params: batchParams(statement, rows, i), mode: 'run' };
  }
}

const cols = IO_VALUE_COLUMNS;
/**
 * The ingest's statements, one row each (`?`) or a list (`in (...)`). A batch must not name the
 * same key twice (PostgreSQL refuses to update a row twice in one statement): a host's sample
 * names each datastore, disk and guest once. An upsert names its table in its sums, which
 * PostgreSQL would otherwise find ambiguous.
 */
const BATCH = {
  upsertDatastores: new Batched(
    `insert into stat_datastores (host, name, fs_type, capacity_bytes, free_bytes, provisioned_bytes,
       allocated_bytes, sampled_at, lost) values`,
    tuple(9),
    `on conflict (host, name) do update set fs_type = excluded.fs_type,
       capacity_bytes = excluded.capacity_bytes, free_bytes = excluded.free_bytes,
       provisioned_bytes = excluded.provisioned_bytes, allocated_bytes = excluded.allocated_bytes,
       sampled_at = excluded.sampled_at, lost = excluded.lost
     returning id, name`,
  ),
  upsertDsSeries: new Batched(
    `insert into ds_series (ds, res, bucket, at, capacity_bytes, free_bytes, provisioned_bytes,
       allocated_bytes) values`,
    tuple(8),
    `on conflict (ds, res, bucket) do update set at = excluded.at,
       capacity_bytes = excluded.capacity_bytes, free_bytes = excluded.free_bytes,
       provisioned_bytes = excluded.provisioned_bytes, allocated_bytes = excluded.allocated_bytes`,
  ),
  disksByVm: new Batched(
    `select d.id, d.vm_id, d.disk_id, c.counter_epoch, c.counters, c.histograms, c.sampled_ms
     from stat_disks d left join stat_disk_counters c on c.id = d.id where d.vm_id in (`,
    '?',
    ')',
  ),
  insertDisks: new Batched(
    `insert into stat_disks (vm_id, disk_id, vm_name, host, datastore, format, format_version,
       virtual_size_bytes, allocated_bytes, sampled_at, sampled_ms, gone) values`,
    `(${Array(11).fill('?').join(', ')}, 0)`,
    'returning id, vm_id, disk_id',
  ),
  // Known disks by id: an upsert that always updates (PostgreSQL's identity is not drawn, as an
  // upsert on (vm_id, disk_id) would draw it for every row).
  updateDisks: new Batched(
    `insert into stat_disks (id, vm_id, disk_id, vm_name, host, datastore, format, format_version,
       virtual_size_bytes, allocated_bytes, sampled_at, sampled_ms, gone) values`,
    `(${Array(12).fill('?').join(', ')}, 0)`,
    `on conflict (id) do update set vm_name = excluded.vm_name, host = excluded.host,
       datastore = excluded.datastore, format = excluded.format, format_version = excluded.format_version,
       virtual_size_bytes = excluded.virtual_size_bytes, allocated_bytes = excluded.allocated_bytes,
       sampled_at = excluded.sampled_at, sampled_ms = excluded.sampled_ms, gone = 0`,
  ),
  upsertCounters: new Batched(
    `insert into stat_disk_counters (id, counter_epoch, counters, histograms, sampled_ms) values`,
    tuple(5),
    `on conflict (id) do update set counter_epoch = excluded.counter_epoch, counters = excluded.counters,
       histograms = excluded.histograms, sampled_ms = excluded.sampled_ms`,
  ),
  markGone: new Batched(`update stat_disks set gone = 1 where id in (`, '?', ')'),
  upsertIo: new Batched(
    `insert into io_series (kind, subject, res, bucket, ${cols.join(', ')}) values`,
    tuple(4 + cols.length),
    `on conflict (res, bucket, kind, subject) do update set
       ${cols.map((c) => `${c} = io_series.${c} + excluded.${c}`).join(', ')}`,
  ),
  upsertGuests: new Batched(
    `insert into stat_guests (vm_id, vm_name, host, agent_version, filesystems, used_bytes, size_bytes,
       fullest_percent, sampled_at) values`,
    tuple(9),
    `on conflict (vm_id) do update set vm_name = excluded.vm_name, host = excluded.host,
       agent_version = excluded.agent_version, filesystems = excluded.filesystems,
       used_bytes = excluded.used_bytes, size_bytes = excluded.size_bytes,
       fullest_percent = excluded.fullest_percent, sampled_at = excluded.sampled_at`,
  ),
};

/** The store's other statements, built once (the same text on both databases: raw programs, db.ts). */
const SQL = {
  upsertDsSeries: BATCH.upsertDsSeries.text(1),
  upsertIo: BATCH.upsertIo.text(1),
  deleteCounters: `delete from stat_disk_counters where id = ?`,
  hostDisks: `select id, vm_id, disk_id from stat_disks where host = ? and gone = 0`,
  hostDatastores: `select id, name from stat_datastores where host = ?`,
  deleteDatastore: `delete from stat_datastores where id = ?`,
  deleteDsSeries: `delete from ds_series where ds = ?`,
  deleteWindowRows: `delete from io_series where res < 0 and bucket = 0 and kind = ? and subject = ?`,
  windowStarts: `select res, start from io_windows`,
  pruneIo: `delete from io_series where res = ? and bucket < ?`,
  pruneDs: `delete from ds_series where res = ? and bucket < ?`,
  pruneIssues: `delete from storage_issues where ended_at is not null and ended_at < ?`,
  goneDisks: `select id from stat_disks where gone = 1 and sampled_ms < ?`,
  deleteDisk: `delete from stat_disks where id = ?`,
  pruneGuests: `delete from stat_guests where sampled_at < ?`,
  deleteWindow: `delete from io_series where res = ? and bucket = 0`,
  rebuildWindow: `insert into io_series (res, bucket, kind, subject, ${cols.join(', ')})
     select ?, 0, kind, subject, ${cols.map((c) => `sum(${c})`).join(', ')}
     from io_series where res = ? and bucket >= ? group by kind, subject`,
  subtractBucket: `update io_series as w set ${cols.map((c) => `${c} = w.${c} - t.${c}`).join(', ')}
     from io_series as t
     where t.res = ? and t.bucket = ? and w.res = ? and w.bucket = 0 and w.kind = t.kind and w.subject = t.subject`,
  dropQuietWindowRows: `delete from io_series where res = ? and bucket = 0 and seconds < 0.001`,
  setWindowStart: `insert into io_windows (res, start) values (?, ?) on conflict (res) do update set start = excluded.start`,
};

export interface IngestResult {
  disks: number;
  /** Disks whose sample made an interval with the previous one (the others start a series). */
  intervals: number;
}

interface PreviousDisk {
  id: number;
  counter_epoch: string | null;
  counters: string | null;
  histograms: string | null;
  sampled_ms: number | null;
}
const diskKey = (vmId: string, disk: string) => `${vmId}\n${disk}`;

const parseJson = <T>(text: string | null): T | null => (text === null ? null : (JSON.parse(text) as T));

/** Stores one host's stats sample (see the top of this file); one transaction. */
export function ingestHostStats(db: Db, stats: HostStats): Promise<IngestResult> {
  return runRaw(db, () => ingestOn(stats), { transaction: true });
}

/** Several samples in one transaction (the benchmark's backfill; same effect as one by one). */
export function ingestMany(db: Db, samples: readonly HostStats[]): Promise<IngestResult> {
  return runRaw(
    db,
    function* () {
      const total = { disks: 0, intervals: 0 };
      for (const s of samples) {
        const r = yield* ingestOn(s);
        total.disks += r.disks;
        total.intervals += r.intervals;
      }
      return total;
    },
    { transaction: true },
  );
}

function* ingestOn(stats: HostStats): RawProgram<IngestResult> {
  const atMs = Date.parse(stats.sampledAt);
  const at = Math.floor(atMs / 1000);
  // The windows an interval ending now adds to: those that have started (maintainWindows).
  const starts = new Map(
    (yield* rawAll<{ res: number; start: number }>(SQL.windowStarts)).map((w) => [w.res, w.start]),
  );
  const targets: [res: number, bucket: number][] = IO_TIERS.map((t) => [t.res, bucketOf(at, t.res)]);
  for (const w of WINDOWS) {
    const start = starts.get(w.code);
    if (start !== undefined && bucketOf(at, w.source) >= start) targets.push([w.code, 0]);
  }
  const dsIds = new Map<string, number>();
  const dsRows = stats.datastores.map((d) => [
    stats.host,
    d.name,
    d.fsType,
    d.capacityBytes,
    d.freeBytes,
    d.provisionedBytes,
    d.allocatedBytes,
    stats.sampledAt,
    d.lost === undefined ? null : JSON.stringify(d.lost),
  ]);
  for (const row of yield* batchAll<{ id: number; name: string }>(BATCH.upsertDatastores, dsRows))
    dsIds.set(row.name, row.id);
  yield* batchRun(
    BATCH.upsertDsSeries,
    stats.datastores.flatMap((d) =>
      DS_TIERS.map((tier) => [
        dsIds.get(d.name),
        tier.res,
        bucketOf(at, tier.res),
        at,
        d.capacityBytes,
        d.freeBytes,
        d.provisionedBytes,
        d.allocatedBytes,
      ]),
    ),
  );

  // A datastore its host no longer reports is gone, with its series.
  for (const row of yield* rawAll<{ id: number; name: string }>(SQL.hostDatastores, stats.host)) {
    if (dsIds.has(row.name)) continue;
    yield* rawRun(SQL.deleteWindowRows, SUBJECT_DATASTORE, row.id);
    yield* rawRun(SQL.deleteDsSeries, row.id);
    yield* rawRun(SQL.deleteDatastore, row.id);
  }

  // The disks' previous samples, looked up by VM in a few statements (not one per disk).
  const previous = new Map<string, PreviousDisk>();
  const vmIds = [...new Set(stats.disks.map((d) => d.vmId))].map((id) => [id]);
  for (const row of yield* batchAll<PreviousDisk & { vm_id: string; disk_id: string }>(
    BATCH.disksByVm,
    vmIds,
  ))
    previous.set(diskKey(row.vm_id, row.disk_id), row);

  let intervals = 0;
  const perDatastore = new Map<number, IoSums>();
  const seen = new Set<number>();
  const known: unknown[][] = [];
  const fresh: unknown[][] = [];
  const ioRows: unknown[][] = [];
  for (const disk of stats.disks) {
    const prev = previous.get(diskKey(disk.vmId, disk.disk));
    const row = [
      disk.vmId,
      disk.disk,
      disk.vm,
      stats.host,
      disk.datastore,
      disk.format,
      disk.formatVersion,
      disk.virtualSizeBytes,
      disk.allocatedBytes,
      stats.sampledAt,
      atMs,
    ];
    if (!prev) {
      fresh.push(row);
      continue;
    }
    known.push([prev.id, ...row]);
    seen.add(prev.id);
    const interval = diskInterval(
      {
        at: prev.sampled_ms ?? atMs,
        epoch: prev.counter_epoch,
        counters: parseJson<BlockCounters>(prev.counters),
        histograms: parseJson<LatencyHistograms>(prev.histograms),
      },
      { at: atMs, epoch: disk.counterEpoch, counters: disk.counters, histograms: disk.histograms },
    );
    if (!interval) continue;
    intervals++;
    const values = sumsValues(interval);
    for (const [res, bucket] of targets) ioRows.push([SUBJECT_DISK, prev.id, res, bucket, ...values]);
    const ds = dsIds.get(disk.datastore);
    if (ds !== undefined) perDatastore.set(ds, addInto(perDatastore.get(ds) ?? emptySums(), interval));
  }
  yield* batchRun(BATCH.updateDisks, known);
  const ids = new Map<string, number>();
  for (const row of yield* batchAll<{ id: number; vm_id: string; disk_id: string }>(BATCH.insertDisks, fresh))
    ids.set(diskKey(row.vm_id, row.disk_id), row.id);
  const counterRows = stats.disks.map((disk) => {
    const key = diskKey(disk.vmId, disk.disk);
    const id = previous.get(key)?.id ?? ids.get(key)!;
    seen.add(id);
    return [
      id,
      disk.counterEpoch,
      disk.counters === null ? null : JSON.stringify(disk.counters),
      disk.histograms === null ? null : JSON.stringify(disk.histograms),
      atMs,
    ];
  });
  yield* batchRun(BATCH.upsertCounters, counterRows);
  for (const [ds, sums] of perDatastore) {
    const values = sumsValues(sums);
    for (const [res, bucket] of targets) ioRows.push([SUBJECT_DATASTORE, ds, res, bucket, ...values]);
  }
  yield* batchRun(BATCH.upsertIo, ioRows);
  const gone = (yield* rawAll<{ id: number }>(SQL.hostDisks, stats.host))
    .filter((row) => !seen.has(row.id))
    .map((row) => [row.id]);
  yield* batchRun(BATCH.markGone, gone);

  yield* batchRun(
    BATCH.upsertGuests,
    stats.guests.map((g) => {
      const fs = g.filesystems;
      const used = fs === null ? null : fs.reduce((a, f) => a + f.usedBytes, 0);
      const size = fs === null ? null : fs.reduce((a, f) => a + f.totalBytes, 0);
      const fullest =
        fs === null || fs.length === 0
          ? null
          : Math.max(...fs.map((f) => (f.totalBytes > 0 ? (f.usedBytes / f.totalBytes) * 100 : 0)));
      return [
        g.vmId,
        g.vm,
        stats.host,
        g.agentVersion,
        fs === null ? null : JSON.stringify(fs),
        used,
        size,
        fullest,
        stats.sampledAt,
      ];
    }),
  );
  return { disks: stats.disks.length, intervals };
}

/**
 * Adds a disk's interval to its datastore's: operations and bins add up; the covered time is the
 * longest interval (the disks were sampled together, their time runs side by side, not end to end).
 */
function addInto(total: IoSums, x: IoSums): IoSums {
  total.seconds = Math.max(total.seconds, x.seconds);
  total.readOps += x.readOps;
  total.writeOps += x.writeOps;
  total.flushOps += x.flushOps;
  total.readBytes += x.readBytes;
  total.writeBytes += x.writeBytes;
  total.readNs += x.readNs;
  total.writeNs += x.writeNs;
  total.flushNs += x.flushNs;
  x.readBins.forEach((v, i) => (total.readBins[i] = (total.readBins[i] ?? 0) + v));
  x.writeBins.forEach((v, i) => (total.writeBins[i] = (total.writeBins[i] ?? 0) + v));
  return total;
}

export interface PruneResult {
  ioRows: number;
  dsRows: number;
  other: number;
}

/** Drops what is older than each tier keeps, ended issues and gone disks past the retention. */
export function prune(db: Db, nowMs = Date.now()): Promise<PruneResult> {
  return runRaw(
    db,
    function* (): RawProgram<PruneResult> {
      const now = Math.floor(nowMs / 1000);
      let ioRows = 0;
      let dsRows = 0;
      // A bucket goes when its end is older than the tier keeps.
      for (const t of IO_TIERS) ioRows += yield* rawRun(SQL.pruneIo, t.res, now - t.keepSeconds - t.res);
      for (const t of DS_TIERS) dsRows += yield* rawRun(SQL.pruneDs, t.res, now - t.keepSeconds - t.res);
      const cutoffIso = new Date(nowMs - RETENTION_SECONDS * 1000).toISOString();
      let other = yield* rawRun(SQL.pruneIssues, cutoffIso);
      const goneIds = yield* rawAll<{ id: number }>(SQL.goneDisks, nowMs - RETENTION_SECONDS * 1000);
      // Their tier rows age out like the others; only the window rows would stay.
      for (const { id } of goneIds) {
        yield* rawRun(SQL.deleteWindowRows, SUBJECT_DISK, id);
        yield* rawRun(SQL.deleteCounters, id);
        other += yield* rawRun(SQL.deleteDisk, id);
      }
      other += yield* rawRun(SQL.pruneGuests, cutoffIso);
      return { ioRows, dsRows, other };
    },
    { transaction: true },
  );
}

/** A finished bucket of one subject's I/O, for bulk loads. */
export interface SeriesRow {
  kind: number;
  subject: number;
  res: number;
  bucket: number;
  sums: IoSums;
}

/**
 * Bulk load of I/O buckets (added to what a bucket holds, as ingestion does): history imported
 * from elsewhere, or the benchmark's days of backfill, which ingestion of every sample would take
 * hours to write. One transaction.
 */
export function loadSeries(db: Db, rows: Iterable<SeriesRow>): Promise<number> {
  return runRaw(
    db,
    function* () {
      let n = 0;
      for (const r of rows) {
        yield* rawRun(SQL.upsertIo, r.kind, r.subject, r.res, r.bucket, ...sumsValues(r.sums));
        n++;
      }
      return n;
    },
    { transaction: true },
  );
}

/** Bulk load of datastore space points (the last one of a bucket wins, as ingestion does). */
export function loadDatastorePoints(
  db: Db,
  points: Iterable<{
    ds: number;
    res: number;
    at: number;
    capacityBytes: number;
    freeBytes: number;
    provisionedBytes: number;
    allocatedBytes: number;
  }>,
): Promise<number> {
  return runRaw(
    db,
    function* () {
      let n = 0;
      for (const p of points) {
        yield* rawRun(
          SQL.upsertDsSeries,
          p.ds,
          p.res,
          bucketOf(p.at, p.res),
          p.at,
          p.capacityBytes,
          p.freeBytes,
          p.provisionedBytes,
          p.allocatedBytes,
        );
        n++;
      }
      return n;
    },
    { transaction: true },
  );
}

/** Buckets a window is moved on by subtraction; further (a manager that was off), it is rebuilt. */
const MAX_WINDOW_STEPS = 24;

/**
 * Moves every sliding window to where it starts now: the buckets that left it are subtracted, or
 * (first run, long pause, clock set back) the window is summed again from its source tier. Run
 * after each collection; cheap when no bucket ended since the last run.
 */
export function maintainWindows(db: Db, nowMs = Date.now()): Promise<number> {
  return runRaw(
    db,
    function* (): RawProgram<number> {
      const now = Math.floor(nowMs / 1000);
      const starts = new Map(
        (yield* rawAll<{ res: number; start: number }>(SQL.windowStarts)).map((w) => [w.res, w.start]),
      );
      let changed = 0;
      for (const w of WINDOWS) {
        const desired = windowStart(w, now);
        const start = starts.get(w.code);
        if (start === desired) continue;
        if (start === undefined || start > desired || (desired - start) / w.source > MAX_WINDOW_STEPS) {
          yield* rawRun(SQL.deleteWindow, w.code);
          changed += yield* rawRun(SQL.rebuildWindow, w.code, w.source, desired);
        } else {
          for (let b = start; b < desired; b += w.source)
            changed += yield* rawRun(SQL.subtractBucket, w.source, b, w.code);
          // A subject quiet for the whole window has nothing left in it.
          yield* rawRun(SQL.dropQuietWindowRows, w.code);
        }
        yield* rawRun(SQL.setWindowStart, w.code, desired);
      }
      return changed;
    },
    { transaction: true },
  );
}

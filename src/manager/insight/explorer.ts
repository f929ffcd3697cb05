import { z } from 'zod';
import {
  DISK_SORTS,
  parseWindow,
  StorageDatastoreQuery,
  StorageDiskQuery,
  TEXT_SORTS,
  type Page,
  type StorageDatastoreRow,
  type StorageDiskRow,
} from '../../api/index.js';
import { decodeCursor, encodeCursor } from '../cursor.js';
import { rawAll, runRaw, type Db } from '../db.js';
import { InvalidInput } from '../errors.js';
import type Database from 'better-sqlite3';
import { emptySums, ioFigures, P90, P99, percentileMs, type IoFigures, type IoSums } from './rates.js';
import {
  aggColumns,
  aggCte,
  IO_VALUE_COLUMNS,
  READ_BIN_COLUMNS,
  SUBJECT_DATASTORE,
  SUBJECT_DISK,
  sumsFromRow,
  WINDOWS,
  WRITE_BIN_COLUMNS,
} from './store.js';

/*
 * The Storage Explorer's two views: every datastore and every disk with its figures over a window.
 * Disks (10,000s) are filtered, sorted and paged by SQLite (ORDER BY ... LIMIT with a keyset
 * cursor; percentiles through percentile_ms, rates.ts's own function registered in SQLite);
 * datastores (a few hundred) are sorted and paged in memory. The window reads the tier that gives
 * at most a few dozen rows per subject.
 */

/**
 * What a window reads: its sliding-window row when it is one the store keeps (store.ts WINDOWS)
 * and maintainWindows has started it (a window added by an upgrade starts with the first
 * collection), else the buckets of bucketTier.
 */
async function windowTier(
  db: Db,
  windowSeconds: number,
  nowMs: number,
): Promise<{ res: number; since: number }> {
  const kept = WINDOWS.find((w) => w.seconds === windowSeconds);
  const started =
    kept && (await db.selectFrom('io_windows').select('res').where('res', '=', kept.code).executeTakeFirst());
  // A window row has bucket 0: `bucket >= 0` selects exactly it.
  if (kept && started) return { res: kept.code, since: 0 };
  return bucketTier(windowSeconds, nowMs);
}

/**
 * The buckets of the tier that gives at most a few dozen per subject, from the one that holds
 * `now - window` on (so they cover the window and up to one bucket more).
 */
export function bucketTier(windowSeconds: number, nowMs = Date.now()): { res: number; since: number } {
  const now = Math.floor(nowMs / 1000);
  const res =
    windowSeconds <= 600 ? 30 : windowSeconds <= 7200 ? 300 : windowSeconds <= 2 * 86_400 ? 3600 : 86_400;
  return { res, since: Math.floor(now / res) * res - Math.ceil(windowSeconds / res) * res };
}

type Sortable = string | number | null;

/** Text and figures compared; null always last, whatever the order. */
function compareValues(a: Sortable, b: Sortable): number {
  if (a === null || b === null) return a === b ? 0 : a === null ? 1 : -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  // Code-point order: names are ASCII (Name), and localeCompare would cost most of a 10,000-row sort.
  const x = String(a);
  const y = String(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Sorts rows by a column (ties by their key, ascending) and returns the page after `cursor`.
 * The cursor holds the sort, the last row's value and key, so the next page starts after it.
 */
export function sortAndPage<T>(
  rows: readonly T[],
  opts: {
    sort: string;
    order: 'asc' | 'desc';
    value: (row: T) => Sortable;
    key: (row: T) => string;
    limit: number;
    cursor: string | undefined;
  },
): Page<T> {
  const sign = opts.order === 'asc' ? 1 : -1;
  const cmp = (a: [Sortable, string], b: [Sortable, string]) => {
    const byValue =
      a[0] === null || b[0] === null ? compareValues(a[0], b[0]) : sign * compareValues(a[0], b[0]);
    return byValue !== 0 ? byValue : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
  };
  const keyed = rows.map((row) => ({ row, k: [opts.value(row), opts.key(row)] as [Sortable, string] }));
  keyed.sort((a, b) => cmp(a.k, b.k));
  let start = 0;
  if (opts.cursor !== undefined) {
    const after = decodeSortCursor(opts.cursor, `${opts.sort}:${opts.order}`);
    start = keyed.findIndex((x) => cmp(x.k, after) > 0);
    if (start < 0) start = keyed.length;
  }
  const page = keyed.slice(start, start + opts.limit);
  const last = page[page.length - 1];
  const more = start + opts.limit < keyed.length;
  return {
    items: page.map((x) => x.row),
    nextCursor:
      more && last
        ? encodeCursor([`${opts.sort}:${opts.order}`, JSON.stringify(last.k[0]), last.k[1]])
        : null,
  };
}

/** The last row's sort value and key in a cursor of this sort (`sort:order`), or a 400. */
function decodeSortCursor(cursor: string, spec: string): [Sortable, string] {
  const [sortSpec, valueText, key] = decodeCursor(cursor, ['string', 'string', 'string']);
  const value = z.union([z.string(), z.number(), z.null()]).safeParse(safeJson(valueText));
  if (sortSpec !== spec || !value.success)
    throw new InvalidInput(
      'cursor: belongs to another sort or list (use nextCursor with the same sort)',
      'cursor',
    );
  return [value.data, key];
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const like = (text: string) => `%${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/** A host given by id or name -> its name (stats are kept by host name). */
async function hostName(db: Db, ref: string): Promise<string> {
  const row = await db
    .selectFrom('hosts')
    .select('name')
    .where((eb) => eb.or([eb('id', '=', ref), eb('name', '=', ref)]))
    .executeTakeFirst();
  return row?.name ?? ref;
}

/** The I/O columns every view sorts by. */
const IO_SORTS: Record<string, (io: IoFigures) => Sortable> = {
  iops: (io) => io.iops,
  throughput: (io) => io.throughputBytesPerSecond,
  readIops: (io) => io.read.iops,
  writeIops: (io) => io.write.iops,
  readThroughput: (io) => io.read.bytesPerSecond,
  writeThroughput: (io) => io.write.bytesPerSecond,
  readLatency: (io) => io.read.avgLatencyMs,
  writeLatency: (io) => io.write.avgLatencyMs,
  readP90: (io) => io.read.p90LatencyMs,
  writeP90: (io) => io.write.p90LatencyMs,
  readP99: (io) => io.read.p99LatencyMs,
  writeP99: (io) => io.write.p99LatencyMs,
};

function ioSorters<T extends { io: IoFigures }>(): Record<string, (r: T) => Sortable> {
  return Object.fromEntries(Object.entries(IO_SORTS).map(([k, f]) => [k, (r: T) => f(r.io)]));
}

const orderOf = (sort: string, order: 'asc' | 'desc' | undefined) =>
  order ?? (TEXT_SORTS.includes(sort) ? 'asc' : 'desc');

const round = (n: number | null, digits = 3) => {
  if (n === null) return null;
  const f = 10 ** digits;
  return Math.round(n * f) / f;
};

/** Figures as the API gives them: rates to 3 decimals, bytes per second to 1. */
export function rounded(io: IoFigures): IoFigures {
  const dir = (d: IoFigures['read']) => ({
    iops: round(d.iops),
    bytesPerSecond: round(d.bytesPerSecond, 1),
    avgLatencyMs: round(d.avgLatencyMs),
    p90LatencyMs: round(d.p90LatencyMs),
    p99LatencyMs: round(d.p99LatencyMs),
  });
  return {
    read: dir(io.read),
    write: dir(io.write),
    iops: round(io.iops),
    throughputBytesPerSecond: round(io.throughputBytesPerSecond, 1),
    coveredSeconds: round(io.coveredSeconds, 1) ?? 0,
    flushAvgLatencyMs: round(io.flushAvgLatencyMs),
  };
}

type DatastoreQuery = z.output<typeof StorageDatastoreQuery>;
type DiskQuery = z.output<typeof StorageDiskQuery>;

export async function listStorageDatastores(
  db: Db,
  q: DatastoreQuery,
  nowMs = Date.now(),
): Promise<Page<StorageDatastoreRow>> {
  const { res, since } = await windowTier(db, parseWindow(q.window) ?? 3600, nowMs);
  const host = q.host === undefined ? undefined : await hostName(db, q.host);
  const where = ['1 = 1'];
  const params: (string | number)[] = [res, since, SUBJECT_DATASTORE];
  if (host !== undefined) {
    where.push('ds.host = ?');
    params.push(host);
  }
  if (q.q !== undefined) {
    where.push(
      `(lower(ds.host || '/' || ds.name) like ? escape '\\' or lower(ds.fs_type) like ? escape '\\')`,
    );
    params.push(like(q.q), like(q.q));
  }
  const rows = await runRaw(
    db,
    () =>
      rawAll<Record<string, unknown>>(
        `${aggCte(undefined, res)}
           select ds.*,
             coalesce((select inv.kind from datastores inv join hosts h on h.id = inv.host_id
               where h.name = ds.host and inv.name = ds.name), 'local') as kind,
             (select inv.storage_id from datastores inv join hosts h on h.id = inv.host_id
               where h.name = ds.host and inv.name = ds.name) as storage_id,
             (select count(*) from stat_disks x where x.host = ds.host and x.datastore = ds.name and x.gone = 0) as disk_count,
             (select count(*) from storage_issues i where i.ended_at is null and i.datastore = ds.host || '/' || ds.name) as issue_count,
             ${aggColumns()}
           from stat_datastores ds
           left join agg on agg.subject = ds.id
           where ${where.join(' and ')}`,
        ...params,
      ),
    { transaction: false },
  );
  const items = rows.map((r): StorageDatastoreRow & { io: IoFigures } => {
    const io = rounded(ioFigures(sumsFromRow(r)));
    const capacity = Number(r.capacity_bytes);
    const free = Number(r.free_bytes);
    const provisioned = Number(r.provisioned_bytes);
    const days = r.days_until_full === null ? null : Number(r.days_until_full);
    return {
      host: String(r.host),
      name: String(r.name),
      kind: r.kind === 'shared' ? 'shared' : 'local',
      storageId: typeof r.storage_id === 'string' ? r.storage_id : null,
      fsType: String(r.fs_type),
      capacityBytes: capacity,
      freeBytes: free,
      freePercent: capacity > 0 ? round((free / capacity) * 100, 2) : null,
      provisionedBytes: provisioned,
      allocatedBytes: Number(r.allocated_bytes),
      overcommitRatio: capacity > 0 ? round(provisioned / capacity) : null,
      // Three significant digits: a datastore filling within hours still reads as such (0.0417).
      daysUntilFull: days === null ? null : Number(days.toPrecision(3)),
      disks: Number(r.disk_count),
      read: io.read,
      write: io.write,
      iops: io.iops,
      throughputBytesPerSecond: io.throughputBytesPerSecond,
      coveredSeconds: io.coveredSeconds,
      issues: Number(r.issue_count),
      sampledAt: String(r.sampled_at),
      io,
    };
  });
  const order = orderOf(q.sort, q.order);
  const plain: Record<string, (r: StorageDatastoreRow & { io: IoFigures }) => Sortable> = {
    host: (r) => r.host,
    name: (r) => r.name,
    kind: (r) => r.kind,
    fsType: (r) => r.fsType,
    capacity: (r) => r.capacityBytes,
    free: (r) => r.freeBytes,
    freePercent: (r) => r.freePercent,
    provisioned: (r) => r.provisionedBytes,
    allocated: (r) => r.allocatedBytes,
    overcommit: (r) => r.overcommitRatio,
    daysUntilFull: (r) => r.daysUntilFull,
    disks: (r) => r.disks,
    issues: (r) => r.issues,
    ...ioSorters<StorageDatastoreRow & { io: IoFigures }>(),
  };
  const page = sortAndPage(items, {
    sort: q.sort,
    order,
    value: plain[q.sort] ?? (() => null),
    key: (r) => `${r.host}/${r.name}`,
    limit: q.limit,
    cursor: q.cursor,
  });
  return { items: page.items.map(({ io: _io, ...row }) => row), nextCursor: page.nextCursor };
}

const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));

const per = (n: string, d: string) => `(1.0 * (${n}) / nullif(${d}, 0))`;
/**
 * `percentile_ms(p, bin0, ..., binN)`: percentileMs of the bins, registered on each SQLite handle
 * the explorer reads, so a percentile sort is SQLite's top-N sort like every other column (the
 * same function as the figures shown, so the order matches them exactly). PostgreSQL has it as a
 * function of the database, the same steps in PL/pgSQL (db.ts, migration 0017).
 */
const withPercentile = new WeakSet<Database.Database>();
function registerPercentile(sqlite: Database.Database): void {
  if (withPercentile.has(sqlite)) return;
  sqlite.function('percentile_ms', { deterministic: true, varargs: true }, (p: unknown, ...bins: unknown[]) =>
    percentileMs(bins.map(Number), Number(p)),
  );
  withPercentile.add(sqlite);
}
const percentileSql = (p: number, columns: readonly string[]) =>
  `percentile_ms(${p}, ${columns.map((c) => `agg.${c}`).join(', ')})`;

/**
 * Every sort of the disk view, as SQL: SQLite sorts (ORDER BY ... LIMIT: a top-N sort, no row
 * built for the others) and pages with a keyset cursor.
 */
const DISK_SQL_SORTS: Record<(typeof DISK_SORTS)[number], string> = {
  vm: 'd.vm_name',
  disk: 'd.disk_id',
  host: 'd.host',
  datastore: 'd.datastore',
  format: 'd.format',
  formatVersion: 'd.format_version',
  virtualSize: 'd.virtual_size_bytes',
  allocated: 'd.allocated_bytes',
  guestFullestPercent: 'g.fullest_percent',
  guestUsed: 'g.used_bytes',
  iops: per('agg.rd_ops + agg.wr_ops + agg.fl_ops', 'agg.seconds'),
  throughput: per('agg.rd_bytes + agg.wr_bytes', 'agg.seconds'),
  readIops: per('agg.rd_ops', 'agg.seconds'),
  writeIops: per('agg.wr_ops', 'agg.seconds'),
  readThroughput: per('agg.rd_bytes', 'agg.seconds'),
  writeThroughput: per('agg.wr_bytes', 'agg.seconds'),
  readLatency: `(${per('agg.rd_ns', 'agg.rd_ops')} / 1e6)`,
  writeLatency: `(${per('agg.wr_ns', 'agg.wr_ops')} / 1e6)`,
  readP90: percentileSql(P90, READ_BIN_COLUMNS),
  readP99: percentileSql(P99, READ_BIN_COLUMNS),
  writeP90: percentileSql(P90, WRITE_BIN_COLUMNS),
  writeP99: percentileSql(P99, WRITE_BIN_COLUMNS),
};

function diskRow(r: Record<string, unknown>, sums: IoSums): StorageDiskRow {
  const io = rounded(ioFigures(sums));
  return {
    vm: String(r.vm_name),
    vmId: String(r.vm_id),
    disk: String(r.disk_id),
    host: String(r.host),
    datastore: String(r.datastore),
    format: r.format === 'raw' ? 'raw' : 'qcow2',
    formatVersion: r.format_version === null ? null : String(r.format_version),
    virtualSizeBytes: Number(r.virtual_size_bytes),
    allocatedBytes: Number(r.allocated_bytes),
    read: io.read,
    write: io.write,
    iops: io.iops,
    throughputBytesPerSecond: io.throughputBytesPerSecond,
    coveredSeconds: io.coveredSeconds,
    flushAvgLatencyMs: io.flushAvgLatencyMs,
    guestUsedBytes: num(r.g_used),
    guestSizeBytes: num(r.g_size),
    guestFullestPercent: round(num(r.g_fullest), 2),
    sampledAt: String(r.sampled_at),
  };
}

/**
 * Every disk with its figures, sorted and paged by SQLite. Only the columns the sort needs are
 * read for all disks (a percentile sort: that direction's bins), and figures are made for the
 * page's rows only, with their bins read then: a 10,000-disk view reads 10 columns per disk, not 45.
 */
export async function listStorageDisks(
  db: Db,
  q: DiskQuery,
  nowMs = Date.now(),
  /** Instead of `q.window`: placement's demand window, which may be as short as one bucket. */
  windowSeconds?: number,
): Promise<Page<StorageDiskRow>> {
  const { res, since } = await windowTier(db, windowSeconds ?? parseWindow(q.window) ?? 3600, nowMs);
  const host = q.host === undefined ? undefined : await hostName(db, q.host);
  const where = ['d.gone = 0'];
  const params: (string | number)[] = [];
  if (host !== undefined) {
    where.push('d.host = ?');
    params.push(host);
  }
  if (q.datastore !== undefined) {
    where.push('d.datastore = ?');
    params.push(q.datastore);
  }
  if (q.q !== undefined) {
    where.push(
      `(lower(d.vm_name || '/' || d.disk_id || ' ' || d.host || '/' || d.datastore || ' ' || d.format || ' ' || coalesce(d.format_version, '')) like ? escape '\\')`,
    );
    params.push(like(q.q));
  }
  const order = orderOf(q.sort, q.order);
  const sqlSort = DISK_SQL_SORTS[q.sort];
  // The page's order from the sort's own columns only (a percentile sort: one direction's bins;
  // a text sort: none, no sums at all); the page's rows and figures are read after, by id.
  const sortColumns = [...new Set([...sqlSort.matchAll(/\bagg\.(\w+)/g)].map((m) => m[1] ?? ''))];
  const spec = `${q.sort}:${order}`;
  const after = q.cursor === undefined ? undefined : decodeSortCursor(q.cursor, spec);
  // Nulls last whatever the order, ties by key: the order sortAndPage gives.
  const cmp = order === 'asc' ? '>' : '<';
  const cond =
    after === undefined
      ? ''
      : after[0] === null
        ? 'where sort_value is null and sort_key > ?'
        : `where sort_value is null or sort_value ${cmp} ? or (sort_value = ? and sort_key > ?)`;
  const condParams =
    after === undefined ? [] : after[0] === null ? [after[1]] : [after[0], after[0], after[1]];
  return runRaw(
    db,
    function* () {
      const ordered = yield* rawAll<{
        id: number;
        sort_value: Sortable;
        sort_key: string;
      }>(
        // Materialised: each disk's sort value computed once, not again in each term of the cursor's condition.
        `${sortColumns.length > 0 ? `${aggCte(sortColumns, res)},` : 'with'}
         sorted as materialized (select d.id, ${sqlSort} as sort_value,
           d.vm_id || '/' || d.disk_id as sort_key
           from stat_disks d
           ${sortColumns.length > 0 ? 'left join agg on agg.subject = d.id' : ''}
           ${sqlSort.includes('g.') ? 'left join stat_guests g on g.vm_id = d.vm_id' : ''}
           where ${where.join(' and ')})
         select id, sort_value, sort_key from sorted
         ${cond} order by sort_value is null, sort_value ${order}, sort_key limit ?`,
        ...(sortColumns.length > 0 ? [res, since, SUBJECT_DISK] : []),
        ...params,
        ...condParams,
        q.limit + 1,
      );
      const page = ordered.slice(0, q.limit);
      const last = page[page.length - 1];
      const nextCursor =
        ordered.length > q.limit && last
          ? encodeCursor([spec, JSON.stringify(last.sort_value ?? null), last.sort_key])
          : null;
      if (page.length === 0) return { items: [], nextCursor };
      const ids = page.map((r) => r.id);
      const marks = ids.map(() => '?').join(', ');
      const recs = new Map(
        (yield* rawAll<Record<string, unknown>>(
          `select d.id, d.vm_id, d.disk_id, d.vm_name, d.host, d.datastore, d.format, d.format_version,
             d.virtual_size_bytes, d.allocated_bytes, d.sampled_at,
             g.used_bytes as g_used, g.size_bytes as g_size, g.fullest_percent as g_fullest
           from stat_disks d left join stat_guests g on g.vm_id = d.vm_id where d.id in (${marks})`,
          ...ids,
        )).map((rec) => [Number(rec.id), rec]),
      );
      // The page's sums, every column (both directions' bins, for its percentiles).
      const sums = new Map(
        (yield* rawAll<Record<string, unknown>>(
          `select subject, ${IO_VALUE_COLUMNS.map((c) => `sum(${c}) as ${c}`).join(', ')} from io_series
           where res = ? and bucket ${res < 0 ? '=' : '>='} ? and kind = ? and subject in (${marks})
           group by subject`,
          res,
          since,
          SUBJECT_DISK,
          ...ids,
        )).map((row) => [Number(row.subject), sumsFromRow(row)]),
      );
      return {
        items: page.map((r) => diskRow(recs.get(r.id) ?? {}, sums.get(r.id) ?? emptySums())),
        nextCursor,
      };
    },
    { transaction: false, sqliteSetup: registerPercentile },
  );
}

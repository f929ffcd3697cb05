import {
  parseWindow,
  SERIES_MAX_POINTS,
  type DatastoreSeries,
  type DatastoreSeriesPoint,
  type DiskSeries,
  type SeriesPoint,
  type VmSeries,
} from '../../api/index.js';
import { rawAll, rawGet, runRaw, type Db, type RawProgram } from '../db.js';
import { NotFound } from '../errors.js';
import { getDatastore, getVm } from '../inventory.js';
import { rounded } from './explorer.js';
import { emptySums, ioFigures, type IoSums } from './rates.js';
import {
  DS_TIERS,
  IO_TIERS,
  IO_VALUE_COLUMNS,
  SUBJECT_DATASTORE,
  SUBJECT_DISK,
  sumsFromRow,
} from './store.js';

/*
 * Time series for the console's charts: a disk's, a datastore's or a VM's I/O per bucket of the
 * store's tiers over a window, with the explorer's figures (rates, average and p90/p99 latency
 * from the summed histogram bins: rates.ts, one source of the math) per bucket. Every bucket of
 * the window is a point, empty ones too (their figures null), so a chart's x axis is regular.
 */

/**
 * The tier a window reads: the finest that still keeps the whole window and gives at most
 * SERIES_MAX_POINTS points (15 min: 30 s; up to 3 h: 5 min; longer: 1 h, 192 points at 8 days).
 */
export function seriesStep(windowSeconds: number): number {
  const tier = IO_TIERS.find(
    (t) => t.keepSeconds >= windowSeconds && Math.ceil(windowSeconds / t.res) <= SERIES_MAX_POINTS,
  );
  // Unreachable within the 8 days a window may span (the hourly tier keeps them in 192 points).
  return tier?.res ?? 3600;
}

interface Frame {
  window: string;
  windowSeconds: number;
  step: number;
  /** Bucket starts (epoch seconds), oldest first; the last is the current one. */
  buckets: number[];
}

function frameOf(window: string, nowMs: number): Frame {
  const windowSeconds = parseWindow(window) ?? 3600;
  const step = seriesStep(windowSeconds);
  const current = Math.floor(nowMs / 1000 / step) * step;
  const n = Math.ceil(windowSeconds / step);
  return {
    window,
    windowSeconds,
    step,
    buckets: Array.from({ length: n }, (_, i) => current - (n - 1 - i) * step),
  };
}

const iso = (epochSeconds: number) => new Date(epochSeconds * 1000).toISOString();

function frameFields(f: Frame) {
  const first = f.buckets[0] ?? 0;
  const last = f.buckets[f.buckets.length - 1] ?? first;
  return { window: f.window, stepSeconds: f.step, from: iso(first), to: iso(last + f.step) };
}

/**
 * Each bucket's sums over the subjects: operations, bytes, times and bins add up; the covered time
 * is the longest (disks are sampled together: their time runs side by side, as the store's
 * datastore sums count it). Bucket and subject lists are primary-key lookups, never a range scan
 * over every disk's rows.
 */
function* ioSums(kind: number, subjects: readonly number[], f: Frame): RawProgram<Map<number, IoSums>> {
  const out = new Map<number, IoSums>();
  if (subjects.length === 0) return out;
  const columns = IO_VALUE_COLUMNS.map((c) =>
    c === 'seconds' ? 'max(seconds) as seconds' : `sum(${c}) as ${c}`,
  );
  const rows = yield* rawAll<Record<string, unknown>>(
    `select bucket, ${columns.join(', ')} from io_series
     where res = ? and bucket in (${f.buckets.map(() => '?').join(', ')}) and kind = ?
       and subject in (${subjects.map(() => '?').join(', ')})
     group by bucket`,
    f.step,
    ...f.buckets,
    kind,
    ...subjects,
  );
  for (const r of rows) out.set(Number(r.bucket), sumsFromRow(r));
  return out;
}

function ioPoint(bucket: number, sums: IoSums): SeriesPoint {
  const io = rounded(ioFigures(sums));
  return {
    at: iso(bucket),
    read: io.read,
    write: io.write,
    iops: io.iops,
    throughputBytesPerSecond: io.throughputBytesPerSecond,
    coveredSeconds: io.coveredSeconds,
  };
}

const ioPoints = (sums: Map<number, IoSums>, f: Frame) =>
  f.buckets.map((b) => ioPoint(b, sums.get(b) ?? emptySums()));

/** A disk's series; the VM by id or name (as getVm), the disk by its id. */
export async function diskSeries(
  db: Db,
  vmRef: string,
  disk: string,
  window: string,
  nowMs = Date.now(),
): Promise<DiskSeries> {
  const vm = await getVm(db, vmRef, 'vm');
  const f = frameOf(window, nowMs);
  return runRaw(
    db,
    function* () {
      const row = yield* rawGet<{ id: number; host: string; datastore: string }>(
        `select id, host, datastore from stat_disks where vm_id = ? and disk_id = ?`,
        vm.id,
        disk,
      );
      // A disk of the VM not sampled yet has an empty series; one it does not have is unknown.
      if (!row && !vm.disks.some((d) => d.id === disk))
        throw new NotFound('disk', `${vm.name}/${disk}`, 'disk');
      return {
        vm: vm.name,
        vmId: vm.id,
        disk,
        host: row?.host ?? null,
        datastore: row?.datastore ?? null,
        ...frameFields(f),
        points: ioPoints(row ? yield* ioSums(SUBJECT_DISK, [row.id], f) : new Map(), f),
      };
    },
    { transaction: false },
  );
}

/** A VM's series: its disks' (those the store has figures of) summed per bucket. */
export async function vmSeries(db: Db, vmRef: string, window: string, nowMs = Date.now()): Promise<VmSeries> {
  const vm = await getVm(db, vmRef, 'vm');
  const f = frameOf(window, nowMs);
  return runRaw(
    db,
    function* () {
      const disks = yield* rawAll<{ id: number; disk_id: string }>(
        `select id, disk_id from stat_disks where vm_id = ? order by disk_id`,
        vm.id,
      );
      return {
        vm: vm.name,
        vmId: vm.id,
        disks: disks.map((d) => d.disk_id),
        ...frameFields(f),
        points: ioPoints(
          yield* ioSums(
            SUBJECT_DISK,
            disks.map((d) => d.id),
            f,
          ),
          f,
        ),
      };
    },
    { transaction: false },
  );
}

/**
 * A datastore's series: the I/O of its disks (the store sums them as it ingests) and its space as
 * last sampled in each bucket (raw points for 30 s steps, 5-minute points for longer ones).
 */
export async function datastoreSeries(
  db: Db,
  hostRef: string,
  name: string,
  window: string,
  nowMs = Date.now(),
): Promise<DatastoreSeries> {
  const ds = await getDatastore(db, hostRef, name);
  const f = frameOf(window, nowMs);
  const spaceTier =
    [...DS_TIERS].reverse().find((t) => t.res <= f.step && t.keepSeconds >= f.windowSeconds) ?? DS_TIERS[1];
  return runRaw(
    db,
    function* () {
      const stat = yield* rawGet<{ id: number }>(
        `select id from stat_datastores where host = ? and name = ?`,
        ds.host,
        ds.name,
      );
      const io = stat ? yield* ioSums(SUBJECT_DATASTORE, [stat.id], f) : new Map<number, IoSums>();
      const space = new Map<number, { capacity: number; free: number }>();
      if (stat) {
        const rows = yield* rawAll<{ at: number; capacity_bytes: number; free_bytes: number }>(
          `select at, capacity_bytes, free_bytes from ds_series where ds = ? and res = ? and bucket >= ? order by bucket`,
          stat.id,
          spaceTier.res,
          f.buckets[0] ?? 0,
        );
        // Ordered by time: the last point of each bucket stays.
        for (const r of rows)
          space.set(Math.floor(r.at / f.step) * f.step, { capacity: r.capacity_bytes, free: r.free_bytes });
      }
      const points = f.buckets.map((b): DatastoreSeriesPoint => {
        const s = space.get(b);
        return {
          ...ioPoint(b, io.get(b) ?? emptySums()),
          capacityBytes: s?.capacity ?? null,
          usedBytes: s ? s.capacity - s.free : null,
          freeBytes: s?.free ?? null,
        };
      });
      return { host: ds.host, datastore: ds.name, ...frameFields(f), points };
    },
    { transaction: false },
  );
}

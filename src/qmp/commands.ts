// Reply schemas for the QMP queries the project uses, checked against QEMU 7.2's introspected
// schema (query-qmp-schema). Objects are loose and members optional wherever a newer or older QEMU
// may omit them, so a QEMU upgrade adds fields instead of breaking parsing. States are plain
// strings for the same reason; the known values are listed in the comments.
import { z } from 'zod';
import type { QmpClient, QmpExecuteOptions } from './client.js';

const int = z.number().int();

/** query-status. `status`: running, paused, inmigrate, postmigrate, prelaunch, finish-migrate, shutdown, ... */
export const QueryStatus = z.looseObject({
  status: z.string(),
  running: z.boolean(),
  singlestep: z.boolean().optional(),
});
export type QueryStatus = z.infer<typeof QueryStatus>;

const MigrationStats = z.looseObject({
  transferred: int,
  remaining: int,
  total: int,
  duplicate: int.optional(),
  skipped: int.optional(),
  normal: int.optional(),
  'normal-bytes': int.optional(),
  /** Pages dirtied per second during the last pass. */
  'dirty-pages-rate': int.optional(),
  /** Throughput of the last pass, in Mbit/s. */
  mbps: z.number().optional(),
  /** Number of passes over guest memory so far. */
  'dirty-sync-count': int.optional(),
  'postcopy-requests': int.optional(),
  'page-size': int.optional(),
  'multifd-bytes': int.optional(),
  'pages-per-second': int.optional(),
  'precopy-bytes': int.optional(),
  'downtime-bytes': int.optional(),
  'postcopy-bytes': int.optional(),
  'dirty-sync-missed-zero-copy': int.optional(),
});

/**
 * query-migrate. `status`: none, setup, active, pre-switchover, device, wait-unplug, cancelling,
 * cancelled, completed, failed, postcopy-*, colo. Times are in milliseconds.
 */
export const QueryMigrate = z.looseObject({
  status: z.string().optional(),
  ram: MigrationStats.optional(),
  disk: MigrationStats.optional(),
  'xbzrle-cache': z
    .looseObject({
      'cache-size': int.optional(),
      bytes: int.optional(),
      pages: int.optional(),
      'cache-miss': int.optional(),
      'cache-miss-rate': z.number().optional(),
      'encoding-rate': z.number().optional(),
      overflow: int.optional(),
    })
    .optional(),
  'total-time': int.optional(),
  'expected-downtime': int.optional(),
  downtime: int.optional(),
  'setup-time': int.optional(),
  'cpu-throttle-percentage': int.optional(),
  'error-desc': z.string().optional(),
  'blocked-reasons': z.array(z.string()).optional(),
  'postcopy-blocktime': int.optional(),
  'postcopy-vcpu-blocktime': z.array(int).optional(),
  'socket-address': z.array(z.looseObject({ type: z.string() })).optional(),
});
export type QueryMigrate = z.infer<typeof QueryMigrate>;

/**
 * query-block-jobs. `type`: mirror, commit, stream, backup; `status`: created, running, paused,
 * ready, standby, waiting, pending, aborting, concluded, null. `len`/`offset` are in bytes.
 */
export const QueryBlockJobs = z.array(
  z.looseObject({
    type: z.string(),
    device: z.string(),
    len: int,
    offset: int,
    busy: z.boolean().optional(),
    paused: z.boolean().optional(),
    speed: int.optional(),
    'io-status': z.string().optional(),
    ready: z.boolean(),
    status: z.string(),
    'auto-finalize': z.boolean().optional(),
    'auto-dismiss': z.boolean().optional(),
    error: z.string().optional(),
  }),
);
export type QueryBlockJobs = z.infer<typeof QueryBlockJobs>;

/**
 * A dirty bitmap of a node. `count` is in bytes; `inconsistent`: QEMU found the stored bitmap
 * still marked in use (the QEMU that had it open died), so it may miss writes.
 */
export const DirtyBitmapInfo = z.looseObject({
  name: z.string().optional(),
  count: int,
  granularity: int,
  recording: z.boolean().optional(),
  busy: z.boolean().optional(),
  persistent: z.boolean().optional(),
  inconsistent: z.boolean().optional(),
});
export type DirtyBitmapInfo = z.infer<typeof DirtyBitmapInfo>;

/** query-named-block-nodes with `flat: true`: every named node once, with its dirty bitmaps. */
export const QueryNamedBlockNodes = z.array(
  z.looseObject({
    'node-name': z.string().optional(),
    drv: z.string().optional(),
    active: z.boolean().optional(),
    'dirty-bitmaps': z.array(DirtyBitmapInfo).optional(),
  }),
);
export type QueryNamedBlockNodes = z.infer<typeof QueryNamedBlockNodes>;

/** query-block: the guest's drives and the image inserted in each. */
export const QueryBlock = z.array(
  z.looseObject({
    device: z.string(),
    qdev: z.string().optional(),
    type: z.string().optional(),
    removable: z.boolean().optional(),
    locked: z.boolean().optional(),
    tray_open: z.boolean().optional(),
    'io-status': z.string().optional(),
    inserted: z
      .looseObject({
        file: z.string(),
        'node-name': z.string().optional(),
        ro: z.boolean(),
        drv: z.string(),
        backing_file: z.string().optional(),
        backing_file_depth: int.optional(),
        encrypted: z.boolean().optional(),
        detect_zeroes: z.string().optional(),
        image: z.looseObject({
          filename: z.string(),
          format: z.string(),
          'virtual-size': int,
          'actual-size': int.optional(),
          'cluster-size': int.optional(),
          'dirty-flag': z.boolean().optional(),
          'backing-filename': z.string().optional(),
          /** qcow2: `data.compat` is "0.10" (version 2) or "1.1" (version 3). */
          'format-specific': z
            .looseObject({ type: z.string(), data: z.looseObject({ compat: z.string().optional() }) })
            .optional(),
        }),
        cache: z
          .looseObject({ writeback: z.boolean(), direct: z.boolean(), 'no-flush': z.boolean() })
          .optional(),
        'dirty-bitmaps': z.array(DirtyBitmapInfo).optional(),
      })
      .optional(),
  }),
);
export type QueryBlock = z.infer<typeof QueryBlock>;

/**
 * A latency histogram set with block-latency-histogram-set: `bins` has one more entry than
 * `boundaries` (nanoseconds); bins[i] counts requests below boundaries[i] (and at or above the one before).
 */
export interface BlockLatencyHistogram {
  boundaries: number[];
  bins: number[];
}
const BlockLatencyHistogram = z.looseObject({ boundaries: z.array(int), bins: z.array(int) });

/** One node's I/O counters (bytes, operations, nanoseconds), with its protocol and backing nodes. */
export interface BlockStats {
  device?: string | undefined;
  qdev?: string | undefined;
  'node-name'?: string | undefined;
  stats: {
    rd_bytes: number;
    wr_bytes: number;
    rd_operations: number;
    wr_operations: number;
    flush_operations: number;
    rd_total_time_ns: number;
    wr_total_time_ns: number;
    flush_total_time_ns: number;
    wr_highest_offset: number;
    idle_time_ns?: number | undefined;
    rd_latency_histogram?: BlockLatencyHistogram | undefined;
    wr_latency_histogram?: BlockLatencyHistogram | undefined;
    flush_latency_histogram?: BlockLatencyHistogram | undefined;
    [key: string]: unknown;
  };
  parent?: BlockStats | undefined;
  backing?: BlockStats | undefined;
  [key: string]: unknown;
}
const BlockStats: z.ZodType<BlockStats> = z.looseObject({
  device: z.string().optional(),
  qdev: z.string().optional(),
  'node-name': z.string().optional(),
  stats: z.looseObject({
    rd_bytes: int,
    wr_bytes: int,
    rd_operations: int,
    wr_operations: int,
    flush_operations: int,
    rd_total_time_ns: int,
    wr_total_time_ns: int,
    flush_total_time_ns: int,
    wr_highest_offset: int,
    idle_time_ns: int.optional(),
    // Present once block-latency-histogram-set was run on the drive (QEMU 10 adds zone_append too).
    rd_latency_histogram: BlockLatencyHistogram.optional(),
    wr_latency_histogram: BlockLatencyHistogram.optional(),
    flush_latency_histogram: BlockLatencyHistogram.optional(),
  }),
  get parent() {
    return BlockStats.optional();
  },
  get backing() {
    return BlockStats.optional();
  },
});

/** query-blockstats (per drive; with `queryNodes`, per named node). */
export const QueryBlockstats = z.array(BlockStats);
export type QueryBlockstats = z.infer<typeof QueryBlockstats>;

/**
 * query-dirty-rate, the result of `calc-dirty-rate`. `status`: unstarted, measuring, measured;
 * `dirty-rate` is in MB/s and present once measured.
 */
export const QueryDirtyRate = z.looseObject({
  status: z.string(),
  'dirty-rate': int.optional(),
  'start-time': int,
  'calc-time': int,
  'sample-pages': int.optional(),
  mode: z.string().optional(),
  'vcpu-dirty-rate': z.array(z.looseObject({ id: int, 'dirty-rate': int })).optional(),
});
export type QueryDirtyRate = z.infer<typeof QueryDirtyRate>;

/** query-version. */
export const QueryVersion = z.looseObject({
  qemu: z.looseObject({ major: int, minor: int, micro: int }),
  package: z.string(),
});
export type QueryVersion = z.infer<typeof QueryVersion>;

/** query-cpus-fast: one entry per vCPU, with the host thread that runs it. */
export const QueryCpusFast = z.array(
  z.looseObject({
    'cpu-index': int,
    'qom-path': z.string(),
    'thread-id': int,
    target: z.string(),
    props: z.looseObject({}).optional(),
  }),
);
export type QueryCpusFast = z.infer<typeof QueryCpusFast>;

/** A typed helper for a query that takes no arguments. */
function query<S extends z.ZodType>(command: string, schema: S) {
  return (qmp: QmpClient, options: QmpExecuteOptions = {}): Promise<z.infer<S>> =>
    qmp.execute(command, undefined, { ...options, schema });
}

export const queryStatus = query('query-status', QueryStatus);
export const queryMigrate = query('query-migrate', QueryMigrate);
export const queryBlockJobs = query('query-block-jobs', QueryBlockJobs);
export const queryBlock = query('query-block', QueryBlock);
export const queryDirtyRate = query('query-dirty-rate', QueryDirtyRate);
export const queryVersion = query('query-version', QueryVersion);
export const queryCpusFast = query('query-cpus-fast', QueryCpusFast);

export function queryNamedBlockNodes(
  qmp: QmpClient,
  options: QmpExecuteOptions = {},
): Promise<QueryNamedBlockNodes> {
  return qmp.execute('query-named-block-nodes', { flat: true }, { ...options, schema: QueryNamedBlockNodes });
}

/** query-blockstats; `queryNodes` lists every named node instead of every drive. */
export function queryBlockstats(
  qmp: QmpClient,
  options: QmpExecuteOptions & { queryNodes?: boolean } = {},
): Promise<QueryBlockstats> {
  const { queryNodes, ...rest } = options;
  const args = queryNodes === undefined ? undefined : { 'query-nodes': queryNodes };
  return qmp.execute('query-blockstats', args, { ...rest, schema: QueryBlockstats });
}

import Database from 'better-sqlite3';
import {
  Kysely,
  Migrator,
  CompiledQuery,
  OperationNodeTransformer,
  PostgresAdapter,
  PostgresDialect,
  PostgresDriver,
  type PostgresDialectConfig,
  sql,
  SqliteDialect,
  type ColumnDefinitionNode,
  type DatabaseConnection,
  type DataTypeNode,
  type Driver,
  type Generated,
  type KyselyPlugin,
  type Migration,
  type PostgresPool,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type QueryResult,
  type RootOperationNode,
  type Transaction,
  type TransactionSettings,
  type UnknownRow,
} from 'kysely';
import { chmod, open } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import {
  DEFAULT_PLACEMENT_MODE,
  HA_PRIORITY,
  HostMaintenance,
  LATENCY_BOUNDS_NS,
  LEASE_HOST_ID,
  type HostMaintenance as Maintenance,
} from '../api/index.js';
import { rateChange, type RiskInput } from './change-risk.js';
import { reusingStatements } from './sqlite-statements.js';
import { DATABASE_CONNECT_TIMEOUT_MS, isPostgresUrl, PrimaryPool } from './db-primary.js';

/*
 * The manager's database: SQLite (one file in the data dir, the default) or PostgreSQL (a
 * postgres:// URL, issue 31), both through Kysely with the same queries. Schema changes are
 * numbered migrations defined here in code and applied at start; a raw statement whose SQLite
 * text PostgreSQL does not take has its PostgreSQL form beside it (byDialect).
 * Times are ISO-8601 UTC strings, booleans 0/1, nested values JSON text. On PostgreSQL every
 * integer column is a bigint (byte counts and epoch milliseconds pass 2^31) and every real a
 * double precision, as SQLite's are 64-bit; the driver hands both back as numbers.
 */

export interface TokensTable {
  name: string;
  role: 'admin' | 'read-only';
  hash: string;
  created_at: string;
}
export interface PoolsTable {
  id: string;
  name: string;
  description: string;
  created_at: string;
}
export interface HostsTable {
  id: string;
  name: string;
  agent_url: string;
  /** The host certificate the fabric CA issued it (hex serial, expiry): renewed when due. */
  cert_serial: string | null;
  cert_not_after: string | null;
  /** The number of the newest revocation list the host holds (enrollment.ts). */
  crl_number: number;
  state: 'connected' | 'unreachable';
  pool_id: string | null;
  fabric_address: string;
  agent_version: string;
  qemu_version: string;
  accelerator: 'kvm' | 'tcg';
  accelerator_warning: string | null;
  cpus: number;
  memory_bytes: number;
  memory_free_bytes: number;
  machine_type: string;
  cpu_model: string;
  /** The guest agent version on the host's tools disk; null when it has none. */
  tools_version: string | null;
  last_seen_at: string;
  last_error: string | null;
  created_at: string;
  /**
   * Where the manager has read the agent's change journal up to: `<bootId>:<seq>` (reconcile.ts);
   * null before the first read.
   */
  agent_events: string | null;
  /** The cluster the host is in (clusters.ts); null for a standalone host. */
  cluster_id: string | null;
  /** The host's sanlock host id in its cluster (1..2000, unique there); null out of a cluster. */
  lease_host_id: number | null;
  /** `entering` while a drain moves its VMs off, `in` once none runs there (drain.ts). */
  maintenance: Maintenance;
}
export interface ClustersTable {
  id: string;
  name: string;
  created_at: string;
  /**
   * The shared storage (a datastore storage id) that holds the cluster's sanlock lockspace and VM
   * leases: chosen once, when the first host needs it, and kept (moving a lockspace under running
   * leased VMs would fence them). Null until then (migration 0016).
   */
  lease_storage_id: string | null;
}
export interface DatastoresTable {
  id: string;
  host_id: string;
  name: string;
  path: string;
  is_default: number;
  capacity_bytes: number;
  free_bytes: number;
  /** `fast`, `standard` or an admin's name (as the agent reports it); placement reads this column. */
  class: string;
  limit_iops: number | null;
  limit_bytes_per_second: number | null;
  /** The last I/O probe the agent reported; kept when a restarted agent has none yet. */
  probe_iops: number | null;
  probe_bytes_per_second: number | null;
  probed_at: string | null;
  /** `local` or `shared` (issue 30); a CHECK holds it to those. */
  kind: Generated<'local' | 'shared'>;
  /** A shared datastore's storage id (its marker's), present exactly when `kind` is shared. */
  storage_id: string | null;
}
export interface VSwitchesTable {
  id: string;
  host_id: string;
  name: string;
  bridge: string;
  uplink: string | null;
}
export interface VmsTable {
  id: string;
  host_id: string;
  name: string;
  state: string;
  pid: number | null;
  vcpus: number;
  memory_mib: number;
  guest_ip: string | null;
  guest_gateway: string | null;
  machine_type: string;
  cpu_model: string;
  accelerator: 'kvm' | 'tcg';
  created_at: string;
  started_at: string | null;
  updated_at: string;
  /** The guest tools disk is inserted (as the agent reports it). */
  tools_disk: number;
  /** The guest agent's version at its last answer, and the VM start that answer belongs to. */
  tools_version: string | null;
  tools_started_at: string | null;
  /** Whether the last statistics poll got an answer from the guest agent. */
  tools_answering: Generated<number>;
  /** HA settings (migration 0015): restarted elsewhere when its host dies (1), by priority (higher first). */
  ha_protected: Generated<number>;
  ha_priority: Generated<number>;
  /** JSON: host names to restart or drain it to first. */
  ha_preferred_hosts: Generated<string>;
}
export interface VmDisksTable {
  vm_id: string;
  disk_id: string;
  position: number;
  datastore: string;
  path: string;
  format: 'qcow2' | 'raw';
  virtual_size_bytes: number;
  allocated_bytes: number;
  node_name: string;
}
export interface VmNicsTable {
  vm_id: string;
  nic_id: string;
  position: number;
  vswitch: string;
  mac: string;
  tap: string;
}
export interface JobsTable {
  id: string;
  /**
   * Creation order, assigned by the database at insert (migration 0011): lists order by it, not
   * by created_at, whose millisecond two jobs can share (a tie the random id would then break).
   */
  seq: Generated<number>;
  kind: string;
  state: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  target_kind: string;
  target_id: string;
  target_name: string;
  created_by: string;
  params: string;
  progress: string;
  checkpoint: string | null;
  result: string | null;
  error: string | null;
  cancel_requested: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  updated_at: string;
  /**
   * The leader epoch (leader.ts) of the manager running the job (migration 0017); null while no
   * manager has started it. A job running under an older epoch than the leader's is the leader's
   * to resume; a manager's writes to a job it no longer owns are refused (jobs.ts).
   */
  epoch: Generated<number | null>;
  /**
   * The name of the manager that took the job under `epoch` (migration 0019): a leader resuming
   * the job tells a takeover (another manager's) from a restart of its own.
   */
  manager: Generated<string | null>;
}

/**
 * The manager lease (leader.ts, migration 0017): one row (id 1). `holder` is the leading manager
 * process (an id made at its start), `epoch` counts the changes of holder, `expires_at` is the
 * holder's wall clock plus the lease's length (ISO text, which compares in time order).
 */
export interface ManagerLeaderTable {
  id: number;
  holder: string | null;
  holder_name: string | null;
  holder_url: string | null;
  epoch: number;
  expires_at: string;
  /** ISO time the current holder took the lease. */
  since: string | null;
}

/** Every manager process seen (leader.ts): each writes its row as it renews or checks the lease. */
export interface ManagersTable {
  id: string;
  name: string;
  url: string;
  version: string;
  started_at: string;
  /** Its last check of the lease. */
  seen_at: string;
}
/**
 * The fabric's certificate authority (migration 0021): one row (id 1), so every manager on the
 * database issues and checks with the same one (fabric-ca.ts). Its key is a secret as the data
 * dir's pki/ is: whoever reads the database can issue manager certificates.
 */
export interface FabricCaTable {
  id: number;
  key_pem: string;
  cert_pem: string;
  stored_at: string;
}
export interface ChangesTable {
  id: number | undefined;
  at: string;
  actor: string;
  object_kind: string;
  object_id: string;
  object_name: string;
  action: string;
  changes: string;
  host: string | null;
  job_id: string | null;
  /** low | medium | high, by change-risk.ts's rules when the record was made. */
  risk: string;
  risk_rule: string;
  /**
   * The name of the manager that wrote the record (its database handle's, `nameWriter`; migration
   * 0019); null for records from before it and for writes through a handle no manager named.
   */
  manager: Generated<string | null>;
}

/**
 * An undo of a move that could not run when the move failed (its host did not answer): kept and
 * run again each time the host answers, until it succeeds (move/cleanups.ts).
 */
export interface PendingUndosTable {
  id: string;
  job_id: string;
  vm_id: string;
  vm_name: string;
  host_id: string;
  /** An undo step of phases.ts, or a cold move's `close-cold-export` / `remove-cold-copy` (pending-undos.ts). */
  step: 'abort-incoming' | 'cancel-source' | 'close-cold-export' | 'remove-cold-copy';
  migration_id: string;
  state: 'pending' | 'done';
  attempts: number;
  last_error: string | null;
  created_at: string;
  done_at: string | null;
}

/**
 * Another host's report of a VM whose row is elsewhere (an incoming shell left by a failed move):
 * shown with the VM as a flagged copy until that host stops reporting it.
 */
export interface VmCopiesTable {
  vm_id: string;
  host_id: string;
  state: string;
  seen_at: string;
}

/**
 * Retained copies (issue 17, move/retained.ts): the disks a VM left on a host when it moved away
 * with `retain`, and the generation they are of. A copy is usable for a delta move back only while
 * the VM's disks still track that generation (vm_generations).
 */
export interface RetainedCopiesTable {
  id: string;
  vm_id: string;
  vm_name: string;
  host_id: string;
  generation_id: string;
  departed_at: string;
  expires_at: string;
  /** JSON: { diskId: datastore }. */
  datastores: string;
  /** JSON: { diskId: allocated bytes }. */
  disk_bytes: string;
  allocated_bytes: number;
  /** What the host's last check said: null = valid, else why the copy cannot be used. */
  invalid_reason: string | null;
  checked_at: string;
}

/** The generation a VM's disks track (started at the arrival of a move that retained its source). */
export interface VmGenerationsTable {
  vm_id: string;
  generation_id: string;
  host_id: string;
  since: string;
}

/**
 * A VM's identity (id, name, MACs) claimed by the job creating it, from the request's acceptance
 * until the VM's row holds it or the job ends (vm-identity.ts). The primary key makes two
 * pending creates exclude each other; the unique indexes on vms.name and vm_nics.mac (0012) do the
 * same for VMs that exist.
 */
export interface VmClaimsTable {
  field: 'id' | 'name' | 'mac';
  value: string;
  vm_id: string;
  job_id: string;
}

/*
 * The metrics store (insight/store.ts): a current row per datastore, disk and guest, series of
 * I/O sums and of datastore space per tier, the per-datastore thresholds and the issues found.
 * Times in the series are epoch seconds (integers index and compare fastest); the rest ISO text.
 */
export interface StatDatastoresTable {
  id: number | undefined;
  host: string;
  name: string;
  fs_type: string;
  capacity_bytes: number;
  free_bytes: number;
  provisioned_bytes: number;
  allocated_bytes: number;
  sampled_at: string;
  days_until_full: number | null;
  /** The 5-minute bucket days_until_full was computed in (it is recomputed once per bucket). */
  trend_bucket: number | null;
  /** A shared datastore its host does not reach: the agent's DatastoreLost as JSON; null otherwise. */
  lost: string | null;
}
export interface StatDisksTable {
  id: number | undefined;
  vm_id: string;
  disk_id: string;
  vm_name: string;
  host: string;
  datastore: string;
  format: 'qcow2' | 'raw';
  format_version: string | null;
  virtual_size_bytes: number;
  allocated_bytes: number;
  sampled_at: string;
  sampled_ms: number;
  /** 1 when its host's last report no longer had it (VM deleted): kept for its series, not listed. */
  gone: number;
}
/** A disk's last cumulative BlockCounters / LatencyHistograms (JSON), to diff the next sample against. */
export interface StatDiskCountersTable {
  id: number;
  counter_epoch: string | null;
  counters: string | null;
  histograms: string | null;
  sampled_ms: number;
}
export interface StatGuestsTable {
  vm_id: string;
  vm_name: string;
  host: string;
  agent_version: string | null;
  /** GuestFilesystemStats[] as JSON; null when unknown. */
  filesystems: string | null;
  used_bytes: number | null;
  size_bytes: number | null;
  fullest_percent: number | null;
  sampled_at: string;
}
type BinColumns<P extends string> = { [K in `${P}${BinIndex}`]: number };
type BinIndex = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | 11 | 12 | 13 | 14 | 15 | 16 | 17;
export type IoSeriesTable = {
  /** 0: a disk (stat_disks.id), 1: a datastore (stat_datastores.id). */
  kind: number;
  subject: number;
  /** Tier: the bucket length in seconds; negative: a sliding window (store.ts WINDOWS), bucket 0. */
  res: number;
  /** Epoch seconds: the bucket's start. */
  bucket: number;
  seconds: number;
  rd_ops: number;
  wr_ops: number;
  fl_ops: number;
  rd_bytes: number;
  wr_bytes: number;
  rd_ns: number;
  wr_ns: number;
  fl_ns: number;
} & BinColumns<'r'> &
  BinColumns<'w'>;
export interface IoWindowsTable {
  res: number;
  start: number;
}
export interface DsSeriesTable {
  ds: number;
  res: number;
  bucket: number;
  /** Epoch seconds of the last sample in the bucket, whose figures the row holds. */
  at: number;
  capacity_bytes: number;
  free_bytes: number;
  provisioned_bytes: number;
  allocated_bytes: number;
}
export interface StorageThresholdsTable {
  host: string;
  datastore: string;
  /** StorageThresholdOverrides as JSON. */
  overrides: string;
  updated_at: string;
  updated_by: string;
}
export interface StorageIssuesTable {
  id: number | undefined;
  rule: string;
  severity: string;
  subject_kind: string;
  subject_key: string;
  subject_name: string;
  host: string | null;
  /** `host/datastore` the subject lives on, when known (to count a datastore's issues). */
  datastore: string | null;
  message: string;
  value: number | null;
  threshold: number | null;
  started_at: string;
  ended_at: string | null;
  updated_at: string;
}

/*
 * Placement (placement/): the mode and settings (one row), per-VM settings and streaks, the
 * recommendations, schedules and the placement moves made (for the daily budget).
 */
export interface PlacementConfigTable {
  id: number;
  mode: string;
  /** PlacementSettingsOverrides as JSON. */
  overrides: string;
  updated_at: string;
  updated_by: string;
  last_evaluated_at: string | null;
}
export interface VmPlacementTable {
  vm_id: string;
  priority: number;
  pinned: number;
  excluded: number;
  home_host_id: string | null;
  home_datastore: string | null;
  placed_for: 'demand' | 'schedule' | null;
  hot_since: string | null;
  cool_since: string | null;
}
export interface PlacementRecommendationsTable {
  id: string;
  /** Creation order, assigned at insert (migration 0011): one round's recommendations share created_at. */
  seq: Generated<number>;
  vm_id: string;
  vm_name: string;
  kind: string;
  from_host: string;
  from_datastore: string;
  to_host: string;
  to_datastore: string;
  to_class: string;
  /** PlacementReason and PredictedLoad as JSON. */
  reason: string;
  predicted: string;
  state: 'pending' | 'applied' | 'dismissed' | 'expired';
  created_at: string;
  updated_at: string;
  job_id: string | null;
}
export interface PlacementSchedulesTable {
  id: string;
  vm_id: string;
  class: string;
  cron: string;
  duration_seconds: number;
  created_at: string;
  created_by: string;
}
export interface PlacementMovesTable {
  id: number | undefined;
  vm_id: string;
  kind: string;
  job_id: string;
  to_host: string;
  to_datastore: string;
  started_at: string;
}

/**
 * What the manager knows of the link from one host to another (issue 27, links.ts): the current
 * figure (rate, when, how: probe | mirror | given), the rate the last live move observed while its
 * disks mirrored, and the last probe's failure until a probe succeeds.
 */
export interface HostLinksTable {
  from_host_id: string;
  to_host_id: string;
  bits_per_second: number | null;
  source: 'probe' | 'mirror' | 'given' | null;
  measured_at: string | null;
  mirror_bits_per_second: number | null;
  mirror_at: string | null;
  probe_error: string | null;
  probe_error_at: string | null;
}

export interface DB {
  host_links: HostLinksTable;
  placement_config: PlacementConfigTable;
  vm_placement: VmPlacementTable;
  placement_recommendations: PlacementRecommendationsTable;
  placement_schedules: PlacementSchedulesTable;
  placement_moves: PlacementMovesTable;
  stat_datastores: StatDatastoresTable;
  stat_disks: StatDisksTable;
  stat_disk_counters: StatDiskCountersTable;
  stat_guests: StatGuestsTable;
  io_series: IoSeriesTable;
  io_windows: IoWindowsTable;
  ds_series: DsSeriesTable;
  storage_thresholds: StorageThresholdsTable;
  storage_issues: StorageIssuesTable;
  tokens: TokensTable;
  pools: PoolsTable;
  clusters: ClustersTable;
  hosts: HostsTable;
  datastores: DatastoresTable;
  vswitches: VSwitchesTable;
  vms: VmsTable;
  vm_disks: VmDisksTable;
  vm_nics: VmNicsTable;
  jobs: JobsTable;
  changes: ChangesTable;
  pending_undos: PendingUndosTable;
  vm_copies: VmCopiesTable;
  retained_copies: RetainedCopiesTable;
  vm_generations: VmGenerationsTable;
  vm_claims: VmClaimsTable;
  revoked_certificates: RevokedCertificatesTable;
  manager_leader: ManagerLeaderTable;
  managers: ManagersTable;
  fabric_ca: FabricCaTable;
}

/** Host certificates revoked by `host remove` (or replaced by a renewal): the fabric's CRL. */
export interface RevokedCertificatesTable {
  serial: string;
  host_name: string;
  revoked_at: string;
}

export type Db = Kysely<DB>;
/** Either the database or a transaction on it: the store's functions take whichever they get. */
export type Tx = Kysely<DB> | Transaction<DB>;

export type SqlDialect = 'sqlite' | 'postgres';

/** Which database a Kysely instance (or a transaction, or a migration's) talks to. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any schema: migrations pass Kysely<any>
export const dialectOf = (db: Kysely<any>): SqlDialect =>
  db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';

/** A dialect's form of something (statements, a query's SQL): each written out, no rewriting. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any schema: migrations pass Kysely<any>
export const byDialect = <T>(db: Kysely<any>, forms: { sqlite: T; postgres: T }): T => forms[dialectOf(db)];

/*
 * The manager writing through a database handle (issue 31: several managers on one database), for
 * its change records. Kept by the handle's adapter, which the handle's transactions share (Kysely
 * makes one per instance and hands it on to each transaction's executor): a transaction carries
 * its manager without every writer passing it on.
 */
const writers = new WeakMap<object, string>();

/** Names the manager whose writes go through `db` (startManager, once it has opened it). */
export function nameWriter(db: Db, manager: string): void {
  writers.set(db.getExecutor().adapter, manager);
}

/** The manager writing through `tx` (a handle or a transaction of it), if one named itself. */
export const writerOf = (tx: Tx): string | null => writers.get(tx.getExecutor().adapter) ?? null;

/**
 * PostgreSQL's column types for the schema builder's (migrations written for SQLite): integer
 * becomes bigint, real double precision, an autoincrement key an identity column.
 */
class PostgresColumnTypes extends OperationNodeTransformer {
  protected override transformDataType(node: DataTypeNode): DataTypeNode {
    if (node.dataType === 'integer') return { ...node, dataType: 'bigint' };
    if (node.dataType === 'real') return { ...node, dataType: 'double precision' };
    return node;
  }
  protected override transformColumnDefinition(node: ColumnDefinitionNode): ColumnDefinitionNode {
    const column = super.transformColumnDefinition(node);
    if (!column.autoIncrement) return column;
    // Kysely's GeneratedNode is internal; this is its shape (`generated by default as identity`).
    const generated = { kind: 'GeneratedNode', byDefault: true, identity: true } as const;
    return { ...column, autoIncrement: false, generated } as ColumnDefinitionNode;
  }
}
const postgresColumnTypes: KyselyPlugin = {
  transformQuery: (args: PluginTransformQueryArgs): RootOperationNode =>
    new PostgresColumnTypes().transformNode(args.node),
  transformResult: async (args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> => args.result,
};

/** The rule a constraint error broke, whichever database raised it (else undefined). */
export function constraintViolation(
  error: unknown,
): 'unique' | 'foreign-key' | 'check' | 'not-null' | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  switch (code) {
    case 'SQLITE_CONSTRAINT_UNIQUE':
    case 'SQLITE_CONSTRAINT_PRIMARYKEY':
    case '23505':
      return 'unique';
    // SQLite reports an `on delete restrict` as a trigger's (the schema has no trigger that aborts).
    case 'SQLITE_CONSTRAINT_FOREIGNKEY':
    case 'SQLITE_CONSTRAINT_TRIGGER':
    case '23503':
      return 'foreign-key';
    case 'SQLITE_CONSTRAINT_CHECK':
    case '23514':
      return 'check';
    case 'SQLITE_CONSTRAINT_NOTNULL':
    case '23502':
      return 'not-null';
    default:
      return undefined;
  }
}

/**
 * Text PostgreSQL cannot take (a NUL character, 22021): bad input there, where SQLite would store
 * or look it up (a lookup then finds nothing: no stored name holds one).
 */
export const unstorableText = (error: unknown): boolean =>
  (error as { code?: unknown } | null)?.code === '22021';

// Migrations are append-only: never edit one that has shipped, add the next number.
/* eslint-disable @typescript-eslint/no-explicit-any -- a migration sees whatever schema existed then */
export const migrations: Readonly<Record<string, Migration>> = {
  '0001-initial': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('tokens')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('pools')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('description', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('hosts')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('agent_url', 'text', (c) => c.notNull().unique())
        .addColumn('agent_token', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('pool_id', 'text', (c) => c.references('pools.id'))
        .addColumn('fabric_address', 'text', (c) => c.notNull())
        .addColumn('agent_version', 'text', (c) => c.notNull())
        .addColumn('qemu_version', 'text', (c) => c.notNull())
        .addColumn('accelerator', 'text', (c) => c.notNull())
        .addColumn('accelerator_warning', 'text')
        .addColumn('cpus', 'integer', (c) => c.notNull())
        .addColumn('memory_bytes', 'integer', (c) => c.notNull())
        .addColumn('memory_free_bytes', 'integer', (c) => c.notNull())
        .addColumn('machine_type', 'text', (c) => c.notNull())
        .addColumn('cpu_model', 'text', (c) => c.notNull())
        .addColumn('last_seen_at', 'text', (c) => c.notNull())
        .addColumn('last_error', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('hosts_pool').on('hosts').columns(['pool_id', 'name']).execute();
      await db.schema
        .createTable('datastores')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('host_id', 'text', (c) => c.notNull().references('hosts.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('path', 'text', (c) => c.notNull())
        .addColumn('is_default', 'integer', (c) => c.notNull())
        .addColumn('capacity_bytes', 'integer', (c) => c.notNull())
        .addColumn('free_bytes', 'integer', (c) => c.notNull())
        .addUniqueConstraint('datastores_host_name', ['host_id', 'name'])
        .execute();
      await db.schema
        .createTable('vswitches')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('host_id', 'text', (c) => c.notNull().references('hosts.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('bridge', 'text', (c) => c.notNull())
        .addColumn('uplink', 'text')
        .addUniqueConstraint('vswitches_host_name', ['host_id', 'name'])
        .execute();
      await db.schema
        .createTable('vms')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('host_id', 'text', (c) => c.notNull().references('hosts.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('pid', 'integer')
        .addColumn('vcpus', 'integer', (c) => c.notNull())
        .addColumn('memory_mib', 'integer', (c) => c.notNull())
        .addColumn('guest_ip', 'text')
        .addColumn('guest_gateway', 'text')
        .addColumn('machine_type', 'text', (c) => c.notNull())
        .addColumn('cpu_model', 'text', (c) => c.notNull())
        .addColumn('accelerator', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text')
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('vms_name').on('vms').columns(['name', 'id']).execute();
      await db.schema.createIndex('vms_host').on('vms').columns(['host_id', 'name', 'id']).execute();
      await db.schema.createIndex('vms_state').on('vms').columns(['state', 'name', 'id']).execute();
      await db.schema
        .createTable('vm_disks')
        .addColumn('vm_id', 'text', (c) => c.notNull().references('vms.id').onDelete('cascade'))
        .addColumn('disk_id', 'text', (c) => c.notNull())
        .addColumn('position', 'integer', (c) => c.notNull())
        .addColumn('datastore', 'text', (c) => c.notNull())
        .addColumn('path', 'text', (c) => c.notNull())
        .addColumn('format', 'text', (c) => c.notNull())
        .addColumn('virtual_size_bytes', 'integer', (c) => c.notNull())
        .addColumn('allocated_bytes', 'integer', (c) => c.notNull())
        .addColumn('node_name', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('vm_disks_pk', ['vm_id', 'disk_id'])
        .execute();
      await db.schema
        .createTable('vm_nics')
        .addColumn('vm_id', 'text', (c) => c.notNull().references('vms.id').onDelete('cascade'))
        .addColumn('nic_id', 'text', (c) => c.notNull())
        .addColumn('position', 'integer', (c) => c.notNull())
        .addColumn('vswitch', 'text', (c) => c.notNull())
        .addColumn('mac', 'text', (c) => c.notNull())
        .addColumn('tap', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('vm_nics_pk', ['vm_id', 'nic_id'])
        .execute();
      await db.schema
        .createTable('jobs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('target_kind', 'text', (c) => c.notNull())
        .addColumn('target_id', 'text', (c) => c.notNull())
        .addColumn('target_name', 'text', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('params', 'text', (c) => c.notNull())
        .addColumn('progress', 'text', (c) => c.notNull())
        .addColumn('checkpoint', 'text')
        .addColumn('result', 'text')
        .addColumn('error', 'text')
        .addColumn('cancel_requested', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text')
        .addColumn('finished_at', 'text')
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('jobs_created').on('jobs').columns(['created_at', 'id']).execute();
      await db.schema.createIndex('jobs_state').on('jobs').columns(['state']).execute();
      await db.schema.createIndex('jobs_target').on('jobs').columns(['target_id']).execute();
      await db.schema
        .createTable('changes')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('object_kind', 'text', (c) => c.notNull())
        .addColumn('object_id', 'text', (c) => c.notNull())
        .addColumn('object_name', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('changes', 'text', (c) => c.notNull())
        .addColumn('host', 'text')
        .addColumn('job_id', 'text')
        .execute();
      await db.schema.createIndex('changes_object').on('changes').columns(['object_id', 'id']).execute();
      await db.schema.createIndex('changes_kind').on('changes').columns(['object_kind', 'id']).execute();
      await db.schema.createIndex('changes_actor').on('changes').columns(['actor', 'id']).execute();
      await db.schema.createIndex('changes_at').on('changes').columns(['at']).execute();
    },
  },
  '0002-pending-undos': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('pending_undos')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('job_id', 'text', (c) => c.notNull())
        .addColumn('vm_id', 'text', (c) => c.notNull())
        .addColumn('vm_name', 'text', (c) => c.notNull())
        .addColumn('host_id', 'text', (c) => c.notNull().references('hosts.id').onDelete('cascade'))
        .addColumn('step', 'text', (c) => c.notNull())
        .addColumn('migration_id', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('last_error', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('done_at', 'text')
        .execute();
      await db.schema
        .createIndex('pending_undos_host')
        .on('pending_undos')
        .columns(['host_id', 'state'])
        .execute();
    },
  },
  '0003-vm-copies': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('vm_copies')
        .addColumn('vm_id', 'text', (c) => c.notNull())
        .addColumn('host_id', 'text', (c) => c.notNull().references('hosts.id').onDelete('cascade'))
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('seen_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('vm_copies_pk', ['vm_id', 'host_id'])
        .execute();
    },
  },
  '0004-change-risk': {
    // Each change's risk and rule in columns, so a risk filter is SQL. Older records are rated by
    // the rules of this version, without the VM's state (unknown then; see change-risk.ts).
    async up(db: Kysely<any>) {
      await db.schema
        .alterTable('changes')
        .addColumn('risk', 'text', (c) => c.notNull().defaultTo('medium'))
        .execute();
      await db.schema
        .alterTable('changes')
        .addColumn('risk_rule', 'text', (c) => c.notNull().defaultTo('unrated'))
        .execute();
      const rows = (await db
        .selectFrom('changes')
        .select(['id', 'object_kind', 'action', 'changes'])
        .execute()) as { id: number; object_kind: string; action: string; changes: string }[];
      const groups = new Map<string, number[]>();
      for (const r of rows) {
        const rated = rateChange({
          kind: r.object_kind as RiskInput['kind'],
          action: r.action as RiskInput['action'],
          changes: JSON.parse(r.changes) as RiskInput['changes'],
        });
        const key = `${rated.risk} ${rated.rule}`;
        groups.set(key, [...(groups.get(key) ?? []), r.id]);
      }
      for (const [key, ids] of groups) {
        const [risk, rule] = key.split(' ');
        for (let i = 0; i < ids.length; i += 500)
          await db
            .updateTable('changes')
            .set({ risk, risk_rule: rule })
            .where('id', 'in', ids.slice(i, i + 500))
            .execute();
      }
      await db.schema.createIndex('changes_risk').on('changes').columns(['risk', 'id']).execute();
      // Covers the timeline's grouping (time, risk, kind) without reading the records themselves.
      await db.schema
        .createIndex('changes_at_risk_kind')
        .on('changes')
        .columns(['at', 'risk', 'object_kind'])
        .execute();
      // `object=<name>` compares lower-cased names (its parts are a range: `<name>/` up to `<name>0`).
      await db.schema
        .createIndex('changes_object_name')
        .on('changes')
        .expression(sql`lower(object_name)`)
        .execute();
      // Its first columns are changes_at's: that one only costs writes now.
      await db.schema.dropIndex('changes_at').execute();
    },
  },
  '0006-guest-tools': {
    // The guest tools (issue 19): each host's tools disk version, each VM's tools disk and what
    // its guest agent last answered.
    async up(db: Kysely<any>) {
      await db.schema.alterTable('hosts').addColumn('tools_version', 'text').execute();
      await db.schema
        .alterTable('vms')
        .addColumn('tools_disk', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.alterTable('vms').addColumn('tools_version', 'text').execute();
      await db.schema.alterTable('vms').addColumn('tools_started_at', 'text').execute();
      await db.schema
        .alterTable('vms')
        .addColumn('tools_answering', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
    },
  },
  '0009-retained-copies': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('retained_copies')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('vm_id', 'text', (c) => c.notNull())
        .addColumn('vm_name', 'text', (c) => c.notNull())
        .addColumn('host_id', 'text', (c) => c.notNull().references('hosts.id').onDelete('cascade'))
        .addColumn('generation_id', 'text', (c) => c.notNull())
        .addColumn('departed_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('datastores', 'text', (c) => c.notNull())
        .addColumn('allocated_bytes', 'integer', (c) => c.notNull())
        .addColumn('disk_bytes', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('invalid_reason', 'text')
        .addColumn('checked_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('retained_copies_vm_host', ['vm_id', 'host_id'])
        .execute();
      await db.schema
        .createTable('vm_generations')
        .addColumn('vm_id', 'text', (c) => c.primaryKey())
        .addColumn('generation_id', 'text', (c) => c.notNull())
        .addColumn('host_id', 'text', (c) => c.notNull())
        .addColumn('since', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '0007-datastore-class': {
    // Issue 18: each datastore's class, limits and last I/O probe (as its agent reports them).
    async up(db: Kysely<any>) {
      await db.schema
        .alterTable('datastores')
        .addColumn('class', 'text', (c) => c.notNull().defaultTo('standard'))
        .execute();
      for (const column of ['limit_iops', 'limit_bytes_per_second'])
        await db.schema.alterTable('datastores').addColumn(column, 'integer').execute();
      for (const column of ['probe_iops', 'probe_bytes_per_second'])
        await db.schema.alterTable('datastores').addColumn(column, 'real').execute();
      await db.schema.alterTable('datastores').addColumn('probed_at', 'text').execute();
    },
  },
  '0005-metrics-store': {
    async up(db: Kysely<any>) {
      const bins = (p: string) =>
        Array.from({ length: 18 }, (_, i) => `${p}${i} real not null default 0`).join(', ');
      const pgBins = (p: string) =>
        Array.from({ length: 18 }, (_, i) => `${p}${i} double precision not null default 0`).join(', ');
      const pgIo = ['rd_ops', 'wr_ops', 'fl_ops', 'rd_bytes', 'wr_bytes', 'rd_ns', 'wr_ns', 'fl_ns']
        .map((c) => `${c} bigint not null`)
        .join(', ');
      const postgres = [
        `create table stat_datastores (id bigint generated by default as identity primary key,
          host text not null, name text not null, fs_type text not null, capacity_bytes bigint not null,
          free_bytes bigint not null, provisioned_bytes bigint not null, allocated_bytes bigint not null,
          sampled_at text not null, days_until_full double precision, trend_bucket bigint, unique (host, name))`,
        `create table stat_disks (id bigint generated by default as identity primary key, vm_id text not null,
          disk_id text not null, vm_name text not null, host text not null, datastore text not null,
          format text not null, format_version text, virtual_size_bytes bigint not null,
          allocated_bytes bigint not null, sampled_at text not null, sampled_ms bigint not null,
          gone bigint not null default 0, unique (vm_id, disk_id))`,
        `create table stat_disk_counters (id bigint primary key, counter_epoch text, counters text,
          histograms text, sampled_ms bigint not null)`,
        `create index stat_disks_host on stat_disks (host, datastore)`,
        `create table stat_guests (vm_id text primary key, vm_name text not null, host text not null,
          agent_version text, filesystems text, used_bytes bigint, size_bytes bigint,
          fullest_percent double precision, sampled_at text not null)`,
        `create table io_series (res bigint not null, bucket bigint not null, kind bigint not null,
          subject bigint not null, seconds double precision not null, ${pgIo}, ${pgBins('r')}, ${pgBins('w')},
          primary key (res, bucket, kind, subject))`,
        `create table io_windows (res bigint primary key, start bigint not null)`,
        `create table ds_series (ds bigint not null, res bigint not null, bucket bigint not null,
          at bigint not null, capacity_bytes bigint not null, free_bytes bigint not null,
          provisioned_bytes bigint not null, allocated_bytes bigint not null, primary key (ds, res, bucket))`,
        `create index ds_series_age on ds_series (res, bucket)`,
        `create table storage_thresholds (host text not null, datastore text not null,
          overrides text not null, updated_at text not null, updated_by text not null,
          primary key (host, datastore))`,
        `create table storage_issues (id bigint generated by default as identity primary key,
          rule text not null, severity text not null, subject_kind text not null, subject_key text not null,
          subject_name text not null, host text, datastore text, message text not null,
          value double precision, threshold double precision, started_at text not null, ended_at text,
          updated_at text not null)`,
        `create unique index storage_issues_open on storage_issues (rule, subject_key) where ended_at is null`,
        `create index storage_issues_ended on storage_issues (ended_at)`,
        `create index storage_issues_datastore on storage_issues (datastore) where ended_at is null`,
      ];
      for (const statement of byDialect(db, {
        postgres,
        sqlite: [
          `create table stat_datastores (id integer primary key autoincrement, host text not null,
          name text not null, fs_type text not null, capacity_bytes integer not null,
          free_bytes integer not null, provisioned_bytes integer not null, allocated_bytes integer not null,
          sampled_at text not null, days_until_full real, trend_bucket integer, unique (host, name))`,
          `create table stat_disks (id integer primary key autoincrement, vm_id text not null,
          disk_id text not null, vm_name text not null, host text not null, datastore text not null,
          format text not null, format_version text, virtual_size_bytes integer not null,
          allocated_bytes integer not null, sampled_at text not null, sampled_ms integer not null,
          gone integer not null default 0, unique (vm_id, disk_id))`,
          // The last cumulative counters, apart: the explorer scans stat_disks, which stays narrow.
          `create table stat_disk_counters (id integer primary key, counter_epoch text, counters text,
          histograms text, sampled_ms integer not null)`,
          `create index stat_disks_host on stat_disks (host, datastore)`,
          `create table stat_guests (vm_id text primary key, vm_name text not null, host text not null,
          agent_version text, filesystems text, used_bytes integer, size_bytes integer,
          fullest_percent real, sampled_at text not null)`,
          // WITHOUT ROWID, time first: a collection round writes into the same few pages (the current
          // buckets), a window reads one contiguous range, pruning deletes one.
          `create table io_series (res integer not null, bucket integer not null, kind integer not null,
          subject integer not null, seconds real not null, rd_ops integer not null, wr_ops integer not null,
          fl_ops integer not null, rd_bytes integer not null, wr_bytes integer not null,
          rd_ns integer not null, wr_ns integer not null, fl_ns integer not null, ${bins('r')}, ${bins('w')},
          primary key (res, bucket, kind, subject)) without rowid`,
          // Where each sliding window (io_series rows with res < 0) starts: the sums of its source
          // tier's buckets from there on.
          `create table io_windows (res integer primary key, start integer not null)`,
          `create table ds_series (ds integer not null, res integer not null, bucket integer not null,
          at integer not null, capacity_bytes integer not null, free_bytes integer not null,
          provisioned_bytes integer not null, allocated_bytes integer not null,
          primary key (ds, res, bucket)) without rowid`,
          `create index ds_series_age on ds_series (res, bucket)`,
          `create table storage_thresholds (host text not null, datastore text not null,
          overrides text not null, updated_at text not null, updated_by text not null,
          primary key (host, datastore))`,
          `create table storage_issues (id integer primary key autoincrement, rule text not null,
          severity text not null, subject_kind text not null, subject_key text not null,
          subject_name text not null, host text, datastore text, message text not null, value real,
          threshold real, started_at text not null, ended_at text, updated_at text not null)`,
          // One open issue per rule and subject; the evaluation updates it until it ends.
          `create unique index storage_issues_open on storage_issues (rule, subject_key) where ended_at is null`,
          `create index storage_issues_ended on storage_issues (ended_at)`,
          `create index storage_issues_datastore on storage_issues (datastore) where ended_at is null`,
        ],
      }))
        await sql.raw(statement).execute(db);
    },
  },
  '0008-placement': {
    // Demand-driven placement (issue 18). The datastore class it reads is the datastores table's
    // `class` column of migration 0007 (placement/facts.ts datastoreClass: 'standard' without it).
    async up(db: Kysely<any>) {
      const postgres = [
        `create table placement_config (id bigint primary key check (id = 1), mode text not null,
          overrides text not null, updated_at text not null, updated_by text not null,
          last_evaluated_at text)`,
        `insert into placement_config (id, mode, overrides, updated_at, updated_by)
          values (1, '${DEFAULT_PLACEMENT_MODE}', '{}',
          to_char(now() at time zone 'utc', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'system')`,
        `create table vm_placement (vm_id text primary key references vms (id) on delete cascade,
          priority bigint not null, pinned bigint not null default 0, excluded bigint not null default 0,
          home_host_id text references hosts (id) on delete set null, home_datastore text,
          placed_for text, hot_since text, cool_since text)`,
        `create table placement_recommendations (id text primary key,
          vm_id text not null references vms (id) on delete cascade, vm_name text not null,
          kind text not null, from_host text not null, from_datastore text not null,
          to_host text not null, to_datastore text not null, to_class text not null,
          reason text not null, predicted text not null, state text not null,
          created_at text not null, updated_at text not null, job_id text)`,
        `create index placement_recommendations_state on placement_recommendations (state, created_at)`,
        `create table placement_schedules (id text primary key,
          vm_id text not null references vms (id) on delete cascade, class text not null,
          cron text not null, duration_seconds bigint not null, created_at text not null,
          created_by text not null)`,
        `create table placement_moves (id bigint generated by default as identity primary key,
          vm_id text not null, kind text not null, job_id text not null, to_host text not null,
          to_datastore text not null, started_at text not null)`,
        `create index placement_moves_vm on placement_moves (vm_id, started_at)`,
      ];
      for (const statement of byDialect(db, {
        postgres,
        sqlite: [
          `create table placement_config (id integer primary key check (id = 1), mode text not null,
          overrides text not null, updated_at text not null, updated_by text not null,
          last_evaluated_at text)`,
          `insert into placement_config (id, mode, overrides, updated_at, updated_by)
          values (1, '${DEFAULT_PLACEMENT_MODE}', '{}', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'system')`,
          `create table vm_placement (vm_id text primary key references vms (id) on delete cascade,
          priority integer not null, pinned integer not null default 0, excluded integer not null default 0,
          home_host_id text references hosts (id) on delete set null, home_datastore text,
          placed_for text, hot_since text, cool_since text)`,
          `create table placement_recommendations (id text primary key,
          vm_id text not null references vms (id) on delete cascade, vm_name text not null,
          kind text not null, from_host text not null, from_datastore text not null,
          to_host text not null, to_datastore text not null, to_class text not null,
          reason text not null, predicted text not null, state text not null,
          created_at text not null, updated_at text not null, job_id text)`,
          `create index placement_recommendations_state on placement_recommendations (state, created_at)`,
          `create table placement_schedules (id text primary key,
          vm_id text not null references vms (id) on delete cascade, class text not null,
          cron text not null, duration_seconds integer not null, created_at text not null,
          created_by text not null)`,
          // History, kept after the VM is gone (the change log names it too).
          `create table placement_moves (id integer primary key autoincrement, vm_id text not null,
          kind text not null, job_id text not null, to_host text not null, to_datastore text not null,
          started_at text not null)`,
          `create index placement_moves_vm on placement_moves (vm_id, started_at)`,
        ],
      }))
        await sql.raw(statement).execute(db);
    },
  },
  '0010-host-links': {
    // The fabric's links (issue 27): one row per ordered host pair, gone with either host.
    async up(db: Kysely<any>) {
      await sql
        .raw(
          dialectOf(db) === 'postgres'
            ? `create table host_links (
            from_host_id text not null references hosts (id) on delete cascade,
            to_host_id text not null references hosts (id) on delete cascade,
            bits_per_second double precision, source text, measured_at text,
            mirror_bits_per_second double precision, mirror_at text,
            probe_error text, probe_error_at text,
            primary key (from_host_id, to_host_id))`
            : `create table host_links (
            from_host_id text not null references hosts (id) on delete cascade,
            to_host_id text not null references hosts (id) on delete cascade,
            bits_per_second real, source text, measured_at text,
            mirror_bits_per_second real, mirror_at text,
            probe_error text, probe_error_at text,
            primary key (from_host_id, to_host_id)) without rowid`,
        )
        .execute(db);
    },
  },
  '0011-jobs-sequence': {
    // Lists ordered by a creation time tie within a millisecond (jobs submitted together, one
    // placement round's recommendations), and the random id then decided their order: a sequence
    // assigned at insert orders them, and their cursors page on it. Existing rows are numbered
    // by time, then by rowid (their insertion order).
    async up(db: Kysely<any>) {
      for (const table of ['jobs', 'placement_recommendations']) {
        // PostgreSQL: a sequence as the column's default. Its rows are numbered by time, then by
        // ctid, which is their insertion order in a table that has only had inserts (a PostgreSQL
        // database gets every migration at its creation, so this table is new).
        const postgres = [
          `alter table ${table} add column seq bigint`,
          `update ${table} set seq = o.n from (select id,
            row_number() over (order by created_at, ctid) as n from ${table}) as o where o.id = ${table}.id`,
          `create unique index ${table}_seq on ${table} (seq)`,
          `create sequence ${table}_seq_numbers owned by ${table}.seq`,
          `select setval('${table}_seq_numbers', (select coalesce(max(seq), 0) + 1 from ${table}), false)`,
          `alter table ${table} alter column seq set default nextval('${table}_seq_numbers')`,
        ];
        for (const statement of byDialect(db, {
          postgres,
          sqlite: [
            `alter table ${table} add column seq integer`,
            `update ${table} set seq = (select n from (select rowid as r,
            row_number() over (order by created_at, rowid) as n from ${table}) where r = ${table}.rowid)`,
            `create unique index ${table}_seq on ${table} (seq)`,
            // Every insert gets the next number, whichever code path (or test) inserts the row.
            `create trigger ${table}_seq_assign after insert on ${table} when new.seq is null begin
            update ${table} set seq = (select coalesce(max(seq), 0) + 1 from ${table})
            where rowid = new.rowid; end`,
          ],
        }))
          await sql.raw(statement).execute(db);
      }
      await sql
        .raw('create index placement_recommendations_state_seq on placement_recommendations (state, seq)')
        .execute(db);
    },
  },
  '0012-fabric-invariants': {
    // Issue 28: unique VM names and MACs held by the database, not only checked in code. The
    // fabric's hosts share one VM network (the lab's VM L2), so a MAC is unique across all of
    // them. A move never makes a second row: the target's VM has the moving VM's id (its row
    // moves), an incoming shell is a vm_copies row, a retained copy a retained_copies row.
    async up(db: Kysely<any>) {
      const pg = dialectOf(db) === 'postgres';
      for (const statement of [
        // Duplicates a database may hold from before: the oldest VM keeps its name (and MAC); the
        // others leave the inventory, and the next reconciliation reports them as drift.
        `delete from vms where id in (select v.id from vms v where exists (select 1 from vms o
          where o.name = v.name and (o.created_at < v.created_at or (o.created_at = v.created_at and o.id < v.id))))`,
        `delete from vms where id in (select vm_id from vm_nics group by vm_id, mac having count(*) > 1)`,
        `delete from vms where id in (select n.vm_id from vm_nics n join vms v on v.id = n.vm_id
          where exists (select 1 from vm_nics m join vms w on w.id = m.vm_id where m.mac = n.mac
          and m.vm_id != n.vm_id and (w.created_at < v.created_at or (w.created_at = v.created_at and w.id < v.id))))`,
        `create unique index vms_name_unique on vms (name)`,
        `create unique index vm_nics_mac_unique on vm_nics (mac)`,
        `create table vm_claims (field text not null check (field in ('id', 'name', 'mac')),
          value text not null, vm_id text not null,
          job_id text not null references jobs (id) on delete cascade,
          primary key (field, value))${pg ? '' : ' without rowid'}`,
        `create index vm_claims_job on vm_claims (job_id)`,
        `alter table hosts add column agent_events text`,
      ])
        await sql.raw(statement).execute(db);
    },
  },
  '0013-fabric-pki': {
    // Issue 28: agents are reached with the manager's certificate, no more with a shared token
    // (dropped here; secure_delete zeroes it). Hosts joined by token before must join again
    // (`host remove`, then `host add --join-token`): until then they are unreachable.
    async up(db: Kysely<any>) {
      const postgres = [
        `alter table hosts drop column agent_token`,
        `alter table hosts add column cert_serial text`,
        `alter table hosts add column cert_not_after text`,
        `alter table hosts add column crl_number bigint not null default 0`,
        `create table revoked_certificates (serial text primary key, host_name text not null,
          revoked_at text not null)`,
      ];
      for (const statement of byDialect(db, {
        postgres,
        sqlite: [
          `alter table hosts drop column agent_token`,
          `alter table hosts add column cert_serial text`,
          `alter table hosts add column cert_not_after text`,
          `alter table hosts add column crl_number integer not null default 0`,
          `create table revoked_certificates (serial text primary key, host_name text not null,
          revoked_at text not null) without rowid`,
        ],
      }))
        await sql.raw(statement).execute(db);
    },
  },
  '0014-shared-datastores': {
    // Issue 30: a datastore is local or shared storage; hosts whose datastores carry one storage
    // id see the same files (a move between them leaves such disks where they are). The rows
    // before this were all local.
    async up(db: Kysely<any>) {
      for (const statement of [
        `alter table datastores add column kind text not null default 'local'
          check (kind in ('local', 'shared'))`,
        `alter table datastores add column storage_id text
          check ((kind = 'shared') = (storage_id is not null))`,
        `create index datastores_storage_id on datastores (storage_id) where storage_id is not null`,
      ])
        await sql.raw(statement).execute(db);
    },
  },
  '0015-clusters': {
    // Issue 30: clusters of hosts that share datastores, each host's sanlock host id in its
    // cluster, host maintenance and the VMs' HA settings, each rule held by the database. The
    // ranges and states are the API's as this version defines them (a change needs a migration).
    async up(db: Kysely<any>) {
      // PostgreSQL: the integer columns' type holds them to integers (a fraction is refused);
      // a function stands for json_valid/json_type, answering false for text that is no JSON.
      const postgres = [
        `create table clusters (id text primary key, name text not null unique, created_at text not null)`,
        `alter table hosts add column cluster_id text references clusters (id) on delete restrict`,
        `alter table hosts add column lease_host_id bigint
          check (lease_host_id is null or lease_host_id between ${LEASE_HOST_ID.min} and ${LEASE_HOST_ID.max})
          check ((cluster_id is null) = (lease_host_id is null))`,
        `create unique index hosts_cluster_lease on hosts (cluster_id, lease_host_id)`,
        `alter table hosts add column maintenance text not null default 'none'
          check (maintenance in (${HostMaintenance.options.map((m) => `'${m}'`).join(', ')}))`,
        `alter table vms add column ha_protected bigint not null default 0 check (ha_protected in (0, 1))`,
        `alter table vms add column ha_priority bigint not null default ${HA_PRIORITY.default}
          check (ha_priority between ${HA_PRIORITY.min} and ${HA_PRIORITY.max})`,
        `create function silobreak_json_array(value text) returns boolean language plpgsql immutable as $$
          begin return json_typeof(value::json) = 'array'; exception when others then return false; end $$`,
        `alter table vms add column ha_preferred_hosts text not null default '[]'
          check (silobreak_json_array(ha_preferred_hosts))`,
      ];
      for (const statement of byDialect(db, {
        postgres,
        sqlite: [
          `create table clusters (id text primary key, name text not null unique, created_at text not null)`,
          // A cluster with hosts cannot be deleted (restrict): its hosts are evicted first.
          `alter table hosts add column cluster_id text references clusters (id) on delete restrict`,
          // A host id for sanlock (1..2000) exactly while the host is in a cluster.
          `alter table hosts add column lease_host_id integer
          check (lease_host_id is null or (typeof(lease_host_id) = 'integer'
            and lease_host_id between ${LEASE_HOST_ID.min} and ${LEASE_HOST_ID.max}))
          check ((cluster_id is null) = (lease_host_id is null))`,
          `create unique index hosts_cluster_lease on hosts (cluster_id, lease_host_id)`,
          `alter table hosts add column maintenance text not null default 'none'
          check (maintenance in (${HostMaintenance.options.map((m) => `'${m}'`).join(', ')}))`,
          `alter table vms add column ha_protected integer not null default 0 check (ha_protected in (0, 1))`,
          `alter table vms add column ha_priority integer not null default ${HA_PRIORITY.default}
          check (typeof(ha_priority) = 'integer' and ha_priority between ${HA_PRIORITY.min} and ${HA_PRIORITY.max})`,
          `alter table vms add column ha_preferred_hosts text not null default '[]'
          check (json_valid(ha_preferred_hosts) and json_type(ha_preferred_hosts) = 'array')`,
        ],
      }))
        await sql.raw(statement).execute(db);
    },
  },
  '0016-cluster-leases': {
    // Issue 30: where a cluster's lockspace lives (ClustersTable.lease_storage_id).
    async up(db: Kysely<any>) {
      await sql.raw(`alter table clusters add column lease_storage_id text`).execute(db);
    },
  },
  '0017-manager-leader': {
    // Issue 31: several managers on one database, one of them leading (leader.ts). Plain columns
    // and statements, the same on SQLite and PostgreSQL. The lease row exists from here on, held
    // by nobody (epoch 0, expired), so taking it is always an update of one row.
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('manager_leader')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('holder', 'text')
        .addColumn('holder_name', 'text')
        .addColumn('holder_url', 'text')
        .addColumn('epoch', 'integer', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('since', 'text')
        .execute();
      await db
        .insertInto('manager_leader')
        .values({ id: 1, epoch: 0, expires_at: new Date(0).toISOString() })
        .execute();
      await db.schema
        .createTable('managers')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('version', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text', (c) => c.notNull())
        .addColumn('seen_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.alterTable('jobs').addColumn('epoch', 'integer').execute();
    },
  },
  '0018-postgres-percentile': {
    // Issue 31: the Storage Explorer sorts by percentile_ms(p, bin0, ..., binN) in SQL
    // (insight/explorer.ts). SQLite has it as a JavaScript function registered on each handle
    // (nothing to store); PostgreSQL as a function of the database: rates.ts percentileMs step by
    // step, over the latency bounds of this version (new bounds need a migration replacing it).
    async up(db: Kysely<any>) {
      if (dialectOf(db) !== 'postgres') return;
      await sql
        .raw(
          `create function percentile_ms(p double precision, variadic bins double precision[])
            returns double precision language plpgsql immutable as $$
          declare
            bounds double precision[] := array[${LATENCY_BOUNDS_NS.join(', ')}]::double precision[];
            total double precision := 0;
            rank double precision;
            below double precision := 0;
            n double precision;
            lo double precision;
            hi double precision;
          begin
            for i in 1 .. coalesce(array_length(bins, 1), 0) loop
              total := total + coalesce(bins[i], 0);
            end loop;
            if not (total > 0) then return null; end if;
            rank := p * total;
            for i in 1 .. array_length(bins, 1) loop
              n := coalesce(bins[i], 0);
              if n > 0 and below + n >= rank then
                lo := case when i = 1 then 0 else coalesce(bounds[i - 1], 0) end;
                hi := bounds[i];
                if hi is null then return lo / 1e6; end if;
                return (lo + ((hi - lo) * (rank - below)) / n) / 1e6;
              end if;
              below := below + n;
            end loop;
            return coalesce(bounds[array_length(bounds, 1)], 0) / 1e6;
          end $$`,
        )
        .execute(db);
    },
  },
  '0019-manager-names': {
    // Issue 31: each change record names the manager that wrote it (ChangesTable.manager), each
    // job the manager that runs it (JobsTable.manager). Older rows stay null: which manager wrote
    // them is not known.
    async up(db: Kysely<any>) {
      await db.schema.alterTable('changes').addColumn('manager', 'text').execute();
      await db.schema.alterTable('jobs').addColumn('manager', 'text').execute();
    },
  },
  '0020-shared-datastore-lost': {
    // Issue 30: why a host does not reach a shared datastore, as its agent last said (a JSON
    // DatastoreLost; null while it reaches it): the `shared-datastore-lost` issue's facts.
    async up(db: Kysely<any>) {
      await sql.raw(`alter table stat_datastores add column lost text`).execute(db);
    },
  },
  '0021-fabric-ca': {
    // Issue 31: the fabric CA in the database, so a second manager on it needs only --database
    // (before, each data dir's pki/ held one and had to be copied). One row: the check keeps it
    // so, and its key makes the first of two racing stores win (fabric-ca.ts).
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('fabric_ca')
        .addColumn('id', 'integer', (c) => c.primaryKey().check(sql`id = 1`))
        .addColumn('key_pem', 'text', (c) => c.notNull())
        .addColumn('cert_pem', 'text', (c) => c.notNull())
        .addColumn('stored_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
};
/* eslint-enable @typescript-eslint/no-explicit-any */

/**
 * The database holds token hashes (and, before migration 0013, sealed agent tokens): owner-only.
 * SQLite gives its -wal and -shm files the mode of the database file, so that file is created (or
 * corrected) first.
 */
async function restrictDatabaseFiles(file: string): Promise<void> {
  await (await open(file, 'a', 0o600)).close();
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    try {
      await chmod(f, 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
}

const handles = new WeakMap<Db, Database.Database>();

/**
 * Runs `work` on the SQLite handle itself (prepared statements, synchronous transactions: the
 * metrics store's hot paths, where building each statement through Kysely would cost more than
 * running it), holding Kysely's one connection so no Kysely transaction is open meanwhile.
 */
async function withSqlite<T>(db: Db, work: (sqlite: Database.Database) => T): Promise<T> {
  const sqlite = handles.get(db);
  if (!sqlite) throw new Error('withSqlite: not a database openDatabase opened');
  return db.connection().execute(async () => work(sqlite));
}

/*
 * Raw programs: the metrics store's hot paths as generators that yield their statements (SQL with
 * `?` placeholders, the same text on both databases) and get each one's result back. On SQLite
 * they run synchronously on the handle (prepared statements cached by their text, one
 * better-sqlite3 transaction: as fast as calling the statements directly); on PostgreSQL each
 * statement is awaited through Kysely (a transaction there takes the transactions' lock).
 */
export interface RawStatement {
  sql: string;
  params: readonly unknown[];
  mode: 'all' | 'get' | 'run';
}
export type RawProgram<T> = Generator<RawStatement, T, unknown>;

/** The rows of a statement. */
export function* rawAll<R>(sql: string, ...params: unknown[]): Generator<RawStatement, R[], unknown> {
  return (yield { sql, params, mode: 'all' }) as R[];
}
/** The first row of a statement, if any. */
export function* rawGet<R>(
  sql: string,
  ...params: unknown[]
): Generator<RawStatement, R | undefined, unknown> {
  return (yield { sql, params, mode: 'get' }) as R | undefined;
}
/** Runs a statement: the number of rows it changed. */
export function* rawRun(sql: string, ...params: unknown[]): Generator<RawStatement, number, unknown> {
  return (yield { sql, params, mode: 'run' }) as number;
}

const sqliteStatements = new WeakMap<Database.Database, Map<string, Database.Statement>>();

function driveSqlite<T>(sqlite: Database.Database, program: RawProgram<T>): T {
  let cache = sqliteStatements.get(sqlite);
  if (!cache) sqliteStatements.set(sqlite, (cache = new Map()));
  let step = program.next();
  while (!step.done) {
    const { sql: text, params, mode } = step.value;
    let statement = cache.get(text);
    if (!statement) cache.set(text, (statement = sqlite.prepare(text)));
    // The parameters as one array (better-sqlite3 binds an array's items in order): a batch's
    // thousands spread as arguments would cost more than the statement.
    step = program.next(
      mode === 'all'
        ? statement.all(params)
        : mode === 'get'
          ? statement.get(params)
          : statement.run(params).changes,
    );
  }
  return step.value;
}

/** `?` placeholders as PostgreSQL's `$n` (none sits in a quoted literal: skipped anyway). */
const postgresText = new Map<string, string>();
function postgresSql(text: string): string {
  let out = postgresText.get(text);
  if (out === undefined) {
    let n = 0;
    out = text.replace(/'[^']*'|\?/g, (m) => (m === '?' ? `$${++n}` : m));
    postgresText.set(text, out);
  }
  return out;
}

async function drivePostgres<T>(tx: Tx, program: RawProgram<T>): Promise<T> {
  let step = program.next();
  while (!step.done) {
    const { sql: text, params, mode } = step.value;
    const result = await tx.executeQuery<Record<string, unknown>>(
      CompiledQuery.raw(postgresSql(text), [...params]),
    );
    step = program.next(
      mode === 'all' ? result.rows : mode === 'get' ? result.rows[0] : Number(result.numAffectedRows ?? 0n),
    );
  }
  return step.value;
}

/**
 * Runs a raw program (above) on either database, in one transaction when `transaction`.
 * `sqliteSetup` runs on a SQLite handle first (a function the statements call, registered once).
 */
export async function runRaw<T>(
  db: Db,
  program: () => RawProgram<T>,
  options: { transaction: boolean; sqliteSetup?: (sqlite: Database.Database) => void },
): Promise<T> {
  if (dialectOf(db) === 'postgres') {
    return options.transaction
      ? db.transaction().execute((tx) => drivePostgres(tx, program()))
      : drivePostgres(db, program());
  }
  return withSqlite(db, (sqlite) => {
    options.sqliteSetup?.(sqlite);
    return options.transaction
      ? sqlite.transaction(() => driveSqlite(sqlite, program()))()
      : driveSqlite(sqlite, program());
  });
}

export { isPostgresUrl };

/** pg's type ids of int8 and numeric, which it hands back as strings (they may pass 2^53). */
const INT8_OID = 20;
const NUMERIC_OID = 1700;
/** Connections per manager: requests, jobs and the loops run side by side. */
const POSTGRES_POOL_SIZE = 10;

/**
 * The lease's own connection (leader.ts): its renewal must not queue behind transactions that
 * hold every connection of the main pool while they wait for the transactions' lock (a lone
 * leader under 16 parallel writes lost its lease so, bench/api).
 */
const LEASE_POOL_SIZE = 1;

function postgresPool(url: string, max = POSTGRES_POOL_SIZE): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    connectionTimeoutMillis: DATABASE_CONNECT_TIMEOUT_MS,
    // Counts, sums and bigint columns as numbers, as SQLite gives them: every figure here is
    // far below 2^53 (bytes, milliseconds, ids).
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID || oid === NUMERIC_OID
          ? (value: string) => Number(value)
          : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle connection the server drops (restart, failover) is replaced on the next query.
  pool.on('error', () => {});
  return pool;
}

/**
 * The manager's code was written on SQLite, where one connection runs one transaction at a time:
 * a transaction reads, decides and writes with nothing else in between (a free lease host id, a
 * name not taken). On PostgreSQL each transaction takes one advisory lock first, so transactions
 * run one after another there too, also across managers on one database; reads outside a
 * transaction still run side by side.
 */
const TRANSACTION_LOCK = 31_0001;
class SerializedTransactionsDriver extends PostgresDriver {
  constructor(
    config: PostgresDialectConfig,
    private readonly onDestroy?: () => Promise<void>,
  ) {
    super(config);
  }
  override async destroy(): Promise<void> {
    await super.destroy();
    await this.onDestroy?.();
  }
  override async beginTransaction(
    connection: DatabaseConnection,
    settings: TransactionSettings,
  ): Promise<void> {
    await super.beginTransaction(connection, settings);
    await connection.executeQuery(CompiledQuery.raw(`select pg_advisory_xact_lock(${TRANSACTION_LOCK})`));
  }
}
class ManagerPostgresDialect extends PostgresDialect {
  readonly #pool: PostgresPool;
  readonly #onDestroy: (() => Promise<void>) | undefined;
  constructor(pool: PostgresPool, onDestroy?: () => Promise<void>) {
    super({ pool });
    this.#pool = pool;
    this.#onDestroy = onDestroy;
  }
  override createDriver(): Driver {
    return new SerializedTransactionsDriver({ pool: this.#pool }, this.#onDestroy);
  }
}

/**
 * Runs a read once every transaction under way has ended, as SQLite's one connection makes every
 * read wait (a note of a write made inside a transaction comes before its commit: writes.ts). On
 * PostgreSQL the read runs in a transaction, which waits for the transactions' lock.
 */
export function readAfterTransactions<T>(db: Db, read: (tx: Tx) => Promise<T>): Promise<T> {
  return dialectOf(db) === 'postgres' ? db.transaction().execute(read) : read(db);
}

/**
 * Kysely on PostgreSQL as the manager uses it (types, transactions), schema as it is: on the one
 * of `urls` that takes writes (a primary and its standbys, db-primary.ts).
 */
export function postgresKysely(urls: string | readonly string[], log?: (message: string) => void): Db {
  const list = typeof urls === 'string' ? [urls] : urls;
  const handle = (size: number, onDestroy?: () => Promise<void>) =>
    new Kysely<DB>({
      dialect: new ManagerPostgresDialect(
        new PrimaryPool({ urls: list, makePool: (url) => postgresPool(url, size), ...(log ? { log } : {}) }),
        onDestroy,
      ),
      plugins: [postgresColumnTypes],
    });
  const lease = handle(LEASE_POOL_SIZE);
  const db = handle(POSTGRES_POOL_SIZE, () => lease.destroy());
  leaseHandles.set(db, lease);
  return db;
}

const leaseHandles = new WeakMap<Db, Db>();

/**
 * The handle the lease's statements use: on PostgreSQL one of its own (LEASE_POOL_SIZE
 * connections, closed with `db`), on SQLite `db` itself (one connection, statements in turn).
 */
export const leaseDatabase = (db: Db): Db => leaseHandles.get(db) ?? db;

async function migrate(db: Db): Promise<Db> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    await db.destroy();
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`database migration ${failed} failed: ${String(error)}`, { cause: error });
  }
  return db;
}

/**
 * Opens the manager's database and brings its schema up to date: postgres:// URLs (a primary and
 * its standbys: the one taking writes is used), or else a data dir, whose `manager.db` SQLite
 * file is created if needed.
 */
export async function openDatabase(
  where: string | readonly string[],
  options: { log?: (message: string) => void } = {},
): Promise<Db> {
  if (typeof where !== 'string') return migrate(postgresKysely(where, options.log));
  if (isPostgresUrl(where)) return migrate(postgresKysely(where, options.log));
  const file = path.join(where, 'manager.db');
  await restrictDatabaseFiles(file);
  const sqlite = new Database(file);
  // WAL: readers are not blocked by the writer; NORMAL sync is durable across process crashes.
  sqlite.pragma('journal_mode = WAL');
  // Deleted and overwritten values (a dropped agent token, a deleted token hash) are zeroed, not left in free space.
  sqlite.pragma('secure_delete = ON');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  // 32 MiB of page cache (SQLite's default is 2 MiB): a metrics collection round of 10,000 disks
  // touches a few MiB of current buckets and windows, which should stay in memory between rounds.
  sqlite.pragma('cache_size = -32768');
  const db = new Kysely<DB>({ dialect: new SqliteDialect({ database: reusingStatements(sqlite) }) });
  handles.set(db, sqlite);
  return migrate(db);
}

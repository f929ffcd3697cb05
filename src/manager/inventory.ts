import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { sql, type Insertable, type Selectable } from 'kysely';
import { z } from 'zod';
import type {
  Cluster,
  Datastore,
  Host,
  HostInfo,
  ManagedDatastore,
  ManagedVm,
  ManagedVSwitch,
  Page,
  Pool,
  Vm,
  VmDisk,
  VmNic,
  VSwitch,
  VmTools,
  ToolsStatus,
  VmHa,
} from '../api/index.js';
import { bestClass, MOVE_JOB_KINDS, VmState } from '../api/index.js';
import { SYSTEM, nowIso, recordChanges, type Actor, type ChangeInput } from './changes.js';
import { decodeCursor, pageOf } from './cursor.js';
import {
  byDialect,
  type DatastoresTable,
  type DB,
  type HostsTable,
  type Tx,
  type VmDisksTable,
  type VmNicsTable,
  type VmsTable,
} from './db.js';
import { classify, diffCollections, diffFields } from './diff.js';
import { ClusterNotFound, Conflict, HostNotFound, NotFound, PoolNotFound, VmNotFound } from './errors.js';
import { toolsStatusOfRow } from './tools-status.js';
import { identityConflicts } from './vm-identity.js';

/*
 * The inventory: reads that turn rows into API objects, and the writes that keep it in step with
 * what agents report. Every write records its change records in the caller's transaction.
 */

export type HostRow = Selectable<HostsTable>;
type VmRow = Selectable<VmsTable>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const byRef = (ref: string) => (UUID.test(ref) ? ('id' as const) : ('name' as const));

// ------------------------------------------------------------------------------------------------
// Pools

export async function poolRow(tx: Tx, ref: string, field?: string) {
  const row = await tx.selectFrom('pools').selectAll().where(byRef(ref), '=', ref).executeTakeFirst();
  if (!row) throw new PoolNotFound(ref, field);
  return row;
}

export async function getPool(tx: Tx, ref: string): Promise<Pool> {
  const row = await poolRow(tx, ref);
  const hosts = await tx
    .selectFrom('hosts')
    .select('name')
    .where('pool_id', '=', row.id)
    .orderBy('name')
    .execute();
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    hosts: hosts.map((h) => h.name),
    createdAt: row.created_at,
  };
}

export async function listPools(
  tx: Tx,
  q: { limit: number; cursor?: string | undefined },
): Promise<Page<Pool>> {
  let query = tx.selectFrom('pools').selectAll();
  if (q.cursor) query = query.where('name', '>', String(decodeCursor(q.cursor, ['string'])[0]));
  const rows = await query
    .orderBy('name')
    .limit(q.limit + 1)
    .execute();
  const page = pageOf(
    rows,
    q.limit,
    (r) => [r.name],
    (r) => r,
  );
  const ids = page.items.map((r) => r.id);
  const members = ids.length
    ? await tx
        .selectFrom('hosts')
        .select(['name', 'pool_id'])
        .where('pool_id', 'in', ids)
        .orderBy('name')
        .execute()
    : [];
  return {
    nextCursor: page.nextCursor,
    items: page.items.map((r) => ({
      id: r.id,
      name: r.name,
      description: r.description,
      hosts: members.filter((m) => m.pool_id === r.id).map((m) => m.name),
      createdAt: r.created_at,
    })),
  };
}

// ------------------------------------------------------------------------------------------------
// Clusters

export async function clusterRow(tx: Tx, ref: string, field?: string) {
  const row = await tx.selectFrom('clusters').selectAll().where(byRef(ref), '=', ref).executeTakeFirst();
  if (!row) throw new ClusterNotFound(ref, field);
  return row;
}

/** Clusters as the API gives them, each with its hosts (by name). */
async function toClusters(tx: Tx, rows: Selectable<DB['clusters']>[]): Promise<Cluster[]> {
  const ids = rows.map((r) => r.id);
  const members = ids.length
    ? await tx
        .selectFrom('hosts')
        .select(['name', 'cluster_id', 'lease_host_id', 'state', 'maintenance'])
        .where('cluster_id', 'in', ids)
        .orderBy('name')
        .execute()
    : [];
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    hosts: members
      .filter((m) => m.cluster_id === r.id)
      .map((m) => ({
        name: m.name,
        leaseHostId: m.lease_host_id ?? 0,
        state: m.state,
        maintenance: m.maintenance,
      })),
    createdAt: r.created_at,
  }));
}

export async function getCluster(tx: Tx, ref: string): Promise<Cluster> {
  const [cluster] = await toClusters(tx, [await clusterRow(tx, ref)]);
  if (!cluster) throw new ClusterNotFound(ref);
  return cluster;
}

export async function listClusters(
  tx: Tx,
  q: { limit: number; cursor?: string | undefined },
): Promise<Page<Cluster>> {
  let query = tx.selectFrom('clusters').selectAll();
  if (q.cursor) query = query.where('name', '>', String(decodeCursor(q.cursor, ['string'])[0]));
  const rows = await query
    .orderBy('name')
    .limit(q.limit + 1)
    .execute();
  const page = pageOf(
    rows,
    q.limit,
    (r) => [r.name],
    (r) => r,
  );
  return { nextCursor: page.nextCursor, items: await toClusters(tx, page.items) };
}

// ------------------------------------------------------------------------------------------------
// Hosts

export async function hostRow(tx: Tx, ref: string, field?: string): Promise<HostRow> {
  const row = await tx.selectFrom('hosts').selectAll().where(byRef(ref), '=', ref).executeTakeFirst();
  if (!row) throw new HostNotFound(ref, field);
  return row;
}

function hostQuery(tx: Tx) {
  return tx
    .selectFrom('hosts')
    .leftJoin('pools', 'pools.id', 'hosts.pool_id')
    .leftJoin('clusters', 'clusters.id', 'hosts.cluster_id')
    .selectAll('hosts')
    .select(['pools.name as pool_name', 'clusters.name as cluster_name'])
    .select((eb) =>
      eb
        .selectFrom('vms')
        .whereRef('vms.host_id', '=', 'hosts.id')
        .select(eb.fn.countAll<number>().as('n'))
        .as('vm_count'),
    )
    .select(
      sql<
        string | null
      >`(select ${sql.raw(byDialect(tx, { sqlite: 'group_concat', postgres: 'string_agg' }))}(class, ',') from datastores where host_id = hosts.id)`.as(
        'datastore_classes',
      ),
    );
}

function toHost(
  r: HostRow & {
    pool_name: string | null;
    cluster_name: string | null;
    vm_count: number | null;
    datastore_classes: string | null;
  },
): Host {
  return {
    id: r.id,
    name: r.name,
    agentUrl: r.agent_url,
    ...(r.cert_serial && r.cert_not_after
      ? { certificate: { serial: r.cert_serial, notAfter: r.cert_not_after } }
      : {}),
    state: r.state,
    pool: r.pool_name,
    cluster: r.cluster_name,
    leaseHostId: r.lease_host_id,
    maintenance: r.maintenance,
    fabricAddress: r.fabric_address,
    agentVersion: r.agent_version,
    qemuVersion: r.qemu_version,
    accelerator: r.accelerator,
    ...(r.accelerator_warning ? { acceleratorWarning: r.accelerator_warning } : {}),
    cpus: r.cpus,
    memoryBytes: r.memory_bytes,
    memoryFreeBytes: r.memory_free_bytes,
    machineType: r.machine_type,
    cpuModel: r.cpu_model,
    ...(r.tools_version ? { toolsVersion: r.tools_version } : {}),
    vmCount: Number(r.vm_count ?? 0),
    class: bestClass(r.datastore_classes ? r.datastore_classes.split(',') : []),
    lastSeenAt: r.last_seen_at,
    ...(r.last_error ? { lastError: r.last_error } : {}),
    createdAt: r.created_at,
  };
}

export async function getHost(tx: Tx, ref: string): Promise<Host> {
  const row = await hostQuery(tx)
    .where(`hosts.${byRef(ref)}`, '=', ref)
    .executeTakeFirst();
  if (!row) throw new HostNotFound(ref);
  return toHost(row);
}

export async function listHosts(
  tx: Tx,
  q: {
    limit: number;
    cursor?: string | undefined;
    pool?: string | undefined;
    cluster?: string | undefined;
    state?: Host['state'] | undefined;
    maintenance?: Host['maintenance'] | undefined;
  },
): Promise<Page<Host>> {
  let query = hostQuery(tx);
  if (q.pool) query = query.where('hosts.pool_id', '=', (await poolRow(tx, q.pool, 'pool')).id);
  if (q.cluster)
    query = query.where('hosts.cluster_id', '=', (await clusterRow(tx, q.cluster, 'cluster')).id);
  if (q.state) query = query.where('hosts.state', '=', q.state);
  if (q.maintenance) query = query.where('hosts.maintenance', '=', q.maintenance);
  if (q.cursor) query = query.where('hosts.name', '>', String(decodeCursor(q.cursor, ['string'])[0]));
  const rows = await query
    .orderBy('hosts.name')
    .limit(q.limit + 1)
    .execute();
  return pageOf(rows, q.limit, (r) => [r.name], toHost);
}

/** The host's identity as a change record names it. */
export const hostObject = (h: { id: string; name: string }) => ({
  kind: 'host' as const,
  id: h.id,
  name: h.name,
});

/** Watched host fields: a change of any of them is a change record; free memory is not. */
const HOST_SETTINGS = [
  'name',
  'fabricAddress',
  'agentVersion',
  'qemuVersion',
  'accelerator',
  'cpus',
  'memoryBytes',
  'machineType',
  'cpuModel',
  'toolsVersion',
] as const;

function hostInfoColumns(info: HostInfo) {
  return {
    name: info.name,
    fabric_address: info.fabricAddress,
    agent_version: info.agentVersion,
    qemu_version: info.qemuVersion,
    accelerator: info.accelerator,
    accelerator_warning: info.acceleratorWarning ?? null,
    cpus: info.cpus,
    memory_bytes: info.memoryBytes,
    memory_free_bytes: info.memoryFreeBytes,
    machine_type: info.machineType,
    cpu_model: info.cpuModel,
    tools_version: info.toolsVersion ?? null,
  };
}

function hostInfoOf(row: HostRow): Record<(typeof HOST_SETTINGS)[number], unknown> {
  return {
    name: row.name,
    fabricAddress: row.fabric_address,
    agentVersion: row.agent_version,
    qemuVersion: row.qemu_version,
    accelerator: row.accelerator,
    cpus: row.cpus,
    memoryBytes: row.memory_bytes,
    machineType: row.machine_type,
    cpuModel: row.cpu_model,
    toolsVersion: row.tools_version ?? undefined,
  };
}

/** Inserts a host that has just answered; records its creation. */
export async function insertHost(
  tx: Tx,
  actor: Actor,
  args: {
    agentUrl: string;
    certificate: { serial: string; notAfter: string };
    crlNumber: number;
    info: HostInfo;
    poolId: string | null;
  },
): Promise<HostRow> {
  const taken = await tx
    .selectFrom('hosts')
    .select(['name', 'agent_url'])
    .where((eb) => eb.or([eb('name', '=', args.info.name), eb('agent_url', '=', args.agentUrl)]))
    .executeTakeFirst();
  if (taken) {
    throw taken.agent_url === args.agentUrl
      ? new Conflict(
          `address: the agent at ${args.agentUrl} is already joined as host ${taken.name}`,
          'address',
        )
      : new Conflict(`address: a host named ${args.info.name} is already joined`, 'address');
  }
  const now = nowIso();
  const row: HostRow = {
    id: randomUUID(),
    agent_url: args.agentUrl,
    cert_serial: args.certificate.serial,
    cert_not_after: args.certificate.notAfter,
    crl_number: args.crlNumber,
    state: 'connected',
    pool_id: args.poolId,
    last_seen_at: now,
    last_error: null,
    created_at: now,
    agent_events: null,
    cluster_id: null,
    lease_host_id: null,
    maintenance: 'none',
    ...hostInfoColumns(args.info),
  };
  await tx.insertInto('hosts').values(row).execute();
  await recordChanges(tx, actor, [{ object: hostObject(row), action: 'created', host: row.name }], now);
  return row;
}

/** Applies a fresh HostInfo from a successful poll. */
export async function updateHostInfo(
  tx: Tx,
  actor: Actor,
  row: HostRow,
  info: HostInfo,
  now: string,
): Promise<HostRow> {
  const changes = diffFields(hostInfoOf(row), { ...info }, HOST_SETTINGS);
  if (row.state !== 'connected') changes.unshift({ field: 'state', before: row.state, after: 'connected' });
  const next: HostRow = {
    ...row,
    ...hostInfoColumns(info),
    state: 'connected',
    last_seen_at: now,
    last_error: null,
  };
  await tx
    .updateTable('hosts')
    .set({ ...hostInfoColumns(info), state: 'connected', last_seen_at: now, last_error: null })
    .where('id', '=', row.id)
    .execute();
  await recordChanges(
    tx,
    actor,
    classify(changes).map((c) => ({ object: hostObject(next), host: next.name, ...c })),
    now,
  );
  return next;
}

/** Marks a host unreachable after a failed poll; only the transition is a change record. */
export async function markHostUnreachable(tx: Tx, row: HostRow, reason: string): Promise<void> {
  await tx
    .updateTable('hosts')
    .set({ state: 'unreachable', last_error: reason })
    .where('id', '=', row.id)
    .execute();
  if (row.state !== 'unreachable') {
    await recordChanges(tx, SYSTEM, [
      {
        object: hostObject(row),
        action: 'state-changed',
        host: row.name,
        changes: [
          { field: 'state', before: row.state, after: 'unreachable' },
          { field: 'reason', before: null, after: reason },
        ],
      },
    ]);
  }
}

// ------------------------------------------------------------------------------------------------
// Datastores and virtual switches

/*
 * Datastores and virtual switches are a host's named children, listed and kept in step with the
 * agent the same way; the two tables differ only in their own columns.
 */
type HostChildTable = 'datastores' | 'vswitches';
type HostChildRow<T extends HostChildTable> = Selectable<DB[T]> & { id: string; name: string };
type HostChildColumns<T extends HostChildTable> = Omit<Insertable<DB[T]>, 'id' | 'host_id' | 'name'>;
type HostScopedQuery = { limit: number; cursor?: string | undefined; host?: string | undefined };

/** One page of a host's children, ordered by host name then name. */
async function listHostChildren<T extends HostChildTable, Out>(
  tx: Tx,
  table: T,
  q: HostScopedQuery,
  toApi: (row: HostChildRow<T>, hostName: string) => Out,
): Promise<Page<Out>> {
  // Kysely cannot type one query over a union of tables; both have the columns used here.
  const t = table as 'datastores';
  let query = tx
    .selectFrom(t)
    .innerJoin('hosts', 'hosts.id', `${t}.host_id`)
    .selectAll(t)
    .select('hosts.name as host_name');
  if (q.host) query = query.where(`${t}.host_id`, '=', (await hostRow(tx, q.host, 'host')).id);
  if (q.cursor) {
    const [h, n] = decodeCursor(q.cursor, ['string', 'string']);
    query = query.where((eb) =>
      eb(eb.refTuple('hosts.name', `${t}.name`), '>', eb.tuple(String(h), String(n))),
    );
  }
  const rows = await query
    .orderBy('hosts.name')
    .orderBy(`${t}.name`)
    .limit(q.limit + 1)
    .execute();
  return pageOf(
    rows,
    q.limit,
    (r) => [r.host_name, r.name],
    (r) => toApi(r as unknown as HostChildRow<T>, r.host_name),
  );
}

export function listDatastores(tx: Tx, q: HostScopedQuery): Promise<Page<ManagedDatastore>> {
  return listHostChildren(tx, 'datastores', q, datastoreToApi);
}

function datastoreToApi(r: Selectable<DatastoresTable>, host: string): ManagedDatastore {
  return {
    id: r.id,
    name: r.name,
    host,
    hostId: r.host_id,
    path: r.path,
    default: r.is_default === 1,
    capacityBytes: r.capacity_bytes,
    freeBytes: r.free_bytes,
    class: r.class,
    ...limitsOfRow(r),
    kind: r.kind,
    ...(r.storage_id === null ? {} : { storageId: r.storage_id }),
    ...(r.probed_at === null
      ? {}
      : {
          probe: {
            iops: r.probe_iops ?? 0,
            bytesPerSecond: r.probe_bytes_per_second ?? 0,
            probedAt: r.probed_at,
          },
        }),
  };
}

/** One datastore of a host (host by id or name, datastore by name). */
export async function getDatastore(tx: Tx, hostRef: string, name: string): Promise<ManagedDatastore> {
  const host = await hostRow(tx, hostRef, 'host');
  const row = await tx
    .selectFrom('datastores')
    .selectAll()
    .where('host_id', '=', host.id)
    .where('name', '=', name)
    .executeTakeFirst();
  if (!row) throw new NotFound('datastore', `${host.name}/${name}`, 'datastore');
  return datastoreToApi(row, host.name);
}

/** The limits of a datastore row, as the API shows them (absent when none). */
function limitsOfRow(r: Pick<DatastoresTable, 'limit_iops' | 'limit_bytes_per_second'>) {
  if (r.limit_iops === null && r.limit_bytes_per_second === null) return {};
  return {
    limits: {
      ...(r.limit_iops === null ? {} : { iops: r.limit_iops }),
      ...(r.limit_bytes_per_second === null ? {} : { bytesPerSecond: r.limit_bytes_per_second }),
    },
  };
}

export function listVSwitches(tx: Tx, q: HostScopedQuery): Promise<Page<ManagedVSwitch>> {
  return listHostChildren(tx, 'vswitches', q, (r, host) => ({
    id: r.id,
    name: r.name,
    host,
    hostId: r.host_id,
    bridge: r.bridge,
    ...(r.uplink ? { uplink: r.uplink } : {}),
  }));
}

interface HostChildSync<T extends HostChildTable, X extends { name: string }> {
  table: T;
  kind: 'datastore' | 'vswitch';
  fromRow(row: HostChildRow<T>): X;
  columns(x: X): HostChildColumns<T>;
  /** The fields whose change is a setting change; any other column (free space) is only updated. */
  settings: readonly (keyof X & string)[];
}

/** Brings a host's children in step with the agent's list (created/deleted/setting-changed). */
async function syncHostChildren<T extends HostChildTable, X extends { name: string }>(
  tx: Tx,
  actor: Actor,
  host: HostRow,
  reported: X[],
  now: string,
  spec: HostChildSync<T, X>,
): Promise<void> {
  // As in listHostChildren: one table of the union, typed as the first.
  const t = spec.table as 'datastores';
  type Columns = HostChildColumns<'datastores'>;
  const existing = (await tx
    .selectFrom(t)
    .selectAll()
    .where('host_id', '=', host.id)
    .execute()) as unknown as HostChildRow<T>[];
  const current = existing.map((r) => ({ ...spec.fromRow(r), id: r.id }));
  const d = diffCollections<{ id?: string } & X>(current, reported, (x) => x.name);
  const records: ChangeInput[] = [];
  const object = (id: string, name: string) => ({ kind: spec.kind, id, name: `${host.name}/${name}` });
  for (const x of d.added) {
    const id = randomUUID();
    await tx
      .insertInto(t)
      .values({ id, host_id: host.id, name: x.name, ...(spec.columns(x) as Columns) })
      .execute();
    records.push({ object: object(id, x.name), action: 'created', host: host.name });
  }
  for (const x of d.removed) {
    await tx
      .deleteFrom(t)
      .where('id', '=', x.id ?? '')
      .execute();
    records.push({ object: object(x.id ?? '', x.name), action: 'deleted', host: host.name });
  }
  for (const { before, after } of d.both) {
    const id = before.id ?? '';
    const changes = diffFields(before, after, spec.settings);
    const columns = spec.columns(after);
    if (!isDeepStrictEqual(spec.columns(before), columns))
      await tx
        .updateTable(t)
        .set(columns as Columns)
        .where('id', '=', id)
        .execute();
    if (changes.length)
      records.push({ object: object(id, after.name), action: 'setting-changed', changes, host: host.name });
  }
  await recordChanges(tx, actor, records, now);
}

export function syncDatastores(tx: Tx, actor: Actor, host: HostRow, reported: Datastore[], now: string) {
  return syncHostChildren<'datastores', Datastore>(tx, actor, host, reported, now, {
    table: 'datastores',
    kind: 'datastore',
    fromRow: (r): Datastore => ({
      name: r.name,
      path: r.path,
      default: r.is_default === 1,
      capacityBytes: r.capacity_bytes,
      freeBytes: r.free_bytes,
      class: r.class,
      ...limitsOfRow(r),
      kind: r.kind,
      ...(r.storage_id === null ? {} : { storageId: r.storage_id }),
    }),
    columns: (x) => ({
      path: x.path,
      is_default: x.default ? 1 : 0,
      capacity_bytes: x.capacityBytes,
      free_bytes: x.freeBytes,
      class: x.class,
      limit_iops: x.limits?.iops ?? null,
      limit_bytes_per_second: x.limits?.bytesPerSecond ?? null,
      kind: x.kind,
      storage_id: x.kind === 'shared' ? (x.storageId ?? null) : null,
      // Only when reported: a restarted agent has not probed yet, and the last figures stand.
      ...(x.probe === undefined
        ? {}
        : {
            probe_iops: x.probe.iops,
            probe_bytes_per_second: x.probe.bytesPerSecond,
            probed_at: x.probe.probedAt,
          }),
    }),
    settings: ['path', 'default', 'capacityBytes', 'class', 'limits', 'kind', 'storageId'],
  });
}

export function syncVSwitches(tx: Tx, actor: Actor, host: HostRow, reported: VSwitch[], now: string) {
  return syncHostChildren(tx, actor, host, reported, now, {
    table: 'vswitches',
    kind: 'vswitch',
    fromRow: (r) => ({ name: r.name, bridge: r.bridge, ...(r.uplink ? { uplink: r.uplink } : {}) }),
    columns: (x) => ({ bridge: x.bridge, uplink: x.uplink ?? null }),
    settings: ['bridge', 'uplink'],
  });
}

// ------------------------------------------------------------------------------------------------
// VMs

function vmQuery(tx: Tx) {
  return tx
    .selectFrom('vms')
    .innerJoin('hosts', 'hosts.id', 'vms.host_id')
    .leftJoin('pools', 'pools.id', 'hosts.pool_id')
    .leftJoin('clusters', 'clusters.id', 'hosts.cluster_id')
    .selectAll('vms')
    .select([
      'hosts.name as host_name',
      'pools.name as pool_name',
      'clusters.name as cluster_name',
      'hosts.tools_version as host_tools_version',
    ]);
}

type VmJoined = VmRow & {
  host_name: string;
  pool_name: string | null;
  cluster_name: string | null;
  host_tools_version: string | null;
};

/** The stored list of an HA VM's preferred hosts (made once: a zod schema costs far more to build than to use). */
const PreferredHosts = z.array(z.string());

/** A VM row's HA settings as the API gives them. */
export function haOf(r: Pick<VmRow, 'ha_protected' | 'ha_priority' | 'ha_preferred_hosts'>): VmHa {
  return {
    protected: r.ha_protected === 1,
    priority: r.ha_priority,
    // Nearly every VM prefers no host: its empty list is not parsed at all.
    preferredHosts:
      r.ha_preferred_hosts === '[]' ? [] : PreferredHosts.parse(JSON.parse(r.ha_preferred_hosts)),
  };
}

/** The guest tools of a VM row: its status against its host's tools disk (tools-status.ts). */
function toolsOf(r: VmJoined, now: number): VmTools {
  return {
    status: toolsStatusOfRow(r, r.host_tools_version, now),
    installed: r.tools_version,
    current: r.host_tools_version,
  };
}

function diskOf(r: Selectable<VmDisksTable>): VmDisk {
  return {
    id: r.disk_id,
    datastore: r.datastore,
    path: r.path,
    format: r.format,
    virtualSizeBytes: r.virtual_size_bytes,
    allocatedBytes: r.allocated_bytes,
    nodeName: r.node_name,
  };
}
function nicOf(r: Selectable<VmNicsTable>): VmNic {
  return { id: r.nic_id, vswitch: r.vswitch, mac: r.mac, tap: r.tap };
}

/** The agent-shaped part of a stored VM (what reconciliation compares with the agent's). */
function vmOf(r: VmRow, disks: VmDisk[], nics: VmNic[]): Vm {
  return {
    id: r.id,
    name: r.name,
    state: r.state as Vm['state'],
    ...(r.pid !== null ? { pid: r.pid } : {}),
    vcpus: r.vcpus,
    memoryMiB: r.memory_mib,
    disks,
    nics,
    ...(r.guest_ip ? { guestIp: r.guest_ip } : {}),
    ...(r.guest_gateway ? { guestGateway: r.guest_gateway } : {}),
    machineType: r.machine_type,
    cpuModel: r.cpu_model,
    accelerator: r.accelerator,
    createdAt: r.created_at,
    ...(r.started_at ? { startedAt: r.started_at } : {}),
    toolsDisk: r.tools_disk === 1,
  };
}

/** The items by key, each group in the items' order. */
export function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

/** Loads the disks and NICs of these VMs and assembles them. */
async function assembleVms(tx: Tx, rows: VmJoined[]): Promise<ManagedVm[]> {
  if (rows.length === 0) return [];
  const ids = rows.map((r) => r.id);
  const [disks, nics] = await Promise.all([
    tx
      .selectFrom('vm_disks')
      .selectAll()
      .where('vm_id', 'in', ids)
      .orderBy('vm_id')
      .orderBy('position')
      .execute(),
    tx
      .selectFrom('vm_nics')
      .selectAll()
      .where('vm_id', 'in', ids)
      .orderBy('vm_id')
      .orderBy('position')
      .execute(),
  ]);
  const copies = await tx
    .selectFrom('vm_copies')
    .innerJoin('hosts', 'hosts.id', 'vm_copies.host_id')
    .select(['vm_copies.vm_id', 'vm_copies.host_id', 'vm_copies.state', 'vm_copies.seen_at', 'hosts.name'])
    .where('vm_copies.vm_id', 'in', ids)
    .orderBy('hosts.name')
    .execute();
  const now = Date.now();
  const diskMap = groupBy(disks, (d) => d.vm_id);
  const nicMap = groupBy(nics, (n) => n.vm_id);
  const copyMap = groupBy(copies, (c) => c.vm_id);
  return rows.map((r) => {
    // A copy on the VM's own host is the VM itself (its row moved there since).
    const others = (copyMap.get(r.id) ?? []).filter((c) => c.host_id !== r.host_id);
    // Object.assign, not `{ ...vmOf(…), … }`: V8 copies a spread object this size ~50 times
    // slower (20-30 µs a VM, half of a 100-VM page's CPU).
    return Object.assign(
      vmOf(r, (diskMap.get(r.id) ?? []).map(diskOf), (nicMap.get(r.id) ?? []).map(nicOf)),
      {
        host: r.host_name,
        hostId: r.host_id,
        pool: r.pool_name,
        cluster: r.cluster_name,
        ha: haOf(r),
        updatedAt: r.updated_at,
        tools: toolsOf(r, now),
        ...(others.length
          ? {
              otherCopies: others.map((c) => ({
                host: c.name,
                state: VmState.parse(c.state),
                seenAt: c.seen_at,
              })),
            }
          : {}),
      },
    );
  });
}

/** A VM by id, or by name when that name is unique across hosts. */
export async function getVm(tx: Tx, ref: string, field?: string): Promise<ManagedVm> {
  const rows = await vmQuery(tx)
    .where(`vms.${byRef(ref)}`, '=', ref)
    .limit(2)
    .execute();
  if (rows.length === 0) throw new VmNotFound(ref, field);
  if (rows.length > 1) {
    throw new Conflict(`vm name "${ref}" is used on several hosts: use the VM's id`, field);
  }
  const [vm] = await assembleVms(tx, rows);
  if (!vm) throw new VmNotFound(ref, field);
  return vm;
}

export async function listVms(
  tx: Tx,
  q: {
    limit: number;
    cursor?: string | undefined;
    host?: string | undefined;
    pool?: string | undefined;
    state?: string | undefined;
    name?: string | undefined;
    tools?: ToolsStatus | undefined;
  },
): Promise<Page<ManagedVm>> {
  let query = vmQuery(tx);
  if (q.host) query = query.where('vms.host_id', '=', (await hostRow(tx, q.host, 'host')).id);
  if (q.pool) query = query.where('hosts.pool_id', '=', (await poolRow(tx, q.pool, 'pool')).id);
  if (q.state) query = query.where('vms.state', '=', q.state);
  if (q.name) query = query.where('vms.name', 'like', `%${q.name.replace(/[\\%_]/g, '')}%`);
  if (q.cursor) {
    const [n, id] = decodeCursor(q.cursor, ['string', 'string']);
    query = query.where((eb) => eb(eb.refTuple('vms.name', 'vms.id'), '>', eb.tuple(String(n), String(id))));
  }
  query = query.orderBy('vms.name').orderBy('vms.id');
  // The tools status is computed (it depends on the time and on version order): filtered here.
  const now = Date.now();
  const rows = q.tools
    ? (await query.execute()).filter((r) => toolsOf(r, now).status === q.tools).slice(0, q.limit + 1)
    : await query.limit(q.limit + 1).execute();
  const page = pageOf(
    rows,
    q.limit,
    (r) => [r.name, r.id],
    (r) => r,
  );
  return { items: await assembleVms(tx, page.items), nextCursor: page.nextCursor };
}

/** Running VMs per guest tools status, for /metrics (`unknown`: not answered yet since the boot). */
export async function toolsCounts(tx: Tx): Promise<Partial<Record<ToolsStatus | 'unknown', number>>> {
  const now = Date.now();
  const counts: Partial<Record<ToolsStatus | 'unknown', number>> = {};
  for (const r of await vmQuery(tx).where('vms.state', '=', 'running').execute()) {
    const status = toolsOf(r, now).status ?? 'unknown';
    counts[status] = (counts[status] ?? 0) + 1;
  }
  return counts;
}

export const vmObject = (vm: { id: string; name: string }) => ({
  kind: 'vm' as const,
  id: vm.id,
  name: vm.name,
});

/** Watched VM settings; pids, start times and allocated bytes move without a change record. */
const VM_SETTINGS = [
  'name',
  'vcpus',
  'memoryMiB',
  'guestIp',
  'guestGateway',
  'machineType',
  'cpuModel',
  'accelerator',
  'toolsDisk',
] as const;
const DISK_SETTINGS = ['datastore', 'path', 'format', 'virtualSizeBytes'] as const;
/** States in which a VM has a QEMU process: a change then reaches a live guest. */
const LIVE_STATES = new Set<Vm['state']>(['starting', 'running', 'paused', 'shutting-down', 'migrating']);
const NIC_SETTINGS = ['vswitch', 'mac'] as const;

function vmColumns(vm: Vm) {
  return {
    name: vm.name,
    state: vm.state,
    pid: vm.pid ?? null,
    vcpus: vm.vcpus,
    memory_mib: vm.memoryMiB,
    guest_ip: vm.guestIp ?? null,
    guest_gateway: vm.guestGateway ?? null,
    machine_type: vm.machineType,
    cpu_model: vm.cpuModel,
    accelerator: vm.accelerator,
    created_at: vm.createdAt,
    started_at: vm.startedAt ?? null,
    tools_disk: vm.toolsDisk ? 1 : 0,
  };
}

/** Rows per multi-row INSERT, well under SQLite's limit on bound parameters. */
const BATCH = 200;

/** Replaces the disks and NICs of these VMs, in a few multi-row statements. */
async function writeDevices(tx: Tx, vms: Vm[]): Promise<void> {
  if (vms.length === 0) return;
  const ids = vms.map((vm) => vm.id);
  await tx.deleteFrom('vm_disks').where('vm_id', 'in', ids).execute();
  await tx.deleteFrom('vm_nics').where('vm_id', 'in', ids).execute();
  const disks = vms.flatMap((vm) =>
    vm.disks.map((d, position) => ({
      vm_id: vm.id,
      disk_id: d.id,
      position,
      datastore: d.datastore,
      path: d.path,
      format: d.format,
      virtual_size_bytes: d.virtualSizeBytes,
      allocated_bytes: d.allocatedBytes,
      node_name: d.nodeName,
    })),
  );
  const nics = vms.flatMap((vm) =>
    vm.nics.map((n, position) => ({
      vm_id: vm.id,
      nic_id: n.id,
      position,
      vswitch: n.vswitch,
      mac: n.mac,
      tap: n.tap,
    })),
  );
  for (let i = 0; i < disks.length; i += BATCH)
    await tx
      .insertInto('vm_disks')
      .values(disks.slice(i, i + BATCH))
      .execute();
  for (let i = 0; i < nics.length; i += BATCH)
    await tx
      .insertInto('vm_nics')
      .values(nics.slice(i, i + BATCH))
      .execute();
}

/** The change records that turn `before` (undefined: new) into `after` on `host`. */
export function vmChanges(
  before: Vm | undefined,
  after: Vm,
  host: string,
  beforeHost?: string,
): ChangeInput[] {
  const object = vmObject(after);
  if (!before) return [{ object, action: 'created', host, changes: [] }];
  const fields = diffFields(before, after, ['state', ...VM_SETTINGS]);
  if (beforeHost !== undefined && beforeHost !== host)
    fields.push({ field: 'host', before: beforeHost, after: host });
  // A change seen while the VM's QEMU ran (before or after) is a change of a running VM.
  const vmRunning = [before.state, after.state].some((s) => LIVE_STATES.has(s));
  const records: ChangeInput[] = classify(fields).map((c) => ({ object, host, vmRunning, ...c }));
  const part = (kind: 'disk' | 'nic', id: string) => ({
    kind,
    id: `${after.id}/${id}`,
    name: `${after.name}/${id}`,
  });
  const disks = diffCollections(before.disks, after.disks, (d) => d.id);
  for (const d of disks.added)
    records.push({ object: part('disk', d.id), action: 'created', host, vmRunning, changes: [] });
  for (const d of disks.removed)
    records.push({ object: part('disk', d.id), action: 'deleted', host, vmRunning, changes: [] });
  for (const { before: b, after: a } of disks.both) {
    const changes = diffFields(b, a, DISK_SETTINGS);
    if (changes.length)
      records.push({ object: part('disk', a.id), action: 'setting-changed', host, vmRunning, changes });
  }
  const nics = diffCollections(before.nics, after.nics, (n) => n.id);
  for (const n of nics.added)
    records.push({ object: part('nic', n.id), action: 'created', host, vmRunning, changes: [] });
  for (const n of nics.removed)
    records.push({ object: part('nic', n.id), action: 'deleted', host, vmRunning, changes: [] });
  for (const { before: b, after: a } of nics.both) {
    const changes = diffFields(b, a, NIC_SETTINGS);
    if (changes.length)
      records.push({ object: part('nic', a.id), action: 'setting-changed', host, vmRunning, changes });
  }
  return records;
}

/** The stored agent-shaped VMs, by id (all of one host's, or the given ids). */
async function storedVms(
  tx: Tx,
  where: { hostId?: string; ids?: string[] },
): Promise<Map<string, { vm: Vm; hostId: string }>> {
  let query = tx.selectFrom('vms').selectAll();
  if (where.hostId) query = query.where('host_id', '=', where.hostId);
  if (where.ids) {
    if (where.ids.length === 0) return new Map();
    query = query.where('id', 'in', where.ids);
  }
  const rows = await query.execute();
  if (rows.length === 0) return new Map();
  const ids = rows.map((r) => r.id);
  const [disks, nics] = await Promise.all([
    tx.selectFrom('vm_disks').selectAll().where('vm_id', 'in', ids).orderBy('position').execute(),
    tx.selectFrom('vm_nics').selectAll().where('vm_id', 'in', ids).orderBy('position').execute(),
  ]);
  const diskMap = groupBy(disks, (d) => d.vm_id);
  const nicMap = groupBy(nics, (n) => n.vm_id);
  return new Map(
    rows.map((r) => [
      r.id,
      {
        vm: vmOf(r, (diskMap.get(r.id) ?? []).map(diskOf), (nicMap.get(r.id) ?? []).map(nicOf)),
        hostId: r.host_id,
      },
    ]),
  );
}

/**
 * Stores VMs as `host` reports them: inserts new ones, updates changed ones (also a VM that
 * arrived from another host), and records what changed. Returns the number of change records.
 */
export async function upsertVms(
  tx: Tx,
  actor: Actor,
  host: HostRow,
  reported: Vm[],
  now: string,
  known?: Map<string, { vm: Vm; hostId: string }>,
): Promise<number> {
  // An agent that does not say whether the tools disk is inserted has none (as the inventory reads).
  const vms = reported.map((vm) => ({ ...vm, toolsDisk: vm.toolsDisk === true }));
  const stored = known ?? (await storedVms(tx, { ids: vms.map((v) => v.id) }));
  const missingIds = vms.filter((v) => !stored.has(v.id)).map((v) => v.id);
  // A VM that is new to this host may be known on another (it moved).
  const elsewhere =
    known && missingIds.length
      ? await storedVms(tx, { ids: missingIds })
      : new Map<string, { vm: Vm; hostId: string }>();
  const hostNames = new Map<string, string>();
  const records: ChangeInput[] = [];
  const inserts: Vm[] = [];
  const written: Vm[] = [];
  for (const vm of vms) {
    const prior = stored.get(vm.id) ?? elsewhere.get(vm.id);
    // An incoming shell (a move's half-made target, or one left by a failed move until its
    // clean-up runs) never takes a VM's row from the host that holds the VM itself: it is shown
    // with the VM as a flagged copy instead.
    // Likewise a stopped or crashed definition on a host back from the dead, whose VM an HA
    // restart brought up elsewhere (ha/service.ts removes it there).
    const leftBehind =
      (vm.state === 'stopped' || vm.state === 'crashed' || vm.state === 'starting') &&
      (prior?.vm.state === 'running' || prior?.vm.state === 'paused' || prior?.vm.state === 'migrating');
    if (prior && prior.hostId !== host.id && (vm.state === 'incoming' || leftBehind)) {
      await tx
        .insertInto('vm_copies')
        .values({ vm_id: vm.id, host_id: host.id, state: vm.state, seen_at: now })
        .onConflict((oc) => oc.columns(['vm_id', 'host_id']).doUpdateSet({ state: vm.state, seen_at: now }))
        .execute();
      continue;
    }
    let priorHost: string | undefined;
    if (prior && prior.hostId !== host.id) {
      priorHost = hostNames.get(prior.hostId) ?? (await hostRow(tx, prior.hostId)).name;
      hostNames.set(prior.hostId, priorHost);
    }
    const changes = vmChanges(prior?.vm, vm, host.name, priorHost);
    const volatile =
      prior &&
      !changes.length &&
      (prior.vm.pid !== vm.pid || prior.vm.startedAt !== vm.startedAt || !sameAllocation(prior.vm, vm));
    if (prior && !changes.length && !volatile) continue;
    if (prior) {
      await tx
        .updateTable('vms')
        .set({ ...vmColumns(vm), host_id: host.id, ...(changes.length ? { updated_at: now } : {}) })
        .where('id', '=', vm.id)
        .execute();
    } else inserts.push(vm);
    written.push(vm);
    records.push(...changes);
  }
  for (let i = 0; i < inserts.length; i += BATCH) {
    await tx
      .insertInto('vms')
      .values(
        inserts
          .slice(i, i + BATCH)
          .map((vm) => ({ id: vm.id, host_id: host.id, ...vmColumns(vm), updated_at: now })),
      )
      .execute();
  }
  await writeDevices(tx, written);
  await recordChanges(tx, actor, records, now);
  return records.length;
}

function sameAllocation(a: Vm, b: Vm): boolean {
  return (
    a.disks.length === b.disks.length &&
    a.disks.every((d, i) => d.allocatedBytes === b.disks[i]?.allocatedBytes)
  );
}

/** Removes VMs from the inventory with a `deleted` record each. */
export async function removeVms(
  tx: Tx,
  actor: Actor,
  host: HostRow,
  vms: { id: string; name: string }[],
  now: string,
): Promise<void> {
  if (vms.length === 0) return;
  await tx
    .deleteFrom('vms')
    .where(
      'id',
      'in',
      vms.map((v) => v.id),
    )
    .execute();
  await recordChanges(
    tx,
    actor,
    vms.map((vm) => ({ object: vmObject(vm), action: 'deleted' as const, host: host.name })),
    now,
  );
}

/** A VM a host reports that the inventory does not take: its name or a MAC is another VM's. */
export interface VmConflict {
  vm: Vm;
  reason: string;
}

/**
 * Brings the whole VM list of a host in step with the agent's. A reported VM whose name or MAC is
 * another VM's (vm-identity.ts) is not adopted (nor updated, when known): it is returned, for the
 * caller to report as drift.
 */
export async function syncVms(
  tx: Tx,
  actor: Actor,
  host: HostRow,
  reported: Vm[],
  now: string,
): Promise<VmConflict[]> {
  // A VM in a move is reported by both hosts for a while: the move job keeps its row meanwhile.
  const moving = new Set(
    (
      await tx
        .selectFrom('jobs')
        .select('target_id')
        .where('kind', 'in', [...MOVE_JOB_KINDS])
        .where('state', '=', 'running')
        .execute()
    ).map((j) => j.target_id),
  );
  // This host's report is complete: the copies it flagged before are what it reports now.
  await tx.deleteFrom('vm_copies').where('host_id', '=', host.id).execute();
  const stored = await storedVms(tx, { hostId: host.id });
  for (const id of moving) stored.delete(id);
  reported = reported.filter((v) => !moving.has(v.id));
  const seen = new Set(reported.map((v) => v.id));
  await removeVms(
    tx,
    actor,
    host,
    [...stored.values()].filter((s) => !seen.has(s.vm.id)).map((s) => s.vm),
    now,
  );
  const conflicting = await identityConflicts(tx, reported);
  await upsertVms(
    tx,
    actor,
    host,
    reported.filter((v) => !conflicting.has(v.id)),
    now,
    stored,
  );
  return reported.flatMap((vm) => {
    const reason = conflicting.get(vm.id);
    return reason === undefined ? [] : [{ vm, reason }];
  });
}

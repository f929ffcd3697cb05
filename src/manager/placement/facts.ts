/*
 * The planner's input from the manager's database: datastores as targets (class, IOPS budget,
 * free memory and space), VMs with their per-VM placement settings, move history and demand (the
 * Storage Explorer's figures over the settings' window), and the schedules' windows.
 */
import {
  DEFAULT_DATASTORE_CLASS,
  PlacementReason,
  PRIORITY_NAMES,
  StorageDiskQuery,
  type PlacementSettings,
  type StorageDiskRow,
  MOVE_JOB_KINDS,
} from '../../api/index.js';
import type { Db } from '../db.js';
import { groupBy } from '../inventory.js';
import { IO_TIERS, listStorageDisks } from '../insight/index.js';
import type { Demand, IoLimits, Place, ScheduleWindow, Target, ThrottledIo, VmFacts } from './planner.js';
import { currentOrNextWindow } from './schedule.js';

/** Job states of a move still under way. */
export const IN_FLIGHT = ['queued', 'running'] as const;
export const DAY_MS = 86_400_000;

/**
 * A datastore row's class. The `class` column comes with the datastore management of issue 18
 * (migration 0007); before it exists every datastore is `standard`.
 */
export function datastoreClass(row: object): string {
  const cls = (row as { class?: unknown }).class;
  return typeof cls === 'string' && cls !== '' ? cls : DEFAULT_DATASTORE_CLASS;
}

/**
 * A datastore row's IOPS budget: its configured limit, else its measured capability, else null
 * (unknown: not limited); columns of migration 0007.
 */
export const IOPS_BUDGET_COLUMNS = ['limit_iops', 'probe_iops'] as const;
export function datastoreIopsBudget(row: object): number | null {
  for (const column of IOPS_BUDGET_COLUMNS) {
    const v = (row as Record<string, unknown>)[column];
    if (typeof v === 'number' && v > 0) return v;
  }
  return null;
}

export async function loadTargets(db: Db): Promise<Target[]> {
  const rows = await db
    .selectFrom('datastores')
    .innerJoin('hosts', 'hosts.id', 'datastores.host_id')
    .selectAll('datastores')
    .select([
      'hosts.name as host_name',
      'hosts.state as host_state',
      'hosts.maintenance',
      'hosts.memory_free_bytes',
    ])
    .orderBy('hosts.name')
    .orderBy('datastores.name')
    .execute();
  return rows.map((r) => ({
    host: r.host_name,
    datastore: r.name,
    cls: datastoreClass(r),
    connected: r.host_state === 'connected',
    maintenance: r.maintenance,
    memoryFreeBytes: r.memory_free_bytes,
    capacityBytes: r.capacity_bytes,
    freeBytes: r.free_bytes,
    storageId: r.storage_id,
    iopsBudget: datastoreIopsBudget(r),
    limits: { iops: r.limit_iops, bytesPerSecond: r.limit_bytes_per_second },
  }));
}

/**
 * Each VM's demand over the window: its disks' IOPS summed, the slowest disk's latency, and its
 * I/O on each datastore beside that datastore's limits (`targets`).
 */
export async function loadDemand(
  db: Db,
  s: PlacementSettings,
  now: number,
  targets: readonly Target[],
): Promise<Map<string, Demand>> {
  const limits = new Map(targets.map((t) => [`${t.host}/${t.datastore}`, t.limits]));
  const out = new Map<string, Demand>();
  let cursor: string | undefined;
  do {
    const page = await listStorageDisks(
      db,
      StorageDiskQuery.parse({ limit: 1000, ...(cursor ? { cursor } : {}) }),
      now,
      s.demandWindowSeconds,
    );
    for (const d of page.items)
      out.set(d.vmId, addDisk(out.get(d.vmId), d, s, limits.get(`${d.host}/${d.datastore}`)));
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return out;
}

const plus = (a: number | null | undefined, b: number | null) => (b === null ? (a ?? null) : (a ?? 0) + b);

function addDisk(
  into: Demand | undefined,
  d: StorageDiskRow,
  s: PlacementSettings,
  limits: IoLimits | undefined,
): Demand {
  const pick = (dir: StorageDiskRow['read']) =>
    (s.hotLatencyPercentile === 'p99' ? dir.p99LatencyMs : dir.p90LatencyMs) ?? dir.avgLatencyMs;
  const latencies = [pick(d.read), pick(d.write), into?.latencyMs ?? null].filter(
    (v): v is number => v !== null,
  );
  // One throttle group per VM and datastore (the agent's throttle.ts): its disks there add up.
  const throttled = [...(into?.throttled ?? [])];
  const i = throttled.findIndex((t) => t.datastore === d.datastore);
  const was = i >= 0 ? throttled[i] : undefined;
  const group: ThrottledIo = {
    datastore: d.datastore,
    iops: plus(was?.iops, d.iops),
    bytesPerSecond: plus(was?.bytesPerSecond, d.throughputBytesPerSecond),
    limits: limits ?? { iops: null, bytesPerSecond: null },
  };
  if (i >= 0) throttled[i] = group;
  else throttled.push(group);
  return {
    iops: plus(into?.iops, d.iops),
    latencyMs: latencies.length ? Math.max(...latencies) : null,
    throttled,
  };
}

export const priorityDefault = PRIORITY_NAMES.normal;

/** A window reads up to one of the finest buckets more: it covers a VM's time on a datastore that much later. */
const BUCKET_MS = IO_TIERS[0].res * 1000;

/**
 * The IOPS the VM's last placement move here was made for (its recommendation's measured value),
 * while the demand window does not yet cover its time here; null otherwise.
 */
function arrivalIops(
  moves: readonly {
    to_host: string;
    to_datastore: string;
    state: string | null;
    finished_at: string | null;
    reason: string | null;
  }[],
  at: Place,
  s: PlacementSettings,
  now: number,
): number | null {
  const arrived = moves
    .filter(
      (m) =>
        m.state === 'succeeded' && m.finished_at && m.to_host === at.host && m.to_datastore === at.datastore,
    )
    .sort((a, b) => Date.parse(b.finished_at ?? '') - Date.parse(a.finished_at ?? ''))[0];
  if (!arrived?.finished_at || !arrived.reason) return null;
  if (now - Date.parse(arrived.finished_at) > s.demandWindowSeconds * 1000 + BUCKET_MS) return null;
  const reason = PlacementReason.safeParse(JSON.parse(arrived.reason)).data;
  // A bandwidth-limit reason's value is bytes/s, not IOPS.
  if (reason?.metric !== 'iops' && reason?.metric !== 'iops-limit') return null;
  return typeof reason.value === 'number' ? reason.value : null;
}

export interface LoadedVms {
  vms: VmFacts[];
  /** Placement moves queued or running. */
  movesInFlight: number;
}

export async function loadVmFacts(
  db: Db,
  targets: readonly Target[],
  s: PlacementSettings,
  now: number,
): Promise<LoadedVms> {
  const [vms, disks, settings, hosts, moveJobs, placementMoves, demand] = await Promise.all([
    db.selectFrom('vms').select(['id', 'name', 'host_id', 'state', 'memory_mib']).execute(),
    db
      .selectFrom('vm_disks')
      .select(['vm_id', 'datastore', 'allocated_bytes', 'position'])
      .orderBy('position')
      .execute(),
    db.selectFrom('vm_placement').selectAll().execute(),
    db.selectFrom('hosts').select(['id', 'name']).execute(),
    db
      .selectFrom('jobs')
      .select(['target_id', 'state', 'finished_at'])
      .where('kind', 'in', [...MOVE_JOB_KINDS])
      .where((eb) =>
        eb.or([
          eb('state', 'in', [...IN_FLIGHT]),
          eb('finished_at', '>=', new Date(now - s.minStaySeconds * 1000 - DAY_MS).toISOString()),
        ]),
      )
      .execute(),
    db
      .selectFrom('placement_moves')
      .leftJoin('jobs', 'jobs.id', 'placement_moves.job_id')
      .leftJoin('placement_recommendations as r', 'r.job_id', 'placement_moves.job_id')
      .select([
        'placement_moves.vm_id',
        'placement_moves.started_at',
        'placement_moves.to_host',
        'placement_moves.to_datastore',
        'jobs.state',
        'jobs.finished_at',
        'r.reason',
      ])
      .where('placement_moves.started_at', '>=', new Date(now - DAY_MS).toISOString())
      .execute(),
    loadDemand(db, s, now, targets),
  ]);
  const hostName = new Map(hosts.map((h) => [h.id, h.name]));
  const classOf = new Map(targets.map((t) => [`${t.host}/${t.datastore}`, t.cls]));
  const settingsOf = new Map(settings.map((r) => [r.vm_id, r]));
  const inFlight = (state: string | null) => (IN_FLIGHT as readonly (string | null)[]).includes(state);
  // Each VM's rows by its id: filtering the whole lists per VM was 10,000 x 10,000 comparisons at
  // 10,000 VMs, a second of the event loop every round.
  const disksOf = groupBy(disks, (d) => d.vm_id);
  const jobsOf = groupBy(moveJobs, (j) => j.target_id);
  const movesOf = groupBy(placementMoves, (m) => m.vm_id);
  const facts: VmFacts[] = [];
  for (const v of vms) {
    const host = hostName.get(v.host_id);
    const own = disksOf.get(v.id) ?? [];
    const primary = own[0];
    if (!host || !primary) continue;
    const at: Place = { host, datastore: primary.datastore };
    const p = settingsOf.get(v.id);
    const jobs = jobsOf.get(v.id) ?? [];
    const finished = jobs.map((j) => (j.finished_at ? Date.parse(j.finished_at) : NaN)).filter((t) => t >= 0);
    const mine = movesOf.get(v.id) ?? [];
    const flying = mine.find((m) => inFlight(m.state));
    const homeHost = p?.home_host_id ? hostName.get(p.home_host_id) : undefined;
    facts.push({
      id: v.id,
      name: v.name,
      running: v.state === 'running',
      memoryBytes: v.memory_mib * 2 ** 20,
      diskBytes: own.reduce((a, d) => a + d.allocated_bytes, 0),
      at,
      cls: classOf.get(`${at.host}/${at.datastore}`) ?? DEFAULT_DATASTORE_CLASS,
      home: homeHost && p?.home_datastore ? { host: homeHost, datastore: p.home_datastore } : null,
      placedFor: p?.placed_for ?? null,
      priority: p?.priority ?? priorityDefault,
      pinned: p?.pinned === 1,
      excluded: p?.excluded === 1,
      lastMoveAt: finished.length ? Math.max(...finished) : null,
      movesToday: mine.length,
      moving: jobs.some((j) => inFlight(j.state)),
      movingTo: flying ? { host: flying.to_host, datastore: flying.to_datastore } : null,
      demand: demand.get(v.id) ?? null,
      arrivalIops: arrivalIops(mine, at, s, now),
      hotSince: p?.hot_since ? Date.parse(p.hot_since) : null,
      coolSince: p?.cool_since ? Date.parse(p.cool_since) : null,
    });
  }
  return { vms: facts, movesInFlight: placementMoves.filter((m) => inFlight(m.state)).length };
}

export async function loadWindows(db: Db, now: number): Promise<ScheduleWindow[]> {
  const rows = await db.selectFrom('placement_schedules').selectAll().orderBy('created_at').execute();
  const windows = rows.map((r) => ({
    vmId: r.vm_id,
    cls: r.class,
    ...currentOrNextWindow(r.cron, r.duration_seconds, now),
  }));
  // One window per VM: the earliest (a VM with several schedules follows the nearest).
  windows.sort((a, b) => a.start - b.start);
  return windows.filter((w, i) => windows.findIndex((x) => x.vmId === w.vmId) === i);
}

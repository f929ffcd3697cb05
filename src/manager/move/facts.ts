/*
 * The facts the pre-move checks need, fresh from the agents (free memory and space change all the
 * time; the inventory can be a reconciliation interval old), with the inventory as the fallback
 * for a host that does not answer.
 */
import {
  MOVE_JOB_KINDS,
  type ManagedVm,
  type MoveDatastores,
  type MovePlan,
  type Vm,
} from '../../api/index.js';
import type { Db } from '../db.js';
import { agentError, isFenced } from '../errors.js';
import { getVm, type HostRow } from '../inventory.js';
import { fetchSnapshot } from '../reconcile.js';
import type { VmJobDeps } from '../vm-jobs.js';
import { planMove, planStorageMove, type HostFacts, type VmFacts } from './checks.js';
import { MoveRefused } from './errors.js';
import { diskCopyFor } from './retained.js';

export async function hostFacts(deps: VmJobDeps, host: HostRow): Promise<{ facts: HostFacts; vms: Vm[] }> {
  try {
    const snap = await fetchSnapshot(deps.clientFor(host));
    return {
      facts: {
        id: host.id,
        name: host.name,
        reachable: true,
        memoryFreeBytes: snap.info.memoryFreeBytes,
        machineType: snap.info.machineType,
        cpuModel: snap.info.cpuModel,
        qemuVersion: snap.info.qemuVersion,
        accelerator: snap.info.accelerator,
        datastores: snap.datastores.map((d) => ({
          name: d.name,
          freeBytes: d.freeBytes,
          default: d.default,
          path: d.path,
          kind: d.kind,
          storageId: d.storageId,
        })),
        vswitches: snap.vswitches.map((v) => v.name),
        vmNames: snap.vms.map((v) => v.name),
        toolsVersion: snap.info.toolsVersion,
        moveTls: snap.info.moveTls,
        maintenance: host.maintenance,
      },
      vms: snap.vms,
    };
  } catch (error) {
    const failure = agentError(host.name, error);
    // A manager that does not lead may not ask agents (issue 31): it checks a move it is asked
    // for on the inventory as the leader keeps it, host state included, and queues it; the leader
    // checks again with fresh facts when the job starts.
    const follower = isFenced(failure);
    const [datastores, vswitches, vms] = await Promise.all([
      deps.db.selectFrom('datastores').selectAll().where('host_id', '=', host.id).execute(),
      deps.db.selectFrom('vswitches').select('name').where('host_id', '=', host.id).execute(),
      deps.db.selectFrom('vms').select('name').where('host_id', '=', host.id).execute(),
    ]);
    return {
      facts: {
        id: host.id,
        name: host.name,
        reachable: follower && host.state === 'connected',
        unreachableReason: follower ? (host.last_error ?? undefined) : failure.message,
        ...(follower ? { fromInventory: true } : {}),
        memoryFreeBytes: host.memory_free_bytes,
        machineType: host.machine_type,
        cpuModel: host.cpu_model,
        qemuVersion: host.qemu_version,
        accelerator: host.accelerator,
        datastores: datastores.map((d) => ({
          name: d.name,
          freeBytes: d.free_bytes,
          default: d.is_default === 1,
          path: d.path,
          kind: d.kind,
          storageId: d.storage_id ?? undefined,
        })),
        vswitches: vswitches.map((v) => v.name),
        vmNames: vms.map((v) => v.name),
        toolsVersion: host.tools_version ?? undefined,
        moveTls: undefined,
        maintenance: host.maintenance,
      },
      vms: [],
    };
  }
}

/** The VM as its host reports it now (allocated sizes, state), else as the inventory has it. */
export function vmFacts(stored: ManagedVm, reported: Vm[]): VmFacts {
  const vm = reported.find((v) => v.id === stored.id) ?? stored;
  return {
    id: vm.id,
    name: vm.name,
    state: vm.state,
    memoryMiB: vm.memoryMiB,
    machineType: vm.machineType,
    cpuModel: vm.cpuModel,
    disks: vm.disks.map((d) => ({
      id: d.id,
      datastore: d.datastore,
      path: d.path,
      virtualSizeBytes: d.virtualSizeBytes,
      allocatedBytes: d.allocatedBytes,
    })),
    nics: vm.nics.map((n) => ({ id: n.id, vswitch: n.vswitch })),
    toolsDisk: vm.toolsDisk === true,
    toolsVersion: stored.tools?.installed ?? undefined,
  };
}

/** Moves of this VM that have not ended, except `exceptJobId`. */
export async function movesInFlight(
  db: Db,
  vmId: string,
  exceptJobId?: string,
): Promise<{ jobId: string; kind: string }[]> {
  let query = db
    .selectFrom('jobs')
    .select(['id', 'kind'])
    .where('target_id', '=', vmId)
    .where('kind', 'in', [...MOVE_JOB_KINDS])
    .where('state', 'in', ['queued', 'running']);
  if (exceptJobId) query = query.where('id', '!=', exceptJobId);
  const rows = await query.execute();
  return rows.map((r) => ({ jobId: r.id, kind: r.kind }));
}

/** What the agents' migration engine supports (see src/api/migration.ts). */
export const ENGINE = { coldMove: true, secure: true };

/**
 * The checks of a move to another host, with facts fetched now: when the move is asked for, and
 * again when its job starts (it may have waited in the queue while the hosts changed).
 */
export async function checkHostMove(
  deps: VmJobDeps,
  q: {
    vmId: string;
    source: HostRow;
    target: HostRow;
    datastores?: MoveDatastores | undefined;
    secure: boolean;
    /** The job doing the move, when it re-checks: not a move in flight of its own. */
    jobId?: string;
  },
): Promise<MovePlan> {
  const [src, tgt, inFlight, stored] = await Promise.all([
    hostFacts(deps, q.source),
    q.target.id === q.source.id ? undefined : hostFacts(deps, q.target),
    movesInFlight(deps.db, q.vmId, q.jobId),
    getVm(deps.db, q.vmId),
  ]);
  const plan = planMove({
    vm: vmFacts(stored, src.vms),
    source: src.facts,
    target: tgt?.facts ?? src.facts,
    datastore: q.datastores,
    secure: q.secure,
    inFlight,
    engine: ENGINE,
  });
  // Disks that stay on shared storage are not copied at all: a delta concerns only the others.
  const copied = plan.disks.filter((d) => !d.stays);
  if (plan.mode !== 'live' || !plan.ok || copied.length === 0) return plan;
  const formats = new Map(stored.disks.map((d) => [d.id, d.format]));
  const diskCopy = await diskCopyFor(deps, {
    vmId: q.vmId,
    source: q.source,
    target: q.target,
    disks: copied.map((d) => ({
      id: d.diskId,
      format: formats.get(d.diskId) ?? 'qcow2',
      toDatastore: d.toDatastore,
    })),
  });
  return { ...plan, diskCopy };
}

/** The checks of a storage move on one host, with facts fetched now (as checkHostMove). */
export async function checkStorageMove(
  deps: VmJobDeps,
  q: { vmId: string; host: HostRow; datastore: string; diskIds?: string[] | undefined; jobId?: string },
): Promise<MovePlan> {
  const [host, inFlight, stored] = await Promise.all([
    hostFacts(deps, q.host),
    movesInFlight(deps.db, q.vmId, q.jobId),
    getVm(deps.db, q.vmId),
  ]);
  return planStorageMove({
    vm: vmFacts(stored, host.vms),
    host: host.facts,
    datastore: q.datastore,
    diskIds: q.diskIds,
    inFlight,
  });
}

/**
 * A job's re-check: refused if any check fails now, or if the VM's state asks for another kind of
 * move than the one accepted (`changed` says what happened, e.g. "web1 stopped after …").
 */
export function requireStill(plan: MovePlan, mode: MovePlan['mode'] | undefined, changed: string): void {
  if (!plan.ok) throw new MoveRefused(plan);
  if (mode !== undefined && plan.mode !== mode)
    throw new MoveRefused({
      ...plan,
      ok: false,
      checks: [...plan.checks, { check: 'vm-state', ok: false, detail: `${changed}: start the move again` }],
    });
}

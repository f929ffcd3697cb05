import { z } from 'zod';
import {
  VmSpec,
  type AgentClient,
  type ManagedVm,
  type ValidVmSpec,
  type Vm,
  isAgentError,
} from '../api/index.js';
import { nowIso, type Actor } from './changes.js';
import type { Db } from './db.js';
import { agentError, HostInMaintenance, InsufficientCapacity, InvalidInput } from './errors.js';
import { getVm, hostRow, removeVms, upsertVms, type HostRow } from './inventory.js';
import type { JobHandler } from './jobs.js';
import type { KeyedMutex } from './locks.js';
import { releaseVmClaims } from './vm-identity.js';

/*
 * The VM jobs: create, start, shutdown, stop, delete. Each calls the VM's agent while holding the
 * host's lock, and stores the agent's answer with the job creator's change record in one
 * transaction; holding the lock keeps reconciliation from observing the change first and
 * recording it as `system`'s.
 */

export interface VmJobDeps {
  db: Db;
  hostLocks: KeyedMutex;
  clientFor: (host: HostRow) => AgentClient;
}

const MiB = 1024 * 1024;

/** Runs one agent call under the host's lock and stores the VM it returns (or removes it). */
async function onHost<T>(
  deps: VmJobDeps,
  hostId: string,
  call: (client: AgentClient, host: HostRow) => Promise<T>,
  store: (host: HostRow, answer: T) => Promise<void>,
): Promise<void> {
  await deps.hostLocks.run(hostId, async () => {
    const host = await hostRow(deps.db, hostId);
    let answer: T;
    try {
      answer = await call(deps.clientFor(host), host);
    } catch (error) {
      throw agentError(host.name, error);
    }
    await store(host, answer);
  });
}

function storeVm(deps: VmJobDeps, actor: Actor) {
  return (host: HostRow, vm: Vm) =>
    deps.db.transaction().execute(async (tx) => {
      await upsertVms(tx, actor, host, [vm], nowIso());
    });
}

// ------------------------------------------------------------------------------------------------

export const CreateVmParams = z.object({ hostId: z.uuid(), spec: VmSpec });
export type CreateVmParams = z.infer<typeof CreateVmParams>;

/**
 * Checks a create request against the chosen host's inventory and fills in the default datastore
 * of disks that name none. Throws naming the field.
 */
export async function prepareCreate(db: Db, host: HostRow, spec: ValidVmSpec): Promise<ValidVmSpec> {
  // The VM's id, name and MACs are checked where they are claimed (vm-identity.ts), in the
  // transaction that queues the job.
  const [datastores, vswitches] = await Promise.all([
    db.selectFrom('datastores').select(['name', 'is_default']).where('host_id', '=', host.id).execute(),
    db.selectFrom('vswitches').select('name').where('host_id', '=', host.id).execute(),
  ]);
  if (host.state !== 'connected') {
    throw new InvalidInput(`host: ${host.name} is unreachable (${host.last_error ?? 'no answer'})`, 'host');
  }
  refuseInMaintenance(host, `create ${spec.name}`, 'host');
  const fallback = datastores.find((d) => d.is_default === 1)?.name;
  const disks = spec.disks.map((disk, i) => {
    const datastore = disk.datastore ?? fallback;
    if (!datastore) {
      throw new InvalidInput(
        `spec.disks.${i}.datastore: host ${host.name} has no default datastore; name one`,
        `spec.disks.${i}.datastore`,
      );
    }
    if (!datastores.some((d) => d.name === datastore)) {
      throw new InvalidInput(
        `spec.disks.${i}.datastore: host ${host.name} has no datastore ${datastore} (it has ${datastores.map((d) => d.name).join(', ') || 'none'})`,
        `spec.disks.${i}.datastore`,
      );
    }
    return { ...disk, datastore };
  });
  spec.nics.forEach((nic, i) => {
    if (!vswitches.some((v) => v.name === nic.vswitch)) {
      throw new InvalidInput(
        `spec.nics.${i}.vswitch: host ${host.name} has no virtual switch ${nic.vswitch} (it has ${vswitches.map((v) => v.name).join(', ') || 'none'})`,
        `spec.nics.${i}.vswitch`,
      );
    }
  });
  if (spec.start && host.memory_free_bytes < spec.memoryMiB * MiB) {
    throw new InsufficientCapacity(
      `spec.memoryMiB: host ${host.name} has ${Math.floor(host.memory_free_bytes / MiB)} MiB free, the VM needs ${spec.memoryMiB} MiB`,
      'spec.memoryMiB',
    );
  }
  return { ...spec, disks };
}

/** A host in maintenance (entering or in) takes no new VM and starts none (HostInMaintenance). */
export function refuseInMaintenance(host: HostRow, action: string, field?: string): void {
  if (host.maintenance !== 'none') throw new HostInMaintenance(host.name, host.maintenance, action, field);
}

/**
 * Pool placement: of the pool's connected hosts not in maintenance that have every datastore and virtual switch the
 * spec names and the memory it needs, the one with the most memory free.
 */
export async function placeInPool(
  db: Db,
  poolId: string,
  poolName: string,
  spec: ValidVmSpec,
): Promise<HostRow> {
  // One query that stops at the first host that fits, not every host of the pool with all their
  // datastores and virtual switches read into the process (a pool of 100 hosts: ~1 ms a create).
  const datastores = [
    ...new Set(spec.disks.flatMap((d) => (d.datastore === undefined ? [] : [d.datastore]))),
  ];
  const vswitches = [...new Set(spec.nics.map((n) => n.vswitch))];
  let query = db
    .selectFrom('hosts')
    .selectAll('hosts')
    .where('hosts.pool_id', '=', poolId)
    .where('hosts.state', '=', 'connected')
    .where('hosts.maintenance', '=', 'none')
    .where('hosts.memory_free_bytes', '>=', spec.memoryMiB * MiB);
  for (const name of datastores)
    query = query.where(({ exists, selectFrom }) =>
      exists(
        selectFrom('datastores')
          .select('datastores.id')
          .whereRef('datastores.host_id', '=', 'hosts.id')
          .where('datastores.name', '=', name),
      ),
    );
  for (const name of vswitches)
    query = query.where(({ exists, selectFrom }) =>
      exists(
        selectFrom('vswitches')
          .select('vswitches.id')
          .whereRef('vswitches.host_id', '=', 'hosts.id')
          .where('vswitches.name', '=', name),
      ),
    );
  const fits = await query
    .orderBy('hosts.memory_free_bytes', 'desc')
    .orderBy('hosts.name')
    .limit(1)
    .executeTakeFirst();
  if (!fits) {
    throw new InsufficientCapacity(
      `pool: no connected host in pool ${poolName} out of maintenance has ${spec.memoryMiB} MiB of memory free and the datastores and virtual switches the VM names`,
      'pool',
    );
  }
  return fits;
}

function createHandler(deps: VmJobDeps): JobHandler<CreateVmParams> {
  return {
    kind: 'vm-create',
    params: CreateVmParams,
    resumable: false,
    async run(ctx) {
      const { spec, hostId } = ctx.params;
      const disks = spec.disks.length;
      await ctx.progress({
        phase: 'create',
        percent: 10,
        message: `creating ${spec.name} with ${disks} disk${disks === 1 ? '' : 's'}${spec.start ? ' and starting it' : ''}`,
      });
      try {
        await onHost(
          deps,
          hostId,
          (client, host) => {
            // It may have entered maintenance while this job waited.
            refuseInMaintenance(host, `create ${spec.name}`, 'host');
            return client.createVm(spec);
          },
          (host, vm) =>
            deps.db.transaction().execute(async (tx) => {
              await upsertVms(tx, ctx.actor, host, [vm], nowIso());
              await releaseVmClaims(tx, ctx.jobId);
            }),
        );
      } finally {
        // Failed: the name and MACs are free again (done already when the VM was stored).
        await releaseVmClaims(deps.db, ctx.jobId);
      }
      return getVm(deps.db, spec.id ?? spec.name);
    },
  };
}

// ------------------------------------------------------------------------------------------------

export const VmActionParams = z.object({
  vmId: z.uuid(),
  timeoutSeconds: z.number().int().min(0).max(3600).optional(),
});
export type VmActionParams = z.infer<typeof VmActionParams>;

function actionHandler(
  deps: VmJobDeps,
  kind: string,
  verb: string,
  call: (client: AgentClient, vm: ManagedVm, params: VmActionParams, host: HostRow) => Promise<Vm>,
): JobHandler<VmActionParams> {
  return {
    kind,
    params: VmActionParams,
    resumable: false,
    async run(ctx) {
      const vm = await getVm(deps.db, ctx.params.vmId);
      await ctx.progress({ phase: verb, percent: 10, message: `${verb} ${vm.name} on ${vm.host}` });
      await onHost(
        deps,
        vm.hostId,
        (client, host) => call(client, vm, ctx.params, host),
        storeVm(deps, ctx.actor),
      );
      return getVm(deps.db, vm.id);
    },
  };
}

export const DeleteVmParams = z.object({ vmId: z.uuid(), deleteDisks: z.boolean() });
export type DeleteVmParams = z.infer<typeof DeleteVmParams>;

function deleteHandler(deps: VmJobDeps): JobHandler<DeleteVmParams> {
  return {
    kind: 'vm-delete',
    params: DeleteVmParams,
    resumable: false,
    async run(ctx) {
      const vm = await getVm(deps.db, ctx.params.vmId);
      await ctx.progress({ phase: 'delete', percent: 10, message: `deleting ${vm.name} on ${vm.host}` });
      await onHost(
        deps,
        vm.hostId,
        async (client) => {
          try {
            await client.deleteVm(vm.name, ctx.params.deleteDisks);
          } catch (error) {
            // Already gone on the host: the inventory catches up below.
            if (!isAgentError(error, 'vm-not-found')) throw error;
          }
        },
        (host) => deps.db.transaction().execute((tx) => removeVms(tx, ctx.actor, host, [vm], nowIso())),
      );
      return { id: vm.id, name: vm.name, deleted: true };
    },
  };
}

export function vmJobHandlers(deps: VmJobDeps): JobHandler<never>[] {
  const handlers = [
    createHandler(deps),
    actionHandler(deps, 'vm-start', 'starting', (c, vm, _p, host) => {
      refuseInMaintenance(host, `start ${vm.name}`);
      return c.startVm(vm.name);
    }),
    actionHandler(deps, 'vm-shutdown', 'shutting down', (c, vm, p) =>
      c.shutdownVm(vm.name, p.timeoutSeconds ?? 60),
    ),
    actionHandler(deps, 'vm-stop', 'stopping', (c, vm) => c.stopVm(vm.name)),
    actionHandler(deps, 'vm-tools-insert', 'inserting the tools disk into', (c, vm) =>
      c.insertTools(vm.name),
    ),
    actionHandler(deps, 'vm-tools-eject', 'ejecting the tools disk from', (c, vm) => c.ejectTools(vm.name)),
    deleteHandler(deps),
  ];
  return handlers as JobHandler<never>[];
}

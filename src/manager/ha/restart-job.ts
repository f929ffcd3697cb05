/*
 * The `ha-restart` job (issue 30): brings an HA-protected VM of a dead host up on another host of
 * its cluster. Its phases, each persisted before it starts (a manager restart resumes it):
 *   define-on-target   the VM is defined on the target with its disks where they are (shared
 *                      storage, the same files); undo: the definition is removed, the disks kept;
 *   start-with-lease   the target starts it; its QEMU must take the VM's lease first, which the
 *                      dead host gives up only when its sanlock fenced it or its lease expired
 *                      (lease-held until then: the job waits, retrying); undo: stop it;
 *   adopt              the inventory has the VM on the target (the change log says who did it).
 * If the old host turns out alive and still runs the VM, the job stops and undoes its definition.
 */
import { z } from 'zod';
import { ApiError, type Vm, type VmSpec } from '../../api/index.js';
import { nowIso } from '../changes.js';
import type { Db } from '../db.js';
import { agentError, Conflict } from '../errors.js';
import { getVm, hostRow, upsertVms, type HostRow } from '../inventory.js';
import type { JobContext, JobHandler } from '../jobs.js';
import type { AgentClient } from '../../api/index.js';

export const HA_RESTART_JOB_KIND = 'ha-restart';
/** How long a restart waits for the dead host's lease: sanlock's expiry is 8 I/O timeouts + 60 s. */
export const HA_LEASE_WAIT_SECONDS = 300;
const LEASE_RETRY_MS = 2_000;

export const HaRestartParams = z.object({ vmId: z.uuid(), fromHostId: z.uuid(), toHostId: z.uuid() });
export type HaRestartParams = z.infer<typeof HaRestartParams>;

const Checkpoint = z.object({ phase: z.enum(['define-on-target', 'start-with-lease', 'adopt']) });

export interface HaRestartDeps {
  db: Db;
  clientFor(host: HostRow): AgentClient;
  /**
   * A client whose calls may take as long as a lease takes to expire: the target's start waits in
   * sanlock until the dead host's lease has expired (8 I/O timeouts + 60 s).
   */
  patientClientFor(host: HostRow): AgentClient;
  /** Milliseconds between start attempts while the lease is held (tests shorten it). */
  retryMs?: number;
}

export interface HaRestartResult {
  vm: string;
  from: string;
  to: string;
  /** Start attempts refused because the dead host's lease had not expired. */
  leaseWaits: number;
  waitedForLeaseMs: number;
}

/** The spec that defines `vm` on `target` with its shared disks where they are. */
async function specOnTarget(db: Db, vmId: string, from: HostRow, to: HostRow): Promise<VmSpec> {
  const vm = await getVm(db, vmId);
  const datastores = await db
    .selectFrom('datastores')
    .select(['host_id', 'name', 'path', 'kind', 'storage_id'])
    .where('host_id', 'in', [from.id, to.id])
    .execute();
  const disks = vm.disks.map((d) => {
    const source = datastores.find((s) => s.host_id === from.id && s.name === d.datastore);
    if (!source || source.kind !== 'shared' || source.storage_id === null)
      throw new Conflict(`disk ${d.id} of ${vm.name} is on ${from.name}'s local datastore ${d.datastore}`);
    const there = datastores.find((s) => s.host_id === to.id && s.storage_id === source.storage_id);
    if (!there)
      throw new Conflict(`${to.name} does not see the shared storage of disk ${d.id} of ${vm.name}`);
    const root = source.path.replace(/\/+$/, '');
    if (!d.path.startsWith(`${root}/`))
      throw new Conflict(`disk ${d.id} of ${vm.name} is not inside datastore ${d.datastore} (${d.path})`);
    return {
      id: d.id,
      datastore: there.name,
      sizeBytes: d.virtualSizeBytes,
      shared: { storageId: source.storage_id, file: d.path.slice(root.length + 1) },
    };
  });
  return {
    id: vm.id,
    name: vm.name,
    vcpus: vm.vcpus,
    memoryMiB: vm.memoryMiB,
    disks,
    nics: vm.nics.map((n) => ({ id: n.id, vswitch: n.vswitch, mac: n.mac })),
    ...(vm.guestIp ? { guestIp: vm.guestIp } : {}),
    ...(vm.guestGateway ? { guestGateway: vm.guestGateway } : {}),
    start: false,
  };
}

const isCode = (error: unknown, code: string) => error instanceof ApiError && error.code === code;

/** True when the old host answers and runs the VM: it was never dead, nothing is restarted. */
async function runsOnOldHost(deps: HaRestartDeps, from: HostRow, name: string): Promise<boolean> {
  try {
    const vm = await deps.clientFor(from).getVm(name);
    return vm.state !== 'stopped' && vm.state !== 'crashed';
  } catch {
    return false;
  }
}

export function haRestartHandler(deps: HaRestartDeps): JobHandler<HaRestartParams> {
  return {
    kind: HA_RESTART_JOB_KIND,
    params: HaRestartParams,
    resumable: true,
    async run(ctx: JobContext<HaRestartParams>): Promise<HaRestartResult> {
      const { db } = deps;
      const from = await hostRow(db, ctx.params.fromHostId);
      const to = await hostRow(db, ctx.params.toHostId);
      const target = deps.clientFor(to);
      const name = (await getVm(db, ctx.params.vmId)).name;
      let phase = Checkpoint.safeParse(ctx.checkpoint).data?.phase ?? 'define-on-target';
      const enter = async (next: typeof phase, percent: number, message: string) => {
        phase = next;
        await ctx.saveCheckpoint({ phase }, { phase: next, percent, message });
      };
      let defined = false;
      const started = Date.now();
      let leaseWaits = 0;
      try {
        if (phase === 'define-on-target') {
          await enter('define-on-target', 10, `defining ${name} on ${to.name} with its disks where they are`);
          const spec = await specOnTarget(db, ctx.params.vmId, from, to);
          try {
            await target.createVm(spec);
          } catch (error) {
            throw agentError(to.name, error);
          }
          defined = true;
          await enter(
            'start-with-lease',
            30,
            `starting ${name} on ${to.name} once ${from.name}'s lease is free`,
          );
        } else defined = true;
        let vm: Vm | undefined;
        if (phase === 'start-with-lease') {
          const deadline = Date.now() + HA_LEASE_WAIT_SECONDS * 1000;
          for (;;) {
            ctx.throwIfCancelled();
            try {
              vm = await deps.patientClientFor(to).startVm(name);
              break;
            } catch (error) {
              if (isCode(error, 'vm-state-conflict')) {
                vm = await target.getVm(name);
                if (vm.state === 'running') break;
              }
              if (!isCode(error, 'lease-held')) throw agentError(to.name, error);
            }
            leaseWaits++;
            if (await runsOnOldHost(deps, from, name))
              throw new Conflict(
                `${from.name} answers again and runs ${name}: it was not dead; nothing restarted`,
              );
            if (Date.now() > deadline)
              throw new Conflict(
                `the lease of ${name} stayed held for ${HA_LEASE_WAIT_SECONDS} s: ${from.name} still renews it (cut off from the manager but not from the storage?)`,
              );
            await ctx.progress({
              phase: 'start-with-lease',
              percent: 30,
              message: `waiting for ${from.name}'s lease of ${name} to expire (${Math.round((Date.now() - started) / 1000)} s)`,
            });
            await new Promise((resolve) => setTimeout(resolve, deps.retryMs ?? LEASE_RETRY_MS));
          }
          await enter('adopt', 90, `${name} runs on ${to.name}`);
        }
        vm ??= await target.getVm(name);
        const now = nowIso();
        await db.transaction().execute((tx) => upsertVms(tx, ctx.actor, to, [vm], now));
        return {
          vm: name,
          from: from.name,
          to: to.name,
          leaseWaits,
          waitedForLeaseMs: Date.now() - started,
        };
      } catch (error) {
        // Undo: whatever the target got is removed again; the disks stay where they are.
        if (defined && phase !== 'adopt') {
          await target.stopVm(name).catch(() => undefined);
          await target.deleteVm(name, false).catch(() => undefined);
        }
        throw error;
      }
    },
  };
}

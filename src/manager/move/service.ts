/*
 * The move calls behind the REST API: check with fresh facts, then either answer with the plan
 * (dry run) or submit the job. Checking and submitting hold the VM's lock, so two requests to move
 * the same VM cannot both pass the "no move in flight" check.
 */
import type { z } from 'zod';
import type { Job, MovePlan, MoveVmRequest, VmMoveStorageRequest } from '../../api/index.js';
import type { Caller } from '../auth.js';
import { getVm, hostRow, vmObject } from '../inventory.js';
import type { JobRunner } from '../jobs.js';
import { KeyedMutex } from '../locks.js';
import { planMove, planStorageMove } from './checks.js';
import { MoveRefused } from './errors.js';
import { hostFacts, movesInFlight, vmFacts } from './facts.js';
import { ENGINE, type MoveDeps, type MoveParams } from './job.js';
import type { MoveStorageParams } from './storage-job.js';

export type MoveAnswer = { plan: MovePlan } | { job: Job };

export class MoveService {
  readonly #vmLocks = new KeyedMutex();

  constructor(private readonly deps: MoveDeps & { jobs: JobRunner }) {}

  async move(caller: Caller, ref: string, req: z.output<typeof MoveVmRequest>): Promise<MoveAnswer> {
    const { db } = this.deps;
    const stored = await getVm(db, ref);
    return this.#vmLocks.run(stored.id, async () => {
      const [sourceHost, targetHost] = await Promise.all([
        hostRow(db, stored.hostId),
        hostRow(db, req.to, 'to'),
      ]);
      const [src, tgt, inFlight] = await Promise.all([
        hostFacts(this.deps, sourceHost),
        targetHost.id === sourceHost.id ? undefined : hostFacts(this.deps, targetHost),
        movesInFlight(db, stored.id),
      ]);
      const plan = planMove({
        vm: vmFacts(stored, src.vms),
        source: src.facts,
        target: tgt?.facts ?? src.facts,
        datastore: req.datastore,
        secure: req.secure,
        inFlight,
        engine: ENGINE,
      });
      if (req.dryRun) return { plan };
      if (!plan.ok) throw new MoveRefused(plan);
      const params: MoveParams = {
        vmId: stored.id,
        sourceHostId: sourceHost.id,
        targetHostId: targetHost.id,
        datastores: Object.fromEntries(plan.disks.map((d) => [d.diskId, d.toDatastore])),
        keepSource: req.keepSource,
        secure: req.secure,
        ...(req.policy ? { policy: req.policy } : {}),
        mode: plan.mode,
      };
      const job = await this.deps.jobs.submit({
        kind: 'vm-move',
        target: vmObject(stored),
        params,
        actor: { name: caller.name },
      });
      return { job };
    });
  }

  async moveStorage(
    caller: Caller,
    ref: string,
    req: z.output<typeof VmMoveStorageRequest>,
  ): Promise<MoveAnswer> {
    const { db } = this.deps;
    const stored = await getVm(db, ref);
    return this.#vmLocks.run(stored.id, async () => {
      const hostRecord = await hostRow(db, stored.hostId);
      const [host, inFlight] = await Promise.all([
        hostFacts(this.deps, hostRecord),
        movesInFlight(db, stored.id),
      ]);
      const plan = planStorageMove({
        vm: vmFacts(stored, host.vms),
        host: host.facts,
        datastore: req.datastore,
        diskIds: req.disks,
        inFlight,
      });
      if (req.dryRun) return { plan };
      if (!plan.ok) throw new MoveRefused(plan);
      const params: MoveStorageParams = {
        vmId: stored.id,
        hostId: hostRecord.id,
        datastore: req.datastore,
        diskIds: plan.disks.map((d) => d.diskId),
      };
      const job = await this.deps.jobs.submit({
        kind: 'vm-move-storage',
        target: vmObject(stored),
        params,
        actor: { name: caller.name },
      });
      return { job };
    });
  }
}

/*
 * The move calls behind the REST API: check with fresh facts, then either answer with the plan
 * (dry run) or submit the job. Checking and submitting hold the VM's lock, so two requests to move
 * the same VM cannot both pass the "no move in flight" check.
 */
import type { z } from 'zod';
import {
  AgentMigrationClient,
  type Job,
  type LinkChoice,
  type ManagedVm,
  type MoveCleanupResult,
  type MovePlan,
  type MoveVmRequest,
  type RetainedCopyView,
  type VmMoveStorageRequest,
} from '../../api/index.js';
import { agentError, InvalidInput } from '../errors.js';
import { listRetainedCopies, releaseRetainedCopy, retainedDatastores } from './retained.js';
import type { Caller } from '../auth.js';
import { getVm, hostRow, vmObject, type HostRow } from '../inventory.js';
import type { JobRunner } from '../jobs.js';
import { KeyedMutex } from '../locks.js';
import { MoveRefused } from './errors.js';
import { checkHostMove, checkStorageMove } from './facts.js';
import { type MoveDeps, type MoveParams } from './job.js';
import { pendingUndos, type PendingUndoRunner } from './pending-undos.js';
import type { MoveStorageParams } from './storage-job.js';

export type MoveAnswer = { plan: MovePlan } | { job: Job };

/** Job states of a move that may still need its target's incoming copy. */
const IN_FLIGHT = ['queued', 'running'] as const;

function refuseRetainWithKeep(req: { retain: boolean; keepSource: boolean }): void {
  if (req.retain && req.keepSource)
    throw new InvalidInput(
      'retain: give either keepSource (a full copy stays) or retain, not both',
      'retain',
    );
}

export class MoveService {
  readonly #vmLocks = new KeyedMutex();

  constructor(private readonly deps: MoveDeps & { jobs: JobRunner; pendingUndos: PendingUndoRunner }) {}

  /** `details`: shown with the job from the start (placement puts its reason there). */
  async move(
    caller: Pick<Caller, 'name'>,
    ref: string,
    req: z.output<typeof MoveVmRequest>,
    details?: Record<string, unknown>,
  ): Promise<MoveAnswer> {
    const { db } = this.deps;
    const stored = await getVm(db, ref);
    return this.#vmLocks.run(stored.id, async () => {
      const [sourceHost, targetHost] = await Promise.all([
        hostRow(db, stored.hostId),
        hostRow(db, req.to, 'to'),
      ]);
      refuseRetainWithKeep(req);
      // A dry run shows the link the move would use: probed beside the checks, as the move does.
      const linkProbe =
        req.dryRun && sourceHost.id !== targetHost.id
          ? this.deps.links.forMove(sourceHost, targetHost, req.policy?.linkBitsPerSecond)
          : Promise.resolve(undefined);
      const plan = await this.#check(stored, sourceHost, targetHost, req);
      if (req.dryRun) return { plan: await this.#withStream(plan, sourceHost, req.policy, await linkProbe) };
      if (!plan.ok) throw new MoveRefused(plan);
      const params: MoveParams = {
        vmId: stored.id,
        sourceHostId: sourceHost.id,
        targetHostId: targetHost.id,
        datastores: Object.fromEntries(plan.disks.map((d) => [d.diskId, d.toDatastore])),
        keepSource: req.keepSource,
        retain: req.retain,
        secure: req.secure,
        ...(req.policy ? { policy: req.policy } : {}),
        mode: plan.mode,
      };
      const job = await this.deps.jobs.submit({
        kind: 'vm-move',
        target: vmObject(stored),
        params,
        actor: { name: caller.name },
        ...(details ? { details } : {}),
      });
      return { job };
    });
  }

  /**
   * The checks and plan of the move `req` asks for, as the move itself would check it before it
   * starts, without the dry run's link probe and stream plan (a drain checks each candidate host).
   */
  async check(ref: string, req: z.output<typeof MoveVmRequest>): Promise<MovePlan> {
    const { db } = this.deps;
    const stored = await getVm(db, ref);
    const [sourceHost, targetHost] = await Promise.all([
      hostRow(db, stored.hostId),
      hostRow(db, req.to, 'to'),
    ]);
    refuseRetainWithKeep(req);
    return this.#check(stored, sourceHost, targetHost, req);
  }

  async #check(
    stored: ManagedVm,
    sourceHost: HostRow,
    targetHost: HostRow,
    req: z.output<typeof MoveVmRequest>,
  ): Promise<MovePlan> {
    const { db } = this.deps;
    const plan = await checkHostMove(this.deps, {
      vmId: stored.id,
      source: sourceHost,
      target: targetHost,
      // A usable retained copy on the target decides where the disks go, unless asked otherwise.
      datastores: req.datastore ?? (await retainedDatastores(db, stored.id, targetHost.id)),
      secure: req.secure,
    });
    if (req.retain && plan.mode === 'cold')
      throw new InvalidInput(
        `retain: ${stored.name} is stopped; only a live move keeps a retained copy (start it, or move without retain)`,
        'retain',
      );
    return plan;
  }

  /**
   * A dry run of a live move shows the link rate it would use (and where it came from) and the
   * stream encoding the source would choose now for it (it measures the guest when the link is
   * slow). Best effort: a source that does not answer leaves the stream out.
   */
  async #withStream(
    plan: MovePlan,
    source: Parameters<MoveDeps['clientFor']>[0],
    policy: z.output<typeof MoveVmRequest>['policy'],
    link: LinkChoice | undefined,
  ): Promise<MovePlan> {
    if (!plan.ok || plan.mode !== 'live') return plan;
    const withLink = link ? { ...plan, link } : plan;
    try {
      const agent = new AgentMigrationClient(this.deps.clientFor(source).http);
      const migration = await agent.plan({
        vmName: plan.vm.name,
        policy: policy ?? {},
        ...(policy?.linkBitsPerSecond === undefined && link?.figure ? { link: link.figure } : {}),
      });
      return migration.compression ? { ...withLink, stream: migration.compression } : withLink;
    } catch {
      return withLink;
    }
  }

  /**
   * What failed moves of a VM left on other hosts goes now: the undos that waited for a host are
   * run, and every incoming copy of the VM on another host that no move in flight names is
   * aborted. The VM's own host is never touched. A host that does not answer is reported pending
   * (its undos stay kept and run when it answers).
   */
  async cleanUpMoves(ref: string): Promise<MoveCleanupResult> {
    const { db } = this.deps;
    const stored = await getVm(db, ref);
    return this.#vmLocks.run(stored.id, async () => {
      const result: MoveCleanupResult = { vm: stored.name, host: stored.host, removed: [], pending: [] };
      const inFlight = await db
        .selectFrom('jobs')
        .select('checkpoint')
        .where('target_id', '=', stored.id)
        .where('state', 'in', [...IN_FLIGHT])
        .execute();
      const named = new Set(
        inFlight.map(
          (j) => (JSON.parse(j.checkpoint ?? 'null') as { migrationId?: string } | null)?.migrationId,
        ),
      );
      const hosts = await db
        .selectFrom('hosts')
        .selectAll()
        .where('id', '!=', stored.hostId)
        .orderBy('name')
        .execute();
      for (const host of hosts) {
        const before = await pendingUndos(db, { vmId: stored.id, hostId: host.id });
        if (before.length) await this.deps.pendingUndos.runFor(host);
        const after = await pendingUndos(db, { vmId: stored.id, hostId: host.id });
        for (const undo of before.filter((b) => !after.some((a) => a.id === b.id))) {
          result.removed.push({ host: host.name, what: undo.step, migrationId: undo.migration_id });
        }
        for (const undo of after) {
          result.pending.push({ host: host.name, what: undo.step, reason: undo.last_error ?? 'not run yet' });
        }
        const agent = new AgentMigrationClient(this.deps.clientFor(host).http);
        let moves;
        try {
          moves = await agent.list();
        } catch (error) {
          if (!after.length) {
            result.pending.push({
              host: host.name,
              what: 'look for incoming copies',
              reason: agentError(host.name, error).message,
            });
          }
          continue;
        }
        const orphans = moves.filter(
          (m) => m.role === 'target' && m.state === 'running' && m.vmName === stored.name && !named.has(m.id),
        );
        for (const orphan of orphans) {
          try {
            await agent.abortIncoming(orphan.id);
            result.removed.push({ host: host.name, what: 'incoming copy', migrationId: orphan.id });
          } catch (error) {
            result.pending.push({
              host: host.name,
              what: `incoming copy ${orphan.id}`,
              reason: agentError(host.name, error).message,
            });
          }
        }
      }
      return result;
    });
  }

  listRetained(vm?: string): Promise<RetainedCopyView[]> {
    return listRetainedCopies(this.deps.db, vm);
  }

  /** Releases a retained copy (its images are deleted on its host); not while a move uses it. */
  async releaseRetained(caller: Caller, id: string): Promise<void> {
    await releaseRetainedCopy(this.deps, { name: caller.name }, id);
  }

  async moveStorage(
    caller: Caller,
    ref: string,
    req: z.output<typeof VmMoveStorageRequest>,
    details?: Record<string, unknown>,
  ): Promise<MoveAnswer> {
    const { db } = this.deps;
    const stored = await getVm(db, ref);
    return this.#vmLocks.run(stored.id, async () => {
      const hostRecord = await hostRow(db, stored.hostId);
      const plan = await checkStorageMove(this.deps, {
        vmId: stored.id,
        host: hostRecord,
        datastore: req.datastore,
        diskIds: req.disks,
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
        ...(details ? { details } : {}),
      });
      return { job };
    });
  }
}

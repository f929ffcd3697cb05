/*
 * The `vm-move-storage` job: a running VM's disks to another datastore of the same host, through
 * the same phase machine as a host move. The agent does the work in one background migration
 * (new images, write-blocking mirrors, pivot, old files removed), so prepare-target and
 * copy-memory have nothing to do; mirror-disks' undo cancels it (the VM keeps its old disks), and
 * the switchover stores the disks' new places in the inventory.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { AgentMigrationClient, Name, type MigrationStatus } from '../../api/index.js';
import type { HostRow } from '../inventory.js';
import type { JobContext, JobHandler } from '../jobs.js';
import { checkStorageMove, requireStill } from './facts.js';
import {
  cancelMigration,
  followMigration,
  onHost,
  recordMove,
  moveJobHandler,
  storeSwitchover,
  type MoveDeps,
  type RunnableMove,
} from './job.js';
import { MOVE_PHASES, phasePercent, type MoveDriver } from './phases.js';
import type { MoveContext } from './progress.js';

export const MoveStorageParams = z.object({
  vmId: z.uuid(),
  hostId: z.uuid(),
  datastore: Name,
  diskIds: z.array(Name).min(1),
});
export type MoveStorageParams = z.infer<typeof MoveStorageParams>;

const Checkpoint = z.object({
  phase: z.enum(MOVE_PHASES),
  migrationId: z.uuid(),
  startedAtMs: z.number(),
});
type Checkpoint = z.infer<typeof Checkpoint>;

class StorageMove implements RunnableMove {
  readonly source: AgentMigrationClient;
  cp: Checkpoint;
  status: MigrationStatus | undefined;
  readonly view: MoveContext;
  /** A storage move stays on one host: nothing is ever left for another. */
  readonly deferred = new Map<string, never[]>();

  constructor(
    readonly deps: MoveDeps,
    readonly ctx: JobContext<MoveStorageParams>,
    readonly vm: { id: string; name: string },
    readonly sourceHost: HostRow,
    checkpoint: Checkpoint | undefined,
  ) {
    this.source = new AgentMigrationClient(deps.clientFor(sourceHost).http);
    this.cp = checkpoint ?? { phase: 'validate', migrationId: randomUUID(), startedAtMs: Date.now() };
    this.view = {
      vm,
      from: sourceHost.name,
      to: `${sourceHost.name}:${ctx.params.datastore}`,
      mode: 'live',
    };
  }

  driver(): MoveDriver {
    const { ctx } = this;
    const nothing = async () => undefined;
    return {
      enter: async (phase) => {
        this.cp = { ...this.cp, phase };
        await ctx.saveCheckpoint(this.cp, { phase, percent: phasePercent(phase, 0) });
      },
      steps: {
        validate: () => this.validate(),
        'prepare-target': nothing,
        'mirror-disks': async () => {
          ctx.throwIfCancelled();
          await onHost(this.sourceHost, () =>
            this.source.moveStorage(this.vm.name, {
              migrationId: this.cp.migrationId,
              datastore: ctx.params.datastore,
              diskIds: ctx.params.diskIds,
            }),
          );
          await followMigration(this, 'mirror-disks');
          // The agent pivots at the end of its run: once it completes, the disks have moved.
          if (this.status?.state !== 'completed') await followMigration(this, 'copy-memory');
        },
        'copy-memory': nothing,
        switchover: () => this.store(),
        'clean-up': nothing,
      },
      undo: {
        'cancel-source': () => cancelMigration(this),
        'abort-incoming': async () => 'undone',
      },
    };
  }

  async validate(): Promise<void> {
    const { deps, ctx } = this;
    const plan = await checkStorageMove(deps, {
      vmId: this.vm.id,
      host: this.sourceHost,
      datastore: ctx.params.datastore,
      diskIds: ctx.params.diskIds,
      jobId: ctx.jobId,
    });
    requireStill(plan, undefined, `${this.vm.name} changed after the storage move was accepted`);
    await recordMove(deps.db, ctx.actor, this.vm, this.view.from, {
      from: this.view.from,
      to: this.view.to,
      before: null,
      after: 'started',
    });
  }

  /** The disks' new datastore and paths, as the agent reports them, with the switchover record. */
  store(): Promise<void> {
    return storeSwitchover(this.deps, this.ctx.actor, this.sourceHost, this.view, (host) =>
      onHost(host, () => this.deps.clientFor(host).getVm(this.vm.name)),
    );
  }
}

export function moveStorageHandler(deps: MoveDeps): JobHandler<MoveStorageParams> {
  return moveJobHandler(deps, {
    kind: 'vm-move-storage',
    params: MoveStorageParams,
    checkpoint: Checkpoint,
    hostIds: (p) => [p.hostId],
    build(ctx, stored, [host], checkpoint) {
      if (!host) throw new Error('a storage move needs its host');
      const move = new StorageMove(deps, ctx, { id: stored.id, name: stored.name }, host, checkpoint);
      return { move, driver: move.driver(), keptSource: false };
    },
  });
}

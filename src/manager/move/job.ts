/*
 * The `vm-move` job: drives the two agents through the phases of phases.ts (the agents' calls are
 * in the order of src/api/migration.ts), persisting each phase and what it produced in the job's
 * checkpoint, so a manager restart can resume after the switchover or undo before it.
 *
 * The inventory follows the guest: at the switchover the VM's row moves to the target host, with
 * its change records, in one transaction. While a move is in flight reconciliation leaves that
 * VM's row alone (both hosts report a VM with its id for a while).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import {
  AgentMigrationClient,
  IncomingPrepared,
  MigrationPlan,
  MigrationPolicy,
  MovePlan,
  describeDiskCopy,
  describeDiskRoute,
  Name,
  SharedDiskRef,
  type IncomingVm,
  type ManagedVm,
  type MigrationStatus,
  type MoveResult,
  type Vm,
  isAgentError,
  type AgentErrorCode,
} from '../../api/index.js';
import { nowIso, recordChanges, type Actor } from '../changes.js';
import type { Db } from '../db.js';
import { AgentFailed, agentError, HostUnreachable, isFenced, toProblem } from '../errors.js';
import { getVm, hostRow, upsertVms, vmObject, type HostRow } from '../inventory.js';
import { JobCancelled, JobDeposed, type JobContext, type JobHandler } from '../jobs.js';
import type { VmJobDeps } from '../vm-jobs.js';
import type { LinkService } from '../links.js';
import { mirrorRate } from '../link-figures.js';
import { MoveFailed, MoveInterrupted, MoveRefused, MoveRolledBack } from './errors.js';
import { checkHostMove, requireStill } from './facts.js';
import {
  driveMove,
  MOVE_PHASES,
  phasePercent,
  recoveryFor,
  RollbackIncomplete,
  runUndos,
  type DriveOutcome,
  type MoveDriver,
  type MovePhase,
  type UndoOutcome,
} from './phases.js';
import { deferUndo, pendingMessage, type PendingStep } from './pending-undos.js';
import { moveFigures, moveProgress, moveResult, type MoveContext } from './progress.js';
import { takeMoveSlots, type HostSlots } from './slots.js';
import { forgetGeneration, recordArrival } from './retained.js';

export const MoveParams = z.object({
  vmId: z.uuid(),
  sourceHostId: z.uuid(),
  targetHostId: z.uuid(),
  /** Target datastore per disk id, as planned when the move was accepted. */
  datastores: z.record(Name, Name),
  keepSource: z.boolean(),
  /** Keep the source's disks as a retained copy (a move onto a retained copy always does). */
  retain: z.boolean().default(false),
  secure: z.boolean(),
  policy: MigrationPolicy.optional(),
  /** live: the VM runs; cold: it is stopped (see cold-job.ts). */
  mode: z.enum(['live', 'cold']).default('live'),
});
export type MoveParams = z.infer<typeof MoveParams>;

/** What the job persists as it goes. */
export const Checkpoint = z.object({
  phase: z.enum(MOVE_PHASES),
  migrationId: z.uuid(),
  startedAtMs: z.number(),
  plan: MigrationPlan.optional(),
  prepared: IncomingPrepared.optional(),
  /** Delta onto the target's retained copy, or a full copy (and why): decided in validate. */
  diskCopy: MovePlan.shape.diskCopy,
  /** A full copy: the data the disks held at validate (what the mirror carries, for its rate). */
  diskDataBytes: z.number().optional(),
  /** The disks that stay on shared storage both hosts see (decided in validate): id -> storage and file. */
  shared: z.record(Name, SharedDiskRef).optional(),
});
type Checkpoint = z.infer<typeof Checkpoint>;

export interface MoveDeps extends VmJobDeps {
  slots: HostSlots;
  /** The fabric's link figures: a live move's plan uses its pair's (links.ts). */
  links: LinkService;
  /** Days a retained copy is kept before it is released (RETAINED_COPY_DAYS when absent). */
  retainedCopyDays?: number;
  /** Milliseconds between status polls of the source agent. */
  pollMs?: number;
}

/** Milliseconds between polls of an agent that does the copy (deps.pollMs overrides it). */
export const POLL_MS = 500;
/**
 * How long a switchover waits for a target agent that does not answer: long enough for a service
 * manager to restart it, or for a person to notice.
 */
const TARGET_AGENT_WAIT_MS = 10 * 60_000;
const TARGET_AGENT_RETRY_MS = 2_000;

/** Records the move's own change records (start, switchover, end) for the VM. */
export async function recordMove(
  db: Db,
  actor: Actor,
  vm: { id: string; name: string },
  host: string,
  move: {
    from: string;
    to: string;
    before: string | null;
    after: string;
    reason?: string;
    /** The end's error code and measured figures (moveFigures), each a field of the record. */
    details?: Record<string, string | number>;
  },
): Promise<void> {
  await recordChanges(db, actor, [
    {
      object: vmObject(vm),
      action: 'state-changed',
      host,
      changes: [
        { field: 'move', before: move.before, after: move.after },
        { field: 'from', before: null, after: move.from },
        { field: 'to', before: null, after: move.to },
        ...(move.reason ? [{ field: 'reason', before: null, after: move.reason }] : []),
        ...Object.entries(move.details ?? {}).map(([field, value]) => ({
          field,
          before: null,
          after: value,
        })),
      ],
    },
  ]);
}

/**
 * The switchover in the inventory: under the host's lock, the VM as `vm()` reports it is stored on
 * `host` (its row moves there, with the change records of what differs) in the transaction of the
 * move's `switched-over` record.
 */
export async function storeSwitchover(
  deps: MoveDeps,
  actor: Actor,
  target: HostRow,
  view: MoveContext,
  vm: (host: HostRow) => Promise<Vm>,
): Promise<void> {
  await deps.hostLocks.run(target.id, async () => {
    const host = await hostRow(deps.db, target.id);
    const moved = await vm(host);
    await deps.db.transaction().execute(async (tx) => {
      const now = nowIso();
      await upsertVms(tx, actor, host, [moved], now);
      // New disks (or disks elsewhere) track nothing until a move says otherwise (retained.ts).
      await forgetGeneration(tx, moved.id);
      await recordChanges(
        tx,
        actor,
        [
          {
            object: vmObject(moved),
            action: 'state-changed',
            host: host.name,
            changes: [
              { field: 'move', before: 'started', after: 'switched-over' },
              { field: 'from', before: null, after: view.from },
              { field: 'to', before: null, after: view.to },
            ],
          },
        ],
        now,
      );
    });
  });
}

function incomingVm(
  vm: Vm,
  datastores: Record<string, string>,
  shared: Record<string, SharedDiskRef> = {},
): IncomingVm {
  return {
    id: vm.id,
    name: vm.name,
    vcpus: vm.vcpus,
    memoryMiB: vm.memoryMiB,
    disks: vm.disks.map((d) => ({
      id: d.id,
      format: d.format,
      virtualSizeBytes: d.virtualSizeBytes,
      ...(datastores[d.id] ? { datastore: datastores[d.id] } : {}),
      ...(shared[d.id] ? { shared: shared[d.id] } : {}),
    })),
    nics: vm.nics.map((n) => ({ id: n.id, vswitch: n.vswitch, mac: n.mac })),
    ...(vm.guestIp ? { guestIp: vm.guestIp } : {}),
    ...(vm.guestGateway ? { guestGateway: vm.guestGateway } : {}),
    machineType: vm.machineType,
    cpuModel: vm.cpuModel,
  };
}

/** Callers branch on the agent's error code, never on its HTTP status. */
export const isAgentCode = (error: unknown, code: AgentErrorCode) =>
  isAgentError(error, code) || (error instanceof AgentFailed && error.agentCode === code);

/** What following and cancelling an agent's migration needs (a host move or a storage move). */
export interface Followed {
  readonly deps: MoveDeps;
  readonly ctx: JobContext<unknown>;
  readonly source: AgentMigrationClient;
  readonly sourceHost: HostRow;
  /** A move between hosts: the target is asked too now and then, so it knows the move is alive. */
  readonly target?: AgentMigrationClient;
  readonly view: MoveContext;
  readonly cp: { migrationId: string };
  status: MigrationStatus | undefined;
}

/**
 * How often a followed move tells its target agent it is alive; an incoming move nobody asks about
 * for 10 minutes is removed by the target agent as an orphan (agent migration/service.ts).
 */
const TARGET_TOUCH_MS = 10_000;

export async function onHost<T>(host: HostRow, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw agentError(host.name, error);
  }
}

/**
 * Polls the source's migration until it leaves `phase` (or completes), reporting progress; a
 * cancel request stops the wait (the driver's undo then cancels on the agent).
 */
export async function followMigration(m: Followed, phase: 'mirror-disks' | 'copy-memory'): Promise<void> {
  const { ctx } = m;
  let touchedAt = 0;
  for (;;) {
    ctx.throwIfCancelled();
    if (m.target && Date.now() - touchedAt >= TARGET_TOUCH_MS) {
      touchedAt = Date.now();
      // Only a sign of life: a target that does not answer shows in the source's copy.
      await m.target.status(m.cp.migrationId).catch(() => undefined);
    }
    const status = await onHost(m.sourceHost, () => m.source.status(m.cp.migrationId));
    m.status = status;
    const update = moveProgress(m.view, status);
    if (status.state === 'completed') return;
    if (status.state !== 'running') {
      if (status.state === 'cancelled' && ctx.signal.aborted) throw new JobCancelled();
      throw new MoveFailed(
        m.view.vm.name,
        update.phase ?? phase,
        status.error?.detail ?? `the agent ended the copy (${status.state})`,
      );
    }
    if (update.phase === phase) await ctx.progress(update);
    else if (phase === 'mirror-disks') return;
    await sleep(m.deps.pollMs ?? POLL_MS);
  }
}

/**
 * Cancels the migration on the source and waits until it has ended. `committed` when it went
 * through anyway (the agent refuses the cancel past the switchover, or it completed meanwhile).
 */
export async function cancelMigration(m: Followed): Promise<UndoOutcome> {
  const id = m.cp.migrationId;
  try {
    await onHost(m.sourceHost, () => m.source.cancel(id));
  } catch (error) {
    // Not found: the source agent restarted and put its VMs back in order at its start.
    if (isAgentCode(error, 'migration-not-found')) return 'undone';
    if (!isAgentCode(error, 'migration-conflict')) throw error;
  }
  for (;;) {
    const status = await onHost(m.sourceHost, () => m.source.status(id));
    if (status.state === 'completed') {
      m.status = status;
      return 'committed';
    }
    if (status.state !== 'running') return 'undone';
    await sleep(m.deps.pollMs ?? POLL_MS);
  }
}

/** A move's checkpoint when its job starts (a resumed job brings its own). */
export function freshCheckpoint(): { phase: MovePhase; migrationId: string; startedAtMs: number } {
  return { phase: 'validate', migrationId: randomUUID(), startedAtMs: Date.now() };
}

/** What a move between two hosts starts from: the two agents' migration APIs, its checkpoint, its view. */
export abstract class HostMove<C extends { phase: MovePhase; migrationId: string; startedAtMs: number }> {
  readonly source: AgentMigrationClient;
  readonly target: AgentMigrationClient;
  status: MigrationStatus | undefined;
  /** The target agent's figures after the switchover (when the guest resumed there). */
  targetStats: MigrationStatus['stats'] | undefined;
  abstract readonly mode: MoveContext['mode'];

  constructor(
    readonly deps: MoveDeps,
    readonly ctx: JobContext<MoveParams>,
    readonly vm: Vm,
    readonly sourceHost: HostRow,
    readonly targetHost: HostRow,
    public cp: C,
  ) {
    this.source = new AgentMigrationClient(deps.clientFor(sourceHost).http);
    this.target = new AgentMigrationClient(deps.clientFor(targetHost).http);
  }

  get view(): MoveContext {
    const { vm, sourceHost, targetHost, mode } = this;
    return { vm: { id: vm.id, name: vm.name }, from: sourceHost.name, to: targetHost.name, mode };
  }

  /**
   * The checks again with facts fetched now (the job may have waited), refused if they fail or if
   * the VM's state now asks for the other kind of move.
   */
  async checkStill(changed: string): Promise<MovePlan> {
    const { deps, ctx } = this;
    const plan = await checkHostMove(deps, {
      vmId: this.vm.id,
      source: this.sourceHost,
      target: this.targetHost,
      datastores: ctx.params.datastores,
      secure: ctx.params.secure,
      jobId: ctx.jobId,
    });
    requireStill(plan, this.mode, changed);
    return plan;
  }

  /** Undos kept for later because their host did not answer: host name -> steps. */
  readonly deferred = new Map<string, PendingStep[]>();

  /**
   * An undo whose host does not answer is kept and run when it answers again (pending-undos.ts);
   * the rollback goes on with the other undos. Any other failure is the undo's failure.
   */
  async deferIfUnreachable(host: HostRow, step: PendingStep, error: unknown): Promise<UndoOutcome> {
    if (!(error instanceof HostUnreachable)) throw error;
    await deferUndo(this.deps.db, {
      jobId: this.ctx.jobId,
      vm: { id: this.vm.id, name: this.vm.name },
      host,
      step,
      migrationId: this.cp.migrationId,
      reason: error.message,
    });
    this.deferred.set(host.name, [...(this.deferred.get(host.name) ?? []), step]);
    await this.ctx.progress({ message: pendingMessage(host.name, this.deferred.get(host.name) ?? []) });
    return 'deferred';
  }
}

/** One move, from the job's context: the driver's steps and undos over the two agents. */
export class Move extends HostMove<Checkpoint> {
  readonly mode = 'live';

  async save(patch: Partial<Checkpoint>, message?: string): Promise<void> {
    this.cp = { ...this.cp, ...patch };
    const phase = this.cp.phase;
    await this.ctx.saveCheckpoint(this.cp, {
      phase,
      percent: phasePercent(phase, 0),
      ...(message ? { message } : {}),
    });
  }

  /** A call to one of the two agents, with failures named after the host. */
  call<T>(host: HostRow, work: () => Promise<T>): Promise<T> {
    return onHost(host, work);
  }

  driver(): MoveDriver {
    const { ctx } = this;
    return {
      enter: async (phase) => {
        const messages: Record<MovePhase, string> = {
          validate: `checking the move of ${this.vm.name} from ${this.view.from} to ${this.view.to}`,
          'prepare-target': `preparing ${this.view.to}: disks, QEMU waiting for the stream, NBD exports`,
          'mirror-disks': `mirroring the disks to ${this.view.to}`,
          'copy-memory': `copying memory to ${this.view.to}`,
          switchover: `the guest resumes on ${this.view.to}`,
          'clean-up': `removing the VM from ${this.view.from}`,
        };
        await this.save({ phase }, messages[phase]);
      },
      steps: {
        validate: () => this.validate(),
        'prepare-target': async () => {
          ctx.throwIfCancelled();
          const prepared = await this.call(this.targetHost, () =>
            this.target.prepareIncoming({
              migrationId: this.cp.migrationId,
              vm: incomingVm(this.vm, ctx.params.datastores, this.cp.shared),
              plan: this.plan(),
              sourceHost: this.sourceHost.name,
              secure: ctx.params.secure,
              ...(this.retains ? { track: this.cp.migrationId } : {}),
              ...(this.cp.diskCopy?.kind === 'delta' ? { fromRetained: this.cp.diskCopy.generationId } : {}),
            }),
          );
          await this.save({ prepared });
          ctx.throwIfCancelled();
        },
        'mirror-disks': async () => {
          const prepared = this.cp.prepared;
          if (!prepared) throw new Error('no prepared target in the checkpoint');
          await this.call(this.sourceHost, () =>
            this.source.start({
              migrationId: this.cp.migrationId,
              vmName: this.vm.name,
              plan: this.plan(),
              policy: ctx.params.policy ?? {},
              target: prepared,
              secure: ctx.params.secure,
            }),
          );
          await this.follow('mirror-disks');
        },
        'copy-memory': () => this.follow('copy-memory'),
        switchover: () => this.switchover(),
        'clean-up': () => this.cleanUp(),
      },
      undo: {
        'cancel-source': () => this.cancelSource(),
        'abort-incoming': () => this.abortIncoming(),
      },
    };
  }

  plan() {
    if (!this.cp.plan) throw new Error('no migration plan in the checkpoint');
    return this.cp.plan;
  }

  /** The checks again with fresh facts (the job may have waited), then the source's plan. */
  async validate(): Promise<void> {
    const { deps, ctx } = this;
    const given = ctx.params.policy?.linkBitsPerSecond;
    // The pair's link is probed afresh beside the checks (both wait on the agents, the probe only
    // fills the link for LINK_PROBE_MS.default), so the plan knows the link at little cost.
    const [checked, link] = await Promise.all([
      this.checkStill(`${this.vm.name} stopped after the live move was accepted`),
      deps.links.forMove(this.sourceHost, this.targetHost, given),
    ]);
    ctx.throwIfCancelled();
    if (given !== undefined)
      await deps.links.recordGiven(this.sourceHost.id, this.targetHost.id, given).catch(() => undefined);
    const plan = await this.call(this.sourceHost, () =>
      this.source.plan({
        vmName: this.vm.name,
        policy: ctx.params.policy ?? {},
        // A caller's figure is in the policy already (and wins on the agent too).
        ...(given === undefined && link.figure ? { link: link.figure } : {}),
      }),
    );
    const diskCopy = checked.diskCopy;
    const stream = plan.compression;
    const staying = checked.disks.filter((d) => d.stays);
    const shared = Object.fromEntries(staying.flatMap((d) => (d.stays ? [[d.diskId, d.stays]] : [])));
    const said = [
      `link ${this.view.from} -> ${this.view.to}: ${link.why}`,
      ...(checked.memoryOnly ? ['memory only: every disk stays on shared storage'] : []),
      ...staying.map((d) => `disk ${d.diskId} ${describeDiskRoute(d)}`),
      ...(diskCopy ? [describeDiskCopy(diskCopy)] : []),
      ...(stream ? [`memory stream: ${stream.mode} (${stream.why})`] : []),
    ];
    const diskDataBytes =
      diskCopy?.kind === 'delta'
        ? undefined
        : checked.disks.filter((d) => !d.stays).reduce((sum, d) => sum + d.allocatedBytes, 0);
    await this.save({ plan, diskCopy, diskDataBytes, shared }, said.join('; '));
    await recordMove(deps.db, ctx.actor, this.vm, this.view.from, {
      from: this.view.from,
      to: this.view.to,
      before: null,
      after: 'started',
    });
  }

  follow(phase: 'mirror-disks' | 'copy-memory'): Promise<void> {
    return followMigration(this, phase);
  }

  async cancelSource(): Promise<UndoOutcome> {
    try {
      return await cancelMigration(this);
    } catch (error) {
      return this.deferIfUnreachable(this.sourceHost, 'cancel-source', error);
    }
  }

  /** Removes the half-made VM on the target; `committed` if the guest already runs there. */
  async abortIncoming(): Promise<UndoOutcome> {
    try {
      await this.target.abortIncoming(this.cp.migrationId);
      return 'undone';
    } catch (error) {
      if (isAgentCode(error, 'migration-not-found')) return 'undone';
      if (isAgentCode(error, 'migration-conflict')) return 'committed';
      return this.deferIfUnreachable(
        this.targetHost,
        'abort-incoming',
        agentError(this.targetHost.name, error),
      );
    }
  }

  /**
   * The guest runs on the target: the VM's row moves there with the switchover's change record.
   * Past the copy there is no way back, so a target agent that does not answer (restarting, say)
   * is waited for: the guest stays paused there until an agent resumes it (the agent needs only
   * the move's id to adopt it).
   */
  async switchover(): Promise<void> {
    const { deps, ctx } = this;
    const started = Date.now();
    let moved: Vm | undefined;
    while (moved === undefined) {
      try {
        moved = await this.call(this.targetHost, () => this.target.finishIncoming(this.cp.migrationId));
      } catch (error) {
        if (!(error instanceof HostUnreachable) || Date.now() - started >= TARGET_AGENT_WAIT_MS) throw error;
        await ctx.progress({
          phase: 'switchover',
          message: `${error.message}: the guest is paused there until its agent answers and resumes it; waiting`,
        });
        await sleep(TARGET_AGENT_RETRY_MS);
      }
    }
    // Only a figure for the result: a target that does not say leaves the guest's pause unknown.
    this.targetStats = (await this.target.status(this.cp.migrationId).catch(() => undefined))?.stats;
    await storeSwitchover(deps, ctx.actor, this.targetHost, this.view, async () => moved);
    await ctx.progress({ phase: 'switchover', percent: phasePercent('switchover', 1) });
  }

  /** The rate the disks mirrored at, kept with the pair's link (a lower bound); best effort. */
  async recordMirrorRate(): Promise<void> {
    const rate = mirrorRate({
      dataBytes: this.cp.diskDataBytes,
      mirrorTimeMs: this.status?.stats.mirrorTimeMs,
    });
    if (rate === undefined) return;
    await this.deps.links.recordMirror(this.sourceHost.id, this.targetHost.id, rate).catch(() => undefined);
  }

  /**
   * Whether the source keeps a retained copy: asked for, or the move went onto one (the next round
   * trip); never when no disk is copied (every disk stays on shared storage: nothing is left behind).
   */
  get retains(): boolean {
    const copied = this.vm.disks.some((d) => this.cp.shared?.[d.id] === undefined);
    return copied && (this.ctx.params.retain || this.cp.diskCopy?.kind === 'delta');
  }

  /**
   * The source QEMU goes, and its disks unless kept or retained; retried, since the guest already
   * moved. Then the records of retained copies and of what the VM's disks track (retained.ts).
   */
  async cleanUp(): Promise<void> {
    const id = this.cp.migrationId;
    const retain = this.retains ? { retain: id } : {};
    for (let attempt = 1; ; attempt++) {
      try {
        const done = await this.source.complete(id, { keepSource: this.ctx.params.keepSource, ...retain });
        this.status = { ...done, stats: { ...(this.status?.stats ?? {}), ...done.stats } };
        break;
      } catch (error) {
        if (attempt >= 5) throw agentError(this.sourceHost.name, error);
        await sleep(2000 * attempt);
      }
    }
    await this.recordMirrorRate();
    try {
      const kept = this.retains
        ? (await this.source.listRetained()).find((c) => c.vmId === this.vm.id)
        : undefined;
      await recordArrival(this.deps.db, this.ctx.actor, {
        vm: this.vm,
        source: this.sourceHost,
        target: this.targetHost,
        generationId: this.retains ? id : undefined,
        wentOntoCopy: this.cp.diskCopy?.kind === 'delta',
        kept,
        keepDays: this.deps.retainedCopyDays,
      });
    } catch (error) {
      // The guest has moved; a record that could not be written only costs the next delta.
      await this.ctx.progress({
        message: `the retained copy was not recorded (${error instanceof Error ? error.message : String(error)}): the next move back copies everything`,
      });
    }
  }
}

/** A running move as runMove() sees it. */
export interface RunnableMove extends Followed {
  /** What the target agent measured (its resume time), for the result. */
  readonly targetStats?: MigrationStatus['stats'] | undefined;
  readonly cp: {
    migrationId: string;
    startedAtMs: number;
    phase: MovePhase;
    plan?: MigrationPlan | undefined;
  };
  /** Undos kept for hosts that did not answer (host name -> steps). */
  readonly deferred: ReadonlyMap<string, PendingStep[]>;
}

/**
 * A move job's handler: the checkpoint read back when the job resumes, its hosts and VM looked
 * up, then the move built and run in the frame every move job shares (runMove).
 */
export function moveJobHandler<P extends { vmId: string }, C extends { phase: MovePhase }>(
  deps: MoveDeps,
  spec: {
    kind: string;
    params: z.ZodType<P>;
    checkpoint: z.ZodType<C>;
    hostIds(params: P): string[];
    build(
      ctx: JobContext<P>,
      vm: ManagedVm,
      hosts: HostRow[],
      checkpoint: C | undefined,
    ): { move: RunnableMove; driver: MoveDriver; keptSource: boolean };
  },
): JobHandler<P> {
  return {
    kind: spec.kind,
    params: spec.params,
    resumable: true,
    async run(ctx) {
      const saved = spec.checkpoint.safeParse(ctx.checkpoint);
      const checkpoint = saved.success ? saved.data : undefined;
      const hosts = await Promise.all(spec.hostIds(ctx.params).map((id) => hostRow(deps.db, id)));
      const stored = await getVm(deps.db, ctx.params.vmId);
      return runMove(deps, ctx, hosts, checkpoint, () => spec.build(ctx, stored, hosts, checkpoint));
    },
  };
}

/**
 * The frame of every move job: a slot on each host (queued while they are full; taken at once by
 * a move resumed after a restart), the phases run or recovered, the start/end change records,
 * the result.
 */
export async function runMove(
  deps: MoveDeps,
  ctx: JobContext<unknown>,
  hosts: HostRow[],
  checkpoint: { phase: MovePhase } | undefined,
  build: () => { move: RunnableMove; driver: MoveDriver; keptSource: boolean },
): Promise<MoveResult> {
  const release = await takeMoveSlots(deps.slots, ctx, hosts, checkpoint !== undefined);
  const { move, driver, keptSource } = build();
  // The end record carries the job's error code and what was measured, so the change log alone
  // tells what a move cost or how far a failed one got (the job id is the record's jobId).
  const end = (after: string, details: Record<string, string | number>, reason?: string) =>
    recordMove(deps.db, ctx.actor, move.view.vm, move.view.from, {
      from: move.view.from,
      to: move.view.to,
      before: 'started',
      after,
      ...(reason ? { reason } : {}),
      details,
    }).catch(() => undefined);
  try {
    const outcome = checkpoint ? await resume(move, driver) : await driveMove(driver);
    const result = moveResult(
      move.view,
      {
        ...move.status?.stats,
        ...(move.targetStats?.resumedAt ? { resumedAt: move.targetStats.resumedAt } : {}),
      },
      Date.now() - move.cp.startedAtMs,
      keptSource,
      outcome.outcome === 'completed-despite-stop'
        ? 'the cancel came after the guest had switched over: the move went through'
        : undefined,
      move.cp.plan,
    );
    await end('finished', moveFigures(result, move.status));
    return result;
  } catch (error) {
    // This manager stopped leading: the move is the new leader's to resume or roll back
    // (recoveryFor), and nothing more is written or undone from here.
    if (deposed(error)) throw error;
    // A refusal in validate changed nothing: no move was started, so no end record either.
    if (!(error instanceof MoveRefused)) {
      const cancelled = error instanceof JobCancelled;
      const code = cancelled ? 'cancelled' : toProblem(error).code;
      const figures = moveFigures(
        { totalTimeMs: Date.now() - move.cp.startedAtMs, ...move.status?.stats },
        move.status,
      );
      await end(
        cancelled ? 'cancelled' : 'failed',
        { code, phase: move.cp.phase, ...figures },
        error instanceof Error ? error.message : String(error),
      );
    }
    if (move.deferred.size && !(error instanceof JobCancelled))
      throw new MoveRolledBack(move.view, error, move.deferred);
    if (move.deferred.size) {
      const notes = [...move.deferred].map(([host, steps]) => pendingMessage(host, steps));
      await ctx.progress({ message: `cancelled and rolled back; ${notes.join('; ')}` });
    }
    throw error;
  } finally {
    release();
  }
}

/** Whether a move stopped because its manager no longer leads (also when an undo found so). */
function deposed(error: unknown): boolean {
  if (isFenced(error) || error instanceof JobDeposed) return true;
  return (
    error instanceof RollbackIncomplete &&
    (deposed(error.original) || error.failures.some((f) => deposed(f.error)))
  );
}

/** After a manager restart or a takeover: forward from the switchover on, else undo (unless the copy completed meanwhile). */
async function resume(move: RunnableMove, driver: MoveDriver): Promise<DriveOutcome> {
  const { phase, migrationId } = move.cp;
  let sourceCompleted = false;
  if (phase === 'mirror-disks' || phase === 'copy-memory') {
    try {
      sourceCompleted = (await move.source.status(migrationId)).state === 'completed';
    } catch (error) {
      // Not found or not answering: undo. The target refuses to abort a guest that already runs
      // there (its undo then reports `committed` and the move goes forward).
      const failure = agentError(move.sourceHost.name, error);
      if (!isAgentCode(error, 'migration-not-found') && !(failure instanceof HostUnreachable)) throw failure;
    }
  }
  const recovery = recoveryFor(phase, sourceCompleted);
  if (recovery.action === 'resume') return driveMove(driver, recovery.from);
  const cause = new MoveInterrupted(move.view.vm.name, phase, move.view.from, move.ctx.takenOver);
  if ((await runUndos(driver, recovery.undo, cause)) === 'committed') return driveMove(driver, 'switchover');
  throw cause;
}

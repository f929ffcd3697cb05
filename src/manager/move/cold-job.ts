/*
 * The cold path of a `vm-move` (the VM is stopped), through the same phases: prepare-target defines
 * the VM with empty disks on the target (undo: stop its copy, delete it with its disks),
 * mirror-disks exports the source's disks read-only, has the target copy them in the background
 * while it follows the copy, and closes the exports once it completed (undo: close the exports),
 * switchover moves the VM's row to the target, clean-up deletes the source VM (its disks unless
 * kept). A cancel during the copy closes the exports and stops the copy at once.
 *
 * A host that does not answer is handled as in a live move: the copy's target is waited for up to
 * the move's stall window (policy.stallWindowSeconds) before the move is undone, and so is the
 * source when its exports are to close; an undo whose host does not answer is kept and run when it
 * answers again (pending-undos.ts). The source's disks are only ever read, so an undone cold move
 * leaves the VM as it was.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isAgentError, MIGRATION_POLICY_DEFAULTS, type ColdCopyStatus } from '../../api/index.js';
import { agentError, HostUnreachable } from '../errors.js';
import type { HostRow } from '../inventory.js';
import { JobCancelled } from '../jobs.js';
import { MoveFailed } from './errors.js';
import {
  HostMove,
  isAgentCode,
  onHost,
  POLL_MS,
  recordMove,
  storeSwitchover,
  type RunnableMove,
} from './job.js';
import { phasePercent, type MoveDriver, type MovePhase } from './phases.js';
import { coldCopyProgress } from './progress.js';

interface ColdCheckpoint {
  phase: MovePhase;
  migrationId: string;
  startedAtMs: number;
}

/** The agent has no such VM (callers branch on its error code). */
const gone = (error: unknown) => isAgentError(error, 'vm-not-found');

/** How long a host that does not answer is waited for during the copy: the move's stall window. */
export function coldWaitMs(policy: { stallWindowSeconds?: number } | undefined): number {
  return (policy?.stallWindowSeconds ?? MIGRATION_POLICY_DEFAULTS.stallWindowSeconds) * 1000;
}

export class ColdMove extends HostMove<ColdCheckpoint> implements RunnableMove {
  readonly mode = 'cold';

  driver(): MoveDriver {
    const { ctx, deps, vm } = this;
    const nothing = async () => undefined;
    const messages: Record<MovePhase, string> = {
      validate: `checking the cold move of ${vm.name} from ${this.view.from} to ${this.view.to}`,
      'prepare-target': `defining ${vm.name} with empty disks on ${this.view.to}`,
      'mirror-disks': `copying the disks of the stopped VM to ${this.view.to}`,
      'copy-memory': 'no memory to copy: the VM is stopped',
      switchover: `${vm.name} now lives on ${this.view.to}`,
      'clean-up': `removing ${vm.name} from ${this.view.from}`,
    };
    return {
      enter: async (phase) => {
        this.cp = { ...this.cp, phase };
        await ctx.saveCheckpoint(this.cp, {
          phase,
          percent: phasePercent(phase, 0),
          message: messages[phase],
        });
      },
      steps: {
        validate: () => this.validate(),
        'prepare-target': async () => {
          ctx.throwIfCancelled();
          await onHost(this.targetHost, () =>
            deps.clientFor(this.targetHost).createVm({
              id: vm.id,
              name: vm.name,
              vcpus: vm.vcpus,
              memoryMiB: vm.memoryMiB,
              disks: vm.disks.map((d) => ({
                id: d.id,
                datastore: ctx.params.datastores[d.id],
                sizeBytes: d.virtualSizeBytes,
              })),
              nics: vm.nics.map((n) => ({ id: n.id, vswitch: n.vswitch, mac: n.mac })),
              ...(vm.guestIp ? { guestIp: vm.guestIp } : {}),
              ...(vm.guestGateway ? { guestGateway: vm.guestGateway } : {}),
              start: false,
            }),
          );
        },
        'mirror-disks': () => this.copy(),
        'copy-memory': nothing,
        switchover: () => this.switchover(),
        'clean-up': async () => {
          try {
            await this.deps.clientFor(this.sourceHost).deleteVm(vm.name, !ctx.params.keepSource);
          } catch (error) {
            if (!gone(error)) throw agentError(this.sourceHost.name, error);
          }
        },
      },
      undo: {
        'cancel-source': async () => {
          try {
            await onHost(this.sourceHost, () => this.source.coldClose(this.cp.migrationId));
          } catch (error) {
            // A source that does not answer: its exports are closed when it answers again.
            return this.deferIfUnreachable(this.sourceHost, 'close-cold-export', error);
          }
          return 'undone';
        },
        'abort-incoming': async () => {
          try {
            // A copy still running stops first (its half-made VM goes with it), then the VM.
            await this.target.coldClose(this.cp.migrationId);
            await this.deps.clientFor(this.targetHost).deleteVm(vm.name, true);
          } catch (error) {
            if (gone(error)) return 'undone';
            // A target that does not answer: its copy is removed when it answers again.
            return this.deferIfUnreachable(
              this.targetHost,
              'remove-cold-copy',
              agentError(this.targetHost.name, error),
            );
          }
          return 'undone';
        },
      },
    };
  }

  async validate(): Promise<void> {
    const { deps, ctx } = this;
    await this.checkStill(`${this.vm.name} was started after the cold move was accepted`);
    await recordMove(deps.db, ctx.actor, this.vm, this.view.from, {
      from: this.view.from,
      to: this.view.to,
      before: null,
      after: 'started',
    });
  }

  get #waitMs(): number {
    return coldWaitMs(this.ctx.params.policy);
  }

  /**
   * Exports on the source, the copy on the target followed to its end, then the exports closed. A
   * cancel closes the exports and stops the copy at once.
   */
  async copy(): Promise<void> {
    const { ctx, vm } = this;
    const id = this.cp.migrationId;
    ctx.throwIfCancelled();
    const exported = await onHost(this.sourceHost, () => this.source.coldExport(vm.name, id));
    await ctx.progress({
      phase: 'mirror-disks',
      message: `copying ${exported.disks.length} disk${exported.disks.length === 1 ? '' : 's'} to ${this.view.to}`,
      details: { from: this.view.from, to: this.view.to, mode: 'cold' },
    });
    const stop = () => {
      void this.source.coldClose(id).catch(() => undefined);
      void this.target.coldClose(id).catch(() => undefined);
    };
    ctx.signal.addEventListener('abort', stop, { once: true });
    try {
      await onHost(this.targetHost, () =>
        this.target.coldCopy(vm.name, {
          migrationId: id,
          disks: exported.disks,
          secret: exported.secret,
          stallWindowSeconds: this.#waitMs / 1000,
        }),
      );
      await this.#followCopy(exported.disks.length);
    } finally {
      ctx.signal.removeEventListener('abort', stop);
    }
    ctx.throwIfCancelled();
    await this.#closeExports();
    await ctx.progress({ phase: 'mirror-disks', percent: phasePercent('mirror-disks', 1) });
  }

  /** Polls the target's copy until it ends; a target silent for the stall window fails the move. */
  async #followCopy(disks: number): Promise<void> {
    const { ctx, vm } = this;
    let answeredAt = Date.now();
    for (;;) {
      ctx.throwIfCancelled();
      let status: ColdCopyStatus;
      try {
        status = await onHost(this.targetHost, () => this.target.coldStatus(this.cp.migrationId));
        answeredAt = Date.now();
      } catch (error) {
        if (isAgentCode(error, 'migration-not-found'))
          throw new MoveFailed(
            vm.name,
            'mirror-disks',
            `${this.view.to} lost the copy (its agent restarted)`,
          );
        if (!(error instanceof HostUnreachable)) throw error;
        const silentMs = Date.now() - answeredAt;
        if (silentMs >= this.#waitMs)
          throw new MoveFailed(
            vm.name,
            'mirror-disks',
            `${error.message}; no answer for ${Math.round(silentMs / 1000)} s during the copy`,
          );
        await ctx.progress({
          message: `${error.message}: waiting up to ${this.#waitMs / 1000} s for it to answer`,
        });
        await sleep(this.deps.pollMs ?? POLL_MS);
        continue;
      }
      if (status.state === 'completed') return;
      if (status.state !== 'running') {
        if (status.state === 'cancelled' && ctx.signal.aborted) throw new JobCancelled();
        throw new MoveFailed(
          vm.name,
          'mirror-disks',
          status.error?.detail ?? `${this.view.to} ended the copy (${status.state})`,
        );
      }
      await ctx.progress(coldCopyProgress(this.view, status, disks));
      await sleep(this.deps.pollMs ?? POLL_MS);
    }
  }

  /** The copy is complete: the exports close; a source that does not answer is waited for. */
  async #closeExports(): Promise<void> {
    const started = Date.now();
    for (;;) {
      try {
        await onHost(this.sourceHost, () => this.source.coldClose(this.cp.migrationId));
        return;
      } catch (error) {
        if (!(error instanceof HostUnreachable) || Date.now() - started >= this.#waitMs) throw error;
        await this.ctx.progress({
          message: `the copy is complete; ${error.message}: waiting up to ${this.#waitMs / 1000} s for it to close its exports`,
        });
        await sleep(2000);
      }
    }
  }

  /** The row moves to the target (the exports closed at the end of the copy). */
  async switchover(): Promise<void> {
    await storeSwitchover(this.deps, this.ctx.actor, this.targetHost, this.view, (host: HostRow) =>
      onHost(host, () => this.deps.clientFor(host).getVm(this.vm.name)),
    );
  }
}

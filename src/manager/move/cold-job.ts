/*
 * The cold path of a `vm-move` (the VM is stopped), through the same phases: prepare-target defines
 * the VM with empty disks on the target (undo: delete it with its disks), mirror-disks exports the
 * source's disks read-only and has the target copy them (undo: close the exports), switchover
 * closes the exports and moves the VM's row to the target, clean-up deletes the source VM (its
 * disks unless kept). A cancel during the copy closes the exports at once, which ends the copy.
 */
import { isAgentError } from '../../api/index.js';
import { agentError } from '../errors.js';
import { HostMove, onHost, recordMove, storeSwitchover, type RunnableMove } from './job.js';
import { phasePercent, type MoveDriver, type MovePhase } from './phases.js';

interface ColdCheckpoint {
  phase: MovePhase;
  migrationId: string;
  startedAtMs: number;
}

/** The agent has no such VM (callers branch on its error code). */
const gone = (error: unknown) => isAgentError(error, 'vm-not-found');

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
          await onHost(this.sourceHost, () => this.source.coldClose(this.cp.migrationId));
          return 'undone';
        },
        'abort-incoming': async () => {
          try {
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

  /** Exports on the source, copy on the target; a cancel closes the exports, which ends the copy. */
  async copy(): Promise<void> {
    const { ctx, vm } = this;
    ctx.throwIfCancelled();
    const exported = await onHost(this.sourceHost, () =>
      this.source.coldExport(vm.name, this.cp.migrationId),
    );
    await ctx.progress({
      phase: 'mirror-disks',
      message: `copying ${exported.disks.length} disk${exported.disks.length === 1 ? '' : 's'} to ${this.view.to}`,
      details: { from: this.view.from, to: this.view.to, mode: 'cold' },
    });
    const stop = () => void this.source.coldClose(this.cp.migrationId).catch(() => undefined);
    ctx.signal.addEventListener('abort', stop, { once: true });
    try {
      await onHost(this.targetHost, () => this.target.coldCopy(vm.name, { disks: exported.disks }));
    } finally {
      ctx.signal.removeEventListener('abort', stop);
    }
    ctx.throwIfCancelled();
    await ctx.progress({ phase: 'mirror-disks', percent: phasePercent('mirror-disks', 1) });
  }

  async switchover(): Promise<void> {
    await onHost(this.sourceHost, () => this.source.coldClose(this.cp.migrationId));
    await storeSwitchover(this.deps, this.ctx.actor, this.targetHost, this.view, (host) =>
      onHost(host, () => this.deps.clientFor(host).getVm(this.vm.name)),
    );
  }
}

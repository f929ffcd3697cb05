import type { MovePlan } from '../../api/index.js';
import { ManagerError } from '../errors.js';
import { failedChecks } from './checks.js';
import { pendingMessage } from './pending-undos.js';

/* The move's domain errors; the API and the job runner map them like every ManagerError. */

/** One or more pre-move checks failed: nothing was changed. The detail lists every failed check. */
export class MoveRefused extends ManagerError {
  constructor(readonly plan: MovePlan) {
    const failed = failedChecks(plan);
    const code = failed.some((c) => ['no-move-in-flight', 'target-maintenance'].includes(c.check))
      ? 'conflict'
      : failed.some((c) => ['target-memory', 'datastore-space'].includes(c.check))
        ? 'insufficient-capacity'
        : 'invalid-input';
    super(
      code,
      `move of ${plan.vm.name} refused, nothing was changed: ${failed.map((c) => c.detail).join('; ')}`,
      failed[0]?.field,
    );
  }
}

/** The agents' copy failed or was stopped by them; the undos ran, the VM runs on the source. */
export class MoveFailed extends ManagerError {
  constructor(
    readonly vmName: string,
    readonly phase: string,
    detail: string,
  ) {
    super('agent-error', `move of ${vmName} failed during ${phase}: ${detail}`);
  }
}

/**
 * The manager restarted before the switchover, or (`takenOver`) stopped leading and another took
 * the move over; the move was undone.
 */
export class MoveInterrupted extends ManagerError {
  constructor(vmName: string, phase: string, source: string, takenOver?: { from: string; by: string }) {
    const what = takenOver
      ? `manager ${takenOver.from} stopped leading while moving ${vmName} (during ${phase}); ${takenOver.by} took over, undid the move`
      : `the manager restarted while moving ${vmName} (during ${phase}); the move was undone`;
    super('conflict', `${what} and ${vmName} runs on ${source}: start the move again`);
  }
}

/**
 * The move failed and was rolled back where the hosts answered; the undos of a host that did not
 * answer are kept and run when it answers again (pending-undos.ts). The VM runs on the source (a
 * cold move's stays there, stopped).
 */
export class MoveRolledBack extends ManagerError {
  constructor(
    view: { vm: { name: string }; from: string; mode?: 'live' | 'cold' },
    readonly original: unknown,
    readonly deferred: ReadonlyMap<string, string[]>,
  ) {
    const reason = original instanceof Error ? original.message : String(original);
    const notes = [...deferred].map(([host, steps]) => pendingMessage(host, steps));
    // A restart's own message already says where the VM runs.
    const where = reason.includes(`runs on ${view.from}`)
      ? ''
      : view.mode === 'cold'
        ? `rolled back: ${view.vm.name} stays on ${view.from} (stopped); `
        : `rolled back: ${view.vm.name} runs on ${view.from}; `;
    super(
      original instanceof ManagerError ? original.code : 'agent-error',
      `${reason}; ${where}${notes.join('; ')}`,
    );
  }
}

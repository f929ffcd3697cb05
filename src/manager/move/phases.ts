/*
 * A move as an explicit state machine (pure: no I/O, the steps come in as functions).
 *
 *   validate -> prepare-target -> mirror-disks -> copy-memory -> switchover -> clean-up
 *
 * Each phase is persisted (`enter`) before its step runs. Until `switchover` every phase has an
 * undo: prepare-target's removes the half-made VM on the target (abort incoming), mirror-disks'
 * and copy-memory's cancel the agent's migration on the source (the VM keeps running there).
 * A failure or cancel before the switchover runs the undos of the phases entered so far, newest
 * first, each undo once. `switchover` is the point of no return: from there the move only goes
 * forward (the guest runs on the target), and a failure leaves the job failed with the VM on the
 * target.
 *
 * One race is built in: a cancel can reach the source agent after QEMU already switched the guest
 * over. The source's undo then reports `committed`, and the driver carries the move forward from
 * `switchover` instead of undoing (there is never a moment where the guest runs in both places or
 * in neither).
 */

export const MOVE_PHASES = [
  'validate',
  'prepare-target',
  'mirror-disks',
  'copy-memory',
  'switchover',
  'clean-up',
] as const;
export type MovePhase = (typeof MOVE_PHASES)[number];

export type UndoStep = 'abort-incoming' | 'cancel-source';

interface PhaseRow {
  /** What undoes this phase's effects; none for phases that change nothing or cannot be undone. */
  undo?: UndoStep;
  /** The job's percentage when the phase starts and when it ends. */
  percent: readonly [number, number];
}

/** The phase table: one row per phase, in order. */
export const PHASES: Readonly<Record<MovePhase, PhaseRow>> = {
  validate: { percent: [0, 2] },
  'prepare-target': { undo: 'abort-incoming', percent: [2, 5] },
  'mirror-disks': { undo: 'cancel-source', percent: [5, 60] },
  'copy-memory': { undo: 'cancel-source', percent: [60, 95] },
  switchover: { percent: [95, 97] },
  'clean-up': { percent: [97, 100] },
};

export const COMMIT_PHASE: MovePhase = 'switchover';

const indexOf = (phase: MovePhase) => MOVE_PHASES.indexOf(phase);

/** True for phases at or after the point of no return. */
export const isCommitted = (phase: MovePhase) => indexOf(phase) >= indexOf(COMMIT_PHASE);

/** The undos to run after a failure in `phase`, newest first, each once. */
export function undoPlan(phase: MovePhase): UndoStep[] {
  if (isCommitted(phase)) return [];
  const steps: UndoStep[] = [];
  for (const p of MOVE_PHASES.slice(0, indexOf(phase) + 1).reverse()) {
    const undo = PHASES[p].undo;
    if (undo && !steps.includes(undo)) steps.push(undo);
  }
  return steps;
}

/**
 * What a manager restart does with a move whose last persisted phase is `phase`: carry on from
 * there once the switchover has begun (or the source reports the copy completed while the manager
 * was away), else undo what was done.
 */
export type Recovery = { action: 'resume'; from: MovePhase } | { action: 'rollback'; undo: UndoStep[] };

export function recoveryFor(phase: MovePhase, sourceCompleted: boolean): Recovery {
  if (isCommitted(phase)) return { action: 'resume', from: phase };
  if (sourceCompleted && indexOf(phase) >= indexOf('mirror-disks'))
    return { action: 'resume', from: COMMIT_PHASE };
  return { action: 'rollback', undo: undoPlan(phase) };
}

/**
 * An undo's answer: done; "too late, the guest already switched over"; or kept to run later
 * because its host does not answer now (pending-undos.ts), which lets the other undos go on.
 */
export type UndoOutcome = 'undone' | 'committed' | 'deferred';

export interface MoveDriver {
  /** Persists the phase before its step runs. */
  enter(phase: MovePhase): Promise<void>;
  steps: Record<MovePhase, () => Promise<void>>;
  undo: Record<UndoStep, () => Promise<UndoOutcome>>;
}

/** Some undos failed: what is left behind, for the job's error. */
export class RollbackIncomplete extends Error {
  constructor(
    readonly original: unknown,
    readonly failures: { step: UndoStep; error: unknown }[],
  ) {
    super(
      `${original instanceof Error ? original.message : String(original)}; then undoing failed: ${failures
        .map((f) => `${f.step}: ${f.error instanceof Error ? f.error.message : String(f.error)}`)
        .join('; ')}`,
    );
    this.name = 'RollbackIncomplete';
  }
}

export type DriveOutcome =
  | { outcome: 'completed' }
  /** The move was stopped but the guest had already switched over: it went through. */
  | { outcome: 'completed-despite-stop'; reason: unknown };

/** Runs the undos; `committed` when one of them found the switchover already done. */
export async function runUndos(
  driver: MoveDriver,
  steps: UndoStep[],
  cause: unknown,
): Promise<'undone' | 'committed'> {
  const failures: { step: UndoStep; error: unknown }[] = [];
  for (const step of steps) {
    try {
      if ((await driver.undo[step]()) === 'committed') return 'committed';
    } catch (error) {
      failures.push({ step, error });
    }
  }
  if (failures.length) throw new RollbackIncomplete(cause, failures);
  return 'undone';
}

/**
 * Runs the phases from `from` to the end. Before the switchover, an error (a cancel included)
 * runs the undos and is rethrown, unless an undo finds the guest already switched over: then the
 * move is finished instead.
 */
export async function driveMove(driver: MoveDriver, from: MovePhase = 'validate'): Promise<DriveOutcome> {
  let stopped: { reason: unknown } | undefined;
  for (let i = indexOf(from); i < MOVE_PHASES.length; i++) {
    const phase = MOVE_PHASES[i] as MovePhase;
    await driver.enter(phase);
    try {
      await driver.steps[phase]();
    } catch (error) {
      if (isCommitted(phase)) throw error;
      if ((await runUndos(driver, undoPlan(phase), error)) === 'undone') throw error;
      stopped = { reason: error };
      i = indexOf(COMMIT_PHASE) - 1;
    }
  }
  return stopped ? { outcome: 'completed-despite-stop', reason: stopped.reason } : { outcome: 'completed' };
}

/** The job's percentage for `fraction` (0..1) of `phase`. */
export function phasePercent(phase: MovePhase, fraction: number): number {
  const [start, end] = PHASES[phase].percent;
  return start + (end - start) * Math.min(1, Math.max(0, fraction));
}

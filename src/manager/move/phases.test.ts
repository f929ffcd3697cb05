import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  driveMove,
  MOVE_PHASES,
  phasePercent,
  recoveryFor,
  RollbackIncomplete,
  undoPlan,
  type MoveDriver,
  type MovePhase,
  type UndoOutcome,
  type UndoStep,
} from './phases.js';

/** A driver that records every call; `failIn` makes that phase's step throw. */
function fakeDriver(
  opts: { failIn?: MovePhase; undoAnswer?: Partial<Record<UndoStep, UndoOutcome | Error>> } = {},
) {
  const calls: string[] = [];
  const step = (phase: MovePhase) => async () => {
    calls.push(`run ${phase}`);
    if (phase === opts.failIn) throw new Error(`${phase} broke`);
  };
  const undo = (name: UndoStep) => async (): Promise<UndoOutcome> => {
    calls.push(`undo ${name}`);
    const answer = opts.undoAnswer?.[name] ?? 'undone';
    if (answer instanceof Error) throw answer;
    return answer;
  };
  const driver: MoveDriver = {
    enter: async (phase) => {
      calls.push(`enter ${phase}`);
    },
    steps: Object.fromEntries(MOVE_PHASES.map((p) => [p, step(p)])) as MoveDriver['steps'],
    undo: { 'abort-incoming': undo('abort-incoming'), 'cancel-source': undo('cancel-source') },
  };
  return { driver, calls };
}

test('a move enters and runs every phase in order, each persisted before its step', async () => {
  const { driver, calls } = fakeDriver();
  assert.deepEqual(await driveMove(driver), { outcome: 'completed' });
  assert.deepEqual(
    calls,
    MOVE_PHASES.flatMap((p) => [`enter ${p}`, `run ${p}`]),
  );
});

test('undo plans: newest first, each undo once, nothing after the switchover', () => {
  assert.deepEqual(undoPlan('validate'), []);
  assert.deepEqual(undoPlan('prepare-target'), ['abort-incoming']);
  assert.deepEqual(undoPlan('mirror-disks'), ['cancel-source', 'abort-incoming']);
  assert.deepEqual(undoPlan('copy-memory'), ['cancel-source', 'abort-incoming']);
  assert.deepEqual(undoPlan('switchover'), []);
  assert.deepEqual(undoPlan('clean-up'), []);
});

test('a failure during the memory copy cancels the source, then aborts the target, and is rethrown', async () => {
  const { driver, calls } = fakeDriver({ failIn: 'copy-memory' });
  await assert.rejects(driveMove(driver), /copy-memory broke/);
  assert.deepEqual(calls.slice(-3), ['run copy-memory', 'undo cancel-source', 'undo abort-incoming']);
  assert.ok(!calls.includes('enter switchover'));
});

test('a failure in validate undoes nothing; in prepare-target only the target', async () => {
  const first = fakeDriver({ failIn: 'validate' });
  await assert.rejects(driveMove(first.driver), /validate broke/);
  assert.deepEqual(first.calls, ['enter validate', 'run validate']);
  const second = fakeDriver({ failIn: 'prepare-target' });
  await assert.rejects(driveMove(second.driver), /prepare-target broke/);
  assert.deepEqual(second.calls.slice(-1), ['undo abort-incoming']);
});

test('a stop that reaches the source after the switchover carries the move forward', async () => {
  const { driver, calls } = fakeDriver({
    failIn: 'copy-memory',
    undoAnswer: { 'cancel-source': 'committed' },
  });
  const result = await driveMove(driver);
  assert.equal(result.outcome, 'completed-despite-stop');
  assert.deepEqual(calls.slice(-6), [
    'run copy-memory',
    'undo cancel-source',
    'enter switchover',
    'run switchover',
    'enter clean-up',
    'run clean-up',
  ]);
  assert.ok(!calls.includes('undo abort-incoming'), 'the target keeps the guest');
});

test('failures after the switchover are not undone', async () => {
  const { driver, calls } = fakeDriver({ failIn: 'clean-up' });
  await assert.rejects(driveMove(driver), /clean-up broke/);
  assert.ok(!calls.some((c) => c.startsWith('undo')));
});

test('an undo that fails still lets the others run, and the error names both', async () => {
  const { driver, calls } = fakeDriver({
    failIn: 'mirror-disks',
    undoAnswer: { 'cancel-source': new Error('source agent gone') },
  });
  const error = await driveMove(driver).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(error instanceof RollbackIncomplete);
  assert.match(error.message, /mirror-disks broke; then undoing failed: cancel-source: source agent gone/);
  assert.deepEqual(calls.slice(-2), ['undo cancel-source', 'undo abort-incoming']);
});

test('an undo kept for later (its host is away) lets the others run, and the original error stands', async () => {
  const { driver, calls } = fakeDriver({
    failIn: 'copy-memory',
    undoAnswer: { 'abort-incoming': 'deferred' },
  });
  const error = await driveMove(driver).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(error instanceof Error && !(error instanceof RollbackIncomplete), String(error));
  assert.equal(error.message, 'copy-memory broke');
  assert.deepEqual(calls.slice(-2), ['undo cancel-source', 'undo abort-incoming']);
  // Kept on the source side too: the target's undo still runs.
  const source = fakeDriver({ failIn: 'mirror-disks', undoAnswer: { 'cancel-source': 'deferred' } });
  await assert.rejects(driveMove(source.driver), /^Error: mirror-disks broke$/);
  assert.deepEqual(source.calls.slice(-2), ['undo cancel-source', 'undo abort-incoming']);
});

test('resuming from a phase runs only that phase and the later ones', async () => {
  const { driver, calls } = fakeDriver();
  await driveMove(driver, 'switchover');
  assert.deepEqual(calls, ['enter switchover', 'run switchover', 'enter clean-up', 'run clean-up']);
});

test('recovery after a manager restart: resume after the switchover, roll back before it', () => {
  assert.deepEqual(recoveryFor('clean-up', false), { action: 'resume', from: 'clean-up' });
  assert.deepEqual(recoveryFor('switchover', false), { action: 'resume', from: 'switchover' });
  assert.deepEqual(recoveryFor('copy-memory', false), {
    action: 'rollback',
    undo: ['cancel-source', 'abort-incoming'],
  });
  assert.deepEqual(recoveryFor('prepare-target', false), { action: 'rollback', undo: ['abort-incoming'] });
  assert.deepEqual(recoveryFor('validate', false), { action: 'rollback', undo: [] });
  // The source finished the copy while the manager was down: the guest runs on the target.
  assert.deepEqual(recoveryFor('copy-memory', true), { action: 'resume', from: 'switchover' });
  assert.deepEqual(recoveryFor('mirror-disks', true), { action: 'resume', from: 'switchover' });
});

test('phase percentages rise monotonically across the phases and stay inside each phase', () => {
  let last = -1;
  for (const phase of MOVE_PHASES) {
    for (const f of [0, 0.5, 1]) {
      const p = phasePercent(phase, f);
      assert.ok(p >= last, `${phase} ${f}: ${p} < ${last}`);
      last = p;
    }
  }
  assert.equal(phasePercent('clean-up', 1), 100);
  assert.equal(phasePercent('mirror-disks', 7), phasePercent('mirror-disks', 1));
});

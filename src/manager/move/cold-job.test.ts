// The pure parts of a cold move's handling of hosts that do not answer: how long it waits for
// them, and what its rolled-back job says (the VM stays where it was, stopped, and what is pending).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MIGRATION_POLICY_DEFAULTS } from '../../api/index.js';
import { coldWaitMs } from './cold-job.js';
import { MoveFailed, MoveRolledBack } from './errors.js';

test("a host that does not answer is waited for the move's stall window, the policy's default without one", () => {
  assert.equal(coldWaitMs(undefined), MIGRATION_POLICY_DEFAULTS.stallWindowSeconds * 1000);
  assert.equal(coldWaitMs({}), MIGRATION_POLICY_DEFAULTS.stallWindowSeconds * 1000);
  assert.equal(coldWaitMs({ stallWindowSeconds: 10 }), 10_000);
});

test('a rolled-back cold move says the VM stays on its source, stopped, and which clean-up is pending', () => {
  const failure = new MoveFailed(
    'web-1',
    'mirror-disks',
    "stalled: no byte from the source's exports for 10 s",
  );
  const cold = new MoveRolledBack(
    { vm: { name: 'web-1' }, from: 'h1', mode: 'cold' },
    failure,
    new Map([['h1', ['close-cold-export']]]),
  );
  assert.equal(cold.code, 'agent-error');
  assert.equal(
    cold.message,
    "move of web-1 failed during mirror-disks: stalled: no byte from the source's exports for 10 s; " +
      'rolled back: web-1 stays on h1 (stopped); clean-up on h1 pending (close-cold-export): it runs as soon as h1 answers again',
  );
  const live = new MoveRolledBack(
    { vm: { name: 'web-1' }, from: 'h1', mode: 'live' },
    failure,
    new Map([['h2', ['abort-incoming']]]),
  );
  assert.match(live.message, /rolled back: web-1 runs on h1; clean-up on h2 pending \(abort-incoming\)/);
});

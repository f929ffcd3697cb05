// The words of an interrupted move: a restart of the same manager, or a takeover by another.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MoveInterrupted, MoveRolledBack } from './errors.js';

test('an interrupted move names a restart, or the manager that stopped leading and the one that took over', () => {
  const restart = new MoveInterrupted('busy', 'copy-memory', 'host1');
  assert.equal(
    restart.message,
    'the manager restarted while moving busy (during copy-memory); the move was undone and busy runs on host1: start the move again',
  );
  const takeover = new MoveInterrupted('busy', 'mirror-disks', 'host1', { from: 'm1', by: 'm2' });
  assert.equal(
    takeover.message,
    'manager m1 stopped leading while moving busy (during mirror-disks); m2 took over, undid the move and busy runs on host1: start the move again',
  );
  assert.equal(takeover.code, 'conflict');
  // Rolled back with a clean-up pending: where the VM runs is said once.
  const rolled = new MoveRolledBack(
    { vm: { name: 'busy' }, from: 'host1' },
    takeover,
    new Map([['host2', ['abort-incoming']]]),
  );
  assert.match(
    rolled.message,
    /^manager m1 stopped leading .* runs on host1: start the move again; clean-up on host2/,
  );
  assert.equal(rolled.message.match(/runs on host1/g)?.length, 1);
});

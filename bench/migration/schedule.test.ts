import { test } from 'node:test';
import assert from 'node:assert/strict';
import { POLICIES, type MoveRun, type Policy } from './model.js';
import { nextPolicy } from './schedule.js';

/** Plays `runs` runs of the bench loop: the VM starts on host1 and every completed move flips it. */
function play(runs: number, outcome: (policy: Policy, run: number) => MoveRun['outcome']): MoveRun[] {
  const done: MoveRun[] = [];
  const gaveUp = new Set<Policy>();
  let here = 0;
  const hosts = ['host1', 'host2'];
  for (let r = 1; r <= runs; r++) {
    const order = POLICIES.map((_, i) => POLICIES[(i + r - 1) % POLICIES.length] as Policy);
    const due = order.filter((p) => !gaveUp.has(p));
    while (due.length) {
      const from = hosts[here] as string;
      const to = hosts[1 - here] as string;
      const policy = nextPolicy(due, done, from, to);
      due.splice(due.indexOf(policy), 1);
      const result = outcome(policy, r);
      done.push({ policy, run: r, from, to, outcome: result });
      if (result === 'completed') here = 1 - here;
      else gaveUp.add(policy);
    }
  }
  return done;
}

function directions(done: MoveRun[], policy: Policy): [number, number] {
  const mine = done.filter((m) => m.policy === policy && m.outcome === 'completed');
  return [mine.filter((m) => m.from === 'host1').length, mine.filter((m) => m.from === 'host2').length];
}

test('four policies, four runs: every policy moves twice each way', () => {
  const done = play(4, () => 'completed');
  for (const policy of POLICIES) assert.deepEqual(directions(done, policy), [2, 2], policy);
});

test('a baseline that gives up in the first run leaves the others balanced over four runs', () => {
  const done = play(4, (policy) => (policy === 'qemu-defaults' ? 'not-converged' : 'completed'));
  assert.deepEqual(directions(done, 'qemu-defaults'), [0, 0]);
  for (const policy of ['silobreak', 'libvirt-like', 'proxmox-like'] as const) {
    assert.deepEqual(directions(done, policy), [2, 2], policy);
  }
});

test('an odd number of runs leaves each policy at most one move off balance', () => {
  const done = play(3, () => 'completed');
  for (const policy of POLICIES) {
    const [a, b] = directions(done, policy);
    assert.equal(a + b, 3);
    assert.ok(Math.abs(a - b) === 1, `${policy}: ${a} vs ${b}`);
  }
});

test('ties go to the earlier turn; nothing due is an error', () => {
  assert.equal(nextPolicy(['libvirt-like', 'silobreak'], [], 'host1', 'host2'), 'libvirt-like');
  assert.throws(() => nextPolicy([], [], 'host1', 'host2'), /no policy is due/);
});

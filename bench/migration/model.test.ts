import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MigrationStrategy, MoveVmRequest } from '../../src/api/index.js';
import { BASELINES, movePolicy, moveSecure, POLICIES, policyLabel } from './model.js';

test("the product path sends no policy and no `secure`: the request is `vm move`'s (TLS)", () => {
  assert.equal(movePolicy('silobreak', 957e6), undefined);
  assert.equal(moveSecure('silobreak'), undefined);
  // The body run.ts sends for it is exactly the CLI's without flags (src/cli/commands/move.ts).
  const parsed = MoveVmRequest.parse({ to: 'host2', keepSource: false, retain: false });
  assert.equal(parsed.policy, undefined);
  assert.equal(parsed.secure, true);
});

test('--no-secure differs from the product path only in `secure`; baselines move in clear', () => {
  assert.equal(movePolicy('silobreak-plain', 957e6), undefined);
  assert.equal(moveSecure('silobreak-plain'), false);
  assert.equal(moveSecure('silobreak-link-given'), undefined);
  for (const baseline of BASELINES) assert.equal(moveSecure(baseline), false);
  assert.equal(policyLabel('silobreak-plain'), 'silobreak --no-secure (plain)');
});

test('"link given" carries the measured rate only; a baseline its strategy only', () => {
  assert.deepEqual(movePolicy('silobreak-link-given', 957e6), { linkBitsPerSecond: 957e6 });
  for (const baseline of BASELINES) {
    const policy = movePolicy(baseline, 957e6);
    assert.deepEqual(policy, { strategy: baseline });
    // The manager accepts each as it is (unknown fields or strategies would be refused).
    assert.deepEqual(MoveVmRequest.parse({ to: 'host2', policy }).policy?.strategy, baseline);
  }
});

test("the baselines are every strategy of the agents but Silobreak's, and each is a contender", () => {
  assert.deepEqual(
    [...BASELINES],
    MigrationStrategy.options.filter((s) => s !== 'silobreak'),
  );
  for (const b of BASELINES) assert.ok((POLICIES as readonly string[]).includes(b));
  assert.ok(BASELINES.includes('libvirt-multifd-zstd'));
});

test('labels: the product path and "link given" are told apart; old results say link given', () => {
  assert.equal(policyLabel('silobreak'), 'silobreak (vm move, no policy)');
  assert.equal(policyLabel('silobreak-link-given'), 'silobreak, link given');
  assert.equal(policyLabel('silobreak', false), 'silobreak (link given)');
  assert.equal(policyLabel('proxmox-like'), 'proxmox-like');
});

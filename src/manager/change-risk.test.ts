import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { RISK_RULES, rateChange, UNRATED, type RiskInput } from './change-risk.js';

const rate = (c: RiskInput) => rateChange(c);
const field = (name: string, before: unknown, after: unknown) => ({ field: name, before, after });

test('removals of hosts, datastores, switches, VMs and disks are high, each by its own rule', () => {
  for (const [kind, rule] of [
    ['host', 'host-removed'],
    ['datastore', 'datastore-removed'],
    ['vswitch', 'vswitch-removed'],
    ['vm', 'vm-deleted'],
    ['disk', 'disk-removed'],
  ] as const)
    assert.deepEqual(rate({ kind, action: 'deleted', changes: [] }), { risk: 'high', rule });
});

test('shrinking memory, vcpus, a disk or a datastore is high; growing it is a medium setting change', () => {
  const shrink = (kind: RiskInput['kind'], name: string, before: number, after: number) =>
    rate({ kind, action: 'setting-changed', changes: [field(name, before, after)] });
  assert.deepEqual(shrink('vm', 'memoryMiB', 512, 256), { risk: 'high', rule: 'resource-shrunk' });
  assert.deepEqual(shrink('vm', 'vcpus', 2, 1), { risk: 'high', rule: 'resource-shrunk' });
  assert.deepEqual(shrink('disk', 'virtualSizeBytes', 2 ** 31, 2 ** 30), {
    risk: 'high',
    rule: 'resource-shrunk',
  });
  assert.deepEqual(shrink('datastore', 'capacityBytes', 10, 9), { risk: 'high', rule: 'resource-shrunk' });
  assert.deepEqual(shrink('vm', 'memoryMiB', 256, 512), { risk: 'medium', rule: 'settings-changed' });
  assert.deepEqual(shrink('disk', 'virtualSizeBytes', 1, 2), { risk: 'medium', rule: 'settings-changed' });
});

test("a running VM's memory or NICs changed is high; the same on a stopped VM is medium", () => {
  const memory = { kind: 'vm', action: 'setting-changed', changes: [field('memoryMiB', 256, 512)] } as const;
  assert.deepEqual(rate({ ...memory, vmRunning: true }), { risk: 'high', rule: 'running-vm-memory' });
  assert.deepEqual(rate({ ...memory, vmRunning: false }), { risk: 'medium', rule: 'settings-changed' });
  for (const action of ['created', 'deleted', 'setting-changed'] as const) {
    assert.deepEqual(rate({ kind: 'nic', action, changes: [], vmRunning: true }), {
      risk: 'high',
      rule: 'running-vm-nic',
    });
    assert.deepEqual(rate({ kind: 'nic', action, changes: [], vmRunning: false }), {
      risk: 'medium',
      rule: 'nic-changed',
    });
  }
  // Unknown state (records from before risks existed) counts as stopped.
  assert.equal(rate({ kind: 'nic', action: 'created', changes: [] }).rule, 'nic-changed');
});

test('a failed move is high, a cancelled one medium, its start, switchover and end low', () => {
  const move = (after: string) =>
    rate({
      kind: 'vm',
      action: 'state-changed',
      changes: [field('move', 'started', after), field('code', null, 'x')],
    });
  assert.deepEqual(move('failed'), { risk: 'high', rule: 'move-failed' });
  assert.deepEqual(move('cancelled'), { risk: 'medium', rule: 'move-cancelled' });
  for (const step of ['started', 'switched-over', 'finished'])
    assert.deepEqual(move(step), { risk: 'low', rule: 'move-progress' });
  const cleanUp = (after: string) =>
    rate({ kind: 'vm', action: 'state-changed', changes: [field('clean-up', null, after)] });
  assert.deepEqual(cleanUp('pending'), { risk: 'medium', rule: 'clean-up-pending' });
  assert.deepEqual(cleanUp('done'), { risk: 'low', rule: 'clean-up-done' });
});

test('creating a VM is low; tokens are medium; a VM moved to another host is low', () => {
  assert.deepEqual(rate({ kind: 'vm', action: 'created', changes: [] }), { risk: 'low', rule: 'created' });
  assert.deepEqual(rate({ kind: 'token', action: 'created', changes: [field('role', null, 'admin')] }), {
    risk: 'medium',
    rule: 'token-created',
  });
  assert.deepEqual(rate({ kind: 'token', action: 'deleted', changes: [] }), {
    risk: 'medium',
    rule: 'token-deleted',
  });
  assert.deepEqual(
    rate({ kind: 'vm', action: 'setting-changed', changes: [field('host', 'h1', 'h2')], vmRunning: true }),
    { risk: 'low', rule: 'vm-moved' },
  );
  assert.deepEqual(
    rate({
      kind: 'disk',
      action: 'setting-changed',
      changes: [field('datastore', 'a', 'b'), field('path', 'x', 'y')],
    }),
    { risk: 'low', rule: 'disk-moved' },
  );
});

test('state changes: unreachable host and crashed guest high, stopped VM medium, started low', () => {
  const state = (kind: RiskInput['kind'], before: string, after: string) =>
    rate({ kind, action: 'state-changed', changes: [field('state', before, after)] });
  assert.deepEqual(state('host', 'connected', 'unreachable'), { risk: 'high', rule: 'host-unreachable' });
  assert.deepEqual(state('host', 'unreachable', 'connected'), { risk: 'low', rule: 'host-reconnected' });
  assert.deepEqual(state('vm', 'running', 'crashed'), { risk: 'high', rule: 'vm-crashed' });
  assert.deepEqual(state('vm', 'running', 'stopped'), { risk: 'medium', rule: 'vm-stopped' });
  assert.deepEqual(state('vm', 'stopped', 'running'), { risk: 'low', rule: 'vm-started' });
});

test('clusters: created low, deleted and membership medium; a host entering or leaving maintenance medium; HA settings medium', () => {
  assert.deepEqual(rate({ kind: 'cluster', action: 'created', changes: [] }), {
    risk: 'low',
    rule: 'created',
  });
  assert.deepEqual(rate({ kind: 'cluster', action: 'deleted', changes: [] }), {
    risk: 'medium',
    rule: 'cluster-deleted',
  });
  assert.deepEqual(
    rate({ kind: 'cluster', action: 'setting-changed', changes: [field('hosts', ['h1'], ['h1', 'h2'])] }),
    { risk: 'medium', rule: 'cluster-membership' },
  );
  for (const [before, after] of [
    ['none', 'entering'],
    ['entering', 'in'],
    ['in', 'none'],
  ])
    assert.deepEqual(
      rate({ kind: 'host', action: 'state-changed', changes: [field('maintenance', before, after)] }),
      { risk: 'medium', rule: 'host-maintenance' },
    );
  assert.deepEqual(
    rate({
      kind: 'vm',
      action: 'setting-changed',
      changes: [field('ha.protected', false, true)],
      vmRunning: true,
    }),
    { risk: 'medium', rule: 'settings-changed' },
  );
});

test('the highest risk wins: a shrink among other settings of a running VM is still high', () => {
  const rated = rate({
    kind: 'vm',
    action: 'setting-changed',
    changes: [field('name', 'a', 'b'), field('vcpus', 4, 2)],
    vmRunning: false,
  });
  assert.deepEqual(rated, { risk: 'high', rule: 'resource-shrunk' });
});

test('a change no rule knows is medium and unrated', () => {
  assert.deepEqual(
    rate({ kind: 'vm', action: 'state-changed', changes: [field('something', 1, 2)] }),
    UNRATED,
  );
});

test('rule ids are unique and the README documents every rule with its risk', async () => {
  assert.equal(new Set(RISK_RULES.map((r) => r.id)).size, RISK_RULES.length);
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  for (const r of [...RISK_RULES, { id: UNRATED.rule, risk: UNRATED.risk }])
    assert.match(readme, new RegExp(`^\\| \`${r.id}\` \\| ${r.risk} \\|`, 'm'), `README row of ${r.id}`);
});

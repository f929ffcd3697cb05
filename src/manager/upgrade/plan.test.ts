import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { StrandedVm, UpgradePlan } from '../../api/index.js';
import {
  newerThanTarget,
  planUpgrade,
  type UpgradeHostFacts,
  type UpgradeInput,
  type UpgradeVmFacts,
} from './plan.js';

const GiB = 2 ** 30;
let ids = 0;

function host(name: string, over: Partial<UpgradeHostFacts> = {}): UpgradeHostFacts {
  return {
    name,
    cluster: 'c1',
    state: 'connected',
    maintenance: 'none',
    agentVersion: '0.1.0',
    qemuVersion: '10.0.2',
    machineType: 'pc-q35-7.2',
    cpuModel: 'qemu64',
    memoryFreeBytes: 8 * GiB,
    memoryBytes: 16 * GiB,
    datastores: [{ name: 'local', default: true, freeBytes: 100 * GiB }],
    vswitches: ['vmsw0'],
    ...over,
  };
}

/** HA settings: the defaults with `over`. */
const ha = (over: Partial<UpgradeVmFacts['ha']>): UpgradeVmFacts['ha'] => ({
  priority: 500,
  protected: false,
  preferredHosts: [],
  ...over,
});

function vm(name: string, on: string, over: Partial<UpgradeVmFacts> = {}): UpgradeVmFacts {
  ids += 1;
  return {
    id: `00000000-0000-4000-8000-${String(ids).padStart(12, '0')}`,
    name,
    host: on,
    state: 'running',
    memoryBytes: 1 * GiB,
    machineType: 'pc-q35-7.2',
    cpuModel: 'qemu64',
    ha: ha({}),
    disks: [{ id: 'root', datastore: 'local', requiredBytes: 1 * GiB }],
    vswitches: ['vmsw0'],
    ...over,
  };
}

function plan(input: UpgradeInput): UpgradePlan {
  const outcome = planUpgrade(input);
  assert.ok(outcome.ok, `refused: ${JSON.stringify(!outcome.ok && outcome.stranded)}`);
  return outcome.plan;
}

function refused(input: UpgradeInput): StrandedVm[] {
  const outcome = planUpgrade(input);
  assert.ok(!outcome.ok, `planned: ${JSON.stringify(outcome.ok && outcome.plan)}`);
  return outcome.stranded;
}

/** step host: vm -> target, … per step, to compare whole plans at a glance. */
const summary = (p: UpgradePlan) =>
  p.steps.map((s) => `${s.host}: ${s.moves.map((m) => `${m.vm}->${m.to}`).join(' ')}`.trim());

/** Each target of a stranded VM with the rules it failed. */
const rules = (s: StrandedVm | undefined) =>
  Object.fromEntries((s?.targets ?? []).map((t) => [t.host, t.failed.map((f) => f.rule)]));

test('a compatible cluster: fewest VMs first, each VM to a cluster peer before any other host, upgraded hosts take VMs back', () => {
  const p = plan({
    hosts: [
      host('h1'),
      host('h2', { memoryFreeBytes: 6 * GiB }),
      host('h3'),
      host('solo', { cluster: null, memoryFreeBytes: 32 * GiB }),
    ],
    upgrade: ['h1', 'h2', 'h3'],
    vms: [vm('a', 'h1'), vm('b', 'h1'), vm('c', 'h2'), vm('d', 'h3'), vm('e', 'h3'), vm('f', 'h3')],
    targetQemuVersion: '10.1.0',
  });
  // h2 has one VM (the fewest): c goes to the peer with the most free memory (h1 and h3 have 8
  // GiB: by name, h1), never to solo, which has more room but is not of the cluster. Then h1 (3
  // VMs now, as h3: by name): each VM to the peer with the most free memory then, the upgraded h2
  // among them; last h3, whose five go to h1 while it has more free than h2, then by name.
  assert.deepEqual(summary(p), ['h2: c->h1', 'h1: a->h3 b->h2 c->h3', 'h3: a->h1 c->h1 d->h1 e->h1 f->h1']);
  assert.deepEqual(
    p.steps.map((s) => s.qemuVersion),
    [
      { from: '10.0.2', to: '10.1.0' },
      { from: '10.0.2', to: '10.1.0' },
      { from: '10.0.2', to: '10.1.0' },
    ],
  );
  assert.match(
    p.steps[0]?.moves[0]?.why ?? '',
    /^cluster peer \(c1\), most free memory; 7\.0 GiB free after; disks mirrored/,
  );
  assert.match(p.steps[0]?.why ?? '', /1 VM to move, highest HA priority 500: the fewest/);
  assert.equal(p.targetQemuVersion, '10.1.0');
  assert.match(p.orderRule, /fewest VMs/);
});

test('VMs leave in the drain order: the highest HA priority first takes the best host; stopped VMs stay', () => {
  const p = plan({
    hosts: [host('h1'), host('h2', { memoryFreeBytes: 2 * GiB }), host('h3', { memoryFreeBytes: 3 * GiB })],
    upgrade: ['h1'],
    vms: [
      vm('low', 'h1', { ha: ha({ priority: 100 }), memoryBytes: 2 * GiB }),
      vm('high', 'h1', { ha: ha({ priority: 900 }), memoryBytes: 2 * GiB }),
      vm('off', 'h1', { state: 'stopped', memoryBytes: 8 * GiB }),
    ],
  });
  assert.deepEqual(summary(p), ['h1: high->h3 low->h2']);
  assert.deepEqual(
    p.steps[0]?.stays.map((s) => [s.vm, s.why]),
    [['off', 'stopped: stays on h1, starts on QEMU 10.0.2 when started']],
  );
  assert.equal(p.targetQemuVersion, '10.0.2', 'without a target: the newest QEMU any host runs');
});

test("a VM's preferred hosts before more room; a host outside the cluster only when no peer can take it", () => {
  const p = plan({
    hosts: [
      host('h1'),
      host('h2', { memoryFreeBytes: 12 * GiB }),
      host('h3', { memoryFreeBytes: 2 * GiB }),
      host('h4', { memoryFreeBytes: 1 * GiB }),
      host('solo', { cluster: null, memoryFreeBytes: 64 * GiB }),
    ],
    upgrade: ['h1'],
    vms: [
      vm('picky', 'h1', { ha: ha({ preferredHosts: ['h4', 'h3'], priority: 900 }) }),
      vm('big', 'h1', { memoryBytes: 12 * GiB, ha: ha({ priority: 800 }) }),
      vm('large', 'h1', { memoryBytes: 8 * GiB }),
    ],
  });
  // picky to its first preferred host h4 (just its 1 GiB free), though h2 has more room; big to
  // the peer with the most room; large fits no peer: the standalone host takes it.
  assert.deepEqual(summary(p), ['h1: picky->h4 big->h2 large->solo']);
  const why = (vm: string) => p.steps[0]?.moves.find((m) => m.vm === vm)?.why ?? '';
  assert.match(why('picky'), /^cluster peer \(c1\), preferred host; 0 MiB free after/);
  assert.match(why('big'), /^cluster peer \(c1\), most free memory; 0 MiB free after/);
  assert.match(
    why('large'),
    /^not of cluster c1: no peer can take it, most free memory; 56\.0 GiB free after; .*not h2: memory; h3: memory; h4: memory$/,
  );
});

test('order: fewest VMs first, then the lowest top HA priority, then the name; a host with none first', () => {
  const p = plan({
    hosts: [host('a'), host('b'), host('c'), host('d'), host('spare', { memoryFreeBytes: 64 * GiB })],
    upgrade: ['d', 'c', 'b', 'a'],
    vms: [
      vm('a1', 'a', { ha: ha({ priority: 900 }) }),
      vm('b1', 'b', { ha: ha({ priority: 100 }) }),
      vm('c1', 'c', { state: 'stopped' }),
      vm('d1', 'd'),
      vm('d2', 'd'),
    ],
  });
  assert.deepEqual(
    p.steps.map((s) => s.host),
    ['c', 'b', 'a', 'd'],
    'c has none to move; b and a one each, b the less important; d two',
  );
  assert.deepEqual(summary(p), ['c:', 'b: b1->spare', 'a: a1->spare', 'd: d1->spare d2->spare']);
});

test('stranded by memory: the VM, its host and every other host with each rule it fails', () => {
  const stranded = refused({
    hosts: [
      host('h1'),
      host('h2', { memoryFreeBytes: 1 * GiB }),
      host('h3', { memoryFreeBytes: 512 * 2 ** 20, machineType: 'pc-i440fx-7.2' }),
    ],
    upgrade: ['h1'],
    vms: [
      vm('fits', 'h1', { memoryBytes: 1 * GiB, ha: ha({ priority: 900 }) }),
      vm('big', 'h1', { memoryBytes: 2 * GiB }),
    ],
  });
  // `fits` leaves first (priority) and takes h2's last GiB: `big` has nowhere.
  assert.equal(stranded.length, 1);
  assert.equal(stranded[0]?.vm, 'big');
  assert.equal(stranded[0]?.host, 'h1');
  assert.equal(stranded[0]?.step, 1);
  assert.deepEqual(rules(stranded[0]), { h2: ['memory'], h3: ['memory', 'machine-type'] });
  assert.match(stranded[0]?.targets[0]?.failed[0]?.detail ?? '', /^h2 has 0 MiB free, big needs 2\.0 GiB$/);
});

test('stranded by QEMU version: a VM on a newer QEMU cannot go to an older one; versions compare as numbers', () => {
  const hosts = [
    host('new', { qemuVersion: '10.10.0' }),
    host('old', { qemuVersion: '10.9.1' }),
    host('older', { qemuVersion: '9.2.0' }),
  ];
  const stranded = refused({ hosts, upgrade: ['new'], vms: [vm('v', 'new')] });
  assert.deepEqual(rules(stranded[0]), { old: ['qemu-version'], older: ['qemu-version'] });
  assert.match(
    stranded[0]?.targets[0]?.failed[0]?.detail ?? '',
    /v runs on QEMU 10\.10\.0, old has the older 10\.9\.1/,
  );

  // A VM on the middle QEMU goes to the newer host, never the older one, though that has more room.
  const p = plan({
    hosts: [hosts[0]!, hosts[1]!, { ...hosts[2]!, memoryFreeBytes: 64 * GiB }],
    upgrade: ['old'],
    vms: [vm('w', 'old')],
  });
  assert.deepEqual(summary(p), ['old: w->new']);
  assert.equal(p.targetQemuVersion, '10.10.0');
  assert.deepEqual(p.steps[0]?.qemuVersion, { from: '10.9.1', to: '10.10.0' });
  assert.match(p.steps[0]?.moves[0]?.why ?? '', /not older: qemu-version/);
});

test('a VM moved onto an upgraded host runs on its new QEMU: it may go on only to hosts as new', () => {
  // h1 (no VMs) is upgraded first; h2's VMs go to it (the most room) and run on 10.1 from then.
  const p = plan({
    hosts: [
      host('h1', { memoryFreeBytes: 16 * GiB }),
      host('h2', { memoryFreeBytes: 2 * GiB }),
      host('h3', { memoryFreeBytes: 4 * GiB }),
    ],
    upgrade: ['h1', 'h2'],
    vms: [vm('x', 'h2'), vm('y', 'h2')],
    targetQemuVersion: '10.1.0',
  });
  assert.deepEqual(summary(p), ['h1:', 'h2: x->h1 y->h1']);
  // The fabric afterwards, with h2 in maintenance: x and y cannot leave h1 for h3 (still 10.0),
  // though they were booted on 10.0 before.
  const stranded = refused({
    hosts: [
      host('h1', { qemuVersion: '10.1.0' }),
      host('h2', { qemuVersion: '10.1.0', maintenance: 'in' }),
      host('h3', { memoryFreeBytes: 16 * GiB }),
    ],
    upgrade: ['h1'],
    vms: [vm('x', 'h1'), vm('y', 'h1')],
  });
  assert.deepEqual(
    stranded.map((s) => [s.vm, rules(s)]),
    [
      ['x', { h2: ['maintenance'], h3: ['qemu-version'] }],
      ['y', { h2: ['maintenance'], h3: ['qemu-version'] }],
    ],
  );
});

test('stranded by machine type and by CPU model, each rule named', () => {
  const stranded = refused({
    hosts: [host('h1'), host('h2', { machineType: 'pc-q35-10.1', cpuModel: 'host' })],
    upgrade: ['h1'],
    vms: [vm('v', 'h1')],
  });
  assert.deepEqual(rules(stranded[0]), { h2: ['machine-type', 'cpu-model'] });
  assert.match(
    stranded[0]?.targets[0]?.failed[0]?.detail ?? '',
    /v uses pc-q35-7\.2, h2 offers pc-q35-10\.1/,
  );
});

test('stranded by a host in maintenance (entering or in), an unreachable one, and the hosts of the plan itself', () => {
  const stranded = refused({
    hosts: [
      host('h1'),
      host('h2', { maintenance: 'in' }),
      host('h3', { maintenance: 'entering' }),
      host('h4', { state: 'unreachable' }),
    ],
    upgrade: ['h1'],
    vms: [vm('v', 'h1')],
  });
  assert.deepEqual(rules(stranded[0]), { h2: ['maintenance'], h3: ['maintenance'], h4: ['host-up'] });

  // Two hosts, both to upgrade: the first one's VM goes to the second and back after its upgrade.
  const p = plan({ hosts: [host('h1'), host('h2')], upgrade: ['h2', 'h1'], vms: [vm('v', 'h1')] });
  assert.deepEqual(summary(p), ['h2:', 'h1: v->h2']);
  // A single host: nowhere to go at all.
  const alone = refused({ hosts: [host('h1')], upgrade: ['h1'], vms: [vm('v', 'h1')] });
  assert.deepEqual(alone[0]?.targets, []);
});

test('stranded by local disk space; a disk on shared storage the target sees stays (memory only)', () => {
  const hosts = [
    host('h1', {
      datastores: [
        { name: 'local', default: true, freeBytes: 100 * GiB },
        { name: 'san', default: false, freeBytes: 500 * GiB, storageId: 'S1' },
      ],
    }),
    host('h2', {
      datastores: [
        { name: 'local', default: true, freeBytes: 3 * GiB },
        { name: 'shared', default: false, freeBytes: 500 * GiB, storageId: 'S1' },
      ],
    }),
  ];
  const local = vm('local-vm', 'h1', { disks: [{ id: 'root', datastore: 'local', requiredBytes: 4 * GiB }] });
  const stranded = refused({ hosts, upgrade: ['h1'], vms: [local] });
  assert.deepEqual(rules(stranded[0]), { h2: ['disk-space'] });
  assert.match(
    stranded[0]?.targets[0]?.failed[0]?.detail ?? '',
    /datastore local on h2 has 3\.0 GiB free, local-vm's disks need 4\.0 GiB/,
  );

  const shared = vm('shared-vm', 'h1', {
    disks: [{ id: 'root', datastore: 'san', requiredBytes: 40 * GiB }],
  });
  const p = plan({ hosts, upgrade: ['h1'], vms: [shared] });
  assert.equal(p.steps[0]?.moves[0]?.memoryOnly, true);
  assert.match(p.steps[0]?.moves[0]?.why ?? '', /memory only/);

  // A mixed VM mirrors only its local disk: 2 GiB fits, though its shared disk is 40 GiB.
  const mixed = vm('mixed', 'h1', {
    disks: [
      { id: 'root', datastore: 'san', requiredBytes: 40 * GiB },
      { id: 'data', datastore: 'local', requiredBytes: 2 * GiB },
    ],
  });
  const q = plan({ hosts, upgrade: ['h1'], vms: [mixed] });
  assert.equal(q.steps[0]?.moves[0]?.memoryOnly, false);
  assert.match(q.steps[0]?.moves[0]?.why ?? '', /disks mirrored \(2\.0 GiB on local\)/);
});

test("space on a shared datastore is one budget: two hosts' moves onto it add up", () => {
  const sharedDefault = (name: string) =>
    host(name, { datastores: [{ name: 'nas', default: true, freeBytes: 5 * GiB, storageId: 'NAS' }] });
  const stranded = refused({
    hosts: [host('h1'), sharedDefault('h2'), sharedDefault('h3')],
    upgrade: ['h1'],
    vms: [
      vm('a', 'h1', { disks: [{ id: 'root', datastore: 'local', requiredBytes: 3 * GiB }] }),
      vm('b', 'h1', { disks: [{ id: 'root', datastore: 'local', requiredBytes: 3 * GiB }] }),
    ],
  });
  assert.deepEqual(
    stranded.map((s) => [s.vm, rules(s)]),
    [['b', { h2: ['disk-space'], h3: ['disk-space'] }]],
  );
});

test('every stranded VM of every step is listed, not only the first', () => {
  const stranded = refused({
    hosts: [host('h1'), host('h2', { memoryFreeBytes: 0 }), host('h3', { memoryFreeBytes: 0 })],
    upgrade: ['h2', 'h3'],
    vms: [vm('p', 'h2'), vm('q', 'h3'), vm('r', 'h3', { cpuModel: 'host' })],
  });
  // h2 first (one VM): p goes to h1; then h3: q to h1 (8-1 GiB left), r fits nowhere (cpu-model on
  // h1, memory on upgraded h2? h2 got p's memory back: cpu-model there too).
  assert.deepEqual(
    stranded.map((s) => [s.step, s.vm, rules(s)]),
    [[2, 'r', { h1: ['cpu-model'], h2: ['cpu-model'] }]],
  );
});

test('a plan host on a QEMU newer than the target would be downgraded', () => {
  assert.deepEqual(
    newerThanTarget(
      [
        { name: 'a', qemuVersion: '10.1.0' },
        { name: 'b', qemuVersion: '9.2' },
      ],
      '10.0.2',
    ),
    [{ name: 'a', qemuVersion: '10.1.0' }],
  );
});

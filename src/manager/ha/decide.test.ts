import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decideHa, type HaHost, type HaVm } from './decide.js';

const GiB = 1024 ** 3;
const NOW = 1_000_000_000;

const host = (name: string, over: Partial<HaHost> = {}): HaHost => ({
  name,
  cluster: 'c1',
  reachable: true,
  lastSeenMs: NOW,
  maintenance: 'none',
  leases: true,
  memoryFreeBytes: 8 * GiB,
  sharedStorage: ['s1'],
  ...over,
});
const deadHost = (name: string) => host(name, { reachable: false, lastSeenMs: NOW - 60_000 });
const vm = (name: string, over: Partial<HaVm> = {}): HaVm => ({
  name,
  host: 'host1',
  running: true,
  memoryBytes: GiB,
  protected: true,
  priority: 500,
  preferredHosts: [],
  disks: [{ id: 'root', datastore: 'shared', storageId: 's1' }],
  ...over,
});
const decide = (hosts: HaHost[], vms: HaVm[], restarting?: Set<string>) =>
  decideHa({ hosts, vms, nowMs: NOW, deadAfterSeconds: 10, ...(restarting ? { restarting } : {}) });

test('a host silent for the dead time is dead; one silent for less is not', () => {
  const hosts = [host('host1', { reachable: false, lastSeenMs: NOW - 9_999 }), host('host2')];
  assert.deepEqual(decide(hosts, [vm('a')]).deadHosts, [], 'not dead after 9.999 s');
  hosts[0] = host('host1', { reachable: false, lastSeenMs: NOW - 10_000 });
  assert.deepEqual(decide(hosts, [vm('a')]).deadHosts, ['host1'], 'dead after 10 s');
});

test('a host outside any cluster is never dead for HA', () => {
  const d = decide(
    [host('host1', { cluster: null, reachable: false, lastSeenMs: 0 }), host('host2')],
    [vm('a')],
  );
  assert.deepEqual(d, { deadHosts: [], restarts: [], stranded: [] });
});

test('protected running VMs restart by priority, then name; unprotected and stopped ones do not', () => {
  const d = decide(
    [deadHost('host1'), host('host2'), host('host3')],
    [
      vm('low', { priority: 100 }),
      vm('b-high', { priority: 900 }),
      vm('a-high', { priority: 900 }),
      vm('free', { protected: false }),
      vm('off', { running: false }),
    ],
  );
  assert.deepEqual(
    d.restarts.map((r) => r.vm),
    ['a-high', 'b-high', 'low'],
  );
});

test('preferred hosts come first in their order; else the peer with the most free memory', () => {
  const hosts = [deadHost('host1'), host('host2', { memoryFreeBytes: 4 * GiB }), host('host3')];
  assert.equal(decide(hosts, [vm('a')]).restarts[0]?.to, 'host3', 'most free memory');
  assert.equal(decide(hosts, [vm('a', { preferredHosts: ['host2'] })]).restarts[0]?.to, 'host2');
  assert.equal(
    decide(hosts, [vm('a', { preferredHosts: ['host9', 'host1', 'host2'] })]).restarts[0]?.to,
    'host2',
    'an unknown or dead preferred host is passed over',
  );
});

test('memory is booked as VMs are placed: a round never overfills a host', () => {
  const hosts = [
    deadHost('host1'),
    host('host2', { memoryFreeBytes: 2 * GiB }),
    host('host3', { memoryFreeBytes: GiB }),
  ];
  const d = decide(hosts, [vm('a'), vm('b'), vm('c'), vm('d')]);
  assert.deepEqual(
    d.restarts.map((r) => `${r.vm}>${r.to}`),
    ['a>host2', 'b>host2', 'c>host3'],
  );
  assert.equal(d.stranded[0]?.vm, 'd');
  assert.match(d.stranded[0]?.reason ?? '', /host2: not enough free memory; host3: not enough free memory/);
});

test('a VM with a local disk is stranded, named with the disk and datastore', () => {
  const d = decide(
    [deadHost('host1'), host('host2')],
    [
      vm('a', {
        disks: [
          { id: 'root', datastore: 'shared', storageId: 's1' },
          { id: 'data', datastore: 'local', storageId: null },
        ],
      }),
    ],
  );
  assert.deepEqual(d.restarts, []);
  assert.deepEqual(d.stranded, [
    { vm: 'a', from: 'host1', reason: "disk data is on host1's local datastore local" },
  ]);
});

test('targets must be reachable, out of maintenance, in the lockspace, in the cluster and see the storage', () => {
  const d = decide(
    [
      deadHost('host1'),
      host('host2', { maintenance: 'entering' }),
      host('host3', { leases: false }),
      host('host4', { sharedStorage: ['s2'] }),
      host('host5', { cluster: 'c2' }),
      deadHost('host6'),
    ],
    [vm('a')],
  );
  assert.deepEqual(d.restarts, []);
  assert.equal(
    d.stranded[0]?.reason,
    "no host can take it (host2: in maintenance; host3: not in the lockspace; host4: does not see the VM's shared storage; host6: unreachable)",
  );
});

test('VMs already restarting are left alone', () => {
  const d = decide([deadHost('host1'), host('host2')], [vm('a'), vm('b')], new Set(['a']));
  assert.deepEqual(
    d.restarts.map((r) => r.vm),
    ['b'],
  );
});

test('property: no host gets more memory than it has free, and every candidate is placed or stranded once', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 8 }), { minLength: 1, maxLength: 4 }),
      fc.array(fc.record({ mem: fc.integer({ min: 1, max: 4 }), prio: fc.integer({ min: 0, max: 1000 }) }), {
        maxLength: 12,
      }),
      (free, specs) => {
        const hosts = [
          deadHost('host1'),
          ...free.map((g, i) => host(`peer${i}`, { memoryFreeBytes: g * GiB })),
        ];
        const vms = specs.map((s, i) => vm(`vm${i}`, { memoryBytes: s.mem * GiB, priority: s.prio }));
        const d = decide(hosts, vms);
        for (const h of hosts) {
          const booked = d.restarts
            .filter((r) => r.to === h.name)
            .reduce((n, r) => n + vms.find((v) => v.name === r.vm)!.memoryBytes, 0);
          if (booked > h.memoryFreeBytes) return false;
        }
        const seen = [...d.restarts.map((r) => r.vm), ...d.stranded.map((s) => s.vm)].sort();
        return JSON.stringify(seen) === JSON.stringify(vms.map((v) => v.name).sort());
      },
    ),
  );
});

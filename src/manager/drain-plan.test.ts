import assert from 'node:assert/strict';
import { test } from 'node:test';
import { drainOrder, drainTargets, whyNoTarget, type DrainHost, type DrainVm } from './drain-plan.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

const vm = (name: string, ha: Partial<DrainVm['ha']> = {}, memoryBytes = 512 * MiB): DrainVm => ({
  id: `id-${name}`,
  name,
  state: 'running',
  memoryBytes,
  ha: { protected: false, priority: 500, preferredHosts: [], ...ha },
});
const host = (name: string, over: Partial<DrainHost> = {}): DrainHost => ({
  id: `id-${name}`,
  name,
  clusterId: null,
  state: 'connected',
  maintenance: 'none',
  memoryFreeBytes: 4 * GiB,
  ...over,
});

test('VMs leave by HA priority, highest first; protected before unprotected at one priority; then by name', () => {
  const order = drainOrder([
    vm('web2'),
    vm('low', { priority: 10 }),
    vm('db', { priority: 900 }),
    vm('web1'),
    vm('guarded', { protected: true }),
    vm('top', { priority: 1000, protected: true }),
  ]);
  assert.deepEqual(
    order.map((v) => v.name),
    ['top', 'db', 'guarded', 'web1', 'web2', 'low'],
  );
});

test('targets: cluster peers first, then other hosts; within each the preferred hosts in their order, then the most free memory', () => {
  const source = host('h1', { clusterId: 'c1' });
  const hosts = [
    source,
    host('solo-big', { memoryFreeBytes: 30 * GiB }),
    host('peer-small', { clusterId: 'c1', memoryFreeBytes: 2 * GiB }),
    host('peer-big', { clusterId: 'c1', memoryFreeBytes: 8 * GiB }),
    host('solo-pref', { memoryFreeBytes: 1 * GiB }),
    host('other-cluster', { clusterId: 'c2', memoryFreeBytes: 9 * GiB }),
  ];
  const names = (t: ReturnType<typeof drainTargets>) => t.candidates.map((h) => h.name);
  assert.deepEqual(names(drainTargets(vm('web'), source, hosts)), [
    'peer-big',
    'peer-small',
    'solo-big',
    'other-cluster',
    'solo-pref',
  ]);
  // Preferred hosts go first within their tier, in the VM's order; a peer still beats a preferred outsider.
  assert.deepEqual(
    names(drainTargets(vm('web', { preferredHosts: ['solo-pref', 'peer-small'] }), source, hosts)),
    ['peer-small', 'peer-big', 'solo-pref', 'solo-big', 'other-cluster'],
  );
  // A standalone source has no peers: every host by preference, then room.
  assert.deepEqual(names(drainTargets(vm('web'), host('h9'), hosts)), [
    'solo-big',
    'other-cluster',
    'peer-big',
    'h1',
    'peer-small',
    'solo-pref',
  ]);
});

test('targets: unreachable hosts and hosts in maintenance are left out saying why; memory reserved by moves under way counts', () => {
  const source = host('h1', { clusterId: 'c1' });
  const hosts = [
    host('down', { clusterId: 'c1', state: 'unreachable' }),
    host('draining', { clusterId: 'c1', maintenance: 'entering' }),
    host('upgrading', { maintenance: 'in' }),
    host('busy', { clusterId: 'c1', memoryFreeBytes: 1 * GiB }),
    host('free', { memoryFreeBytes: 1 * GiB }),
  ];
  const t = drainTargets(vm('web'), source, hosts, new Map([['id-busy', 768 * MiB]]));
  assert.deepEqual(
    t.candidates.map((h) => h.name),
    ['free'],
  );
  assert.deepEqual(
    t.noRoom.map((n) => [n.host.name, n.freeBytes]),
    [['busy', 256 * MiB]],
  );
  assert.deepEqual(
    t.excluded.map((e) => e.why),
    ['host down is unreachable', 'host draining is entering maintenance', 'host upgrading is in maintenance'],
  );
  assert.equal(
    whyNoTarget(vm('web'), t, [{ host: 'free', why: 'web uses CPU model host but free offers qemu64' }]),
    'no host can take it (free: web uses CPU model host but free offers qemu64; busy: 256 MiB free, web needs 512 MiB; ' +
      'host down is unreachable; host draining is entering maintenance; host upgrading is in maintenance)',
  );
  assert.equal(
    whyNoTarget(vm('web'), drainTargets(vm('web'), source, [source]), []),
    'there is no other host',
  );
});

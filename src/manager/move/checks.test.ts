import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  failedChecks,
  fileInDatastore,
  planMove,
  planStorageMove,
  requiredBytes,
  type HostFacts,
  type MoveFacts,
  type VmFacts,
} from './checks.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const vm: VmFacts = {
  id: '7f1c0a52-5a8e-4d35-9a55-0d1f3f7a9b11',
  name: 'web-1',
  state: 'running',
  memoryMiB: 512,
  machineType: 'pc-q35-7.2',
  cpuModel: 'qemu64',
  disks: [
    {
      id: 'root',
      datastore: 'local',
      path: '/d/web-1-root.qcow2',
      virtualSizeBytes: 2 * GiB,
      allocatedBytes: 1 * GiB,
    },
    {
      id: 'data',
      datastore: 'local',
      path: '/d/web-1-data.qcow2',
      virtualSizeBytes: 4 * GiB,
      allocatedBytes: 100 * MiB,
    },
  ],
  nics: [{ id: 'net0', vswitch: 'vmsw0' }],
  toolsDisk: false,
  toolsVersion: '10.0.2',
};

const host = (name: string, over: Partial<HostFacts> = {}): HostFacts => ({
  id: `id-${name}`,
  name,
  reachable: true,
  memoryFreeBytes: 8 * GiB,
  machineType: 'pc-q35-7.2',
  cpuModel: 'qemu64',
  qemuVersion: '10.0.2',
  accelerator: 'tcg',
  datastores: [
    { name: 'local', freeBytes: 50 * GiB, default: true, path: '/d', kind: 'local' },
    { name: 'fast', freeBytes: 1 * GiB, default: false, path: '/f', kind: 'local' },
  ],
  vswitches: ['vmsw0'],
  vmNames: [],
  toolsVersion: '10.0.2',
  moveTls: true,
  maintenance: 'none',
  ...over,
});

const facts = (over: Partial<MoveFacts> = {}): MoveFacts => ({
  vm,
  source: host('h1'),
  target: host('h2'),
  secure: true,
  inFlight: [],
  engine: { coldMove: false, secure: true },
  ...over,
});

const failed = (f: MoveFacts) => failedChecks(planMove(f)).map((c) => c.check);

test('a move that fits passes every check and plans each disk on the default datastore', () => {
  const plan = planMove(facts());
  assert.equal(plan.ok, true, JSON.stringify(failedChecks(plan)));
  assert.equal(plan.mode, 'live');
  assert.equal(plan.memoryBytes, 512 * MiB);
  assert.deepEqual(
    plan.disks.map((d) => [d.diskId, d.fromDatastore, d.toDatastore]),
    [
      ['root', 'local', 'local'],
      ['data', 'local', 'local'],
    ],
  );
  assert.match(plan.spaceRule, /^allocated/);
});

test('a move to a host in maintenance (entering or in) is refused naming the host and how to end it; from one it goes', () => {
  for (const maintenance of ['entering', 'in'] as const) {
    const plan = planMove(facts({ target: host('h2', { maintenance }) }));
    assert.deepEqual(
      failedChecks(plan).map((c) => [c.check, c.field]),
      [['target-maintenance', 'to']],
    );
    assert.match(
      failedChecks(plan)[0]?.detail ?? '',
      new RegExp(`host h2 is ${maintenance} maintenance .*silobreak host resume h2`),
    );
  }
  assert.equal(planMove(facts({ source: host('h1', { maintenance: 'entering' }) })).ok, true);
});

test('the allocated rule: allocated + 5 % of virtual (min 64 MiB), capped at the virtual size', () => {
  assert.equal(
    requiredBytes({ virtualSizeBytes: 2 * GiB, allocatedBytes: GiB }),
    GiB + Math.ceil(2 * GiB * 0.05),
  );
  assert.equal(requiredBytes({ virtualSizeBytes: 100 * MiB, allocatedBytes: 0 }), 64 * MiB);
  assert.equal(requiredBytes({ virtualSizeBytes: 100 * MiB, allocatedBytes: 90 * MiB }), 100 * MiB);
});

test('disks on one datastore add up: each fits alone, together they do not', () => {
  const plan = planMove(facts({ datastore: 'fast' }));
  const space = plan.checks.find((c) => c.check === 'datastore-space');
  assert.equal(space?.ok, false);
  assert.equal(space?.field, 'datastore');
  assert.match(
    space?.detail ?? '',
    /datastore fast on h2 has 1\.0 GiB free but the disks need .* by the allocated rule: root .*, data .*; free space there or choose another datastore/,
  );
});

test('a per-disk datastore map: named disks go there, the rest to the default; unknown ids fail', () => {
  const plan = planMove(facts({ datastore: { data: 'fast' } }));
  assert.equal(plan.ok, true, JSON.stringify(failedChecks(plan)));
  assert.deepEqual(
    plan.disks.map((d) => d.toDatastore),
    ['local', 'fast'],
  );
  assert.deepEqual(failed(facts({ datastore: { swap: 'fast' } })), ['disk-ids']);
  assert.deepEqual(failed(facts({ datastore: 'nope' })), ['datastore-exists', 'datastore-exists']);
});

test('every failed check is reported at once, each saying what to fix', () => {
  const plan = planMove(
    facts({
      target: host('h2', {
        memoryFreeBytes: 100 * MiB,
        machineType: 'pc-i440fx-7.2',
        cpuModel: 'host',
        vswitches: ['other'],
        vmNames: ['web-1'],
        datastores: [{ name: 'local', freeBytes: 10 * MiB, default: true, path: '/d', kind: 'local' }],
        moveTls: false,
      }),
      inFlight: [{ jobId: 'j1', kind: 'vm-move' }],
    }),
  );
  assert.equal(plan.ok, false);
  const byName = Object.fromEntries(failedChecks(plan).map((c) => [c.check, c.detail]));
  assert.deepEqual(Object.keys(byName).sort(), [
    'cpu-model',
    'datastore-space',
    'machine-type',
    'name-free',
    'no-move-in-flight',
    'secure',
    'target-memory',
    'vswitches',
  ]);
  assert.match(
    byName['target-memory'] ?? '',
    /h2 has 100 MiB free, web-1 needs 512 MiB: stop or move VMs there/,
  );
  assert.match(byName['vswitches'] ?? '', /no virtual switch vmsw0 \(NIC net0; it has other\)/);
  assert.match(byName['no-move-in-flight'] ?? '', /job j1/);
  assert.match(byName['machine-type'] ?? '', /pc-q35-7\.2 but h2 offers pc-i440fx-7\.2/);
});

test('unreachable hosts, the same host, and VM states other than running or stopped fail', () => {
  assert.deepEqual(
    failed(facts({ target: host('h2', { reachable: false, unreachableReason: 'refused' }) })),
    ['target-reachable'],
  );
  assert.deepEqual(failed(facts({ target: host('h1') })), ['target-host']);
  assert.deepEqual(failed(facts({ vm: { ...vm, state: 'paused' } })), ['vm-state']);
});

test('a stopped VM is a cold move: no memory needed; refused while the engine cannot copy it', () => {
  const stopped = { ...vm, state: 'stopped' as const };
  const plan = planMove(facts({ vm: stopped, target: host('h2', { memoryFreeBytes: 0 }) }));
  assert.equal(plan.mode, 'cold');
  assert.equal(plan.memoryBytes, 0);
  assert.deepEqual(
    failedChecks(plan).map((c) => c.check),
    ['cold-move'],
  );
  // Secure (the default) as it is: the cold copy runs over TLS-PSK with the move's own secret,
  // whether the hosts hold fabric certificates or not.
  const cold = planMove(
    facts({ vm: stopped, engine: { coldMove: true, secure: true }, target: host('h2', { moveTls: false }) }),
  );
  assert.equal(cold.ok, true, JSON.stringify(failedChecks(cold)));
  assert.match(cold.checks.find((c) => c.check === 'secure')?.detail ?? '', /TLS with a secret of this move/);
});

test('a live move is TLS by default: a host without fabric certificates refuses it before any work', () => {
  const plan = planMove(facts());
  assert.equal(plan.ok, true);
  assert.match(plan.checks.find((c) => c.check === 'secure')?.detail ?? '', /accepts only the source host/);

  const refused = planMove(facts({ target: host('h2', { moveTls: false }) }));
  assert.deepEqual(
    failedChecks(refused).map((c) => [c.check, c.field]),
    [['secure', 'secure']],
  );
  assert.match(
    failedChecks(refused)[0]?.detail ?? '',
    /^secure: host h2 has no fabric certificates for TLS \(<stateDir>\/tls\): enroll it, or move with --no-secure/,
  );
  const both = planMove(
    facts({ source: host('h1', { moveTls: false }), target: host('h2', { moveTls: false }) }),
  );
  assert.match(failedChecks(both)[0]?.detail ?? '', /host h1 and host h2 have no fabric certificates/);
  // Unknown (an agent that does not say): its prepare refuses, the check does not guess.
  assert.equal(planMove(facts({ target: host('h2', { moveTls: undefined }) })).ok, true);

  // --no-secure: no certificates needed, and the plan says what it gives up.
  const plain = planMove(facts({ secure: false, target: host('h2', { moveTls: false }) }));
  assert.equal(plain.ok, true);
  const warning = plain.checks.find((c) => c.check === 'secure');
  assert.deepEqual([warning?.ok, warning?.warning], [true, true]);
  assert.match(warning?.detail ?? '', /in clear; only for a trusted dedicated link/);
});

test('move-storage: only disks not already there, and only when there is room', () => {
  const h = host('h1');
  const plan = planStorageMove({ vm, host: h, datastore: 'fast', inFlight: [] });
  assert.equal(plan.kind, 'vm-move-storage');
  assert.equal(plan.from, plan.to);
  assert.deepEqual(
    failedChecks(plan).map((c) => c.check),
    ['datastore-space'],
  );
  const one = planStorageMove({ vm, host: h, datastore: 'fast', diskIds: ['data'], inFlight: [] });
  assert.equal(one.ok, true, JSON.stringify(failedChecks(one)));
  assert.deepEqual(
    one.disks.map((d) => d.diskId),
    ['data'],
  );
  const none = planStorageMove({ vm, host: h, datastore: 'local', inFlight: [] });
  assert.deepEqual(
    failedChecks(none).map((c) => c.check),
    ['disks-to-move'],
  );
  const named = planStorageMove({ vm, host: h, datastore: 'local', diskIds: ['root', 'swap'], inFlight: [] });
  assert.deepEqual(
    failedChecks(named).map((c) => c.check),
    ['disk-ids', 'disks-elsewhere', 'disks-to-move'],
  );
});

test('a live move under TCG needs QEMU 10 on both hosts; under KVM, or cold, older QEMU is fine', () => {
  const old = facts({ target: host('h2', { qemuVersion: '7.2.22' }) });
  assert.deepEqual(failed(old), ['qemu-version']);
  const check = planMove(old).checks.find((c) => c.check === 'qemu-version');
  assert.equal(check?.field, 'to');
  assert.match(
    check?.detail ?? '',
    /host h2 runs QEMU 7\.2\.22 under TCG: QEMU before 10 loses guest memory writes .*upgrade QEMU there/,
  );
  assert.deepEqual(failed(facts({ source: host('h1', { qemuVersion: '7.2.22', accelerator: 'kvm' }) })), []);
  assert.deepEqual(failed(facts({ source: host('h1', { qemuVersion: 'unknown' }) })), ['qemu-version']);
  const cold = facts({
    vm: { ...vm, state: 'stopped' },
    target: host('h2', { qemuVersion: '7.2.22' }),
    engine: { coldMove: true, secure: false },
  });
  assert.deepEqual(failed(cold), []);
});

test('a running VM never moves to an older QEMU than its host runs; versions compare as numbers', () => {
  const newer = host('h1', { qemuVersion: '10.10.0' });
  const back = facts({ source: newer, target: host('h2', { qemuVersion: '10.9.1' }) });
  assert.deepEqual(failed(back), ['qemu-version']);
  const check = planMove(back).checks.find((c) => c.check === 'qemu-version');
  assert.equal(check?.field, 'to');
  assert.match(
    check?.detail ?? '',
    /^web-1 runs on QEMU 10\.10\.0 \(host h1\) and host h2 has the older QEMU 10\.9\.1: a running VM cannot move to an older QEMU/,
  );
  // Under KVM too: the rule is QEMU's migration stream, not TCG's.
  const kvm = (name: string, qemuVersion: string) => host(name, { qemuVersion, accelerator: 'kvm' });
  assert.deepEqual(failed(facts({ source: kvm('h1', '10.1.0'), target: kvm('h2', '10.0.2') })), [
    'qemu-version',
  ]);
  // Forward, or the same version: fine (10.10 is newer than 10.9, not older as text would have it).
  assert.deepEqual(
    failed(facts({ source: host('h2', { qemuVersion: '10.9.1' }), target: { ...newer, id: 'id-h3' } })),
    [],
  );
  assert.deepEqual(failed(facts({ source: newer, target: host('h2', { qemuVersion: '10.10.0' }) })), []);
  // Both problems at once are both said.
  const both = planMove(facts({ source: newer, target: host('h2', { qemuVersion: '7.2.22' }) }));
  assert.match(
    failedChecks(both)[0]?.detail ?? '',
    /the older QEMU 7\.2\.22: .*; host h2 runs QEMU 7\.2\.22 under TCG/,
  );
  // A stopped VM starts afresh on the target's QEMU: a cold move may go to an older one.
  const cold = facts({
    vm: { ...vm, state: 'stopped' },
    source: newer,
    target: host('h2', { qemuVersion: '10.0.2' }),
    engine: { coldMove: true, secure: false },
  });
  assert.deepEqual(failed(cold), []);
});

test('guest tools: an inserted tools disk refuses the move; tools older than the target only warn', () => {
  const inserted = planMove(facts({ vm: { ...vm, toolsDisk: true } }));
  assert.equal(inserted.ok, false);
  assert.match(failedChecks(inserted)[0]?.detail ?? '', /eject it first \(silobreak vm tools eject web-1\)/);

  const old = planMove(facts({ vm: { ...vm, toolsVersion: '7.2.22' } }));
  assert.equal(old.ok, true, 'a warning does not refuse');
  const warning = old.checks.find((c) => c.check === 'guest-tools');
  assert.deepEqual([warning?.ok, warning?.warning], [true, true]);
  assert.match(warning?.detail ?? '', /7\.2\.22 is older than h2's tools 10\.0\.2/);

  for (const quiet of [
    facts(), // the same version
    facts({ vm: { ...vm, toolsVersion: undefined } }), // no agent ever answered: the status says so
    facts({ target: host('h2', { toolsVersion: undefined }) }), // the target ships no tools disk
  ])
    assert.equal(
      planMove(quiet).checks.some((c) => c.warning),
      false,
    );
});

// ---- shared storage (issue 30): which disks stay, the plan's wording, the refusals ----

const SAN = '6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f';
const OTHER_SAN = '7a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d';
const withSan = (name: string, sanName: string, storageId = SAN, over: Partial<HostFacts> = {}) => {
  const base = host(name, over);
  return {
    ...base,
    datastores: [
      ...base.datastores,
      {
        name: sanName,
        freeBytes: 0,
        default: false,
        path: `/mnt/${sanName}`,
        kind: 'shared' as const,
        storageId,
      },
    ],
  };
};
const sharedVm = (disks: VmFacts['disks']): VmFacts => ({ ...vm, disks });
const onSan = (id: string, file = `web-1-${id}.qcow2`) => ({
  id,
  datastore: 'san',
  path: `/mnt/san/${file}`,
  virtualSizeBytes: 4 * GiB,
  allocatedBytes: 3 * GiB,
});
const allShared = sharedVm([onSan('root'), onSan('data', 'vms/web-1/data.qcow2')]);

test('every disk on shared storage the target sees stays: the move is memory only, needs no space there', () => {
  // The target calls the same storage by another name; it has no free space on it (capacity is shared).
  const plan = planMove(facts({ vm: allShared, source: withSan('h1', 'san'), target: withSan('h2', 'nas') }));
  assert.equal(plan.ok, true, JSON.stringify(failedChecks(plan)));
  assert.equal(plan.memoryOnly, true);
  assert.deepEqual(
    plan.disks.map((d) => [d.diskId, d.fromDatastore, d.toDatastore, d.requiredBytes, d.stays]),
    [
      ['root', 'san', 'nas', 0, { storageId: SAN, file: 'web-1-root.qcow2' }],
      ['data', 'san', 'nas', 0, { storageId: SAN, file: 'vms/web-1/data.qcow2' }],
    ],
  );
  const shared = plan.checks.find((c) => c.check === 'shared-storage');
  assert.equal(
    shared?.detail,
    'disk root stays on shared datastore nas (memory-only); disk data stays on shared datastore nas (memory-only): host h2 sees the same storage, nothing of them is copied; the move is memory only',
  );
  assert.equal(
    plan.checks.some((c) => c.check === 'datastore-space'),
    false,
    'no space check for disks that stay',
  );
  // Asked for by the target's name of that storage: the same.
  assert.equal(
    planMove(
      facts({ vm: allShared, source: withSan('h1', 'san'), target: withSan('h2', 'nas'), datastore: 'nas' }),
    ).memoryOnly,
    true,
  );
});

test('a mixed VM: the shared disk stays, the local one is mirrored; the move is not memory only', () => {
  const mixed = sharedVm([onSan('root'), { ...(vm.disks[1] as VmFacts['disks'][number]) }]);
  const plan = planMove(facts({ vm: mixed, source: withSan('h1', 'san'), target: withSan('h2', 'san') }));
  assert.equal(plan.ok, true, JSON.stringify(failedChecks(plan)));
  assert.equal(plan.memoryOnly, false);
  assert.deepEqual(
    plan.disks.map((d) => [d.diskId, d.toDatastore, d.stays === undefined]),
    [
      ['root', 'san', false],
      ['data', 'local', true],
    ],
  );
  assert.match(
    plan.checks.find((c) => c.check === 'shared-storage')?.detail ?? '',
    /^disk root stays on shared datastore san \(memory-only\): host h2 sees the same storage, nothing of it is copied$/,
  );
  // Only the mirrored disk needs space on the target.
  assert.match(plan.checks.find((c) => c.check === 'datastore-space')?.detail ?? '', /datastore local on h2/);
});

test('a shared disk the target cannot see is copied (shared-nothing) with a warning; other storage of the same name is not it', () => {
  for (const target of [host('h2'), withSan('h2', 'san', OTHER_SAN)]) {
    const plan = planMove(facts({ vm: allShared, source: withSan('h1', 'san'), target }));
    assert.equal(plan.ok, true, JSON.stringify(failedChecks(plan)));
    assert.equal(plan.memoryOnly, false);
    assert.deepEqual(
      plan.disks.map((d) => [d.toDatastore, d.stays]),
      [
        ['local', undefined],
        ['local', undefined],
      ],
    );
    const warnings = plan.checks.filter((c) => c.check === 'shared-storage');
    assert.deepEqual(
      warnings.map((w) => [w.ok, w.warning]),
      [
        [true, true],
        [true, true],
      ],
    );
    assert.match(
      warnings[0]?.detail ?? '',
      /^disk root is on shared datastore san \(storage 6f1c2d3e-.*\), which host h2 does not see: it is copied \(shared-nothing\)$/,
    );
  }
});

test('naming the shared datastore on a target that does not see it is refused, field named, nothing planned for the disk', () => {
  const refusedOn = (target: HostFacts, datastore: MoveFacts['datastore']) => {
    const plan = planMove(facts({ vm: allShared, source: withSan('h1', 'san'), target, datastore }));
    assert.equal(plan.ok, false);
    return plan;
  };
  const missing = refusedOn(host('h2'), 'san');
  const checks = failedChecks(missing);
  assert.deepEqual(
    checks.map((c) => [c.check, c.field]),
    [
      ['shared-storage', 'datastore'],
      ['shared-storage', 'datastore'],
    ],
    'one refusal per disk, not a second "no such datastore"',
  );
  assert.match(
    checks[0]?.detail ?? '',
    /^disk root: datastore san is shared datastore san \(storage 6f1c.*\), which host h2 does not see \(it has no datastore san\): mount that storage on h2/,
  );
  assert.deepEqual(missing.disks, []);
  // h2's own "san" is other storage: still refused, saying so.
  const other = refusedOn(withSan('h2', 'san', OTHER_SAN), { root: 'san' });
  assert.match(failedChecks(other)[0]?.detail ?? '', /\(its datastore san is other storage\)/);
  // Another datastore of h2 named for the disk: copied there, not refused.
  const elsewhere = planMove(
    facts({ vm: allShared, source: withSan('h1', 'san'), target: host('h2'), datastore: 'fast' }),
  );
  assert.deepEqual(
    failedChecks(elsewhere).map((c) => c.check),
    ['datastore-space'],
  );
  assert.deepEqual(
    elsewhere.disks.map((d) => d.toDatastore),
    ['fast', 'fast'],
  );
});

test('a datastore other than the shared one, asked for a disk the target could keep in place, moves it there', () => {
  const plan = planMove(
    facts({
      vm: allShared,
      source: withSan('h1', 'san'),
      target: withSan('h2', 'san'),
      datastore: { data: 'local' },
    }),
  );
  assert.equal(plan.ok, true, JSON.stringify(failedChecks(plan)));
  assert.deepEqual(
    plan.disks.map((d) => [d.diskId, d.toDatastore, d.stays !== undefined]),
    [
      ['root', 'san', true],
      ['data', 'local', false],
    ],
  );
});

test('a cold move copies shared disks (it cannot leave them in place yet) and refuses a copy onto their own storage', () => {
  const stopped = { ...allShared, state: 'stopped' as const };
  const cold = facts({
    vm: stopped,
    source: withSan('h1', 'san'),
    target: withSan('h2', 'san'),
    engine: { coldMove: true, secure: true },
  });
  const plan = planMove(cold);
  assert.equal(plan.ok, true, JSON.stringify(failedChecks(plan)));
  assert.equal(plan.memoryOnly, false);
  assert.deepEqual(
    plan.disks.map((d) => [d.toDatastore, d.stays]),
    [
      ['local', undefined],
      ['local', undefined],
    ],
  );
  assert.match(
    plan.checks.find((c) => c.check === 'shared-storage')?.detail ?? '',
    /a cold move copies every disk: start the VM to move it by memory alone/,
  );
  const onto = planMove({ ...cold, datastore: 'san' });
  assert.deepEqual(
    failedChecks(onto).map((c) => [c.check, c.field]),
    [
      ['shared-storage', 'datastore'],
      ['shared-storage', 'datastore'],
    ],
  );
});

test('a disk file outside its shared datastore directory is not assumed to be there on the target', () => {
  const odd = sharedVm([{ ...onSan('root'), path: '/elsewhere/web-1-root.qcow2' }]);
  const plan = planMove(facts({ vm: odd, source: withSan('h1', 'san'), target: withSan('h2', 'san') }));
  assert.deepEqual(
    plan.disks.map((d) => [d.toDatastore, d.stays]),
    [['local', undefined]],
  );
  assert.match(
    plan.checks.find((c) => c.check === 'shared-storage')?.detail ?? '',
    /is not under its datastore's directory/,
  );
});

test('fileInDatastore: the path under the root, never outside it', () => {
  assert.equal(fileInDatastore('/mnt/san', '/mnt/san/a/b.qcow2'), 'a/b.qcow2');
  assert.equal(fileInDatastore('/mnt/san/', '/mnt/san/b.qcow2'), 'b.qcow2');
  assert.equal(fileInDatastore('/mnt/san', '/mnt/san2/b.qcow2'), undefined);
  assert.equal(fileInDatastore('/mnt/san', '/mnt/san/../x.qcow2'), undefined);
  assert.equal(fileInDatastore('/mnt/san', '/mnt/san'), undefined);
});

test("a manager that does not lead checks on the inventory: a host connected at the leader's last poll passes, one unreachable there fails", () => {
  const plan = planMove(facts({ source: host('h1', { fromInventory: true }) }));
  assert.equal(plan.ok, true, JSON.stringify(failedChecks(plan)));
  assert.match(
    plan.checks.find((c) => c.check === 'source-reachable')?.detail ?? '',
    /^source host h1 answered the leading manager's last poll$/,
  );
  assert.deepEqual(
    failed(
      facts({ target: host('h2', { fromInventory: true, reachable: false, unreachableReason: 'refused' }) }),
    ),
    ['target-reachable'],
  );
});

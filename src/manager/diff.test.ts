import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Vm } from '../api/index.js';
import { classify, diffCollections, diffFields } from './diff.js';
import { vmChanges } from './inventory.js';

test('diffFields reports watched fields only, with before and after, treating undefined as null', () => {
  const changes = diffFields(
    { a: 1, b: 'x', c: undefined, d: [1, 2], ignored: 1 },
    { a: 2, b: 'x', c: null, d: [1, 3], ignored: 2 },
    ['a', 'b', 'c', 'd'],
  );
  assert.deepEqual(changes, [
    { field: 'a', before: 1, after: 2 },
    { field: 'd', before: [1, 2], after: [1, 3] },
  ]);
});

test('classify splits state from settings', () => {
  const out = classify([
    { field: 'state', before: 'stopped', after: 'running' },
    { field: 'vcpus', before: 1, after: 2 },
  ]);
  assert.deepEqual(
    out.map((c) => [c.action, c.changes.map((x) => x.field)]),
    [
      ['state-changed', ['state']],
      ['setting-changed', ['vcpus']],
    ],
  );
  assert.deepEqual(classify([]), []);
});

test('diffCollections matches items by key', () => {
  const d = diffCollections([{ k: 'a' }, { k: 'b' }], [{ k: 'b' }, { k: 'c' }], (x) => x.k);
  assert.deepEqual(d.added, [{ k: 'c' }]);
  assert.deepEqual(d.removed, [{ k: 'a' }]);
  assert.deepEqual(d.both, [{ before: { k: 'b' }, after: { k: 'b' } }]);
});

const vm: Vm = {
  id: '6f1f7c2a-1111-4222-8333-444455556666',
  name: 'web1',
  state: 'stopped',
  vcpus: 1,
  memoryMiB: 256,
  disks: [
    {
      id: 'root',
      datastore: 'local',
      path: '/d/root.qcow2',
      format: 'qcow2',
      virtualSizeBytes: 2 ** 30,
      allocatedBytes: 1000,
      nodeName: 'fmt-root',
    },
  ],
  nics: [{ id: 'net0', vswitch: 'vmsw0', mac: '52:54:00:00:00:01', tap: 'tap0' }],
  machineType: 'pc-q35-7.2',
  cpuModel: 'qemu64',
  accelerator: 'tcg',
  createdAt: '2026-01-01T00:00:00.000Z',
};

test('a new VM is one created record', () => {
  assert.deepEqual(
    vmChanges(undefined, vm, 'h1').map((c) => [c.object.kind, c.action]),
    [['vm', 'created']],
  );
});

test('volatile VM figures (pid, allocation, start time) make no change record', () => {
  const later: Vm = {
    ...vm,
    pid: 1234,
    startedAt: '2026-01-01T00:01:00.000Z',
    disks: [{ ...vm.disks[0]!, allocatedBytes: 99999 }],
  };
  assert.deepEqual(vmChanges(vm, later, 'h1'), []);
});

test('state, settings, disks, NICs and a host move each make the matching record', () => {
  const after: Vm = {
    ...vm,
    state: 'running',
    memoryMiB: 512,
    disks: [
      { ...vm.disks[0]!, virtualSizeBytes: 2 * 2 ** 30 },
      { ...vm.disks[0]!, id: 'data', path: '/d/data.qcow2' },
    ],
    nics: [],
  };
  const records = vmChanges(vm, after, 'h2', 'h1');
  assert.deepEqual(
    records.map((r) => [r.object.kind, r.object.name, r.action, (r.changes ?? []).map((c) => c.field)]),
    [
      ['vm', 'web1', 'state-changed', ['state']],
      ['vm', 'web1', 'setting-changed', ['memoryMiB', 'host']],
      ['disk', 'web1/data', 'created', []],
      ['disk', 'web1/root', 'setting-changed', ['virtualSizeBytes']],
      ['nic', 'web1/net0', 'deleted', []],
    ],
  );
  const setting = records[1]?.changes ?? [];
  assert.deepEqual(setting, [
    { field: 'memoryMiB', before: 256, after: 512 },
    { field: 'host', before: 'h1', after: 'h2' },
  ]);
});

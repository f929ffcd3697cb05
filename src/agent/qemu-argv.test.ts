import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { VmDefinition } from './definitions.js';
import { buildQemuArgv, isQemuOfVm, qemuOptValue, vmPaths } from './qemu-argv.js';

const def: VmDefinition = {
  id: '0b5d2f8e-7d0c-4c41-9f7e-1d2a3b4c5d6e',
  toolsDisk: false,
  name: 'web-1',
  vcpus: 2,
  memoryMiB: 512,
  disks: [
    {
      id: 'disk0',
      datastore: 'ds1',
      path: '/data/ds 1,x/web-1-disk0.qcow2',
      format: 'qcow2',
      sizeBytes: 1 << 30,
    },
  ],
  nics: [{ id: 'nic0', vswitch: 'sw0', mac: '52:54:00:aa:bb:cc', tap: 'sb0123456789ab' }],
  machineType: 'pc-q35-7.2',
  cpuModel: 'Nehalem',
  createdAt: '2026-11-25T12:00:00.000Z',
};
const paths = vmPaths('/var/lib/sb', 'web-1');
const boot = { kernel: '/k/vmlinuz', initrd: '/k/initrd.img', append: 'console=ttyS0 sb.ip=10.0.0.5/24' };

/** The value following each occurrence of `flag`. */
const values = (argv: string[], flag: string) =>
  argv.flatMap((a, i) => (a === flag ? [argv[i + 1] ?? ''] : []));

test('paths of a VM are absolute and named after it', () => {
  assert.deepEqual(vmPaths('rel/state', 'a'), {
    qmp: `${process.cwd()}/rel/state/a.qmp`,
    qga: `${process.cwd()}/rel/state/a.qga`,
    console: `${process.cwd()}/rel/state/a.console.log`,
    qemuLog: `${process.cwd()}/rel/state/a.qemu.log`,
    pidfile: `${process.cwd()}/rel/state/a.pid`,
  });
});

test('machine, CPU, accelerator and boot come from the definition and host', () => {
  const argv = buildQemuArgv({ def, accelerator: 'tcg', paths, boot });
  assert.deepEqual(values(argv, '-machine'), ['pc-q35-7.2']);
  assert.deepEqual(values(argv, '-cpu'), ['Nehalem']);
  assert.deepEqual(values(argv, '-accel'), ['tcg,thread=multi']);
  assert.deepEqual(values(argv, '-smp'), ['2']);
  assert.deepEqual(values(argv, '-m'), ['512M']);
  assert.deepEqual(values(argv, '-uuid'), [def.id]);
  assert.deepEqual(values(argv, '-kernel'), ['/k/vmlinuz']);
  assert.deepEqual(values(argv, '-append'), [boot.append]);
  assert.ok(argv.includes('-nodefaults') && argv.includes('-daemonize'));
  assert.deepEqual(values(argv, '-pidfile'), [paths.pidfile]);
  assert.deepEqual(values(buildQemuArgv({ def, accelerator: 'kvm', paths, boot }), '-accel'), ['kvm']);
  assert.ok(!argv.includes('-incoming') && !argv.includes('-S'));
});

test('disks get stable node names and device ids, paths pass through JSON verbatim', () => {
  const argv = buildQemuArgv({ def, accelerator: 'tcg', paths, boot });
  const blockdevs = values(argv, '-blockdev').map((v) => JSON.parse(v) as Record<string, unknown>);
  assert.deepEqual(blockdevs, [
    { driver: 'file', 'node-name': 'file-disk0', filename: '/data/ds 1,x/web-1-disk0.qcow2' },
    { driver: 'throttle', 'node-name': 'thr-disk0', 'throttle-group': 'tg-ds1', file: 'file-disk0' },
    { driver: 'qcow2', 'node-name': 'disk-disk0', file: 'thr-disk0' },
  ]);
  // The device's root stays the format node: what mirrors and NBD exports address.
  assert.ok(
    values(argv, '-device').includes(
      '{"driver":"virtio-blk-pci","id":"virtio-disk-disk0","drive":"disk-disk0"}',
    ),
  );
});

test('one throttle group per datastore of the VM, with its limits or none (zero)', () => {
  const disk = def.disks[0];
  assert.ok(disk);
  const twoStores: VmDefinition = {
    ...def,
    disks: [
      disk,
      { ...disk, id: 'disk1', path: '/d/b.qcow2' },
      { ...disk, id: 'disk2', datastore: 'slow', path: '/s/c.qcow2' },
    ],
  };
  const limits = { slow: { iops: 400, bytesPerSecond: 80_000_000 } };
  const argv = buildQemuArgv({
    def: twoStores,
    accelerator: 'tcg',
    paths,
    boot,
    datastoreLimits: (name) => (name === 'slow' ? limits.slow : undefined),
  });
  assert.deepEqual(
    values(argv, '-object').map((v) => JSON.parse(v) as unknown),
    [
      { 'qom-type': 'throttle-group', id: 'tg-ds1', limits: { 'iops-total': 0, 'bps-total': 0 } },
      { 'qom-type': 'throttle-group', id: 'tg-slow', limits: { 'iops-total': 400, 'bps-total': 80_000_000 } },
    ],
  );
  const groups = values(argv, '-blockdev')
    .map((v) => JSON.parse(v) as Record<string, unknown>)
    .filter((b) => b.driver === 'throttle')
    .map((b) => [b['node-name'], b['throttle-group']]);
  assert.deepEqual(groups, [
    ['thr-disk0', 'tg-ds1'],
    ['thr-disk1', 'tg-ds1'],
    ['thr-disk2', 'tg-slow'],
  ]);
});

test('NICs use their pre-made tap and fixed MAC', () => {
  const argv = buildQemuArgv({ def, accelerator: 'tcg', paths, boot });
  assert.deepEqual(values(argv, '-netdev'), [
    'tap,id=net-nic0,ifname=sb0123456789ab,script=no,downscript=no',
  ]);
  assert.ok(
    values(argv, '-device').includes('virtio-net-pci,id=nic-nic0,netdev=net-nic0,mac=52:54:00:aa:bb:cc'),
  );
});

test('QMP, guest agent and serial console live in the state directory', () => {
  const argv = buildQemuArgv({ def, accelerator: 'tcg', paths, boot });
  const chardevs = values(argv, '-chardev');
  assert.ok(chardevs.includes('socket,id=qmp0,path=/var/lib/sb/web-1.qmp,server=on,wait=off'));
  assert.ok(chardevs.includes('socket,id=qga0,path=/var/lib/sb/web-1.qga,server=on,wait=off'));
  assert.ok(chardevs.includes('file,id=serial0,path=/var/lib/sb/web-1.console.log'));
  assert.deepEqual(values(argv, '-D'), ['/var/lib/sb/web-1.qemu.log']);
  assert.deepEqual(values(argv, '-mon'), ['chardev=qmp0,mode=control']);
  assert.ok(
    values(argv, '-device').includes(
      'virtserialport,bus=virtio-serial0.0,chardev=qga0,name=org.qemu.guest_agent.0',
    ),
  );
});

test('a migration target waits for its stream and can stay paused', () => {
  const argv = buildQemuArgv({ def, accelerator: 'tcg', paths, boot, incoming: true, paused: true });
  assert.deepEqual(values(argv, '-incoming'), ['defer']);
  assert.ok(argv.includes('-S'));
});

test('commas in option values are doubled', () => {
  assert.equal(qemuOptValue('/a,b,,c'), '/a,,b,,,,c');
});

test('a process is recognised as the VM only with its uuid and its QMP socket', () => {
  const argv = ['qemu-system-x86_64', ...buildQemuArgv({ def, accelerator: 'tcg', paths, boot })];
  assert.equal(isQemuOfVm(argv, def, paths), true);
  assert.equal(isQemuOfVm(argv, { ...def, id: '11111111-2222-4333-8444-555555555555' }, paths), false);
  assert.equal(isQemuOfVm(argv, def, vmPaths('/other', 'web-1')), false);
  assert.equal(isQemuOfVm(['/bin/sleep', '100'], def, paths), false);
});

import path from 'node:path';
import type { Accelerator, DatastoreLimits } from '../api/index.js';
import { GUEST_AGENT_PORT_NAME } from '../guest/index.js';
import type { VmDefinition } from './definitions.js';
import {
  diskDeviceId,
  diskFileNodeName,
  diskNodeName,
  diskThrottleNodeName,
  netdevId,
  nicDeviceId,
} from './naming.js';
import { throttleBlockdev, throttleGroupObject } from './throttle.js';

/*
 * The QEMU command line of one VM, built purely from its definition. Both sides of a migration
 * build it from the same definition, so the device set, node names and ids match by construction.
 */

/** A versioned machine type: migratable between hosts running the same QEMU release. */
export const MACHINE_TYPE = 'pc-q35-7.2';
/** A named CPU model (never `host`) so a guest sees the same CPU on every host it moves to. */
export const CPU_MODEL = 'Nehalem';

/** Files of one VM under the agent's state directory (absolute: QEMU -daemonize chdirs to /). */
export interface VmPaths {
  qmp: string;
  qga: string;
  console: string;
  /** QEMU's own messages once it runs daemonized (-D); otherwise they would go to /dev/null. */
  qemuLog: string;
  pidfile: string;
}

export function vmPaths(stateDir: string, vmName: string): VmPaths {
  const base = path.join(path.resolve(stateDir), vmName);
  return {
    qmp: `${base}.qmp`,
    qga: `${base}.qga`,
    console: `${base}.console.log`,
    qemuLog: `${base}.qemu.log`,
    pidfile: `${base}.pid`,
  };
}

export interface GuestBoot {
  kernel: string;
  initrd: string;
  append: string;
}

export interface QemuArgvInput {
  def: VmDefinition;
  accelerator: Accelerator;
  paths: VmPaths;
  boot: GuestBoot;
  /** Wait for an incoming migration (`-incoming defer`); set the URI later with migrate-incoming. */
  incoming?: boolean;
  /** Do not run the vCPUs until `cont` (`-S`). */
  paused?: boolean;
  /**
   * QEMU forks itself into the background (the default). Not for a VM that runs leased: sanlock
   * registers the process it execs, so QEMU must stay that process (leases.ts).
   */
  daemonize?: boolean;
  /** The guest tools ISO, attached when the definition has the tools disk inserted. */
  toolsIso?: string | undefined;
  /** Limits of a datastore the VM's disks are on (throttle.ts); undefined: none. */
  datastoreLimits?: (datastore: string) => DatastoreLimits | undefined;
}

/*
 * The guest tools disk: a read-only virtio disk behind a PCIe root port of its own, so that it can
 * be hot-plugged and unplugged while the guest runs (q35's root bus takes no hot-plug). The port is
 * the last device, so the guest's other devices keep their addresses and the data disk stays vda.
 */
export const TOOLS_PORT_ID = 'sb-tools-port';
export const TOOLS_DEVICE_ID = 'sb-tools-disk';
export const TOOLS_NODE = 'sb-tools';
export const TOOLS_FILE_NODE = 'sb-tools-file';

/** The -blockdev values (file, then raw) of the tools ISO, read-only. */
export function toolsBlockdevs(iso: string): [Record<string, unknown>, Record<string, unknown>] {
  return [
    { driver: 'file', 'node-name': TOOLS_FILE_NODE, filename: iso, 'read-only': true },
    { driver: 'raw', 'node-name': TOOLS_NODE, file: TOOLS_FILE_NODE, 'read-only': true },
  ];
}

/** The device_add / -device value of the tools disk. */
export const toolsDevice = (): Record<string, unknown> => ({
  driver: 'virtio-blk-pci',
  id: TOOLS_DEVICE_ID,
  drive: TOOLS_NODE,
  bus: TOOLS_PORT_ID,
});

/** Escapes a value inside QEMU's key=value,key=value option syntax (a comma is doubled). */
export const qemuOptValue = (value: string): string => value.replaceAll(',', ',,');

export function acceleratorArg(accelerator: Accelerator): string {
  return accelerator === 'kvm' ? 'kvm' : 'tcg,thread=multi';
}

export function buildQemuArgv(input: QemuArgvInput): string[] {
  const { def, paths, boot } = input;
  const argv = [
    '-name',
    `guest=${qemuOptValue(def.name)}`,
    '-uuid',
    def.id,
    '-machine',
    def.machineType,
    '-accel',
    acceleratorArg(input.accelerator),
    '-cpu',
    def.cpuModel,
    '-smp',
    String(def.vcpus),
    '-m',
    `${def.memoryMiB}M`,
    '-no-user-config',
    '-nodefaults',
    '-display',
    'none',
    '-msg',
    'timestamp=on',
    '-kernel',
    boot.kernel,
    '-initrd',
    boot.initrd,
    '-append',
    boot.append,
  ];
  for (const datastore of new Set(def.disks.map((d) => d.datastore)))
    argv.push('-object', JSON.stringify(throttleGroupObject(datastore, input.datastoreLimits?.(datastore))));
  for (const disk of def.disks) {
    // JSON syntax: file paths are passed through verbatim, whatever characters they hold.
    argv.push(
      '-blockdev',
      JSON.stringify({ driver: 'file', 'node-name': diskFileNodeName(disk.id), filename: disk.path }),
      '-blockdev',
      JSON.stringify(
        throttleBlockdev(diskThrottleNodeName(disk.id), disk.datastore, diskFileNodeName(disk.id)),
      ),
      '-blockdev',
      JSON.stringify({
        driver: disk.format,
        'node-name': diskNodeName(disk.id),
        file: diskThrottleNodeName(disk.id),
      }),
      '-device',
      JSON.stringify({ driver: 'virtio-blk-pci', id: diskDeviceId(disk.id), drive: diskNodeName(disk.id) }),
    );
  }
  for (const nic of def.nics) {
    argv.push(
      '-netdev',
      `tap,id=${netdevId(nic.id)},ifname=${nic.tap},script=no,downscript=no`,
      '-device',
      `virtio-net-pci,id=${nicDeviceId(nic.id)},netdev=${netdevId(nic.id)},mac=${nic.mac}`,
    );
  }
  argv.push(
    '-device',
    'virtio-serial-pci,id=virtio-serial0',
    '-chardev',
    `socket,id=qga0,path=${qemuOptValue(paths.qga)},server=on,wait=off`,
    '-device',
    `virtserialport,bus=virtio-serial0.0,chardev=qga0,name=${GUEST_AGENT_PORT_NAME}`,
    '-chardev',
    `file,id=serial0,path=${qemuOptValue(paths.console)}`,
    '-serial',
    'chardev:serial0',
    '-chardev',
    `socket,id=qmp0,path=${qemuOptValue(paths.qmp)},server=on,wait=off`,
    '-mon',
    'chardev=qmp0,mode=control',
    '-D',
    paths.qemuLog,
    '-pidfile',
    paths.pidfile,
  );
  if (input.daemonize !== false) argv.push('-daemonize');
  argv.push('-device', `pcie-root-port,id=${TOOLS_PORT_ID},chassis=1`);
  if (def.toolsDisk && input.toolsIso) {
    for (const blockdev of toolsBlockdevs(input.toolsIso)) argv.push('-blockdev', JSON.stringify(blockdev));
    argv.push('-device', JSON.stringify(toolsDevice()));
  }
  if (input.incoming) argv.push('-incoming', 'defer');
  if (input.paused) argv.push('-S');
  return argv;
}

/**
 * True when a process's argv (from /proc/<pid>/cmdline) is the QEMU of this VM: same uuid and the
 * same QMP socket. A recycled PID that belongs to anything else fails this.
 */
export function isQemuOfVm(cmdline: readonly string[], def: VmDefinition, paths: VmPaths): boolean {
  const uuidAt = cmdline.indexOf('-uuid');
  if (uuidAt < 0 || cmdline[uuidAt + 1] !== def.id) return false;
  const qmpChardev = `socket,id=qmp0,path=${qemuOptValue(paths.qmp)},server=on,wait=off`;
  return cmdline.includes(qmpChardev);
}

import { createHash, randomBytes } from 'node:crypto';
import { macFromBytes } from '../api/index.js';

export { macFromBytes };

/*
 * Names that QEMU, the kernel and migrations rely on. They are fixed at define time and stored in
 * the definition, so they stay the same across restarts of the agent and of the VM.
 */

/** Linux interface names hold at most 15 characters (IFNAMSIZ - 1). */
export const MAX_IFNAME = 15;
/** QEMU block node names hold at most 31 characters. */
export const MAX_NODE_NAME = 31;

export const diskNodeName = (diskId: string): string => `disk-${diskId}`;
export const diskFileNodeName = (diskId: string): string => `file-${diskId}`;
/** The throttle filter between a disk's format and file nodes (its datastore's limits). */
export const diskThrottleNodeName = (diskId: string): string => `thr-${diskId}`;
export const diskDeviceId = (diskId: string): string => `virtio-disk-${diskId}`;
export const netdevId = (nicId: string): string => `net-${nicId}`;
export const nicDeviceId = (nicId: string): string => `nic-${nicId}`;
/** Longest disk id whose node names still fit QEMU's limit. */
export const MAX_DISK_ID =
  MAX_NODE_NAME -
  Math.max(diskNodeName('').length, diskFileNodeName('').length, diskThrottleNodeName('').length);

/** A fresh random MAC that is not in `taken`. */
export function newMac(taken: ReadonlySet<string>, random: (n: number) => Uint8Array = randomBytes): string {
  for (;;) {
    const mac = macFromBytes(random(3));
    if (!taken.has(mac)) return mac;
  }
}

/**
 * The tap of one NIC: "sb" + 12 hex digits hashed from the VM id and NIC id (14 characters), with a
 * salt bumped until the name is not in `taken` — names are unique per host, not globally.
 */
export function newTapName(vmId: string, nicId: string, taken: ReadonlySet<string>): string {
  for (let salt = 0; ; salt++) {
    const hash = createHash('sha256').update(`${vmId}/${nicId}/${salt}`).digest('hex');
    const name = `sb${hash.slice(0, 12)}`;
    if (!taken.has(name)) return name;
  }
}

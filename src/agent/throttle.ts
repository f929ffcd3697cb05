import type { DatastoreLimits } from '../api/index.js';
import type { QmpClient } from '../qmp/index.js';

/*
 * Datastore limits in QEMU: one `throttle-group` object per datastore a VM's disks are on, and a
 * `throttle` filter node of that group between each disk's format node and its file node:
 *
 *   virtio-blk device -> disk-<id> (qcow2) -> thr-<id> (throttle, group tg-<datastore>) -> file-<id>
 *
 * Below the format node, not above it: QEMU 10 mirrors only from a root node ("Need a root block
 * node"), and the moves mirror from and NBD-export the format node, which thus stays the device's
 * root; the limits then count what reaches the datastore's files (as a storage tier would),
 * mirror copies included. Every disk has the filter, an unlimited datastore's group has zero
 * (no) limits, so a limit set or lifted later is one qom-set on the running QEMU, with no graph
 * change. A group is per QEMU process: the limits hold per VM and datastore.
 */

export const throttleGroupId = (datastore: string): string => `tg-${datastore}`;

/** QEMU's ThrottleLimits for a datastore's limits; 0 is "no limit", and is set explicitly so a lifted limit goes. */
export function throttleLimits(limits: DatastoreLimits | undefined): Record<string, number> {
  return { 'iops-total': limits?.iops ?? 0, 'bps-total': limits?.bytesPerSecond ?? 0 };
}

/** The -object / object-add value of a datastore's throttle group. */
export function throttleGroupObject(datastore: string, limits: DatastoreLimits | undefined) {
  return { 'qom-type': 'throttle-group', id: throttleGroupId(datastore), limits: throttleLimits(limits) };
}

/** The blockdev of a throttle filter node over `file`. */
export function throttleBlockdev(nodeName: string, datastore: string, file: string) {
  return { driver: 'throttle', 'node-name': nodeName, 'throttle-group': throttleGroupId(datastore), file };
}

/** Sets a running QEMU's group of `datastore` to `limits`. Throws when the QEMU has no such group. */
export async function setThrottleLimits(
  qmp: QmpClient,
  datastore: string,
  limits: DatastoreLimits | undefined,
): Promise<void> {
  await qmp.execute('qom-set', {
    path: `/objects/${throttleGroupId(datastore)}`,
    property: 'limits',
    value: throttleLimits(limits),
  });
}

/** Makes the group of `datastore` in a running QEMU (a storage move onto it), or updates it when it exists. */
export async function ensureThrottleGroup(
  qmp: QmpClient,
  datastore: string,
  limits: DatastoreLimits | undefined,
): Promise<void> {
  try {
    await setThrottleLimits(qmp, datastore, limits);
  } catch {
    await qmp.execute('object-add', throttleGroupObject(datastore, limits));
  }
}

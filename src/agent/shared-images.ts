import { realpath } from 'node:fs/promises';
import path from 'node:path';
import type { SharedDiskRef } from '../api/index.js';
import { diskImageInfo } from './datastores.js';
import { InvalidInput } from './errors.js';
import type { HostInventory } from './host.js';

/*
 * Disks that are existing images on shared storage, opened where they are: a memory-only move's
 * target (migration/service.ts) and an HA restart (POST /v1/vms with `shared` disks) check them
 * here, before anything is made.
 */

export interface SharedDiskClaim {
  id: string;
  datastore?: string | undefined;
  shared?: SharedDiskRef | undefined;
  virtualSizeBytes: number;
}

const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

/**
 * Each claimed disk names a shared datastore here of the same storage, and its file is a qcow2
 * image inside that datastore (after symlinks) of the disk's virtual size. Disk id -> the image's
 * path; `field` prefixes the field an error names (`vm.disks`, `disks`).
 */
export async function sharedImages(
  inventory: HostInventory,
  hostName: string,
  disks: readonly SharedDiskClaim[],
  field: string,
): Promise<Map<string, string>> {
  const adopt = new Map<string, string>();
  for (const [i, disk] of disks.entries()) {
    if (disk.shared === undefined) continue;
    const at = `${field}.${i}`;
    const store = inventory.datastore(disk.datastore, `${at}.datastore`);
    const storageId = store.kind === 'shared' ? await inventory.storageIdOf(store.name) : undefined;
    if (storageId === undefined)
      throw new InvalidInput(
        `${at}.datastore: datastore "${store.name}" of host ${hostName} is local, not shared storage`,
        `${at}.datastore`,
      );
    if (storageId !== disk.shared.storageId)
      throw new InvalidInput(
        `${at}.shared.storageId: datastore "${store.name}" of host ${hostName} is storage ${storageId}, not ${disk.shared.storageId}`,
        `${at}.shared.storageId`,
      );
    const file = path.join(path.resolve(store.path), disk.shared.file);
    const missing = (why: string) =>
      new InvalidInput(`${at}.shared.file: ${file} ${why}`, `${at}.shared.file`);
    const [root, real] = await Promise.all([
      realpath(store.path),
      realpath(file).catch(() => {
        throw missing(`is not on datastore "${store.name}" of host ${hostName}`);
      }),
    ]);
    const inside = path.relative(root, real);
    if (inside === '' || inside.startsWith('..') || path.isAbsolute(inside))
      throw missing(`leads out of datastore "${store.name}" (to ${real})`);
    const info = await diskImageInfo(real).catch((error: unknown) => {
      throw missing(`is not a disk image (${errorText(error)})`);
    });
    if (info.format !== 'qcow2') throw missing(`is ${info.format}, not qcow2`);
    if (info.virtualSizeBytes !== disk.virtualSizeBytes)
      throw missing(`is ${info.virtualSizeBytes} bytes, the disk ${disk.virtualSizeBytes}`);
    adopt.set(disk.id, file);
  }
  return adopt;
}

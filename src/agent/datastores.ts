import { chmod, statfs } from 'node:fs/promises';
import { z } from 'zod';
import { run } from './host-exec.js';

/*
 * Datastores are plain directories of qcow2 images. Capacity and free space come from statfs of
 * the filesystem holding the directory; images are made and read with qemu-img.
 */

export interface DatastoreSpace {
  capacityBytes: number;
  freeBytes: number;
}

export async function datastoreSpace(dir: string): Promise<DatastoreSpace> {
  const s = await statfs(dir);
  // bavail, not bfree: what an unprivileged writer (and QEMU) can still use.
  return { capacityBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize };
}

/** A new qcow2 image, owner-only (a guest's disk is its data; qemu-img follows the umask). */
export async function createQcow2(file: string, sizeBytes: number): Promise<void> {
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', file, String(sizeBytes)]);
  await chmod(file, 0o600);
}

const ImageInfo = z.object({
  'virtual-size': z.number().int(),
  'actual-size': z.number().int().optional(),
  format: z.string(),
});

export interface DiskImageInfo {
  virtualSizeBytes: number;
  allocatedBytes: number;
  /** qemu-img's name of the image format (qcow2, raw). */
  format: string;
}

export async function diskImageInfo(file: string): Promise<DiskImageInfo> {
  // -U: a running QEMU holds the image's lock; a read-only peek at the header is still safe.
  const info = ImageInfo.parse(JSON.parse(await run('qemu-img', ['info', '-U', '--output=json', file])));
  return {
    virtualSizeBytes: info['virtual-size'],
    allocatedBytes: info['actual-size'] ?? 0,
    format: info.format,
  };
}

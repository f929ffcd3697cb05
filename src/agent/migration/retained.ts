/*
 * Retained copies (issue 17): the disk images a VM left behind on this host when it moved away,
 * kept read-only and never started, so that a move back sends only what changed since
 * (delta.ts). A copy lives in `<datastore>/.retained/<vm id>/<disk id>.qcow2`, beside the
 * datastore's other images (a rename, no copy), with a `meta.json` in the first disk's datastore.
 *
 * A copy is used only when it is provably the disk as it left: its generation matches the VM's
 * tracking bitmap (checked by the caller), and each image still has the size, modification time
 * and sampled content (SHA-256 of the header and of clusters spread over the file) recorded when
 * it was kept. Anything else is a reason, never a guess.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { RetainedCopy } from '../../api/index.js';
import { diskImageInfo } from '../datastores.js';
import { removeTrackingBitmaps } from './delta.js';
import { RetainedCopyInvalid, RetainedCopyNotFound } from './errors.js';

export const RETAINED_DIR = '.retained';
/** The content check reads this many clusters spread over each image, plus its header. */
const SAMPLES = 64;
const SAMPLE_BYTES = 64 * 1024;

const Meta = z.strictObject({
  vmId: z.string(),
  vmName: z.string(),
  generationId: z.string(),
  departedAt: z.string(),
  disks: z.array(
    z.strictObject({
      diskId: z.string(),
      datastore: z.string(),
      virtualSizeBytes: z.number(),
      sizeBytes: z.number(),
      mtimeMs: z.number(),
      digest: z.string(),
    }),
  ),
});
type Meta = z.infer<typeof Meta>;

export interface RetainedDatastore {
  name: string;
  path: string;
}

export interface KeptDisk {
  id: string;
  datastore: string;
  path: string;
}

/** SHA-256 of an image's size, its first cluster and SAMPLES clusters spread evenly over it. */
export async function sampledDigest(file: string): Promise<string> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    const hash = createHash('sha256').update(String(size));
    const buffer = Buffer.alloc(SAMPLE_BYTES);
    const step = Math.max(SAMPLE_BYTES, Math.floor(size / SAMPLES / SAMPLE_BYTES) * SAMPLE_BYTES);
    for (let offset = 0; offset < size; offset += step) {
      const { bytesRead } = await handle.read(buffer, 0, SAMPLE_BYTES, offset);
      hash.update(buffer.subarray(0, bytesRead));
    }
    return hash.digest('hex');
  } finally {
    await handle.close();
  }
}

export class RetainedStore {
  constructor(private readonly datastores: () => readonly RetainedDatastore[]) {}

  #store(name: string): RetainedDatastore {
    const found = this.datastores().find((d) => d.name === name);
    if (!found) throw new RetainedCopyInvalid('-', `datastore ${name} is not configured on this host`);
    return found;
  }

  #dir(datastore: string, vmId: string): string {
    return path.join(path.resolve(this.#store(datastore).path), RETAINED_DIR, vmId);
  }

  #file(datastore: string, vmId: string, diskId: string): string {
    return path.join(this.#dir(datastore, vmId), `${diskId}.qcow2`);
  }

  /** Where a VM's meta.json is, if this host keeps a copy of it. */
  async #metaFile(vmId: string): Promise<string | undefined> {
    for (const d of this.datastores()) {
      const file = path.join(path.resolve(d.path), RETAINED_DIR, vmId, 'meta.json');
      if (await exists(file)) return file;
    }
    return undefined;
  }

  async #meta(vmId: string): Promise<Meta | undefined> {
    const file = await this.#metaFile(vmId);
    if (!file) return undefined;
    try {
      return Meta.parse(JSON.parse(await readFile(file, 'utf8')));
    } catch {
      return undefined;
    }
  }

  async #seal(vm: { id: string; name: string }, generationId: string, disks: KeptDisk[], departedAt: string) {
    const sealed: Meta['disks'] = [];
    for (const disk of disks) {
      const file = this.#file(disk.datastore, vm.id, disk.id);
      const [info, st, digest] = await Promise.all([diskImageInfo(file), stat(file), sampledDigest(file)]);
      sealed.push({
        diskId: disk.id,
        datastore: disk.datastore,
        virtualSizeBytes: info.virtualSizeBytes,
        sizeBytes: st.size,
        mtimeMs: st.mtimeMs,
        digest,
      });
    }
    const meta: Meta = { vmId: vm.id, vmName: vm.name, generationId, departedAt, disks: sealed };
    const first = disks[0];
    if (!first) throw new RangeError('a retained copy needs at least one disk');
    await writeFile(path.join(this.#dir(first.datastore, vm.id), 'meta.json'), JSON.stringify(meta, null, 2));
    return meta;
  }

  /**
   * Keeps a departed VM's images (no QEMU has them open any more) as its retained copy of
   * `generationId`: tracking bitmaps of earlier generations go, the files move into the retained
   * directory and are sealed. An older copy of the same VM is replaced.
   */
  async keep(
    vm: { id: string; name: string },
    generationId: string,
    disks: KeptDisk[],
  ): Promise<RetainedCopy> {
    await this.release(vm.id).catch((error: unknown) => {
      if (!(error instanceof RetainedCopyNotFound)) throw error;
    });
    for (const disk of disks) {
      await removeTrackingBitmaps(disk.path);
      await mkdir(this.#dir(disk.datastore, vm.id), { recursive: true });
      await rename(disk.path, this.#file(disk.datastore, vm.id, disk.id));
    }
    const meta = await this.#seal(vm, generationId, disks, new Date().toISOString());
    return this.#describe(meta);
  }

  /** Why the copy is not provably the disk as it left (undefined: it is). */
  async #refusal(meta: Meta): Promise<string | undefined> {
    for (const d of meta.disks) {
      const file = this.#file(d.datastore, meta.vmId, d.diskId);
      const st = await stat(file).catch(() => undefined);
      if (!st) return `the image of disk ${d.diskId} is missing`;
      // Within a millisecond: a time set back by a tool comes back through a float of seconds.
      if (st.size !== d.sizeBytes || Math.abs(st.mtimeMs - d.mtimeMs) >= 1)
        return `the image of disk ${d.diskId} was written since it was kept (size or modification time changed)`;
      if ((await sampledDigest(file)) !== d.digest)
        return `the image of disk ${d.diskId} differs from when it was kept (sampled content)`;
    }
    return undefined;
  }

  async #describe(meta: Meta): Promise<RetainedCopy> {
    const refusal = await this.#refusal(meta);
    const disks = await Promise.all(
      meta.disks.map(async (d) => {
        const file = this.#file(d.datastore, meta.vmId, d.diskId);
        const allocated = await diskImageInfo(file)
          .then((i) => i.allocatedBytes)
          .catch(() => 0);
        return {
          diskId: d.diskId,
          datastore: d.datastore,
          path: file,
          virtualSizeBytes: d.virtualSizeBytes,
          allocatedBytes: allocated,
        };
      }),
    );
    return {
      vmId: meta.vmId,
      vmName: meta.vmName,
      generationId: meta.generationId,
      departedAt: meta.departedAt,
      disks,
      allocatedBytes: disks.reduce((sum, d) => sum + d.allocatedBytes, 0),
      check: refusal === undefined ? { valid: true } : { valid: false, reason: refusal },
    };
  }

  async list(): Promise<RetainedCopy[]> {
    const ids = new Set<string>();
    for (const d of this.datastores()) {
      const dir = path.join(path.resolve(d.path), RETAINED_DIR);
      for (const id of await readdir(dir).catch(() => [])) ids.add(id);
    }
    const copies: RetainedCopy[] = [];
    for (const id of ids) {
      const meta = await this.#meta(id);
      if (meta) copies.push(await this.#describe(meta));
    }
    return copies;
  }

  /**
   * A delta move onto this copy: checks it (generation, disks, datastores, sizes, content), then
   * moves each image to where the incoming VM's disk is. Refused with the reason otherwise.
   */
  async take(
    vmId: string,
    generationId: string,
    targets: { id: string; datastore: string; path: string; virtualSizeBytes: number }[],
  ): Promise<void> {
    const meta = await this.#meta(vmId);
    if (!meta) throw new RetainedCopyNotFound(vmId);
    const invalid = (reason: string) => new RetainedCopyInvalid(vmId, reason);
    if (meta.generationId !== generationId)
      throw invalid(`it is of generation ${meta.generationId}, the VM's disks track ${generationId}`);
    for (const t of targets) {
      const kept = meta.disks.find((d) => d.diskId === t.id);
      if (!kept) throw invalid(`it has no disk ${t.id}`);
      if (kept.datastore !== t.datastore)
        throw invalid(
          `disk ${t.id} is kept on datastore ${kept.datastore}, the move asks for ${t.datastore}`,
        );
      if (kept.virtualSizeBytes !== t.virtualSizeBytes)
        throw invalid(
          `disk ${t.id} was ${kept.virtualSizeBytes} bytes when kept and is ${t.virtualSizeBytes} now (resized)`,
        );
    }
    if (meta.disks.length !== targets.length) throw invalid('the VM has other disks than the copy');
    const refusal = await this.#refusal(meta);
    if (refusal) throw invalid(refusal);
    for (const t of targets) await rename(this.#file(t.datastore, vmId, t.id), t.path);
  }

  /**
   * A delta move onto the copy failed or was cancelled: the images go back and are sealed again.
   * Only the clusters the source's bitmap marks were written, and that bitmap still marks them,
   * so the copy stays good for a retry of the same generation (delta.ts, cancelDelta).
   */
  async putBack(vmId: string, disks: KeptDisk[]): Promise<void> {
    const meta = await this.#meta(vmId);
    if (!meta) throw new RetainedCopyNotFound(vmId);
    for (const disk of disks) {
      if (await exists(disk.path)) await rename(disk.path, this.#file(disk.datastore, vmId, disk.id));
    }
    await this.#seal({ id: meta.vmId, name: meta.vmName }, meta.generationId, disks, meta.departedAt);
  }

  /** After a delta move arrived: the images are the VM's disks now; the copy's record goes. */
  async consumed(vmId: string): Promise<void> {
    await this.#removeDirs(vmId);
  }

  async release(vmId: string): Promise<void> {
    if (!(await this.#metaFile(vmId))) throw new RetainedCopyNotFound(vmId);
    await this.#removeDirs(vmId);
  }

  async #removeDirs(vmId: string): Promise<void> {
    for (const d of this.datastores()) {
      await rm(path.join(path.resolve(d.path), RETAINED_DIR, vmId), { recursive: true, force: true });
    }
  }
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { Cidr, Ipv4, MacAddress, Name } from '../api/index.js';

/** What the agent keeps about one VM on the host: everything needed to start it again. */
export const VmDefinition = z.object({
  id: z.uuid(),
  name: Name,
  vcpus: z.number().int().min(1),
  memoryMiB: z.number().int().min(1),
  disks: z.array(
    z.object({
      id: Name,
      datastore: Name,
      path: z.string(),
      format: z.enum(['qcow2', 'raw']),
      sizeBytes: z.number().int().positive(),
    }),
  ),
  nics: z.array(z.object({ id: Name, vswitch: Name, mac: MacAddress, tap: z.string() })),
  guestIp: Cidr.optional(),
  guestGateway: Ipv4.optional(),
  machineType: z.string(),
  cpuModel: z.string(),
  createdAt: z.iso.datetime(),
  /** The guest tools disk is inserted: attached at start, hot-plugged while running. */
  toolsDisk: z.boolean().default(false),
});
export type VmDefinition = z.infer<typeof VmDefinition>;

/** Writes `data` so that readers see the old or the new file, never a torn one. */
export async function writeFileAtomic(file: string, data: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, data, { mode: 0o600 });
  await rename(tmp, file);
}

/** Definitions as `<stateDir>/vms/<name>.json`. */
export class DefinitionStore {
  readonly dir: string;
  constructor(stateDir: string) {
    this.dir = path.join(stateDir, 'vms');
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
  }

  /** Every readable definition; a damaged file is reported and skipped, not fatal to the host. */
  async loadAll(onInvalid: (file: string, error: unknown) => void): Promise<VmDefinition[]> {
    const out: VmDefinition[] = [];
    for (const entry of (await readdir(this.dir)).sort()) {
      if (!entry.endsWith('.json')) continue;
      const file = path.join(this.dir, entry);
      try {
        out.push(VmDefinition.parse(JSON.parse(await readFile(file, 'utf8'))));
      } catch (error) {
        onInvalid(file, error);
      }
    }
    return out;
  }

  save(def: VmDefinition): Promise<void> {
    return writeFileAtomic(this.file(def.name), `${JSON.stringify(def, null, 2)}\n`);
  }

  remove(name: string): Promise<void> {
    return rm(this.file(name), { force: true });
  }

  private file(name: string): string {
    return path.join(this.dir, `${name}.json`);
  }
}

import { mkdir, open, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { Accelerator } from '../api/index.js';
import { LabNoFreeIndex } from './errors.js';
import { LabName, MAX_LAB_INDEX } from './plan.js';

/*
 * Where a lab keeps its state: /var/lib/silobreak/labs/<name>/ holds state.json, the agents'
 * configs, logs, datastores and state dirs. Lab indexes are claimed by creating
 * labs/.index/<index> exclusively, so two `lab up`s never take the same subnets.
 */

export const LABS_ROOT = '/var/lib/silobreak/labs';
const INDEX_DIR = path.join(LABS_ROOT, '.index');

export const labDir = (name: string) => path.join(LABS_ROOT, name);
const statePath = (name: string) => path.join(labDir(name), 'state.json');

export const LabHostState = z.object({
  name: z.string(),
  namespace: z.string(),
  fabricAddress: z.string(),
  agentUrl: z.string(),
  token: z.string(),
  fabricVeth: z.string(),
  uplinkVeth: z.string(),
  /** Pid of `silobreak agent` (the `ip netns exec` process execs into it). */
  pid: z.number().int().optional(),
  dir: z.string(),
  configPath: z.string(),
  logPath: z.string(),
  datastorePath: z.string(),
  stateDir: z.string(),
  /** Where the host mounts the lab's shared storage, and its sanlock daemon's run directory (`--shared-storage`). */
  shared: z
    .object({ mountPath: z.string(), sanlockRunDir: z.string(), sanlockPid: z.number().int() })
    .optional(),
});
export type LabHostState = z.infer<typeof LabHostState>;

export const LabState = z.object({
  version: z.literal(1),
  name: LabName,
  index: z.number().int().min(0).max(MAX_LAB_INDEX),
  tag: z.string(),
  dir: z.string(),
  token: z.string(),
  createdAt: z.iso.datetime(),
  accelerator: z.enum(['auto', 'kvm', 'tcg']),
  fabric: z.object({ bridge: z.string(), subnet: z.string(), rootAddress: z.string() }),
  vmNet: z.object({ bridge: z.string(), subnet: z.string() }),
  client: z.object({ namespace: z.string(), veth: z.string(), address: z.string() }),
  hosts: z.array(LabHostState),
  /** The shared storage server (`lab up --shared-storage`): its namespace, address and exported directory. */
  storage: z
    .object({
      namespace: z.string(),
      veth: z.string(),
      address: z.string(),
      exportDir: z.string(),
      pid: z.number().int(),
    })
    .optional(),
  demoVms: z.array(z.object({ name: z.string(), host: z.string(), ip: z.string() })),
  manager: z
    .object({
      url: z.string(),
      token: z.string(),
      pid: z.number().int(),
      dataDir: z.string(),
      logPath: z.string(),
      /** `--database` of every manager of the lab (LabUpOptions.managerDatabase); absent: the data dir's SQLite file. */
      database: z.string().optional(),
    })
    .optional(),
  /** What the agents reported, for the summary (e.g. TCG because the KVM probe failed). */
  hostAccelerators: z.record(
    z.string(),
    z.object({ accelerator: Accelerator, warning: z.string().optional() }),
  ),
});
export type LabState = z.infer<typeof LabState>;

/** The lab's state, or undefined when there is none or it cannot be read (a crashed `lab up`). */
export async function readState(name: string): Promise<LabState | undefined> {
  try {
    return LabState.parse(JSON.parse(await readFile(statePath(name), 'utf8')));
  } catch {
    return undefined;
  }
}

/**
 * Written to a temporary file and renamed, so a crash never leaves half a state file; readable by
 * root only, as it holds the agents' and the manager's tokens.
 */
export async function writeState(state: LabState): Promise<void> {
  await mkdir(state.dir, { recursive: true, mode: 0o700 });
  const tmp = statePath(state.name) + '.tmp';
  await writeFile(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, statePath(state.name));
}

/** Names of labs that have a directory. */
export async function labDirNames(): Promise<string[]> {
  try {
    return (await readdir(LABS_ROOT, { withFileTypes: true }))
      .filter((e) => e.isDirectory() && LabName.safeParse(e.name).success)
      .map((e) => e.name);
  } catch {
    return [];
  }
}

/** Index → lab name of every claim. */
export async function indexClaims(): Promise<Map<number, string>> {
  const claims = new Map<number, string>();
  let entries: string[];
  try {
    entries = await readdir(INDEX_DIR);
  } catch {
    return claims;
  }
  for (const entry of entries) {
    const owner = (await readFile(path.join(INDEX_DIR, entry), 'utf8').catch(() => '')).trim();
    if (/^\d+$/.test(entry)) claims.set(Number(entry), owner);
  }
  return claims;
}

/** The lab's index: its existing claim, or the lowest free one, claimed atomically. */
export async function claimIndex(name: string): Promise<number> {
  await mkdir(INDEX_DIR, { recursive: true });
  for (const [index, owner] of await indexClaims()) if (owner === name) return index;
  for (let index = 0; index <= MAX_LAB_INDEX; index++) {
    try {
      const file = await open(path.join(INDEX_DIR, String(index)), 'wx');
      await file.writeFile(name + '\n');
      await file.close();
      return index;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  throw new LabNoFreeIndex(MAX_LAB_INDEX);
}

/** Removes the lab's directory and its index claims. */
export async function removeLabFiles(name: string): Promise<void> {
  await rm(labDir(name), { recursive: true, force: true });
  await removeClaims((owner) => owner === name);
}

/** Removes index claims whose owner is not a lab name (a `lab up` that crashed while claiming). */
export function removeUnownedClaims(): Promise<void> {
  return removeClaims((owner) => !LabName.safeParse(owner).success);
}

async function removeClaims(match: (owner: string) => boolean): Promise<void> {
  for (const [index, owner] of await indexClaims()) {
    if (match(owner)) await rm(path.join(INDEX_DIR, String(index)), { force: true });
  }
}

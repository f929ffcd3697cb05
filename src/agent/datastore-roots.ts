import { realpath } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { DatastoreExists, InvalidInput } from './errors.js';

/*
 * Where a datastore may be (issue 28, row 4): a directory at or under one of the agent's
 * `datastoreRoots`, judged by its real path (symlinks resolved, also of the parts that do not exist
 * yet: their longest existing ancestor), never a system directory, the agent's own state, another
 * Silobreak's data (a manager's database) or a directory that overlaps another datastore.
 */

/** Trees no datastore may be in: the kernel's, the devices', the system's configuration and code. */
const SYSTEM_TREES = [
  '/proc',
  '/sys',
  '/dev',
  '/etc',
  '/boot',
  '/usr',
  '/bin',
  '/sbin',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/run',
  '/var/run',
];
/** Directories that may hold datastores but are none themselves (a datastore there would be all of it). */
const SYSTEM_DIRS = [
  '/',
  '/tmp',
  '/var',
  '/var/lib',
  '/var/tmp',
  '/home',
  '/root',
  '/srv',
  '/mnt',
  '/media',
  '/opt',
];

export interface DatastoreRules {
  roots: readonly string[];
  /** The agent's state directory: definitions, sockets, pidfiles. */
  stateDir: string;
  /** The paths of the datastores this host has. */
  existing: readonly { name: string; path: string }[];
}

/** `child` is `parent` or inside it. */
const within = (child: string, parent: string) =>
  child === parent || child.startsWith(parent.endsWith('/') ? parent : `${parent}/`);

/** The real path of `p`: its longest existing ancestor resolved, the rest appended. */
async function realPathOf(p: string): Promise<string> {
  const rest: string[] = [];
  for (let at = path.resolve(p); ; at = path.dirname(at)) {
    try {
      return path.join(await realpath(at), ...rest.reverse());
    } catch {
      if (at === path.dirname(at)) return path.resolve(p);
      rest.push(path.basename(at));
    }
  }
}

const refuse = (detail: string) => new InvalidInput(`path: ${detail}`, 'path');

/**
 * The real path a datastore at `requested` would have, if the rules allow it: else InvalidInput
 * (where it may not be) or DatastoreExists (it is, or overlaps, a datastore of this host).
 */
export async function checkDatastorePath(requested: string, rules: DatastoreRules): Promise<string> {
  const real = await realPathOf(requested);
  const shown = real === path.resolve(requested) ? real : `${requested} (really ${real})`;
  if (SYSTEM_DIRS.includes(real)) throw refuse(`${shown} is a system directory; use a directory inside it`);
  const tree = SYSTEM_TREES.find((t) => within(real, t));
  if (tree) throw refuse(`${shown} is in ${tree}, a system directory`);
  const roots = await Promise.all(rules.roots.map(realPathOf));
  if (!roots.some((r) => within(real, r)))
    throw refuse(
      `${shown} is not under the datastore roots of this host (${rules.roots.join(', ')}; the agent config's datastoreRoots)`,
    );
  const state = await realPathOf(rules.stateDir);
  if (within(real, state) || within(state, real))
    throw refuse(
      `${shown} ${within(real, state) ? 'is in' : 'holds'} the agent's state directory ${rules.stateDir}`,
    );
  // Another Silobreak's data: a manager's database in the directory or above it (up to its root).
  const root = roots.filter((r) => within(real, r)).sort((a, b) => b.length - a.length)[0] ?? '/';
  for (let at = real; within(at, root); at = path.dirname(at)) {
    if (existsSync(path.join(at, 'manager.db')))
      throw refuse(`${shown} is in a Silobreak manager's data directory (${at})`);
    if (at === root || at === path.dirname(at)) break;
  }
  for (const store of rules.existing) {
    const other = await realPathOf(store.path);
    if (within(real, other) || within(other, real))
      throw new DatastoreExists(
        `${shown} ${real === other ? 'is' : within(real, other) ? 'is inside' : 'holds'} datastore "${store.name}" (${other})`,
        'path',
      );
  }
  return real;
}

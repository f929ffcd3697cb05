/*
 * The identity of a shared datastore: the marker file in its root (SHARED_STORAGE_MARKER,
 * `{"storageId": "<uuid>"}`). The first agent that adds the storage writes it, every other reads
 * it; two hosts whose datastores carry the same id see the same files.
 *
 * Two agents adding the storage at once must agree on one id, so the marker is never overwritten:
 * the new content goes to a temporary file of its own first, which is then hard-linked to the
 * marker's name (link(2) fails with EEXIST when a marker is there already: the other agent won,
 * and its id is read). A filesystem without hard links gets an exclusive create instead
 * (O_CREAT|O_EXCL), whose reader may see the file before its content: a marker read empty or cut
 * short is read again for a moment before it counts as damaged.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { link as linkFile, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { SHARED_STORAGE_MARKER, StorageId } from '../api/index.js';
import { InvalidInput } from './errors.js';

// Loose: a newer agent may add fields beside the id.
const Marker = z.object({ storageId: StorageId });

/** Errors of link(2) that mean "no hard links here", not "the marker exists". */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV', 'EMLINK']);
/** How long a marker that reads empty or cut short is read again (another agent is writing it). */
const PARTIAL_MARKER_MS = 2_000;

const errnoOf = (error: unknown) => (error as NodeJS.ErrnoException).code;

export interface MarkerOptions {
  /** link(2); injectable so tests can take the exclusive-create path. */
  link?: (existing: string, newPath: string) => Promise<void>;
}

/** The storage id of the shared datastore at `dir`, writing its marker with a new id when there is none. */
export async function sharedStorageId(dir: string, options: MarkerOptions = {}): Promise<string> {
  const marker = path.join(dir, SHARED_STORAGE_MARKER);
  const found = await readMarker(marker);
  if (found !== undefined) return found;
  await writeMarker(marker, `${JSON.stringify({ storageId: randomUUID() })}\n`, options.link ?? linkFile);
  // Ours, or the one another agent linked first.
  const id = await readMarker(marker);
  if (id === undefined) throw new InvalidInput(`path: ${marker} vanished as it was written`, 'path');
  return id;
}

/** The marker's id; undefined when there is no marker. */
async function readMarker(marker: string): Promise<string | undefined> {
  const deadline = Date.now() + PARTIAL_MARKER_MS;
  for (;;) {
    let text: string;
    try {
      text = await readFile(marker, 'utf8');
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return undefined;
      throw new InvalidInput(`path: cannot read ${marker}: ${String(error)}`, 'path');
    }
    const parsed = (() => {
      try {
        return Marker.safeParse(JSON.parse(text));
      } catch {
        return undefined;
      }
    })();
    if (parsed?.success) return parsed.data.storageId;
    if (Date.now() >= deadline)
      throw new InvalidInput(
        `path: ${marker} is not a Silobreak storage marker (${parsed ? (parsed.error.issues[0]?.message ?? 'invalid') : 'not JSON'}): ` +
          'it names the shared storage every host sees; restore it from another host, or remove it if no host uses this storage yet',
        'path',
      );
    await sleep(50);
  }
}

/** Creates the marker with `content` unless one exists (then leaves it as it is). */
async function writeMarker(
  marker: string,
  content: string,
  link: NonNullable<MarkerOptions['link']>,
): Promise<void> {
  const tmp = `${marker}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeSynced(tmp, content, 'wx');
    try {
      await link(tmp, marker);
      return;
    } catch (error) {
      if (errnoOf(error) === 'EEXIST') return;
      if (!NO_HARD_LINKS.has(errnoOf(error) ?? '')) throw error;
    }
    try {
      await writeSynced(marker, content, 'wx');
    } catch (error) {
      if (errnoOf(error) !== 'EEXIST') throw error;
    }
  } finally {
    await rm(tmp, { force: true });
  }
}

async function writeSynced(file: string, content: string, flags: 'wx'): Promise<void> {
  const handle = await open(file, flags, 0o644);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

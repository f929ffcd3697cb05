import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import type { DatastoreProbe } from '../api/index.js';

/*
 * A short I/O probe of a datastore's directory (≈2 s, at join, when a datastore is added, and on
 * demand): what the host's storage under it does, before any limits of the datastore.
 *
 *  1. Sequential: 1 MiB writes for up to 1 s (at most 64 MiB), then fdatasync: bytes per second.
 *  2. Random: 4 KiB writes at random aligned offsets of that file for up to 1 s, then fdatasync,
 *     the flush counted in the time: operations per second as a guest's writes land under QEMU's
 *     default cache (writeback: the host's page cache, flushed when the guest flushes). A probe
 *     with O_DSYNC on every write measured ~400 IOPS on this lab's disk, where a guest did 4,400:
 *     as a fast datastore's budget it refused the very VMs placement should send there.
 *     PROBE_QUEUE_DEPTH writes are in flight at once, as QEMU's I/O threads keep a busy guest's
 *     requests: one at a time, the probe timed the agent's event loop instead of the storage
 *     (3,000-4,000 IOPS on a loaded 2-core host against 16,000-32,000 at depth 16, and low
 *     enough during a busy start that a fast datastore's budget refused a 400-IOPS VM).
 *
 * Reads are not measured: a file just written is in the page cache, and O_DIRECT needs aligned
 * buffers Node does not promise. The file is removed afterwards, also on failure.
 */

const MiB = 1024 * 1024;
export const PROBE_PHASE_MS = 1_000;
const PROBE_MAX_BYTES = 64 * MiB;
const BLOCK = 4096;
/** Random writes in flight at once (see 2. above). */
export const PROBE_QUEUE_DEPTH = 16;

export async function probeDatastore(dir: string, now: () => number = Date.now): Promise<DatastoreProbe> {
  const file = path.join(dir, `.silobreak-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  const started = now();
  try {
    const chunk = randomBytes(MiB);
    let written = 0;
    let seqMs = 1;
    let rndMs = 1;
    const seq = await open(file, 'w', 0o600);
    try {
      const t0 = now();
      while (written < PROBE_MAX_BYTES && now() - t0 < PROBE_PHASE_MS) {
        await seq.write(chunk, 0, chunk.length, written);
        written += chunk.length;
      }
      await seq.datasync();
      seqMs = Math.max(1, now() - t0);
    } finally {
      await seq.close();
    }
    const rnd = await open(file, constants.O_WRONLY);
    let ops = 0;
    try {
      const block = chunk.subarray(0, BLOCK);
      const blocks = written / BLOCK;
      const t0 = now();
      await Promise.all(
        Array.from({ length: PROBE_QUEUE_DEPTH }, async () => {
          while (now() - t0 < PROBE_PHASE_MS) {
            await rnd.write(block, 0, BLOCK, Math.floor(Math.random() * blocks) * BLOCK);
            ops++;
          }
        }),
      );
      await rnd.datasync();
      rndMs = Math.max(1, now() - t0);
    } finally {
      await rnd.close();
    }
    return {
      iops: Math.round((ops * 1000) / rndMs),
      bytesPerSecond: Math.round((written * 1000) / seqMs),
      probedAt: new Date().toISOString(),
      durationMs: now() - started,
    };
  } finally {
    await rm(file, { force: true });
  }
}

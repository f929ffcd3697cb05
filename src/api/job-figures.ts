// The figures a job's handler puts in its `progress.details`, as their readers (the CLI's progress
// bar, the web console's move views) take them: a move's figures as in the migration API (per
// disk, memory, rates, health; src/manager/move/progress.ts writes them) or generic byte counts.
// Details are free-form, so each figure is read on its own: one off the expected shape hides only
// itself. Browser-safe (zod only).
import { z } from 'zod';
import { DiskProgress, MemoryProgress, MigrationHealth, StreamCompression } from './migration.js';

const figure = z.number().nonnegative().optional().catch(undefined);
const text = z.string().optional().catch(undefined);

export const JobFigures = z.object({
  /** A move's source and target hosts and its kind. */
  from: text,
  to: text,
  mode: z.enum(['live', 'cold']).optional().catch(undefined),
  /** Generic byte counts (a cold move's copy: the bytes its target received). */
  transferredBytes: figure,
  totalBytes: figure,
  rateBytesPerSecond: figure,
  dirtyRateBytesPerSecond: figure,
  etaSeconds: figure,
  throttlePercent: figure,
  health: MigrationHealth.optional().catch(undefined),
  healthReason: text,
  disks: z.array(DiskProgress).optional().catch(undefined),
  memory: MemoryProgress.optional().catch(undefined),
  stream: StreamCompression.optional().catch(undefined),
});
export type JobFigures = z.infer<typeof JobFigures>;

/** The figures of a job's `progress.details`; absent or malformed ones are undefined. */
export const jobFigures = (details: Record<string, unknown>): JobFigures => JobFigures.parse(details);

/** Bytes sent so far: a move's disks mirrored plus its memory sent, else the generic count. */
export function sentBytes(f: JobFigures): number | undefined {
  if (!f.disks && !f.memory) return f.transferredBytes;
  return (f.disks ?? []).reduce((sum, d) => sum + d.bytesDone, 0) + (f.memory?.bytesTransferred ?? 0);
}

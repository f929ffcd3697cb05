import { z } from 'zod';
import {
  LATENCY_BOUNDS_NS,
  type BlockCounters,
  type DiskStats,
  type GuestStats,
  type LatencyHistograms,
} from '../api/index.js';
import type { BlockStats, QueryBlock } from '../qmp/index.js';
import { diskDeviceId, diskNodeName } from './naming.js';

/*
 * The pure half of the host's storage statistics (src/api/stats.ts): QEMU's and the guest
 * agent's replies turned into the contract. stats.ts does the asking.
 */

// Every disk's latency bins (block-latency-histogram-set) have the manager's bounds,
// LATENCY_BOUNDS_NS in src/api/storage.ts: one list, so the manager keeps the agent's bins as they are.

/** Guest-controlled lists are capped: a guest must not flood the poll, the manager or Prometheus. */
export const MAX_GUEST_FILESYSTEMS = 64;
const MAX_GUEST_STRING = 256;

/**
 * The entry of one disk in query-blockstats or query-block. The device path (qdev) comes first:
 * a live storage move gives the disk a new node, while the device stays. The node name is the
 * fallback for entries without a device.
 */
export function findDiskEntry<T extends { qdev?: string | undefined }>(
  entries: readonly T[],
  diskId: string,
  nodeNameOf: (entry: T) => string | undefined,
): T | undefined {
  const device = `/${diskDeviceId(diskId)}/`;
  return (
    entries.find((e) => e.qdev?.includes(device) === true) ??
    entries.find((e) => e.qdev === undefined && nodeNameOf(e) === diskNodeName(diskId))
  );
}

export function blockCounters(stats: BlockStats['stats']): BlockCounters {
  return {
    readOps: stats.rd_operations,
    writeOps: stats.wr_operations,
    flushOps: stats.flush_operations,
    readBytes: stats.rd_bytes,
    writeBytes: stats.wr_bytes,
    readTotalNs: stats.rd_total_time_ns,
    writeTotalNs: stats.wr_total_time_ns,
    flushTotalNs: stats.flush_total_time_ns,
  };
}

const sameList = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * The read, write and flush histograms of a drive, or null unless all three are there with the
 * same bounds and one bin more than bounds (what block-latency-histogram-set without a direction makes).
 */
export function latencyHistograms(stats: BlockStats['stats']): LatencyHistograms | null {
  const { rd_latency_histogram: rd, wr_latency_histogram: wr, flush_latency_histogram: fl } = stats;
  if (!rd || !wr || !fl) return null;
  const bounds = rd.boundaries;
  for (const h of [rd, wr, fl])
    if (!sameList(h.boundaries, bounds) || h.bins.length !== bounds.length + 1) return null;
  return { boundariesNs: bounds, read: rd.bins, write: wr.bins, flush: fl.bins };
}

/** True when the drive lacks this project's histograms (none yet, or other bounds). */
export function needsHistograms(
  stats: BlockStats['stats'],
  boundariesNs: readonly number[] = LATENCY_BOUNDS_NS,
): boolean {
  const h = latencyHistograms(stats);
  return h === null || !sameList(h.boundariesNs, boundariesNs);
}

export type DiskImage = Pick<DiskStats, 'format' | 'formatVersion' | 'virtualSizeBytes' | 'allocatedBytes'>;

const Format = z.enum(['qcow2', 'raw']);

/** `qemu-img info --output=json` of one image (only what the statistics need). */
export const QemuImgInfo = z.looseObject({
  format: z.string(),
  'virtual-size': z.number().int().min(0),
  'actual-size': z.number().int().min(0).optional(),
  'format-specific': z
    .looseObject({ type: z.string(), data: z.looseObject({ compat: z.string().optional() }) })
    .optional(),
});

/** Format, compat level and sizes from an image description (qemu-img info, or query-block's `image`). */
export function diskImage(info: z.infer<typeof QemuImgInfo>): DiskImage | undefined {
  const format = Format.safeParse(info.format);
  if (!format.success) return undefined;
  return {
    format: format.data,
    formatVersion: format.data === 'qcow2' ? (info['format-specific']?.data.compat ?? null) : null,
    virtualSizeBytes: info['virtual-size'],
    allocatedBytes: info['actual-size'] ?? 0,
  };
}

/** The image a running drive shows in query-block, when QEMU tells its format. */
export function diskImageOfBlock(entry: QueryBlock[number] | undefined): DiskImage | undefined {
  const image = entry?.inserted?.image;
  return image ? diskImage(image) : undefined;
}

/** Provisioned (virtual) and allocated bytes per datastore: the sums over its disks. */
export function datastoreTotals(
  disks: readonly Pick<DiskStats, 'datastore' | 'virtualSizeBytes' | 'allocatedBytes'>[],
): Map<string, { provisionedBytes: number; allocatedBytes: number }> {
  const totals = new Map<string, { provisionedBytes: number; allocatedBytes: number }>();
  for (const d of disks) {
    const t = totals.get(d.datastore) ?? { provisionedBytes: 0, allocatedBytes: 0 };
    t.provisionedBytes += d.virtualSizeBytes;
    t.allocatedBytes += d.allocatedBytes;
    totals.set(d.datastore, t);
  }
  return totals;
}

const GuestBytes = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const GuestFs = z.looseObject({
  mountpoint: z.string().max(MAX_GUEST_STRING),
  type: z.string().max(MAX_GUEST_STRING),
  'total-bytes': GuestBytes.optional(),
  'used-bytes': GuestBytes.optional(),
});

/**
 * Filesystems with their size and use from guest-get-fsinfo; entries the guest could not measure
 * (or malformed ones) are left out, and null means unknown: none of them usable (an agent too old
 * to report usage). An empty list is known: no filesystem on a block device is mounted. qemu-ga
 * reports `total-bytes` as used + available to unprivileged users (df's view: root's reserve is
 * not in it), so used ÷ total is df's Use%. A mountpoint seen twice (bind mounts) counts once.
 */
export function guestFilesystems(reply: readonly unknown[]): GuestStats['filesystems'] {
  const entries = reply.flatMap((raw) => {
    const parsed = GuestFs.safeParse(raw);
    return parsed.success ? [parsed.data] : [];
  });
  const measured = entries.flatMap((f) =>
    f['total-bytes'] === undefined || f['used-bytes'] === undefined
      ? []
      : [
          {
            mountpoint: f.mountpoint,
            type: f.type,
            totalBytes: f['total-bytes'],
            usedBytes: f['used-bytes'],
          },
        ],
  );
  if (reply.length > 0 && measured.length === 0) return null;
  const seen = new Set<string>();
  return measured
    .filter((f) => !seen.has(f.mountpoint) && seen.add(f.mountpoint))
    .slice(0, MAX_GUEST_FILESYSTEMS);
}

/** The guest agent's version from guest-info, or null when it is not a plausible version string. */
export function guestAgentVersion(version: string): string | null {
  return version.length > 0 && version.length <= 64 && /^[\w.+~-]+$/.test(version) ? version : null;
}

/**
 * The start time of a process (field 22 of /proc/<pid>/stat, clock ticks since boot): with the pid
 * it names one QEMU process, even when the pid is reused later.
 */
export function processStartTicks(procStat: string): string | undefined {
  // Fields after the command name, which is in parentheses and may hold spaces or parentheses.
  const rest = procStat.slice(procStat.lastIndexOf(')') + 2).split(' ');
  const ticks = rest[22 - 3];
  return ticks !== undefined && /^\d+$/.test(ticks) ? ticks : undefined;
}

export const counterEpoch = (pid: number, startTicks: string): string => `${pid}-${startTicks}`;

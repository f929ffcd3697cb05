import { z } from 'zod';
import { Name } from './agent.js';

/*
 * One host's storage statistics at one moment (GET /v1/stats on the agent). The agent reports raw,
 * cumulative figures; the manager turns two samples into rates and latencies (Δtime ÷ Δops), so a
 * missed poll loses nothing. Unknown is null, never 0: a guest without an answering agent has
 * unknown filesystem usage, a stopped VM has no counters.
 */

const Bytes = z.number().int().min(0);
const Count = z.number().int().min(0);

/** Cumulative block counters of one disk since its QEMU process started (query-blockstats). */
export const BlockCounters = z.strictObject({
  readOps: Count,
  writeOps: Count,
  flushOps: Count,
  readBytes: Bytes,
  writeBytes: Bytes,
  readTotalNs: Count,
  writeTotalNs: Count,
  flushTotalNs: Count,
});
export type BlockCounters = z.infer<typeof BlockCounters>;

/**
 * Cumulative latency histograms (block-latency-histogram-set): bins[i] counts operations that took
 * between boundariesNs[i-1] and boundariesNs[i]; the last bin is everything above the last bound.
 */
export const LatencyHistograms = z.strictObject({
  boundariesNs: z.array(Count),
  read: z.array(Count),
  write: z.array(Count),
  flush: z.array(Count),
});
export type LatencyHistograms = z.infer<typeof LatencyHistograms>;

export const DiskStats = z.strictObject({
  vm: Name,
  /** The VM's id: kept across hosts, so a disk's series follows the VM when it moves. */
  vmId: z.uuid(),
  disk: Name,
  datastore: Name,
  format: z.enum(['qcow2', 'raw']),
  /** qcow2 compat level ("0.10" is version 2, "1.1" version 3); null for raw. */
  formatVersion: z.string().nullable(),
  virtualSizeBytes: Bytes,
  allocatedBytes: Bytes,
  /**
   * Identifies the QEMU process the counters belong to (pid and start time): counters restart
   * from zero when this changes, so a smaller value starts a new series instead of a negative rate.
   */
  counterEpoch: z.string().nullable(),
  counters: BlockCounters.nullable(),
  histograms: LatencyHistograms.nullable(),
});
export type DiskStats = z.infer<typeof DiskStats>;

/**
 * Why a host does not reach one of its shared datastores (agent/shared-health.ts): its filesystem
 * did not answer within the check's timeout (a hung network mount), answered with an error (a
 * stale or dead mount), is not that storage (no marker, or another storage's: the mount is gone),
 * or the host's sanlock dropped its cluster lockspace on it (lease renewals failed).
 */
export const DatastoreLostCause = z.enum(['no-answer', 'error', 'not-the-storage', 'lockspace-lost']);
export type DatastoreLostCause = z.infer<typeof DatastoreLostCause>;
export const DatastoreLost = z.strictObject({ cause: DatastoreLostCause, detail: z.string().max(2000) });
export type DatastoreLost = z.infer<typeof DatastoreLost>;

export const DatastoreStats = z.strictObject({
  name: Name,
  fsType: z.string(),
  capacityBytes: Bytes,
  freeBytes: Bytes,
  /** Sum of the virtual sizes of the images on it: what the guests were promised. */
  provisionedBytes: Bytes,
  /** Sum of the allocated sizes of the images on it: what they take today. */
  allocatedBytes: Bytes,
  /**
   * Set while this host cannot reach this shared datastore (never for a local one); its space
   * figures are then the last it measured.
   */
  lost: DatastoreLost.optional(),
});
export type DatastoreStats = z.infer<typeof DatastoreStats>;

export const GuestFilesystemStats = z.strictObject({
  mountpoint: z.string(),
  type: z.string(),
  totalBytes: Bytes,
  usedBytes: Bytes,
});

export const GuestStats = z.strictObject({
  vm: Name,
  vmId: z.uuid(),
  /** null when no guest agent answered. */
  agentVersion: z.string().nullable(),
  /** null when unknown (no agent, or an agent too old to report usage). */
  filesystems: z.array(GuestFilesystemStats).nullable(),
});
export type GuestStats = z.infer<typeof GuestStats>;

export const HostStats = z.strictObject({
  host: Name,
  sampledAt: z.iso.datetime(),
  datastores: z.array(DatastoreStats),
  disks: z.array(DiskStats),
  guests: z.array(GuestStats),
});
export type HostStats = z.infer<typeof HostStats>;

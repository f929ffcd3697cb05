/*
 * Migration parameters chosen from the link and the VM instead of QEMU's defaults (no I/O).
 *
 * - Stream bandwidth cap (`max-bandwidth`). QEMU 7.2 caps the memory stream at 128 MiB/s, which
 *   alone makes a busy guest never converge (lab-facts.md). On a link slower than what one stream
 *   can push, the cap is 95 % of the link: the stream then never fills the link's queue, so the
 *   final residual at switchover is not stuck behind queued bytes (that would add straight to the
 *   downtime) and the write-blocking disk mirror's small synchronous writes keep a short path.
 *   On a fast or unknown link the cap is lifted (64 GiB/s): the stream is CPU-bound anyway.
 * - multifd channels. A single stream is CPU-bound (~2-3 Gbit/s under TCG, ~10 Gbit/s under KVM);
 *   on a link faster than that, several channels spread the copy over the cores the guest's vCPUs
 *   leave free: two per spare core, 2..8, and none with fewer than two spare cores. There the
 *   channel threads fight the vCPUs, and it shows at the switchover: on the 2-core lab (1 vCPU,
 *   QEMU 10) an idle guest's downtime was 67-172 ms with 4 channels, 35-40 ms with one stream
 *   (the copy ~1.5 x faster with the channels). Not on slow links: there the link is the bound and
 *   channels only add per-channel overhead; not with post-copy (QEMU 7.2 could not combine them).
 * - Stream compression (multifd-zstd, xbzrle or plain): compression.ts chooses from the link,
 *   the guest's dirty rate and the idle CPU; here it only sets the channels or the xbzrle cache it
 *   asks for. Without a choice (callers that know no figures) the stream is plain.
 * - Downtime: the limit starts at the target (30 ms unless the user says otherwise) and the
 *   convergence policy moves it from measurements, never above the user's maximum (300 ms).
 * - Disk mirror `buf-size` (bytes in flight per mirror): QEMU's 16 MiB, less when many disks share
 *   a small host, because the paused final drain waits for it (see below).
 *
 * "QEMU 7.2" below marks behaviour seen on Debian 12's own QEMU, which Silobreak no longer runs on
 * (it needs QEMU 10, README.md); the choices are kept until re-measured on QEMU 10.
 */

import type { MigrationPlan, StreamCompression } from '../../api/index.js';
import type { CompressionChoice } from './compression.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export interface TuningInput {
  /** Measured or configured raw rate of the link between the hosts, bits/s; undefined = unknown. */
  linkBitsPerSecond?: number | undefined;
  accelerator: 'kvm' | 'tcg';
  hostCpus: number;
  hostMemoryBytes: number;
  vcpus: number;
  memoryBytes: number;
  diskCount: number;
  allowPostcopy: boolean;
  targetDowntimeMs?: number | undefined;
  maxDowntimeMs?: number | undefined;
  /** The stream's encoding (compression.ts); plain when absent. */
  compression?: CompressionChoice | undefined;
}

export interface MigrationTuning {
  slowLink: boolean;
  maxBandwidthBytesPerSecond: number;
  /** 0 = multifd off. */
  multifdChannels: number;
  /** undefined = xbzrle off. */
  xbzrleCacheBytes: number | undefined;
  targetDowntimeMs: number;
  maxDowntimeMs: number;
  mirrorBufSizeBytes: number;
  compression: StreamCompression;
  /** One line per choice, for the move's log. */
  reasons: string[];
}

/** What one migration stream carries before its thread saturates a core, bits/s. */
export function singleStreamBitsPerSecond(accelerator: 'kvm' | 'tcg'): number {
  return accelerator === 'tcg' ? 2.3e9 : 10e9;
}

export const UNLIMITED_BANDWIDTH = 64 * GiB;

export function chooseTuning(input: TuningInput): MigrationTuning {
  const reasons: string[] = [];
  const streamBits = singleStreamBitsPerSecond(input.accelerator);
  const link = input.linkBitsPerSecond;
  const slowLink = link !== undefined && link < streamBits;

  let maxBandwidthBytesPerSecond = UNLIMITED_BANDWIDTH;
  if (link !== undefined && slowLink) {
    maxBandwidthBytesPerSecond = Math.floor((link / 8) * 0.95);
    reasons.push(`link ${gbit(link)} Gbit/s is the bound: stream capped at 95 % of it, queue kept empty`);
  } else {
    reasons.push(
      link === undefined
        ? 'link rate unknown: stream cap lifted'
        : `link ${gbit(link)} Gbit/s exceeds one stream (~${gbit(streamBits)} Gbit/s): stream cap lifted`,
    );
  }

  const compression = input.compression;
  let multifdChannels = 0;
  let xbzrleCacheBytes: number | undefined;
  if (compression && compression.mode !== 'plain') {
    // The choice read the link, the guest and the idle CPU: its channels or cache win.
    multifdChannels = compression.channels;
    xbzrleCacheBytes = compression.xbzrleCacheBytes;
    reasons.push(compression.why);
  } else if (input.allowPostcopy) {
    reasons.push('post-copy allowed: multifd off (QEMU 7.2 cannot combine them)');
  } else if (!slowLink) {
    const spareCores = input.hostCpus - input.vcpus;
    if (spareCores >= 2) {
      multifdChannels = Math.min(8, 2 * spareCores);
      reasons.push(`copy is CPU-bound: ${multifdChannels} multifd channels over ${spareCores} spare cores`);
    } else {
      reasons.push(
        `copy is CPU-bound but only ${Math.max(0, spareCores)} core(s) spare beside ${input.vcpus} vCPU(s): one stream (channels would lengthen the switchover)`,
      );
    }
  }
  if (compression?.mode === 'plain') reasons.push(compression.why);

  const maxDowntimeMs = input.maxDowntimeMs ?? 300;
  const targetDowntimeMs = Math.min(input.targetDowntimeMs ?? 30, maxDowntimeMs);

  // The buffer bounds a mirror's data in flight, and that is what the final drain waits for while
  // the guest is paused: 256 MiB buffers made the drain 170-450 ms in bench/migration, 16 MiB ones
  // (QEMU's own default) 4-70 ms, with no loss of bulk copy speed on a LAN.
  const disks = Math.max(1, input.diskCount);
  const budget = Math.min(64 * MiB, input.hostMemoryBytes / 64);
  const perDisk = Math.min(16 * MiB, Math.max(4 * MiB, budget / disks));
  const mirrorBufSizeBytes = Math.floor(perDisk / MiB) * MiB;
  reasons.push(
    `mirror buffer ${mirrorBufSizeBytes / MiB} MiB per disk for ${disks} parallel mirror(s): small, so the paused final drain is short`,
  );

  return {
    slowLink,
    maxBandwidthBytesPerSecond,
    multifdChannels,
    xbzrleCacheBytes,
    targetDowntimeMs,
    maxDowntimeMs,
    mirrorBufSizeBytes,
    compression: {
      mode: compression?.mode ?? 'plain',
      why: compression?.why ?? 'no figures to choose from: plain',
    },
    reasons,
  };
}

function gbit(bits: number): string {
  return (bits / 1e9).toFixed(1);
}

/** The plan the agent answers with: the tuning, xbzrle's cache only when on. */
export function migrationPlan(tuning: MigrationTuning, postcopy: boolean): MigrationPlan {
  const { xbzrleCacheBytes, ...rest } = tuning;
  return { ...rest, ...(xbzrleCacheBytes === undefined ? {} : { xbzrleCacheBytes }), postcopy };
}

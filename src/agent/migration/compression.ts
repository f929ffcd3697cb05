/*
 * How the memory stream is encoded, chosen from the link, the guest's dirty rate and the source
 * host's idle CPU (pure: figures in, a choice with its reason out). Only a slow link makes it a
 * question: on a link faster than what the spare cores can compress, compression only costs.
 *
 * - plain: nothing known about the link (assume a LAN), or too little idle CPU (a compressing
 *   channel would take its time from the guest's vCPUs, under TCG from the very guest whose
 *   dirtying the move must outrun), or a link so fast that the idle cores cannot compress enough
 *   to beat it by `minGain`, or post-copy allowed with multifd (tuning.ts keeps them apart).
 * - xbzrle: the guest outruns the link and rewrites the same small set of pages over and over
 *   (its dirty rate over a short window is several times that over a long one): pre-copy then
 *   re-sends that set on every pass, and XOR deltas against the pages sent last time are what
 *   shrinks it. Its cache must hold the set (sized to it, a power of two: QEMU 10 still rejects
 *   other sizes), at most a quarter of the guest's RAM. One encoder (QEMU's migration thread),
 *   no multifd (QEMU 10: "Multifd is not compatible with xbzrle"). Source only: the target
 *   decodes xbzrle pages whatever its capabilities say (ram.c's load path checks none).
 * - multifd-zstd: otherwise, when the link is the bound: every page (the bulk copy and each
 *   re-send) is compressed by up to `maxChannels` channels, one per idle core. zstd at level 1:
 *   higher levels cost several times the CPU for a few percent. QEMU already skips zero pages
 *   (multifd detects them itself since 9.0), so the gain is the compressible rest. Both sides need
 *   the same `multifd-compression`. zlib (`multifd-zlib`) is for QEMU builds without zstd; Debian's
 *   QEMU 10.0.2 accepts none, zlib and zstd (not qpl, uadk, qatzip).
 *
 * Compression is not free at the switchover: the channels' last pages and their sync ride in the
 * pause (QEMU downtime 395 ms with multifd-zstd against 17 ms plain on this 2-core lab, in
 * compression.lab.test.ts). So when the guest is measured to dirty no more than the convergence
 * policy's aim (half the link), plain converges unthrottled and stays plain: compression would
 * only shorten the bulk copy and pay for it in downtime. Past that, compression replaces seconds
 * of throttling (the guest stopped up to 9/10 of the time) by that one cost.
 *
 * The page-sampling dirty rate cannot tell a guest that rewrites a few bytes of each page (where
 * xbzrle shines) from one that rewrites whole pages with new data (where it sends every page in
 * full, plus the encoding work): xbzrle is chosen only for the re-dirtying pattern it was built
 * for, and the convergence policy's throttle stays the lever when the guest outruns it anyway.
 */
import type { StreamCompression } from '../../api/index.js';
import { RHO_TARGET } from './convergence.js';

const MiB = 1024 * 1024;

/** The thresholds of the choice, in one place (each explained above and beside it). */
export const COMPRESSION_RULES = {
  /**
   * Guest pages one core compresses per second with zstd level 1 (bytes in). zstd's own figure for
   * level 1 is ~500 MB/s a core; QEMU's per-page packets and a host that also runs the guest take
   * about half. An estimate to re-measure with bench/migration.
   */
  zstdBytesPerSecondPerCore: 250e6,
  /** The same for zlib level 1: about a quarter of zstd's speed. */
  zlibBytesPerSecondPerCore: 60e6,
  /** Compression must promise this many times the link's plain rate, else plain. */
  minGain: 1.25,
  /** Idle cores below this: plain. A channel at level 1 keeps most of a core busy. */
  minSpareCores: 0.75,
  /** More channels than this add threads to drain at the switchover for little gain on a slow link. */
  maxChannels: 4,
  /** xbzrle: the guest dirties at least this many times what the link carries... */
  xbzrleDirtyOverLink: 1,
  /** ...and re-dirties: dirty rate over the short window ≥ this × the rate over the long one. */
  xbzrleMinReDirty: 2,
  xbzrleMinCacheBytes: 64 * MiB,
  /** A working set needing a larger cache than this share of the guest's RAM: not xbzrle. */
  xbzrleMaxCacheFraction: 0.25,
  /** The cache holds the working set with this much room (pages the guest adds while it runs). */
  xbzrleCacheHeadroom: 1.5,
  /** A guest dirtying at most this share of the link converges plain, unthrottled: no compression. */
  plainConvergesAtOrBelow: RHO_TARGET,
  zstdLevel: 1,
  zlibLevel: 1,
} as const;

export interface CompressionInput {
  /** The link between the hosts, bytes/s; undefined = unknown. */
  linkBytesPerSecond: number | undefined;
  /** Idle cores on the source host now; undefined = unknown (taken as none: plain). */
  spareCores: number | undefined;
  /** The guest's dirty rate over the long sampling window (bytes/s); undefined = not measured. */
  dirtyBytesPerSecond?: number | undefined;
  /**
   * Dirty rate over the short window / over the long window (`reDirtyFactor`): ~1 when the guest
   * keeps dirtying new pages, up to long/short when it rewrites one small set over and over.
   */
  reDirty?: number | undefined;
  /** Seconds of the long window: the pages it saw dirtied are the working set when re-dirty is high. */
  longWindowSeconds?: number;
  memoryBytes: number;
  allowPostcopy: boolean;
  /** The source host's cores: a link faster than all of them could beat is plain without a probe. */
  hostCores?: number | undefined;
  /** Whether this QEMU has zstd (else zlib); Debian's QEMU 10 has both. */
  zstd?: boolean;
}

export interface CompressionChoice extends StreamCompression {
  /** multifd channels for multifd-*; 0 otherwise. */
  channels: number;
  /** xbzrle's cache; undefined otherwise. */
  xbzrleCacheBytes: number | undefined;
}

const R = COMPRESSION_RULES;
const mbs = (bytes: number) => `${Math.round(bytes / 1e6)} MB/s`;
const cores = (n: number) => `${(Math.round(n * 10) / 10).toFixed(1)} idle core(s)`;

export function plainChoice(why: string): CompressionChoice {
  return { mode: 'plain', why, channels: 0, xbzrleCacheBytes: undefined };
}

/** Whole channels the idle CPU carries: a core counts once `minSpareCores` of it is idle. */
export function compressionChannels(spareCores: number): number {
  return Math.max(1, Math.min(R.maxChannels, Math.floor(spareCores + 1 - R.minSpareCores)));
}

/** The link and host rules: a plain choice, or what compression would have to work with. */
function hostVerdict(
  input: CompressionInput,
): CompressionChoice | { link: number; spare: number; zstd: boolean; channels: number; capacity: number } {
  const link = input.linkBytesPerSecond;
  if (link === undefined)
    return plainChoice('link rate unknown: plain (a LAN is assumed, compression would only cost)');
  if (linkBeatsCompression(input))
    return plainChoice(
      `link ${mbs(link)} is faster than compression could beat even with all ${input.hostCores} core(s) idle: plain`,
    );
  const spare = input.spareCores;
  if (spare === undefined || !(spare >= R.minSpareCores))
    return plainChoice(
      spare === undefined
        ? 'idle CPU unknown: plain'
        : `only ${cores(Math.max(0, spare))} on the source (< ${R.minSpareCores}): plain, compression would take the guest's CPU`,
    );
  const zstd = input.zstd ?? true;
  const channels = compressionChannels(spare);
  const capacity = channels * (zstd ? R.zstdBytesPerSecondPerCore : R.zlibBytesPerSecondPerCore);
  if (capacity < link * R.minGain)
    return plainChoice(
      `link ${mbs(link)} is faster than ${channels} ${zstd ? 'zstd' : 'zlib'} channel(s) can beat (~${mbs(capacity)} on ${cores(spare)}): plain`,
    );
  return { link, spare, zstd, channels, capacity };
}

/** The link is faster than every core of the host, all idle, could compress for (plain at once). */
export function linkBeatsCompression(input: CompressionInput): boolean {
  const link = input.linkBytesPerSecond;
  if (link === undefined || input.hostCores === undefined) return false;
  const perCore = (input.zstd ?? true) ? R.zstdBytesPerSecondPerCore : R.zlibBytesPerSecondPerCore;
  return compressionChannels(input.hostCores) * perCore < link * R.minGain;
}

/**
 * Whether the choice needs the re-dirty factor (the short window beside the long one), given the
 * long window's dirty rate and the idle CPU over it. Only xbzrle reads it, and only for a guest
 * dirtying at least `xbzrleDirtyOverLink` x the link: for every other guest, and when the host
 * alone decides, the short window is skipped. (A short window cannot stand in for the long one:
 * a guest that dirties in bursts reads 22 MB/s over 250 ms and 46 MB/s over 1 s.)
 */
export function choiceNeedsReDirty(input: CompressionInput): boolean {
  const host = hostVerdict(input);
  if ('mode' in host) return false;
  const dirty = input.dirtyBytesPerSecond;
  return dirty !== undefined && dirty >= host.link * R.xbzrleDirtyOverLink;
}

export function chooseCompression(input: CompressionInput): CompressionChoice {
  const host = hostVerdict(input);
  if ('mode' in host) return host;
  const { link, spare, zstd, channels, capacity } = host;
  const dirty = input.dirtyBytesPerSecond;
  const reDirty = input.reDirty;
  if (
    dirty !== undefined &&
    reDirty !== undefined &&
    dirty >= link * R.xbzrleDirtyOverLink &&
    reDirty >= R.xbzrleMinReDirty
  ) {
    const workingSet = dirty * (input.longWindowSeconds ?? 1);
    const cache = powerOfTwoAtLeast(Math.max(R.xbzrleMinCacheBytes, workingSet * R.xbzrleCacheHeadroom));
    if (cache <= input.memoryBytes * R.xbzrleMaxCacheFraction)
      return {
        mode: 'xbzrle',
        why:
          `guest dirties ${mbs(dirty)} over a link of ${mbs(link)} and rewrites the same ~${Math.round(workingSet / MiB)} MiB ` +
          `(${reDirty.toFixed(1)}x re-dirty): xbzrle deltas, cache ${cache / MiB} MiB`,
        channels: 0,
        xbzrleCacheBytes: cache,
      };
  }
  if (dirty !== undefined && dirty <= link * R.plainConvergesAtOrBelow)
    return plainChoice(
      `guest dirties ${mbs(dirty)}, at most ${R.plainConvergesAtOrBelow} x the link's ${mbs(link)}: plain converges unthrottled, compression would add to the downtime`,
    );
  if (input.allowPostcopy)
    return plainChoice(
      `link ${mbs(link)} is the bound, but post-copy is allowed and excludes multifd: plain`,
    );
  const mode = zstd ? 'multifd-zstd' : 'multifd-zlib';
  const guest =
    dirty === undefined
      ? 'dirty rate unknown'
      : `guest dirties ${mbs(dirty)}${reDirty !== undefined ? ` (${reDirty.toFixed(1)}x re-dirty)` : ''}`;
  return {
    mode,
    why: `link ${mbs(link)} is the bound and ${cores(spare)} compress up to ~${mbs(capacity)}; ${guest}: ${mode} on ${channels} channel(s)`,
    channels,
    xbzrleCacheBytes: undefined,
  };
}

/** The QEMU parameters of a plan's stream encoding (both sides; xbzrle's are the source's own). */
export function compressionParameters(
  compression: Pick<StreamCompression, 'mode'> | undefined,
): Record<string, string | number> {
  switch (compression?.mode) {
    case 'multifd-zstd':
      return { 'multifd-compression': 'zstd', 'multifd-zstd-level': R.zstdLevel };
    case 'multifd-zlib':
      return { 'multifd-compression': 'zlib', 'multifd-zlib-level': R.zlibLevel };
    default:
      return {};
  }
}

/**
 * Idle cores between two reads of /proc/stat's first line (`cpu user nice system idle iowait irq
 * softirq steal ...`): idle and iowait over all ticks, times the cores. Steal counts as busy (the
 * lab machine is itself a VM). Undefined when a line does not parse or no tick passed.
 */
export function idleCores(before: string, after: string, cpus: number): number | undefined {
  const a = cpuTicks(before);
  const b = cpuTicks(after);
  if (!a || !b) return undefined;
  const total = b.total - a.total;
  if (!(total > 0)) return undefined;
  return Math.max(0, Math.min(cpus, ((b.idle - a.idle) / total) * cpus));
}

function cpuTicks(stat: string): { idle: number; total: number } | undefined {
  const line = stat.split('\n').find((l) => /^cpu\s/.test(l));
  const fields = line?.trim().split(/\s+/).slice(1, 9).map(Number);
  if (!fields || fields.length < 5 || fields.some((n) => !Number.isFinite(n))) return undefined;
  return {
    idle: (fields[3] ?? 0) + (fields[4] ?? 0),
    total: fields.reduce((sum, n) => sum + n, 0),
  };
}

export function powerOfTwoAtLeast(n: number): number {
  return 2 ** Math.ceil(Math.log2(n));
}

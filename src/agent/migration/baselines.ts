/*
 * The migration policies of the systems users would pick instead of Silobreak, so the benchmark
 * (bench/migration) can drive the same move over the same QMP machinery (same NBD mirrors,
 * same pause-before-switchover order) and compare only the policy. Figures in, decisions out.
 *
 * - qemu-defaults: QEMU's own values, nothing adjusted (max-bandwidth 128 MiB/s, downtime-limit
 *   300 ms, no auto-converge, no xbzrle, one stream).
 * - libvirt-like: `virsh migrate --live --copy-storage-all`: bandwidth effectively unlimited,
 *   downtime-limit left at 300 ms, no convergence lever.
 * - libvirt-multifd-zstd: the same with `--parallel --compressed --comp-methods zstd`, the
 *   strongest stock setting of a peer: multifd with zstd on every page. libvirt sets the channel
 *   count and the zstd level only when told (`--parallel-connections`, `--comp-zstd-level`), so
 *   QEMU's defaults apply: 2 channels, level 1. (With `--parallel`, QEMU has no default method:
 *   `--compressed` alone is refused, hence the explicit zstd.) No auto-converge, 300 ms.
 * - proxmox-like: Proxmox VE's QemuMigrate: max-bandwidth 16 GiB/s, downtime-limit 100 ms,
 *   auto-converge (QEMU's throttle defaults: 20 % + 10 %/step up to 99 %), xbzrle with a cache of
 *   10 % of RAM rounded up to a power of two, and its downtime rule: it polls query-migrate once a
 *   second (every 100 ms once the remaining RAM is below the average bytes sent per poll); on each
 *   poll where `transferred` moved, it counts the poll when the remaining RAM grew or is 0, and
 *   after more than 5 counted polls it doubles the downtime limit and starts counting again.
 *
 * Only Proxmox-like (xbzrle) and libvirt-multifd-zstd compress; the others never do.
 *
 * Each baseline may get a time limit for its memory copy; reaching it cancels the move as
 * "not converged" (a plain QEMU never gives up by itself). Silobreak's own policy is in
 * convergence.ts and has no fixed timeout.
 */
import type { MigrationPlan, MigrationStrategy } from '../../api/index.js';
import { timeLimitCancel, type ConvergenceAction, type MigrationSample } from './convergence.js';
import { NO_THROTTLE, tallyThrottle, type ThrottleTally } from './throttle-tally.js';

export type BaselineStrategy = Exclude<MigrationStrategy, 'silobreak'>;

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export const QEMU_DEFAULT_MAX_BANDWIDTH = 128 * MiB;
export const QEMU_DEFAULT_DOWNTIME_MS = 300;
/** QEMU's largest accepted downtime-limit (ms). */
export const QEMU_MAX_DOWNTIME_MS = 2_000_000;
/** libvirt's "unlimited" exceeds any link; this value does too and QEMU accepts it. */
const LIBVIRT_UNLIMITED_BANDWIDTH = 64 * GiB;
const PROXMOX_MAX_BANDWIDTH = 16 * GiB;
const PROXMOX_DOWNTIME_MS = 100;
/** QEMU's multifd-channels when none is set (migration/options.c): libvirt's `--parallel` alone. */
export const QEMU_DEFAULT_MULTIFD_CHANNELS = 2;
/**
 * QEMU's multifd-zstd-level when none is set: libvirt's `--comp-methods zstd` alone. The engine
 * sets the level from compression.ts (COMPRESSION_RULES.zstdLevel); baselines.test.ts holds the two
 * equal, so a change to Silobreak's level cannot silently change the baseline.
 */
export const QEMU_DEFAULT_MULTIFD_ZSTD_LEVEL = 1;
/** QEMU mirrors with 16 MiB in flight unless told otherwise; neither libvirt nor Proxmox tells it. */
const QEMU_DEFAULT_MIRROR_BUF = 16 * MiB;

/** QEMU 7.2's auto-converge knobs at their defaults (the engine's own policy changes them). */
export const QEMU_DEFAULT_THROTTLE: Record<string, number> = {
  'cpu-throttle-initial': 20,
  'cpu-throttle-increment': 10,
  'max-cpu-throttle': 99,
  'throttle-trigger-threshold': 50,
};

/** Proxmox: 10 % of RAM, rounded up to a power of two (QEMU 7.2 rejects other sizes). */
export function proxmoxXbzrleCache(memoryBytes: number): number {
  const tenth = Math.floor(memoryBytes / 10);
  return tenth < 2 ? 1 : 2 ** Math.ceil(Math.log2(tenth));
}

/** The migration parameters the baseline would choose for a VM (post-copy stays off). */
export function baselinePlan(strategy: BaselineStrategy, memoryBytes: number): MigrationPlan {
  const common = {
    slowLink: false,
    multifdChannels: 0,
    postcopy: false,
    mirrorBufSizeBytes: QEMU_DEFAULT_MIRROR_BUF,
    compression: { mode: 'plain' as const, why: `baseline ${strategy}: never compresses` },
  };
  switch (strategy) {
    case 'qemu-defaults':
      return {
        ...common,
        maxBandwidthBytesPerSecond: QEMU_DEFAULT_MAX_BANDWIDTH,
        targetDowntimeMs: QEMU_DEFAULT_DOWNTIME_MS,
        maxDowntimeMs: QEMU_DEFAULT_DOWNTIME_MS,
        reasons: ['baseline qemu-defaults: QEMU 7.2 defaults, no convergence lever'],
      };
    case 'libvirt-like':
      return {
        ...common,
        maxBandwidthBytesPerSecond: LIBVIRT_UNLIMITED_BANDWIDTH,
        targetDowntimeMs: QEMU_DEFAULT_DOWNTIME_MS,
        maxDowntimeMs: QEMU_DEFAULT_DOWNTIME_MS,
        reasons: ['baseline libvirt-like: bandwidth unlimited, downtime-limit 300 ms'],
      };
    case 'libvirt-multifd-zstd':
      return {
        ...common,
        maxBandwidthBytesPerSecond: LIBVIRT_UNLIMITED_BANDWIDTH,
        multifdChannels: QEMU_DEFAULT_MULTIFD_CHANNELS,
        compression: {
          mode: 'multifd-zstd',
          why: `baseline libvirt-multifd-zstd: --parallel --compressed --comp-methods zstd, always (${QEMU_DEFAULT_MULTIFD_CHANNELS} channels, level ${QEMU_DEFAULT_MULTIFD_ZSTD_LEVEL})`,
        },
        targetDowntimeMs: QEMU_DEFAULT_DOWNTIME_MS,
        maxDowntimeMs: QEMU_DEFAULT_DOWNTIME_MS,
        reasons: [
          `baseline libvirt-multifd-zstd: bandwidth unlimited, downtime-limit 300 ms, ` +
            `${QEMU_DEFAULT_MULTIFD_CHANNELS} multifd channels with zstd`,
        ],
      };
    case 'proxmox-like': {
      const xbzrleCacheBytes = proxmoxXbzrleCache(memoryBytes);
      return {
        ...common,
        maxBandwidthBytesPerSecond: PROXMOX_MAX_BANDWIDTH,
        xbzrleCacheBytes,
        compression: { mode: 'xbzrle', why: 'baseline proxmox-like: xbzrle always, cache a tenth of RAM' },
        targetDowntimeMs: PROXMOX_DOWNTIME_MS,
        maxDowntimeMs: QEMU_MAX_DOWNTIME_MS,
        reasons: [
          `baseline proxmox-like: 16 GiB/s, downtime-limit 100 ms doubled by its rule, auto-converge, ` +
            `xbzrle cache ${xbzrleCacheBytes / MiB} MiB`,
        ],
      };
    }
  }
}

/** Only the Proxmox-like baseline turns QEMU's auto-converge on. */
export function baselineAutoConverge(strategy: BaselineStrategy): boolean {
  return strategy === 'proxmox-like';
}

export interface BaselineConfig {
  strategy: BaselineStrategy;
  /** Memory copy time limit; undefined = none. */
  timeLimitMs?: number | undefined;
}

export interface BaselineState {
  downtimeLimitMs: number;
  startedAtMs: number | undefined;
  timedOut: boolean;
  /** Proxmox's poll pacing and counters. */
  nextPollAtMs: number;
  polls: number;
  lastTransferred: number;
  lastRemaining: number | undefined;
  counter: number;
  /** Measured throttle, for the report. */
  throttle: ThrottleTally;
}

export function initialBaselineState(plan: Pick<MigrationPlan, 'targetDowntimeMs'>): BaselineState {
  return {
    downtimeLimitMs: plan.targetDowntimeMs,
    startedAtMs: undefined,
    timedOut: false,
    nextPollAtMs: 0,
    polls: 0,
    lastTransferred: 0,
    lastRemaining: undefined,
    counter: 0,
    throttle: NO_THROTTLE,
  };
}

const PROXMOX_POLL_MS = 1000;
const PROXMOX_FAST_POLL_MS = 100;
const PROXMOX_COUNT_LIMIT = 5;

/** Feeds one query-migrate sample to the baseline; returns the new state and actions. */
export function decideBaseline(
  previous: BaselineState,
  sample: MigrationSample,
  config: BaselineConfig,
): { state: BaselineState; actions: ConvergenceAction[] } {
  const state = { ...previous, throttle: tallyThrottle(previous.throttle, sample) };
  const actions: ConvergenceAction[] = [];
  if (sample.status !== 'active' || state.timedOut) return { state, actions };
  state.startedAtMs ??= sample.atMs;

  if (config.timeLimitMs !== undefined && sample.atMs - state.startedAtMs >= config.timeLimitMs) {
    state.timedOut = true;
    actions.push(timeLimitCancel(config.timeLimitMs));
    return { state, actions };
  }
  if (config.strategy !== 'proxmox-like' || sample.atMs < state.nextPollAtMs) return { state, actions };

  state.polls += 1;
  const averagePerPoll = state.lastTransferred > 0 ? state.lastTransferred / state.polls : 0;
  const fast = averagePerPoll > 0 && sample.remainingBytes < averagePerPoll;
  state.nextPollAtMs = sample.atMs + (fast ? PROXMOX_FAST_POLL_MS : PROXMOX_POLL_MS);
  if (sample.transferredBytes !== state.lastTransferred) {
    const grew =
      state.lastRemaining !== undefined &&
      state.lastRemaining > 0 &&
      sample.remainingBytes > state.lastRemaining;
    if (grew || sample.remainingBytes === 0) state.counter += 1;
    state.lastRemaining = sample.remainingBytes;
    if (state.counter > PROXMOX_COUNT_LIMIT) {
      state.counter = 0;
      state.downtimeLimitMs = Math.min(state.downtimeLimitMs * 2, QEMU_MAX_DOWNTIME_MS);
      actions.push({
        kind: 'set-downtime-limit',
        ms: state.downtimeLimitMs,
        reason: `proxmox rule: remaining RAM grew on ${PROXMOX_COUNT_LIMIT + 1} polls`,
      });
    }
  }
  state.lastTransferred = sample.transferredBytes;
  return { state, actions };
}

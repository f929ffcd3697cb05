/*
 * The convergence policy of a live migration's memory copy: figures in, actions out, no I/O.
 *
 * Pre-copy sends all RAM once, then keeps re-sending what the guest dirtied meanwhile. QEMU
 * switches over by itself once the residual (what is still dirty after a pass) can be sent within
 * the downtime limit at the measured rate. Whether that ever happens depends on one ratio:
 *
 *     rho = guest dirty rate / stream rate
 *
 * With rho well below 1 every pass leaves a smaller residual and QEMU finishes on its own. With rho
 * near or above 1 the residual stops shrinking and only a lever helps. The policy looks at the
 * figures once per pass (a new dirty-sync-count) and pulls the lever that slows the guest least:
 *
 *  1. Hold. Converging (rho below 0.8, or the residual shrank by a fifth since the last pass):
 *     QEMU will finish at the target downtime without help.
 *  2. Throttle proportionally. After `patiencePasses` passes without convergence, set the vCPU
 *     throttle to the smallest percentage that brings the guest's dirty rate to half the stream
 *     rate, computed from the measured rates (the measured dirty rate is divided by the current
 *     run share to get the unthrottled one). Re-evaluated every few passes: raised when still not
 *     converging, lowered when the guest now dirties far less than the stream carries. Never
 *     doubled blindly; QEMU 7.2 applies a new value at its next throttle trigger (every two passes),
 *     so a throttle is judged only on a pass measured entirely while QEMU reported it applied.
 *  3. Raise the downtime limit to what the measured expected downtime says the last step needs
 *     (residual / rate, plus a fifth), but never above `maxDowntimeMs`; used when the throttle is
 *     disallowed or already at its maximum, or when the residual is already within the target
 *     downtime and only QEMU's rate estimate disagrees.
 *  4. Post-copy, only when the user allowed it and the capability was set before the copy.
 *  1b. Try the link. A stream capped at its link's figure (tuning.ts) and pinned there while the
 *     residual does not shrink may be held back by a figure that no longer holds (the link was
 *     busy when it was probed). Before throttling, the cap is lifted for one pass: if the stream
 *     then runs a fifth faster the cap stays off; otherwise the link is the bound and the cap is
 *     set again (so the switchover's last bytes do not queue behind a full link). Tried again at
 *     most every `CAP_TRIAL_EVERY_MS`.
 *  5. Stalled. When neither transfer nor the residual has improved for `stallWindowMs` and no lever
 *     is left, or nothing at all was transferred for `noTransferWindowMs` (dead link or target):
 *     cancel cleanly. There is no overall timeout: a big move that keeps progressing keeps going.
 *
 * Compression (xbzrle) and multifd are capabilities QEMU only accepts before the copy starts, so
 * they are chosen up front by tuning.ts, not toggled here.
 */
import { MIGRATION_POLICY_DEFAULTS } from '../../api/index.js';
import { NO_THROTTLE, tallyThrottle, type ThrottleTally } from './throttle-tally.js';

/** One reading of query-migrate, reduced to the figures the policy needs. */
export interface MigrationSample {
  /** Monotonic clock, milliseconds. */
  atMs: number;
  /** query-migrate `status`. */
  status: string;
  transferredBytes: number;
  remainingBytes: number;
  totalBytes: number;
  /** Pages dirtied per second during the last sync period (0 until the first sync). */
  dirtyPagesRate: number;
  pageSize: number;
  /** QEMU's measured stream rate in megabits per second. */
  mbps: number;
  dirtySyncCount: number;
  expectedDowntimeMs?: number;
  cpuThrottlePercentage?: number;
}

export interface ConvergenceConfig {
  /** The downtime we aim for; the initial downtime-limit. */
  targetDowntimeMs: number;
  /** The policy never sets a downtime limit above this. */
  maxDowntimeMs: number;
  allowThrottle: boolean;
  maxThrottlePercent: number;
  /** The user allows post-copy and the postcopy-ram capability is set on both sides. */
  allowPostcopy: boolean;
  /** Passes without convergence before a lever is pulled. */
  patiencePasses: number;
  stallWindowMs: number;
  noTransferWindowMs: number;
  /** The memory copy gives up ("not converged") after this long; none by default. */
  timeLimitMs?: number | undefined;
  /** The stream's cap from the link's figure (bytes/s); undefined = uncapped. */
  bandwidthCapBytesPerSecond?: number | undefined;
}

/** Cancels a memory copy that ran out of its time limit (every strategy words it alike). */
export function timeLimitCancel(limitMs: number): ConvergenceAction {
  return {
    kind: 'cancel-stalled',
    reason: `not converged: time limit ${Math.round(limitMs / 1000)} s reached`,
  };
}

export const DEFAULT_CONVERGENCE: ConvergenceConfig = {
  targetDowntimeMs: MIGRATION_POLICY_DEFAULTS.targetDowntimeMs,
  maxDowntimeMs: MIGRATION_POLICY_DEFAULTS.maxDowntimeMs,
  allowThrottle: MIGRATION_POLICY_DEFAULTS.allowThrottle,
  maxThrottlePercent: MIGRATION_POLICY_DEFAULTS.maxThrottlePercent,
  allowPostcopy: MIGRATION_POLICY_DEFAULTS.allowPostcopy,
  patiencePasses: 2,
  stallWindowMs: MIGRATION_POLICY_DEFAULTS.stallWindowSeconds * 1000,
  noTransferWindowMs: 30_000,
};

export type ConvergenceAction =
  | { kind: 'set-downtime-limit'; ms: number; reason: string }
  | { kind: 'set-throttle'; percent: number; reason: string }
  | { kind: 'start-postcopy'; reason: string }
  /** undefined = no cap. */
  | { kind: 'set-bandwidth'; bytesPerSecond: number | undefined; reason: string }
  | { kind: 'cancel-stalled'; reason: string };

export interface ConvergenceState {
  downtimeLimitMs: number;
  /** The throttle the policy asked for (QEMU applies it at its next trigger). */
  throttlePercent: number;
  postcopyStarted: boolean;
  stalled: boolean;
  /** The first active sample: the memory copy's start, for the time limit. */
  startedAtMs: number | undefined;
  lastSync: number;
  lastResidual: number | undefined;
  bestResidual: number | undefined;
  notConvergingPasses: number;
  /** The first sync at which QEMU reported the requested throttle, once it did. */
  throttleAppliedSync: number | undefined;
  lastTransferred: number;
  lastTransferAtMs: number | undefined;
  lastProgressAtMs: number | undefined;
  lastRemaining: number | undefined;
  /** Measured throttle, for the report: peak and time spent throttled. */
  throttle: ThrottleTally;
  /** The cap in force (bytes/s); undefined = none. */
  capBytesPerSecond: number | undefined;
  /** A lifted cap under trial: the cap and the pass it was lifted at. */
  capTrial: { cap: number; sync: number } | undefined;
  lastCapTrialAtMs: number | undefined;
}

export function initialConvergenceState(config: ConvergenceConfig): ConvergenceState {
  return {
    downtimeLimitMs: config.targetDowntimeMs,
    throttlePercent: 0,
    postcopyStarted: false,
    stalled: false,
    startedAtMs: undefined,
    lastSync: 0,
    lastResidual: undefined,
    bestResidual: undefined,
    notConvergingPasses: 0,
    throttleAppliedSync: 0,
    lastTransferred: 0,
    lastTransferAtMs: undefined,
    lastProgressAtMs: undefined,
    lastRemaining: undefined,
    throttle: NO_THROTTLE,
    capBytesPerSecond: config.bandwidthCapBytesPerSecond,
    capTrial: undefined,
    lastCapTrialAtMs: undefined,
  };
}

/**
 * The dirty rate the policy aims for once it throttles, as a share of the stream rate; a guest
 * at or below it converges unthrottled (compression.ts leaves such a stream plain).
 */
export const RHO_TARGET = 0.5;
/** Below this ratio the residual shrinks quickly enough on its own. */
const RHO_CONVERGING = 0.8;
/** Below this ratio a throttle is more than needed and is lowered. */
const RHO_RELAX = 0.25;
/** Throttle values move in steps of this many points (QEMU's granularity is 1). */
const THROTTLE_STEP = 5;
/** A stream at this share of its cap is pinned there. */
const AT_CAP = 0.9;
/** A lifted cap stays off when the stream runs this much faster than the cap. */
const CAP_BEATEN = 1.2;
/** A failed trial of the link is repeated at most this often. */
export const CAP_TRIAL_EVERY_MS = 30_000;

/** Stream rate in bytes per second: QEMU's own figure, else none yet. */
export function streamRate(sample: MigrationSample): number {
  return (sample.mbps * 1e6) / 8;
}

export function dirtyRate(sample: MigrationSample): number {
  return sample.dirtyPagesRate * sample.pageSize;
}

/**
 * The smallest throttle (percent, in steps of 5) that brings the guest's dirty rate to half the
 * stream rate, given the rate measured while `currentPercent` was applied.
 */
export function proportionalThrottle(
  dirtyBytesPerSecond: number,
  streamBytesPerSecond: number,
  currentPercent: number,
  maxPercent: number,
): number {
  if (dirtyBytesPerSecond <= 0 || streamBytesPerSecond <= 0) return 0;
  const runShare = 1 - currentPercent / 100;
  const unthrottled = dirtyBytesPerSecond / Math.max(runShare, 0.01);
  const wantedShare = (RHO_TARGET * streamBytesPerSecond) / unthrottled;
  if (wantedShare >= 1) return 0;
  const percent = Math.ceil(((1 - wantedShare) * 100) / THROTTLE_STEP) * THROTTLE_STEP;
  return Math.min(Math.max(percent, THROTTLE_STEP), maxPercent);
}

/**
 * How the wanted throttle maps onto QEMU 7.2's auto-converge knobs: QEMU has no direct "set the
 * throttle" command, but at each trigger it sets min(current + increment, max-cpu-throttle), or
 * cpu-throttle-initial when not throttling yet. With initial = max = p and increment 99 every
 * trigger sets exactly p, up or down; a trigger threshold of 1 % makes the trigger fire every two
 * passes while throttling is wanted. Until then the threshold is 100 %, so QEMU only touches the
 * guest (by the minimum 1 %) when it dirties more than the stream carries and the policy is about
 * to act anyway.
 */
export function throttleParameters(percent: number): Record<string, number> {
  if (percent <= 0) {
    return {
      'cpu-throttle-initial': 1,
      'max-cpu-throttle': 1,
      'cpu-throttle-increment': 1,
      'throttle-trigger-threshold': 100,
    };
  }
  return {
    'cpu-throttle-initial': percent,
    'max-cpu-throttle': percent,
    'cpu-throttle-increment': 99,
    'throttle-trigger-threshold': 1,
  };
}

/** Feeds one sample to the policy; returns the new state and the actions to apply now. */
export function decideConvergence(
  previous: ConvergenceState,
  sample: MigrationSample,
  config: ConvergenceConfig,
): { state: ConvergenceState; actions: ConvergenceAction[] } {
  const state = { ...previous, throttle: tallyThrottle(previous.throttle, sample) };
  const actions: ConvergenceAction[] = [];
  if (state.throttleAppliedSync === undefined && sample.cpuThrottlePercentage === state.throttlePercent) {
    state.throttleAppliedSync = sample.dirtySyncCount;
  }

  if (sample.status !== 'active' || state.postcopyStarted || state.stalled) {
    return { state, actions };
  }
  state.startedAtMs ??= sample.atMs;
  if (config.timeLimitMs !== undefined && sample.atMs - state.startedAtMs >= config.timeLimitMs) {
    state.stalled = true;
    actions.push(timeLimitCancel(config.timeLimitMs));
    return { state, actions };
  }

  // Transfer liveness: anything sent at all?
  if (state.lastTransferAtMs === undefined || sample.transferredBytes > state.lastTransferred) {
    state.lastTransferred = sample.transferredBytes;
    state.lastTransferAtMs = sample.atMs;
  } else if (sample.atMs - state.lastTransferAtMs >= config.noTransferWindowMs) {
    state.stalled = true;
    const seconds = Math.round((sample.atMs - state.lastTransferAtMs) / 1000);
    actions.push({
      kind: 'cancel-stalled',
      reason: `nothing transferred for ${seconds} s: the link or the target is not taking data`,
    });
    return { state, actions };
  }
  state.lastProgressAtMs ??= sample.atMs;

  // During the first (bulk) pass progress is simply the remaining RAM going down.
  if (sample.dirtySyncCount <= 1) {
    if (state.lastRemaining === undefined || sample.remainingBytes < state.lastRemaining) {
      state.lastProgressAtMs = sample.atMs;
    }
    state.lastRemaining = sample.remainingBytes;
    state.lastSync = sample.dirtySyncCount;
    return { state, actions };
  }
  state.lastRemaining = sample.remainingBytes;

  if (sample.dirtySyncCount > state.lastSync) {
    state.lastSync = sample.dirtySyncCount;
    decideAtPass(state, sample, config, actions);
  }

  if (actions.length === 0 && sample.atMs - state.lastProgressAtMs >= config.stallWindowMs) {
    if (!leverLeft(state, config)) {
      state.stalled = true;
      const seconds = Math.round((sample.atMs - state.lastProgressAtMs) / 1000);
      actions.push({
        kind: 'cancel-stalled',
        reason:
          `residual memory has not shrunk for ${seconds} s with downtime limit ${state.downtimeLimitMs} ms ` +
          `and throttle ${state.throttlePercent} %: no lever left`,
      });
    }
  }
  return { state, actions };
}

function leverLeft(state: ConvergenceState, config: ConvergenceConfig): boolean {
  const throttleLeft = config.allowThrottle && state.throttlePercent < config.maxThrottlePercent;
  const downtimeLeft = state.downtimeLimitMs < config.maxDowntimeMs;
  return throttleLeft || downtimeLeft || config.allowPostcopy;
}

function decideAtPass(
  state: ConvergenceState,
  sample: MigrationSample,
  config: ConvergenceConfig,
  actions: ConvergenceAction[],
): void {
  const rate = streamRate(sample);
  const dirty = dirtyRate(sample);
  const residual = sample.remainingBytes;
  const rho = rate > 0 ? dirty / rate : Infinity;
  const shrinking = state.lastResidual !== undefined && residual < state.lastResidual * 0.8;
  state.lastResidual = residual;
  if (state.bestResidual === undefined || residual < state.bestResidual * 0.98) {
    state.bestResidual = residual;
    state.lastProgressAtMs = sample.atMs;
  }
  if (rate <= 0) return;
  const expectedMs = (residual / rate) * 1000;
  const converging = rho < RHO_CONVERGING || shrinking;
  state.notConvergingPasses = converging ? 0 : state.notConvergingPasses + 1;
  // A throttle is judged only on a dirty rate measured over a whole pass while it was applied.
  const settled =
    state.throttlePercent === 0 ||
    (state.throttleAppliedSync !== undefined && sample.dirtySyncCount > state.throttleAppliedSync);
  const applied = sample.cpuThrottlePercentage ?? 0;
  const rhoText = `dirty ${mb(dirty)} MB/s vs stream ${mb(rate)} MB/s`;

  // A pass ran with the cap lifted: keep it off when the link carried more, else set it again.
  const trial = state.capTrial;
  if (trial !== undefined && sample.dirtySyncCount > trial.sync) {
    state.capTrial = undefined;
    if (rate > trial.cap * CAP_BEATEN) {
      state.capBytesPerSecond = undefined;
      actions.push({
        kind: 'set-bandwidth',
        bytesPerSecond: undefined,
        reason: `the link carried ${mb(rate)} MB/s, more than its figure's ${mb(trial.cap)} MB/s cap: cap stays off`,
      });
    } else {
      actions.push({
        kind: 'set-bandwidth',
        bytesPerSecond: trial.cap,
        reason: `the link is the bound (${mb(rate)} MB/s with the cap off): cap of ${mb(trial.cap)} MB/s back`,
      });
    }
    return;
  }
  if (trial !== undefined) return;

  // Relax a throttle that is no longer needed (QEMU applies the lower value at its next trigger).
  if (state.throttlePercent > 0 && settled && rho < RHO_RELAX) {
    // Not below one step: QEMU only re-applies a throttle at a trigger, which 0 would switch off.
    const lower = Math.max(
      proportionalThrottle(dirty, rate, applied, config.maxThrottlePercent),
      THROTTLE_STEP,
    );
    if (lower < state.throttlePercent) {
      setThrottle(state, sample, lower, `relaxed: ${rhoText}`, actions);
      return;
    }
  }

  // The residual already fits the target downtime: only QEMU's threshold (rate x limit from its own
  // bandwidth estimate) is in the way, so let the limit follow the measurement.
  if (!converging) {
    const wanted = Math.ceil(expectedMs * 1.2);
    if (wanted > state.downtimeLimitMs && wanted <= config.targetDowntimeMs) {
      setDowntime(
        state,
        sample,
        wanted,
        `residual needs ~${Math.round(expectedMs)} ms at ${mb(rate)} MB/s`,
        actions,
      );
      return;
    }
  }
  if (state.notConvergingPasses < config.patiencePasses) return;

  const cap = state.capBytesPerSecond;
  if (
    cap !== undefined &&
    rate >= cap * AT_CAP &&
    (state.lastCapTrialAtMs === undefined || sample.atMs - state.lastCapTrialAtMs >= CAP_TRIAL_EVERY_MS)
  ) {
    state.capTrial = { cap, sync: sample.dirtySyncCount };
    state.lastCapTrialAtMs = sample.atMs;
    actions.push({
      kind: 'set-bandwidth',
      bytesPerSecond: undefined,
      reason: `not converging at the cap of ${mb(cap)} MB/s (${rhoText}): cap off for a pass, the link may carry more than its figure`,
    });
    return;
  }

  if (config.allowThrottle && settled && state.throttlePercent < config.maxThrottlePercent) {
    const wanted = proportionalThrottle(dirty, rate, applied, config.maxThrottlePercent);
    // Still not converging under the current throttle: at least one step more.
    const next = Math.min(Math.max(wanted, state.throttlePercent + THROTTLE_STEP), config.maxThrottlePercent);
    setThrottle(state, sample, next, `not converging: ${rhoText}`, actions);
    return;
  }
  if (config.allowThrottle && !settled && state.throttlePercent < config.maxThrottlePercent) return;

  if (state.downtimeLimitMs < config.maxDowntimeMs) {
    const wanted = Math.min(
      Math.max(Math.ceil(expectedMs * 1.2), state.downtimeLimitMs + 1),
      config.maxDowntimeMs,
    );
    setDowntime(
      state,
      sample,
      wanted,
      `not converging with ${rhoText}; last step needs ~${Math.round(expectedMs)} ms`,
      actions,
    );
    return;
  }
  if (config.allowPostcopy) {
    state.postcopyStarted = true;
    actions.push({ kind: 'start-postcopy', reason: `no pre-copy lever left: ${rhoText}` });
  }
}

function setThrottle(
  state: ConvergenceState,
  sample: MigrationSample,
  percent: number,
  reason: string,
  actions: ConvergenceAction[],
): void {
  state.throttlePercent = percent;
  state.throttleAppliedSync = undefined;
  state.notConvergingPasses = 0;
  state.lastProgressAtMs = sample.atMs;
  actions.push({ kind: 'set-throttle', percent, reason });
}

function setDowntime(
  state: ConvergenceState,
  sample: MigrationSample,
  ms: number,
  reason: string,
  actions: ConvergenceAction[],
): void {
  state.downtimeLimitMs = ms;
  state.notConvergingPasses = 0;
  state.lastProgressAtMs = sample.atMs;
  actions.push({ kind: 'set-downtime-limit', ms, reason });
}

function mb(bytesPerSecond: number): number {
  return Math.round(bytesPerSecond / 1e6);
}

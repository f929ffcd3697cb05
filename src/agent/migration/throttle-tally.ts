import type { MigrationSample } from './convergence.js';

/**
 * How much and how long the guest was slowed by auto-converge during one memory copy, whatever
 * policy drives it (Silobreak's or a baseline's): the move's report and the bench compare it.
 */
export interface ThrottleTally {
  peakPercent: number;
  throttledMs: number;
  lastSampleAtMs: number | undefined;
  /** QEMU's throttle at the last sample (what the progress line shows). */
  lastPercent: number;
}

export const NO_THROTTLE: ThrottleTally = {
  peakPercent: 0,
  throttledMs: 0,
  lastSampleAtMs: undefined,
  lastPercent: 0,
};

/** The tally with one more query-migrate sample: time since the last one counts if it was throttled. */
export function tallyThrottle(tally: ThrottleTally, sample: MigrationSample): ThrottleTally {
  const percent = sample.cpuThrottlePercentage ?? 0;
  const since = tally.lastSampleAtMs === undefined ? 0 : Math.max(0, sample.atMs - tally.lastSampleAtMs);
  return {
    peakPercent: Math.max(tally.peakPercent, percent),
    throttledMs: tally.throttledMs + (tally.lastPercent > 0 ? since : 0),
    lastSampleAtMs: sample.atMs,
    lastPercent: percent,
  };
}

/** Peak throttle and seconds throttled (to a tenth), for the move's report. */
export function throttleSummary(tally: ThrottleTally): { peakPercent: number; seconds: number } {
  return { peakPercent: tally.peakPercent, seconds: Math.round(tally.throttledMs / 100) / 10 };
}

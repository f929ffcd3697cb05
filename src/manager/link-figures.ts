/*
 * The link figures' rules (issue 27), pure: which figure a move plan uses, when a stored figure is
 * stale, and how a probe, a move's mirror or a caller's figure changes what is stored. links.ts
 * does the probing and the storing.
 */
import {
  describeLinkFigure,
  LINK_FIGURE_MAX_AGE_MS,
  type HostLink,
  type LinkChoice,
  type LinkFigure,
} from '../api/index.js';
import type { HostLinksTable } from './db.js';

/** A probe's result: the figure it measured, or why there is none. */
export type ProbeOutcome = { ok: true; figure: LinkFigure } | { ok: false; reason: string };

/** What is kept for one direction between two hosts. */
export type LinkState = Pick<HostLink, 'figure' | 'mirror' | 'probeError'>;

export const NO_LINK: LinkState = { figure: null, mirror: null, probeError: null };

/**
 * A move's mirror says little below this much data: setting up the NBD connection and the jobs
 * would weigh more than the copy.
 */
export const MIRROR_RATE_MIN_BYTES = 64 * 1024 * 1024;

/** Missing, or older than the maximum age: the periodic work measures it again. */
export function isStale(
  figure: LinkFigure | null,
  now: number,
  maxAgeMs: number = LINK_FIGURE_MAX_AGE_MS,
): boolean {
  return figure === null || now - Date.parse(figure.measuredAt) > maxAgeMs;
}

/**
 * The figure a move plan uses: the caller's own figure wins; else the probe made for this move;
 * else, when that probe failed (or none ran), the stored figure; else none (`link rate unknown`).
 */
export function chooseLink(q: {
  givenBitsPerSecond?: number | undefined;
  probe?: ProbeOutcome | undefined;
  stored: LinkFigure | null;
  now: number;
}): LinkChoice {
  const { probe, stored, now } = q;
  if (q.givenBitsPerSecond !== undefined) {
    const figure: LinkFigure = {
      bitsPerSecond: q.givenBitsPerSecond,
      source: 'given',
      measuredAt: new Date(now).toISOString(),
    };
    return { figure, why: describeLinkFigure(figure, now) };
  }
  if (probe?.ok) return { figure: probe.figure, why: describeLinkFigure(probe.figure, now) };
  const failed = probe ? `the probe now failed (${probe.reason})` : undefined;
  if (stored)
    return {
      figure: stored,
      why: `${describeLinkFigure(stored, now)} (stored${failed ? `; ${failed}` : ''})`,
    };
  return {
    figure: null,
    why: `link rate unknown: ${failed ? `${failed} and` : 'not probed, and'} no figure is stored`,
  };
}

/** A probe's outcome: a success replaces the figure and clears the last failure; a failure is noted. */
export function afterProbe(state: LinkState, outcome: ProbeOutcome, at: string): LinkState {
  if (outcome.ok) return { ...state, figure: outcome.figure, probeError: null };
  return { ...state, probeError: { at, reason: outcome.reason } };
}

/**
 * A rate observed while a move's disks mirrored. It is a lower bound of the link (the copy may
 * have been bound by the disks or the CPU), so it is always kept as the last mirror rate but
 * replaces the figure only where it is higher (or there is none): a link that carried that much
 * carries at least that much.
 */
export function afterMirror(state: LinkState, bitsPerSecond: number, at: string): LinkState {
  const mirror = { bitsPerSecond, observedAt: at };
  const raises = state.figure === null || bitsPerSecond > state.figure.bitsPerSecond;
  return {
    ...state,
    mirror,
    figure: raises ? { bitsPerSecond, source: 'mirror', measuredAt: at } : state.figure,
  };
}

/** A caller's figure for a move: the latest word on the link until something measures it. */
export function afterGiven(state: LinkState, bitsPerSecond: number, at: string): LinkState {
  return { ...state, figure: { bitsPerSecond, source: 'given', measuredAt: at } };
}

/**
 * The rate a move's mirror showed (bits/s): the data its disks held over the mirror's time, when
 * that was enough to tell one. Not the mirror job's length: that counts unallocated ranges too,
 * which cross as a few bytes each (a 2 GiB disk with 256 MiB of data "mirrored" at 786 MiB/s over
 * a 1 Gbit/s link).
 */
export function mirrorRate(q: {
  dataBytes?: number | undefined;
  mirrorTimeMs?: number | undefined;
}): number | undefined {
  const { dataBytes, mirrorTimeMs } = q;
  if (dataBytes === undefined || mirrorTimeMs === undefined) return undefined;
  if (dataBytes < MIRROR_RATE_MIN_BYTES || mirrorTimeMs <= 0) return undefined;
  return (dataBytes * 8) / (mirrorTimeMs / 1000);
}

type Row = Omit<HostLinksTable, 'from_host_id' | 'to_host_id'>;

export function stateOf(row: Row | undefined): LinkState {
  if (!row) return NO_LINK;
  return {
    figure:
      row.bits_per_second !== null && row.source !== null && row.measured_at !== null
        ? { bitsPerSecond: row.bits_per_second, source: row.source, measuredAt: row.measured_at }
        : null,
    mirror:
      row.mirror_bits_per_second !== null && row.mirror_at !== null
        ? { bitsPerSecond: row.mirror_bits_per_second, observedAt: row.mirror_at }
        : null,
    probeError:
      row.probe_error !== null && row.probe_error_at !== null
        ? { at: row.probe_error_at, reason: row.probe_error }
        : null,
  };
}

export function rowOf(state: LinkState): Row {
  return {
    bits_per_second: state.figure?.bitsPerSecond ?? null,
    source: state.figure?.source ?? null,
    measured_at: state.figure?.measuredAt ?? null,
    mirror_bits_per_second: state.mirror?.bitsPerSecond ?? null,
    mirror_at: state.mirror?.observedAt ?? null,
    probe_error: state.probeError?.reason ?? null,
    probe_error_at: state.probeError?.at ?? null,
  };
}

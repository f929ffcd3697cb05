import { z } from 'zod';
import { Ipv4, Name } from './agent.js';

/*
 * The fabric's links (issue 27): the rate between two hosts, measured by their agents on the
 * fabric, kept by the manager per ordered host pair and used by every move plan whose caller gives
 * none. A probe goes in two calls the manager makes:
 *   1. source  POST /v1/link-probe/sender -> LinkSender: a one-shot TCP sender on its fabric
 *                                            address, a one-time secret, a short expiry
 *   2. target  POST /v1/link-probe        -> LinkProbeResult: the target connects, presents the
 *                                            secret, and the sender fills the connection for
 *                                            `durationMs` and closes it; the rate is what the
 *                                            target received (a sender's count overshoots by its
 *                                            buffers). The receiver connects so that it can read
 *                                            into one reused buffer (agent/migration/link-probe.ts).
 */

/** Bounds and default of one probe's sending time (ms): short enough to run before every move. */
export const LINK_PROBE_MS = { default: 300, min: 50, max: 5000 } as const;

/**
 * A stored figure older than this is measured again by the manager's periodic work. Moves probe
 * afresh anyway; the stored figure is their fallback and what `host show` tells people, and a
 * link's rate changes with its hardware or its shaping, which an hour catches without keeping the
 * fabric busy (each probe fills the link for LINK_PROBE_MS.default).
 */
export const LINK_FIGURE_MAX_AGE_MS = 60 * 60_000;

export const LinkProbeMs = z
  .number()
  .int('must be a whole number of milliseconds')
  .min(LINK_PROBE_MS.min, `must be at least ${LINK_PROBE_MS.min} (ms)`)
  .max(LINK_PROBE_MS.max, `must be at most ${LINK_PROBE_MS.max} (ms)`);

/**
 * A one-time secret a source hands out for one peer connection of a move: what a link probe's
 * sender expects first on its connection, and the TLS pre-shared key of a cold move's NBD exports.
 * 32 random bytes in hex.
 */
export const PeerSecret = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits');
/** The one-time secret a sender expects first on its connection. */
export const LinkProbeSecret = PeerSecret;

export const LinkSenderRequest = z.object({
  /** How long the sender fills the connection; it cuts a transfer running much longer than that. */
  durationMs: LinkProbeMs.default(LINK_PROBE_MS.default),
});
export type LinkSenderRequest = z.input<typeof LinkSenderRequest>;

export const LinkSender = z.object({
  /** The source's fabric address and a port of its migration range. */
  address: Ipv4,
  port: z.number().int().min(1).max(65535),
  secret: LinkProbeSecret,
  /** The sender closes unused at this time. */
  expiresAt: z.iso.datetime(),
});
export type LinkSender = z.infer<typeof LinkSender>;

export const LinkProbeRequest = z.object({
  sender: LinkSender.pick({ address: true, port: true, secret: true }),
  /** The sender's `durationMs`: the receiver gives up on a transfer much longer than that. */
  durationMs: LinkProbeMs.default(LINK_PROBE_MS.default),
});
export type LinkProbeRequest = z.input<typeof LinkProbeRequest>;

export const LinkProbeResult = z.object({
  /** The rate at the receiver: the bytes after its first read over its first-to-last-read time. */
  bitsPerSecond: z.number().positive(),
  /** Every byte received. */
  receivedBytes: z.number().int().min(0),
  /** From the first to the last read of data. */
  spanMs: z.number().min(0),
  /** How long the transfer took at the receiver, from presenting the secret to the sender's close. */
  durationMs: z.number().int().min(0),
});
export type LinkProbeResult = z.infer<typeof LinkProbeResult>;

// ---------------------------------------------------------------------------------------------
// The manager's figures

/**
 * How a figure was obtained: `probe` (the agents measured it), `mirror` (observed while a move's
 * disks mirrored: a lower bound, the copy may have been disk- or CPU-bound) or `given` (a caller's
 * `policy.linkBitsPerSecond`).
 */
export const LinkSource = z.enum(['probe', 'mirror', 'given']);
export type LinkSource = z.infer<typeof LinkSource>;

export const LinkFigure = z.object({
  bitsPerSecond: z.number().positive(),
  source: LinkSource,
  measuredAt: z.iso.datetime(),
});
export type LinkFigure = z.infer<typeof LinkFigure>;

/** The figure a move plan uses and why that one: probed now, stored, given, or none at all. */
export const LinkChoice = z.object({
  figure: LinkFigure.nullable(),
  /** For people: the rate and where it came from, or why there is none. */
  why: z.string(),
});
export type LinkChoice = z.infer<typeof LinkChoice>;

/** One direction between two hosts as the manager keeps it. */
export const HostLink = z.object({
  from: Name,
  to: Name,
  /** The current figure; null when none was ever obtained. */
  figure: LinkFigure.nullable(),
  /** The figure is older than LINK_FIGURE_MAX_AGE_MS (or missing): the periodic work probes it. */
  stale: z.boolean(),
  /** The rate the last live move observed while its disks mirrored (a lower bound of the link). */
  mirror: z.object({ bitsPerSecond: z.number().positive(), observedAt: z.iso.datetime() }).nullable(),
  /** The last probe failed (a later success clears it). */
  probeError: z.object({ at: z.iso.datetime(), reason: z.string() }).nullable(),
});
export type HostLink = z.infer<typeof HostLink>;

export const HostLinks = z.object({
  host: Name,
  /** Both directions between this host and each other host, by peer name. */
  links: z.array(HostLink),
});
export type HostLinks = z.infer<typeof HostLinks>;

export const ProbeLinksRequest = z.strictObject({
  /** Only the links with this host (id or name); with every other host when absent. */
  to: z.string().min(1).max(64).optional(),
  durationMs: LinkProbeMs.default(LINK_PROBE_MS.default),
});
export type ProbeLinksRequest = z.input<typeof ProbeLinksRequest>;

/** The links after a probe, with the probes that failed (their reasons are also kept per link). */
export const ProbedLinks = HostLinks.extend({
  failures: z.array(z.object({ from: Name, to: Name, reason: z.string() })),
});
export type ProbedLinks = z.infer<typeof ProbedLinks>;

/** A figure's source in a word or two (tables, summaries). */
export const LINK_SOURCE_LABEL: Record<LinkSource, string> = {
  probe: 'probe',
  mirror: 'move mirror (lower bound)',
  given: 'given by a caller',
};

const HOW: Record<LinkSource, string> = {
  probe: 'probed',
  mirror: "observed while a move's disks mirrored (a lower bound)",
  given: 'given by the caller',
};

/** `3 min ago`, `just now`: how old a figure is, for people. */
export function figureAge(measuredAt: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(measuredAt)) / 1000));
  if (s < 5) return 'just now';
  if (s < 120) return `${s} s ago`;
  if (s < 2 * 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 2 * 86_400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} d ago`;
}

/** `2.35 Gbit/s` or `940 Mbit/s`. */
export function formatBitRate(bitsPerSecond: number): string {
  return bitsPerSecond >= 1e9
    ? `${(bitsPerSecond / 1e9).toFixed(2)} Gbit/s`
    : `${Math.round(bitsPerSecond / 1e6)} Mbit/s`;
}

/** `940 Mbit/s, probed 3 min ago`: a figure and where it came from. */
export function describeLinkFigure(figure: LinkFigure, now: number): string {
  const when = figure.source === 'given' ? '' : ` ${figureAge(figure.measuredAt, now)}`;
  return `${formatBitRate(figure.bitsPerSecond)}, ${HOW[figure.source]}${when}`;
}

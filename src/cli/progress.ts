// Progress of a job as people see it: a live bar on a terminal, sparse plain lines otherwise.
// Pure (time comes in as an argument), so monotonicity, rates and stall detection are unit-tested.
import { formatBytes, formatDuration, formatRate } from './units.js';

/** What a job reports; `details` may carry figures a handler knows (see `figures` below). */
export interface ProgressSample {
  state: string;
  phase: string;
  percent: number;
  message: string;
  details: Record<string, unknown>;
}

export interface ProgressView {
  state: string;
  phase: string;
  /** Never lower than any percent shown before, so a bar never runs backwards. */
  percent: number;
  message: string;
  elapsedSeconds: number;
  transferredBytes?: number;
  totalBytes?: number;
  rateBytesPerSecond?: number;
  etaSeconds?: number;
  /** Set once nothing has advanced for the stall threshold: "stalled", unlike merely slow. */
  stalledSeconds?: number;
}

/**
 * Figures a job's handler may put in `progress.details`; when it gives no rate or ETA, they are
 * derived here from the bytes moved and the percent over a sliding window.
 */
function figures(details: Record<string, unknown>) {
  const num = (key: string) => {
    const v = details[key];
    return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
  };
  return {
    transferredBytes: num('transferredBytes'),
    totalBytes: num('totalBytes'),
    rateBytesPerSecond: num('rateBytesPerSecond'),
    etaSeconds: num('etaSeconds'),
  };
}

const WINDOW_MS = 30_000;
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

export class ProgressTracker {
  private percent = 0;
  private sample: ProgressSample | undefined;
  private lastAdvanceMs: number;
  private lastBytes: number | undefined;
  private history: { t: number; percent: number; bytes: number | undefined }[] = [];

  constructor(
    private readonly startMs: number,
    private readonly stallAfterMs = 60_000,
  ) {
    this.lastAdvanceMs = startMs;
  }

  update(sample: ProgressSample, nowMs: number): void {
    const percent = sample.state === 'succeeded' ? 100 : Math.min(100, Math.max(0, sample.percent));
    const { transferredBytes } = figures(sample.details);
    const advanced =
      percent > this.percent ||
      (transferredBytes !== undefined && transferredBytes > (this.lastBytes ?? -1)) ||
      sample.phase !== this.sample?.phase;
    if (advanced) this.lastAdvanceMs = nowMs;
    this.percent = Math.max(this.percent, percent);
    if (transferredBytes !== undefined) this.lastBytes = Math.max(this.lastBytes ?? 0, transferredBytes);
    this.sample = sample;
    this.history.push({ t: nowMs, percent: this.percent, bytes: this.lastBytes });
    this.history = this.history.filter((h) => h.t >= nowMs - WINDOW_MS);
  }

  view(nowMs: number): ProgressView {
    const s = this.sample ?? { state: 'queued', phase: '', percent: 0, message: '', details: {} };
    const f = figures(s.details);
    const view: ProgressView = {
      state: s.state,
      phase: s.phase,
      percent: this.percent,
      message: s.message,
      elapsedSeconds: (nowMs - this.startMs) / 1000,
    };
    if (f.transferredBytes !== undefined) view.transferredBytes = f.transferredBytes;
    if (f.totalBytes !== undefined) view.totalBytes = f.totalBytes;
    const oldest = this.history[0];
    const newest = this.history[this.history.length - 1];
    const span = oldest && newest ? (newest.t - oldest.t) / 1000 : 0;
    // A slope over less than two seconds is noise.
    const usable = span >= 2 && oldest && newest;
    const rate =
      f.rateBytesPerSecond ??
      (usable && oldest.bytes !== undefined && newest.bytes !== undefined
        ? (newest.bytes - oldest.bytes) / span
        : undefined);
    if (rate !== undefined) view.rateBytesPerSecond = rate;
    const percentPerSecond = usable ? (newest.percent - oldest.percent) / span : 0;
    const eta = f.etaSeconds ?? (percentPerSecond > 0 ? (100 - this.percent) / percentPerSecond : undefined);
    if (eta !== undefined && !TERMINAL.has(s.state)) view.etaSeconds = eta;
    const idleMs = nowMs - this.lastAdvanceMs;
    if (s.state === 'running' && idleMs >= this.stallAfterMs) view.stalledSeconds = idleMs / 1000;
    return view;
  }
}

/** The figures after the percent and phase, shared by the bar and the plain lines. */
function extras(view: ProgressView): string[] {
  const parts: string[] = [];
  if (view.transferredBytes !== undefined) {
    parts.push(
      view.totalBytes !== undefined
        ? `${formatBytes(view.transferredBytes)}/${formatBytes(view.totalBytes)}`
        : formatBytes(view.transferredBytes),
    );
  }
  if (view.rateBytesPerSecond !== undefined) parts.push(formatRate(view.rateBytesPerSecond));
  if (view.stalledSeconds !== undefined)
    parts.push(`STALLED: no progress for ${formatDuration(view.stalledSeconds)}`);
  else if (view.etaSeconds !== undefined) parts.push(`ETA ${formatDuration(view.etaSeconds)}`);
  if (view.message) parts.push(view.message);
  return parts;
}

const BAR_CELLS = 24;

/** One terminal line: bar, percent, phase, figures, message; cut to `columns`. */
export function renderBar(view: ProgressView, columns = 80): string {
  const filled = Math.round((view.percent / 100) * BAR_CELLS);
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(BAR_CELLS - filled)}]`;
  const pct = `${Math.floor(view.percent)}%`.padStart(4);
  const line = [`${bar} ${pct}`, view.phase || view.state, ...extras(view)].join('  ');
  return [...line].length > columns ? `${[...line].slice(0, Math.max(0, columns - 1)).join('')}…` : line;
}

/** One log line for a non-terminal: `[1m 05s]  42%  mirror-disks  ...`. */
export function renderPlainLine(view: ProgressView): string {
  const pct = `${Math.floor(view.percent)}%`.padStart(4);
  return [`[${formatDuration(view.elapsedSeconds)}]`, pct, view.phase || view.state, ...extras(view)].join(
    '  ',
  );
}

export interface PlainLineState {
  atMs: number;
  phase: string;
  state: string;
  message: string;
  decile: number;
  stalled: boolean;
}

/**
 * Plain output stays readable in a log: a line when the state or phase changes, at every 10 %, when
 * a stall starts, when the message changes (at most every 5 s), and at least every 30 s.
 */
export function nextPlainLine(
  last: PlainLineState | undefined,
  view: ProgressView,
  nowMs: number,
): PlainLineState | undefined {
  const next: PlainLineState = {
    atMs: nowMs,
    phase: view.phase,
    state: view.state,
    message: view.message,
    decile: Math.floor(view.percent / 10),
    stalled: view.stalledSeconds !== undefined,
  };
  if (!last) return next;
  const since = nowMs - last.atMs;
  const due =
    next.state !== last.state ||
    next.phase !== last.phase ||
    next.decile > last.decile ||
    (next.stalled && !last.stalled) ||
    (next.message !== last.message && since >= 5_000) ||
    since >= 30_000;
  return due ? next : undefined;
}

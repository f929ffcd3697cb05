// Progress of a job as people see it: a live bar on a terminal, sparse plain lines otherwise.
// Pure (time comes in as an argument), so monotonicity, rates and stall detection are unit-tested.
import { jobFigures, sentBytes, TERMINAL_JOB_STATES, type JobFigures } from '../api/index.js';
import { formatBytes, formatDuration, formatRate } from './units.js';

/** What a job reports; `details` may carry figures its handler knows (JobFigures). */
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
  figures: JobFigures;
  /** Given by the job, else derived from bytes over the recent window. */
  rateBytesPerSecond?: number;
  /** Given by the job, else derived from the percent over the recent window. */
  etaSeconds?: number;
  /** Set when nothing advanced for the stall threshold (or the job says so): unlike merely slow. */
  stalledSeconds?: number;
}

const WINDOW_MS = 30_000;

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
    const moved = sentBytes(jobFigures(sample.details));
    const advanced =
      percent > this.percent ||
      (moved !== undefined && moved > (this.lastBytes ?? -1)) ||
      sample.phase !== this.sample?.phase;
    if (advanced) this.lastAdvanceMs = nowMs;
    this.percent = Math.max(this.percent, percent);
    if (moved !== undefined) this.lastBytes = Math.max(this.lastBytes ?? 0, moved);
    this.sample = sample;
    this.history.push({ t: nowMs, percent: this.percent, bytes: this.lastBytes });
    this.history = this.history.filter((h) => h.t >= nowMs - WINDOW_MS);
  }

  view(nowMs: number): ProgressView {
    const s = this.sample ?? { state: 'queued', phase: '', percent: 0, message: '', details: {} };
    const f = jobFigures(s.details);
    const view: ProgressView = {
      state: s.state,
      phase: s.phase,
      percent: this.percent,
      message: s.message,
      // Clocks of manager and CLI may differ a little: never show negative time.
      elapsedSeconds: Math.max(0, (nowMs - this.startMs) / 1000),
      figures: f,
    };
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
    if (eta !== undefined && !(TERMINAL_JOB_STATES as readonly string[]).includes(s.state))
      view.etaSeconds = eta;
    const idleMs = nowMs - this.lastAdvanceMs;
    if (s.state === 'running' && (idleMs >= this.stallAfterMs || f.health === 'stalled')) {
      view.stalledSeconds = idleMs / 1000;
    }
    return view;
  }
}

/** The figures after the percent and phase, shared by the bar and the plain lines. */
function extras(view: ProgressView): string[] {
  const f = view.figures;
  const parts: string[] = [];
  // During the memory copy its own figures lead (the disks are in sync by then): what is left,
  // the stream's rate against the guest's dirty rate, and the pass.
  const memory = view.phase === 'copy-memory' ? f.memory : undefined;
  if (memory && f.disks?.length && f.disks.every((d) => d.ready)) parts.push('disks in sync');
  else
    for (const d of f.disks ?? []) {
      parts.push(
        d.ready
          ? `${d.diskId} in sync`
          : `${d.diskId} ${formatBytes(d.bytesDone)}/${formatBytes(d.bytesTotal)}`,
      );
    }
  if (memory) {
    parts.push(
      `memory ${formatBytes(memory.bytesRemaining)} left of ${formatBytes(memory.bytesTotal)}`,
      formatRate(memory.rateBytesPerSecond),
      `dirtying ${formatRate(memory.dirtyRateBytesPerSecond)}`,
      `pass ${memory.passes}`,
    );
  } else if (f.memory) {
    parts.push(
      `memory ${formatBytes(f.memory.bytesTransferred)} sent, ${formatBytes(f.memory.bytesRemaining)} left, pass ${f.memory.passes}`,
    );
  } else if (f.transferredBytes !== undefined) {
    parts.push(
      f.totalBytes !== undefined
        ? `${formatBytes(f.transferredBytes)}/${formatBytes(f.totalBytes)}`
        : formatBytes(f.transferredBytes),
    );
  }
  // Until QEMU's first memory figures the job still carries the mirror's rate: not shown then.
  if (!(view.phase === 'copy-memory' && (f.memory || f.disks))) {
    if (view.rateBytesPerSecond !== undefined) parts.push(formatRate(view.rateBytesPerSecond));
    if (f.dirtyRateBytesPerSecond) parts.push(`dirtying ${formatRate(f.dirtyRateBytesPerSecond)}`);
  }
  if (f.throttlePercent) parts.push(`throttle ${Math.round(f.throttlePercent)}%`);
  if (view.stalledSeconds !== undefined) {
    // The job's own verdict comes with its reason below; ours is the idle time.
    parts.push(
      f.health === 'stalled' ? 'STALLED' : `STALLED: no progress for ${formatDuration(view.stalledSeconds)}`,
    );
  } else if (view.etaSeconds !== undefined) {
    parts.push(`ETA ${formatDuration(view.etaSeconds)}`);
  }
  if ((f.health === 'slow' || f.health === 'stalled') && f.healthReason) parts.push(f.healthReason);
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

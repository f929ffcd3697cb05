// A move's figures as the console shows them (pure): what a move job's progress details say
// while it runs (src/manager/move/progress.ts puts the agent's figures there), what its result
// or last details say when it ended, and the request the move form sends. Unit-tested beside.
import {
  jobFigures,
  MoveResult,
  sentBytes,
  TERMINAL_JOB_STATES,
  type Job,
  type MoveCheck,
  type MoveVmRequest,
  type VmMoveStorageRequest,
} from '../../api/browser.js';

/** Queued or running: not yet in one of the terminal states. */
export const isInFlight = (job: Pick<Job, 'state'>): boolean => !TERMINAL_JOB_STATES.includes(job.state);

/** What a running move's bar and figures show. */
export interface LiveFigures {
  from?: string;
  to?: string;
  mode?: 'live' | 'cold';
  /** Bytes sent so far: the disks mirrored plus the memory sent (or a cold copy's bytes). */
  sentBytes?: number;
  /** Bytes the move has to send as far as known now (grows when the guest writes). */
  totalBytes?: number;
  rateBytesPerSecond?: number;
  dirtyRateBytesPerSecond?: number;
  throttlePercent?: number;
  etaSeconds?: number;
  health?: 'progressing' | 'slow' | 'stalled';
  healthReason?: string;
  /** e.g. `2/2 disks in sync`. */
  disksInSync?: string;
  memoryPasses?: number;
  stream?: string;
}

/** The figures of a move job's `progress.details`; absent ones stay absent. */
export function liveFigures(details: Record<string, unknown>): LiveFigures {
  const d = jobFigures(details);
  const out: LiveFigures = {};
  if (d.from) out.from = d.from;
  if (d.to) out.to = d.to;
  if (d.mode) out.mode = d.mode;
  const sent = sentBytes(d);
  if (sent !== undefined) out.sentBytes = sent;
  if (d.disks || d.memory) {
    const disks = d.disks ?? [];
    out.totalBytes =
      disks.reduce((sum, x) => sum + x.bytesTotal, 0) +
      (d.memory ? d.memory.bytesTransferred + d.memory.bytesRemaining : 0);
    if (disks.length)
      out.disksInSync = `${disks.filter((x) => x.ready).length}/${disks.length} disks in sync`;
    if (d.memory) out.memoryPasses = d.memory.passes;
  }
  if (d.rateBytesPerSecond !== undefined) out.rateBytesPerSecond = d.rateBytesPerSecond;
  // The memory copy's own dirty rate is the one that matters while memory is copied.
  const dirty = d.memory?.dirtyRateBytesPerSecond ?? d.dirtyRateBytesPerSecond;
  if (dirty !== undefined) out.dirtyRateBytesPerSecond = dirty;
  if (d.throttlePercent !== undefined) out.throttlePercent = d.throttlePercent;
  if (d.etaSeconds !== undefined) out.etaSeconds = d.etaSeconds;
  if (d.health) out.health = d.health;
  if (d.healthReason) out.healthReason = d.healthReason;
  if (d.stream) out.stream = `${d.stream.mode} (${d.stream.why})`;
  return out;
}

/** What a finished move cost. */
export interface FinishedFigures {
  from?: string;
  to?: string;
  mode?: 'live' | 'cold';
  totalSeconds?: number;
  /** QEMU's downtime of the switchover (live moves). */
  downtimeMs?: number;
  /** How long the guest was paused by the two hosts' clocks (live moves between hosts). */
  guestPausedMs?: number;
  /** Disk and memory bytes sent. */
  sentBytes?: number;
  /** The disks went as a delta onto a retained copy. */
  delta?: boolean;
  note?: string;
}

const seconds = (from: string | undefined, to: string | undefined): number | undefined => {
  if (!from || !to) return undefined;
  const ms = Date.parse(to) - Date.parse(from);
  return Number.isFinite(ms) && ms >= 0 ? ms / 1000 : undefined;
};

/**
 * A finished move's figures: its result when it succeeded (MoveResult), else what its last
 * progress details and its timestamps tell (how far a failed or cancelled move got).
 */
export function finishedFigures(
  job: Pick<Job, 'result' | 'progress' | 'startedAt' | 'createdAt' | 'finishedAt'>,
): FinishedFigures {
  const result = MoveResult.safeParse(job.result);
  if (result.success) {
    const r = result.data;
    const disk = r.diskBytes ?? r.stats.diskBytes;
    const memory = r.memoryBytes ?? r.stats.memoryBytes;
    const out: FinishedFigures = { from: r.from, to: r.to, mode: r.mode, totalSeconds: r.totalTimeMs / 1000 };
    const downtime = r.downtimeMs ?? r.stats.downtimeMs;
    if (downtime !== undefined) out.downtimeMs = downtime;
    if (r.guestDowntimeMs !== undefined) out.guestPausedMs = r.guestDowntimeMs;
    if (disk !== undefined || memory !== undefined) out.sentBytes = (disk ?? 0) + (memory ?? 0);
    if (r.stats.deltaBytes !== undefined) out.delta = true;
    if (r.note) out.note = r.note;
    return out;
  }
  const live = liveFigures(job.progress.details);
  const out: FinishedFigures = {};
  if (live.from) out.from = live.from;
  if (live.to) out.to = live.to;
  if (live.mode) out.mode = live.mode;
  const total = seconds(job.startedAt ?? job.createdAt, job.finishedAt);
  if (total !== undefined) out.totalSeconds = total;
  if (live.sentBytes !== undefined) out.sentBytes = live.sentBytes;
  return out;
}

/** A dry run's check as a verdict people read (never colour alone). */
export type CheckLevel = 'pass' | 'warn' | 'fail';
export function checkLevel(check: Pick<MoveCheck, 'ok' | 'warning'>): CheckLevel {
  return !check.ok ? 'fail' : check.warning ? 'warn' : 'pass';
}
export const CHECK_TEXT: Record<CheckLevel, string> = { pass: 'pass', warn: 'warning', fail: 'FAILED' };

/** What the move form holds. An empty datastore means the target host's default. */
export interface MoveForm {
  to: string;
  /** Disk id -> datastore of the target host ('' = its default). */
  datastores: Record<string, string>;
  /** `--no-secure`: off by default, so the move runs over TLS as `vm move` does. */
  noSecure: boolean;
  keepSource: boolean;
  retain: boolean;
}

export const emptyMoveForm = (): MoveForm => ({
  to: '',
  datastores: {},
  noSecure: false,
  keepSource: false,
  retain: false,
});

/**
 * The request the form sends: what `vm move --to <host>` sends with the same flags (cli
 * commands/move.ts moveRequestBody) — a field only when the user chose something, so the
 * request's defaults (TLS on, the target's default datastore) are the ones used.
 */
export function moveRequest(form: MoveForm): MoveVmRequest {
  const chosen = Object.entries(form.datastores).filter(([, ds]) => ds !== '');
  return {
    to: form.to,
    ...(chosen.length ? { datastore: Object.fromEntries(chosen) } : {}),
    ...(form.noSecure ? { secure: false } : {}),
    ...(form.keepSource ? { keepSource: true } : {}),
    ...(form.retain ? { retain: true } : {}),
  };
}

/** Moving storage: the datastore, and the disks when not every one (absent: all not there yet). */
export function moveStorageRequest(datastore: string, disks: readonly string[], all: readonly string[]) {
  const request: VmMoveStorageRequest = { datastore };
  if (disks.length && disks.length < all.length) request.disks = [...disks];
  return request;
}

/*
 * A move's job progress from the source agent's MigrationStatus (pure). The job's percentage runs
 * through the phase table (phases.ts): the disk mirror fills mirror-disks' share by bytes mirrored,
 * the memory copy fills copy-memory's by bytes sent over bytes sent + remaining. Remaining bytes
 * can grow again (the guest writes), so the share can dip; the job runner keeps the percentage
 * monotonic. The agent's figures go into `details` as they are (per disk, memory, rate, dirty
 * rate, ETA, health, throttle), which is what the CLI's progress bar reads.
 */
import type { ColdCopyStatus, MigrationPlan, MigrationStatus, MoveResult } from '../../api/index.js';
import type { ProgressUpdate } from '../jobs.js';
import { phasePercent, type MovePhase } from './phases.js';

export interface MoveContext {
  vm: { id: string; name: string };
  from: string;
  to: string;
  mode: 'live' | 'cold';
}

/** The job phase the agent's status belongs to. */
export function jobPhaseOf(status: MigrationStatus): MovePhase {
  switch (status.progress.phase) {
    case 'copy-memory':
      return 'copy-memory';
    case 'switchover':
    case 'clean-up':
    case 'done':
      return status.state === 'completed' ? 'switchover' : 'copy-memory';
    default:
      return 'mirror-disks';
  }
}

const fraction = (done: number, total: number) => (total > 0 ? done / total : 0);

export function moveProgress(ctx: MoveContext, status: MigrationStatus): ProgressUpdate {
  const p = status.progress;
  const phase = jobPhaseOf(status);
  let share = 0;
  let message: string;
  if (phase === 'mirror-disks') {
    const done = p.disks.reduce((sum, d) => sum + d.bytesDone, 0);
    const total = p.disks.reduce((sum, d) => sum + d.bytesTotal, 0);
    share = p.disks.length && p.disks.every((d) => d.ready) ? 1 : fraction(done, total);
    const ready = p.disks.filter((d) => d.ready).length;
    message = p.disks.length
      ? `mirroring ${p.disks.length} disk${p.disks.length === 1 ? '' : 's'} to ${ctx.to} (${ready} in sync)`
      : `preparing the copy to ${ctx.to}`;
  } else if (phase === 'copy-memory') {
    const m = p.memory;
    share = m ? fraction(m.bytesTransferred, m.bytesTransferred + m.bytesRemaining) : 0;
    message = `copying memory to ${ctx.to}${m ? `, pass ${m.passes}` : ''}`;
  } else {
    share = 1;
    message = `switched over to ${ctx.to}`;
  }
  if (p.health !== 'progressing' && p.healthReason) message += ` (${p.health}: ${p.healthReason})`;
  return {
    phase,
    percent: phasePercent(phase, share),
    message,
    details: {
      from: ctx.from,
      to: ctx.to,
      mode: ctx.mode,
      migrationId: status.id,
      disks: p.disks,
      ...(p.memory ? { memory: p.memory } : {}),
      rateBytesPerSecond: p.rateBytesPerSecond,
      dirtyRateBytesPerSecond: p.dirtyRateBytesPerSecond,
      ...(p.etaSeconds !== undefined ? { etaSeconds: p.etaSeconds } : {}),
      health: p.health,
      ...(p.healthReason ? { healthReason: p.healthReason } : {}),
      throttlePercent: p.throttlePercent,
      ...(status.stats.compression ? { stream: status.stats.compression } : {}),
    },
  };
}

const MiB = 1024 * 1024;

/** A cold move's progress from its target's copy: mirror-disks' share by how far the disks are. */
export function coldCopyProgress(ctx: MoveContext, status: ColdCopyStatus, disks: number): ProgressUpdate {
  const received = `${(status.receivedBytes / MiB).toFixed(1)} MiB received`;
  return {
    phase: 'mirror-disks',
    percent: phasePercent('mirror-disks', status.percent / 100),
    message: `copying ${disks} disk${disks === 1 ? '' : 's'} to ${ctx.to}: ${status.percent.toFixed(0)} % (${received})`,
    details: {
      from: ctx.from,
      to: ctx.to,
      mode: ctx.mode,
      migrationId: status.migrationId,
      copyPercent: status.percent,
      // The CLI shows the amount and its rate from this generic figure (src/cli/progress.ts).
      transferredBytes: status.receivedBytes,
    },
  };
}

/** The job's result: QEMU's downtime and the engine's figures, with the move's total time. */
export function moveResult(
  ctx: MoveContext,
  stats: MigrationStatus['stats'],
  totalTimeMs: number,
  keptSource: boolean,
  note?: string,
  plan?: MigrationPlan,
): MoveResult {
  const guestDowntime = guestDowntimeMs(stats);
  return {
    vm: ctx.vm,
    mode: ctx.mode,
    from: ctx.from,
    to: ctx.to,
    totalTimeMs,
    ...(stats.downtimeMs !== undefined ? { downtimeMs: stats.downtimeMs } : {}),
    ...(guestDowntime !== undefined ? { guestDowntimeMs: guestDowntime } : {}),
    ...(stats.diskBytes !== undefined ? { diskBytes: stats.diskBytes } : {}),
    ...(stats.memoryBytes !== undefined ? { memoryBytes: stats.memoryBytes } : {}),
    ...(stats.throttlePeakPercent !== undefined ? { throttlePeakPercent: stats.throttlePeakPercent } : {}),
    ...(stats.throttleSeconds !== undefined ? { throttleSeconds: stats.throttleSeconds } : {}),
    keptSource,
    stats,
    ...(plan ? { plan } : {}),
    ...(note ? { note } : {}),
  };
}

/**
 * The guest's pause by the hosts' clocks: from the source QEMU's pause for the switchover to the
 * target's resume. Undefined when either is unknown, or when the clocks disagree so much that the
 * figure would be negative.
 */
export function guestDowntimeMs(stats: MigrationStatus['stats']): number | undefined {
  if (!stats.switchoverAt || !stats.resumedAt) return undefined;
  const ms = Date.parse(stats.resumedAt) - Date.parse(stats.switchoverAt);
  return Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

/**
 * A move's figures for its end change record: what the result (or, for a failed move, the last
 * status) measured, whole numbers, absent ones left out.
 */
export function moveFigures(
  measured: Pick<MoveResult, 'totalTimeMs' | 'downtimeMs' | 'guestDowntimeMs' | 'diskBytes' | 'memoryBytes'>,
  status: MigrationStatus | undefined,
): Record<string, number> {
  const p = status?.progress;
  const copied = p?.disks.length ? p.disks.reduce((sum, d) => sum + d.bytesDone, 0) : undefined;
  const figures: Record<string, number | undefined> = {
    totalTimeMs: measured.totalTimeMs,
    downtimeMs: measured.downtimeMs,
    guestDowntimeMs: measured.guestDowntimeMs,
    diskBytes: measured.diskBytes ?? copied,
    memoryBytes: measured.memoryBytes ?? p?.memory?.bytesTransferred,
  };
  return Object.fromEntries(
    Object.entries(figures)
      .filter((e): e is [string, number] => e[1] !== undefined && Number.isFinite(e[1]))
      .map(([k, v]) => [k, Math.round(v)]),
  );
}

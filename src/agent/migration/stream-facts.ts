/*
 * The figures compression.ts chooses from, measured on the source before a move: the guest's dirty
 * rate over a long window with the host's idle cores over it (/proc/stat), then, only for a guest
 * that outruns the link (where xbzrle is a candidate), its dirty rate over a short window for the
 * re-dirty factor (calc-dirty-rate, page sampling; QEMU runs one at a time). Only asked for when
 * the link is slow enough for compression to matter (service.ts), so fast-link moves pay nothing
 * for it; most slow-link moves pay the long window (~1.1 s), not both and an idle look (~1.6 s).
 */
import { readFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { QmpClient } from '../../qmp/index.js';
import { idleCores } from './compression.js';
import { DirtyRateInfo } from './qemu-replies.js';

export const SHORT_WINDOW_MS = 250;
export const LONG_WINDOW_MS = 1000;

export interface StreamFacts {
  dirtyBytesPerSecond: number | undefined;
  /** Short-window rate over long-window rate (see compression.ts). */
  reDirty: number | undefined;
  spareCores: number | undefined;
  longWindowSeconds: number;
}

/** Idle cores over `during` (the host's /proc/stat before and after). */
export async function idleCoresDuring<T>(
  during: Promise<T>,
): Promise<{ result: T; idle: number | undefined }> {
  const read = () => readFile('/proc/stat', 'utf8').catch(() => '');
  const before = await read();
  const result = await during;
  return { result, idle: idleCores(before, await read(), cpus().length) };
}

/** The guest's dirty rate over `ms` (bytes/s), or undefined when QEMU could not measure it. */
export async function measureDirtyRate(qmp: QmpClient, ms: number): Promise<number | undefined> {
  try {
    await qmp.execute('calc-dirty-rate', { 'calc-time': ms, 'calc-time-unit': 'millisecond' });
    await sleep(ms);
    for (let i = 0; i < 40; i++) {
      const info = await qmp.execute('query-dirty-rate', undefined, { schema: DirtyRateInfo });
      // QEMU reports MiB/s.
      if (info.status === 'measured') return (info['dirty-rate'] ?? 0) * 1024 * 1024;
      await sleep(50);
    }
  } catch {
    // Another measurement running, or a QEMU without it: unknown.
  }
  return undefined;
}

/**
 * `needsShort` reads the long window's figures (dirty rate and idle cores) and says whether the
 * re-dirty factor is still needed (compression.ts, `choiceNeedsReDirty`).
 */
export async function measureStreamFacts(
  qmp: QmpClient,
  needsShort: (long: { dirtyBytesPerSecond: number | undefined; spareCores: number | undefined }) => boolean,
): Promise<StreamFacts> {
  const { result: long, idle } = await idleCoresDuring(measureDirtyRate(qmp, LONG_WINDOW_MS));
  const facts = { dirtyBytesPerSecond: long, spareCores: idle, longWindowSeconds: LONG_WINDOW_MS / 1000 };
  if (!needsShort(facts)) return { ...facts, reDirty: undefined };
  const short = await measureDirtyRate(qmp, SHORT_WINDOW_MS);
  return {
    ...facts,
    reDirty: short !== undefined && long !== undefined && long > 0 ? short / long : undefined,
  };
}

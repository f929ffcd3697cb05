// A benchmark run as saved to results/<timestamp>.json, and its text report (pure). The schema
// checks files read back by render.ts.
import { z } from 'zod';
import { POLICIES, type Row } from './model.js';
import { renderProductPath, renderTable, renderTargetRows, renderTlsCost, targetTally } from './table.js';

const Num = z.number();
const MoveRunSchema = z.object({
  policy: z.enum(POLICIES),
  run: z.number().int(),
  from: z.string(),
  to: z.string(),
  jobId: z.string().optional(),
  migrationId: z.string().optional(),
  outcome: z.enum(['completed', 'not-converged', 'failed', 'guest-broken']),
  error: z.string().optional(),
  totalMs: Num.optional(),
  mirrorMs: Num.optional(),
  diskDataBytes: Num.optional(),
  memoryMs: Num.optional(),
  memoryBytes: Num.optional(),
  dirtyRateBytesPerSecond: Num.optional(),
  dirtyRatePeakBytesPerSecond: Num.optional(),
  iterations: Num.optional(),
  downtimeMs: Num.optional(),
  pingDowntimeMs: Num.optional(),
  pingOtherGapMs: Num.optional(),
  pingOtherGapAtMs: Num.optional(),
  stealMs: Num.optional(),
  throttlePeakPercent: Num.optional(),
  throttleSeconds: Num.optional(),
  compression: z.string().optional(),
  policyLog: z.array(z.string()).optional(),
});

const RowSchema = z.object({
  key: z.object({
    vm: z.string(),
    workload: z.enum(['idle', 'dirty', 'dirty+disk']),
    link: z.enum(['full', '1gbit']),
  }),
  facts: z.object({
    linkBitsPerSecond: Num,
    fsyncBytesPerSecond: Num,
    loadAverage: Num.optional(),
  }),
  runs: z.array(MoveRunSchema),
});

export const BenchResult = z.object({
  createdAt: z.string(),
  quick: z.boolean(),
  runs: z.number().int(),
  bigRuns: z.number().int(),
  timeLimitSeconds: z.number().int(),
  /**
   * Since 2026-12-01: every policy got the limit and the same attempts, each row began with an
   * uncounted warm-up move, the dirtying guests wrote mixed content. Absent in older results.
   */
  fair: z.boolean().optional(),
  dirtyRateMiB: z.number().optional(),
  diskWriteKiB: z.number().optional(),
  rows: z.array(RowSchema),
  guestChecks: z.array(z.string()),
  /**
   * Since issue 27: every move went through the manager's API as `silobreak vm move` does, and the
   * `silobreak` runs are the product path (no policy); absent in older results, whose `silobreak`
   * runs were told the iperf3-measured link rate and drove the agents directly.
   */
  productPath: z.boolean().optional(),
  /**
   * Since issue 28: Silobreak's rows moved with the request's default, TLS; absent in older
   * results, whose Silobreak rows moved in clear (secure: false).
   */
  tlsDefault: z.boolean().optional(),
  /** The result files a combined matrix was made of (render.ts --combine); absent in a single run. */
  combinedFrom: z.array(z.string()).optional(),
});
export type BenchResult = z.infer<typeof BenchResult>;

/** The set-up every part of a combined matrix must share, or its rows would not compare. */
const SHARED_SETUP = [
  'quick',
  'runs',
  'bigRuns',
  'timeLimitSeconds',
  'fair',
  'dirtyRateMiB',
  'diskWriteKiB',
  'productPath',
  'tlsDefault',
] as const;

type SavedRow = BenchResult['rows'][number];
/** A combined matrix lists its rows as run.ts does: by VM, then link, then workload. */
const LINK_ORDER: readonly SavedRow['key']['link'][] = ['full', '1gbit'];
const WORKLOAD_ORDER: readonly SavedRow['key']['workload'][] = ['idle', 'dirty', 'dirty+disk'];
const rowKey = (row: SavedRow) => `${row.key.vm} / ${row.key.workload} / ${row.key.link}`;

/**
 * One matrix from runs made apart (the machine's time rarely allows the ~2 h in one go): the rows
 * of every file in run.ts's order, a row measured again replaced by the later file's. Every file
 * must have the same set-up (SHARED_SETUP), and it must be the fair one; else it throws naming
 * the file and the field.
 */
export function combineResults(parts: readonly { file: string; result: BenchResult }[]): BenchResult {
  const first = parts[0];
  if (first === undefined) throw new Error('combine: no result files given');
  for (const { file, result } of parts) {
    if (result.fair !== true) throw new Error(`${file}: fair: only runs with the fair set-up combine`);
    for (const field of SHARED_SETUP)
      if (result[field] !== first.result[field])
        throw new Error(
          `${file}: ${field}: ${String(result[field])} differs from ${first.file}'s ${String(first.result[field])}`,
        );
  }
  const rows = new Map<string, SavedRow>();
  for (const { result } of parts) for (const row of result.rows) rows.set(rowKey(row), row);
  const latest = parts.map((p) => p.result.createdAt).sort();
  return {
    ...first.result,
    createdAt: latest[latest.length - 1] ?? first.result.createdAt,
    rows: [...rows.values()].sort(
      (a, b) =>
        a.key.vm.localeCompare(b.key.vm) ||
        LINK_ORDER.indexOf(a.key.link) - LINK_ORDER.indexOf(b.key.link) ||
        WORKLOAD_ORDER.indexOf(a.key.workload) - WORKLOAD_ORDER.indexOf(b.key.workload),
    ),
    guestChecks: parts.flatMap((p) => p.result.guestChecks),
    combinedFrom: parts.map((p) => p.file),
  };
}

function loadLine(rows: readonly Row[]): string {
  const loads = rows.map((r) => r.facts.loadAverage).filter((l): l is number => l !== undefined);
  if (loads.length === 0) return '';
  const range = `${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}`;
  return `machine load average (1 min) at row start: ${range} on 2 cores (shared with other work)`;
}

/** Stalls of the machine itself, which hit every policy alike (see pings.ts). */
function stallLine(rows: readonly Row[]): string {
  const runs = rows.flatMap((r) => r.runs);
  const gaps = runs.map((r) => r.pingOtherGapMs).filter((g): g is number => g !== undefined);
  const steal = runs.map((r) => r.stealMs).filter((s): s is number => s !== undefined);
  if (gaps.length === 0 && steal.length === 0) return '';
  const max = (xs: number[]) => (xs.length ? Math.round(Math.max(...xs)) : 0);
  const long = runs.filter((r) => (r.pingOtherGapMs ?? 0) >= 200);
  const policies = new Set(long.map((r) => r.policy));
  return (
    `ping gaps away from the switchover (not downtime): longest ${max(gaps)} ms, ` +
    `>= 200 ms in ${long.length} of ${gaps.length} moves ` +
    `(policies: ${[...policies].join(', ') || 'none'}); CPU time taken by the machine's own host ` +
    `(steal) per move up to ${max(steal)} ms`
  );
}

export function renderReport(result: BenchResult): string {
  const workloads =
    result.dirtyRateMiB === undefined
      ? ''
      : ` dirty = sb-dirty ${result.dirtyRateMiB} MiB/s${result.fair ? ' (mixed zero, compressible and random pages)' : ''}; dirty+disk adds sb-diskwriter ` +
        `${result.diskWriteKiB ?? '?'} KiB/s (fsync per 4 KiB).`;
  const productPath = result.productPath === true;
  return [
    `# bench/migration ${result.createdAt}${result.quick ? ' (--quick)' : ''}`,
    ...(productPath
      ? [
          "Every move went through the manager's REST API as `silobreak vm move` does (a job per move); " +
            "the contenders differ only in the request's policy: Silobreak none (the product path), " +
            '"link given" the iperf3-measured link rate, each baseline its strategy' +
            (result.tlsDefault
              ? "; Silobreak's rows send no `secure` (the default since issue 28: TLS), `--no-secure` " +
                'sends false, the baselines move in clear (secure: false).'
              : '; every move in clear (secure: false).'),
        ]
      : []),
    ...(result.combinedFrom ? [`rows combined from ${result.combinedFrom.join(', ')} (same set-up)`] : []),
    `2-host TCG lab, 1 vCPU guests; runs per row: 1 GiB VM ${result.runs}, 4 GiB VM ${result.bigRuns}; ` +
      (result.fair
        ? `every policy gets a ${result.timeLimitSeconds} s memory-copy time limit ("not converged"` +
          (productPath ? ': the bench cancels the job through the manager' : '') +
          ') and the same attempts; each row starts with an uncounted warm-up move.'
        : `baselines get a ${result.timeLimitSeconds} s memory-copy time limit ("not converged").`) +
      workloads,
    'Medians with (min–max) over the converged runs; total = ' +
      (productPath
        ? "the move's job from its creation to its end (what `vm move` waits for); "
        : 'prepare on target .. source removed; ') +
      'a QEMU downtime of 0 (read before QEMU computed it) counts as not measured; ping downtime = ' +
      'the gap between replies to a 10 ms ping that spans the switchover.',
    '',
    renderTable(result.rows, productPath),
    '',
    loadLine(result.rows),
    stallLine(result.rows),
    '',
    result.productPath
      ? 'Silobreak (vm move, no policy) against the strongest baseline per target (ratio, baseline, verdict):'
      : 'Silobreak (told the measured link rate: results before issue 27) against the strongest baseline per target:',
    renderTargetRows(result.rows),
    '',
    targetTally(result.rows),
    ...(result.productPath ? ['', renderProductPath(result.rows)] : []),
    ...(renderTlsCost(result.rows) ? ['', renderTlsCost(result.rows)] : []),
    ...(result.guestChecks.length
      ? ['', 'guest record checks after the dirty+disk moves:', ...result.guestChecks]
      : []),
  ].join('\n');
}

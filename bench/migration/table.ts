// The benchmark's one table (markdown): per row, Silobreak beside each baseline, medians with
// min–max, and Silobreak's ratios against the issue's targets (pure).
import { POLICIES, summarize, type MoveRun, type PolicySummary, type Row } from './model.js';
import { formatSpread, type Spread } from './summary.js';
import { checkTargets, type TargetCheck } from './targets.js';

const MB = 1e6;
const s1 = (ms: number) => (ms / 1000).toFixed(1);
const int = (v: number) => String(Math.round(v));
const mbs = (bps: number) => String(Math.round(bps / MB));

const COLUMNS = [
  'VM (RAM / disk)',
  'case',
  'link Gbit/s',
  'fsync MB/s',
  'policy',
  'converged',
  'stream',
  'total s',
  'mirror s',
  'mirror MB/s',
  'memory s',
  'memory MB/s',
  'dirty MB/s',
  'iterations',
  'QEMU downtime ms',
  'ping downtime ms',
  'throttle peak %',
  'throttled s',
  'vs targets (Silobreak / reference)',
];

function targetsCell(checks: TargetCheck[]): string {
  return checks
    .filter((c) => c.status !== 'n/a')
    .map((c) => `${c.name} ${c.ratio === undefined ? '' : `${c.ratio.toFixed(2)} `}${c.status}`)
    .join('; ');
}

function convergedCell(p: PolicySummary, row: Row): string {
  const cell = `${p.converged}/${p.attempted}`;
  const stopped = row.runs.find((r) => r.policy === p.policy && r.outcome !== 'completed');
  if (!stopped) return cell;
  const why = { 'not-converged': 'not converged', 'guest-broken': 'guest broken', failed: 'failed' } as const;
  return `${cell} ${why[stopped.outcome as keyof typeof why]}`;
}

/** The memory stream's encoding of the policy's runs: one mode, or each with its count when they differ. */
export function streamCell(runs: readonly MoveRun[]): string {
  const counts = new Map<string, number>();
  for (const r of runs) if (r.compression) counts.set(r.compression, (counts.get(r.compression) ?? 0) + 1);
  if (counts.size <= 1) return [...counts.keys()][0] ?? '—';
  return [...counts].map(([mode, n]) => `${mode} ×${n}`).join(', ');
}

function line(cells: string[]): string {
  return `| ${cells.join(' | ')} |`;
}

export function renderTable(rows: readonly Row[]): string {
  const out = [line(COLUMNS), line(COLUMNS.map(() => '---'))];
  for (const row of rows) {
    const checks = checkTargets(row);
    POLICIES.forEach((policy, i) => {
      const p = summarize(policy, row.runs);
      if (p.attempted === 0) return;
      const f = (s: Spread | undefined, fmt: (v: number) => string) => formatSpread(s, fmt);
      out.push(
        line([
          i === 0 ? row.key.vm : '',
          i === 0 ? row.key.workload : '',
          i === 0 ? (row.facts.linkBitsPerSecond / 1e9).toFixed(2) : '',
          i === 0 ? mbs(row.facts.fsyncBytesPerSecond) : '',
          policy,
          convergedCell(p, row),
          streamCell(row.runs.filter((r) => r.policy === policy)),
          f(p.totalMs, s1),
          f(p.mirrorMs, s1),
          f(p.mirrorBytesPerSecond, mbs),
          f(p.memoryMs, s1),
          f(p.memoryBytesPerSecond, mbs),
          f(p.dirtyRateBytesPerSecond, mbs),
          f(p.iterations, int),
          f(p.downtimeMs, int),
          f(p.pingDowntimeMs, int),
          f(p.throttlePeakPercent, int),
          f(p.throttleSeconds, (v) => v.toFixed(1)),
          policy === 'silobreak' ? targetsCell(checks) : '',
        ]),
      );
    });
  }
  return out.join('\n');
}

/** Per target, how many rows met it, for the summary under the table. */
export function targetTally(rows: readonly Row[]): string {
  const tally = new Map<string, { met: number; missed: number; 'only-silobreak': number }>();
  for (const row of rows) {
    for (const c of checkTargets(row)) {
      if (c.status === 'n/a') continue;
      const t = tally.get(c.name) ?? { met: 0, missed: 0, 'only-silobreak': 0 };
      t[c.status] += 1;
      tally.set(c.name, t);
    }
  }
  return [...tally]
    .map(
      ([name, t]) =>
        `${name}: met in ${t.met}/${t.met + t.missed} rows` +
        (t['only-silobreak'] ? ` (+${t['only-silobreak']} where only Silobreak converged)` : ''),
    )
    .join('\n');
}

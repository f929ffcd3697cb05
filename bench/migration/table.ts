// The benchmark's one table (markdown): per row, Silobreak beside each baseline, medians with
// min–max, and Silobreak's ratios against the issue's targets (pure).
import { POLICIES, policyLabel, summarize, type MoveRun, type PolicySummary, type Row } from './model.js';
import { formatSpread, type Spread } from './summary.js';
import {
  checkProductPath,
  checkTargets,
  checkTlsCost,
  TLS_TOTAL_FACTOR,
  DONE_WHEN_ROW,
  PRODUCT_PATH_TOTAL_FACTOR,
  sameRow,
  type TargetCheck,
} from './targets.js';

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

export function renderTable(rows: readonly Row[], productPath = true): string {
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
          policyLabel(policy, productPath),
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

const rowName = (row: Row) => `${row.key.vm} ${row.key.workload} ${row.key.link}`;

function checkCell(c: TargetCheck | undefined): string {
  if (!c || c.status === 'n/a') return '—';
  if (c.status === 'only-silobreak') return `only Silobreak (${c.detail.replace(/^.*; /, '')})`;
  const ratio = c.ratio === undefined ? '' : `${c.ratio.toFixed(2)} x `;
  const ref = c.reference && c.name !== 'mirror' ? `${c.reference} ` : '';
  return `${ratio}${ref}${c.status}`;
}

/**
 * Silobreak's product path against the strongest baseline per target, one line per row: each
 * target's ratio, the baseline it is measured against (the best converged one for that target) and
 * the verdict.
 */
export function renderTargetRows(rows: readonly Row[]): string {
  const names = ['converges', 'downtime', 'ping', 'total', 'throttle', 'mirror', 'memory'] as const;
  const header = [
    'row',
    'converges',
    'QEMU downtime',
    'ping downtime',
    'total',
    'throttled (vs proxmox-like)',
    'mirror (vs min(link, fsync))',
    'memory MB/s',
  ];
  const out = [line(header), line(header.map(() => '---'))];
  for (const row of rows) {
    if (summarize('silobreak', row.runs).attempted === 0) continue;
    const checks = checkTargets(row);
    const by = (n: (typeof names)[number]) => checks.find((c) => c.name === n);
    out.push(
      line([
        rowName(row),
        `${by('converges')?.detail ?? ''} ${by('converges')?.status ?? ''}`,
        ...names.slice(1).map((n) => checkCell(by(n))),
      ]),
    );
  }
  return out.join('\n');
}

/** Issue 27: the product path beside the "link given" row, and the Done-when verdict. */
export function renderProductPath(rows: readonly Row[]): string {
  const compared = rows.filter((r) => summarize('silobreak-link-given', r.runs).attempted > 0);
  if (compared.length === 0) return '';
  const out = [
    `Product path (vm move, no policy) against "link given" (told the iperf3 rate): total within ` +
      `${PRODUCT_PATH_TOTAL_FACTOR} x and throttled no more (medians):`,
    ...compared.map((r) => `- ${rowName(r)}: ${checkProductPath(r).status}: ${checkProductPath(r).detail}`),
  ];
  const target = rows.find((r) => sameRow(r.key, DONE_WHEN_ROW));
  const verdict = target ? checkProductPath(target) : undefined;
  out.push(
    `Done when (issue 27, ${DONE_WHEN_ROW.vm} ${DONE_WHEN_ROW.workload} ${DONE_WHEN_ROW.link}): ` +
      (verdict
        ? `${verdict.status === 'n/a' ? 'not measured' : verdict.status} (${verdict.detail})`
        : 'row not measured'),
  );
  const streams = rows
    .map((r) => {
      const first = r.runs.find((run) => run.policy === 'silobreak' && run.outcome === 'completed');
      const why = first?.policyLog?.find((l) => l.startsWith('stream: '));
      return why ? `- ${rowName(r)}: ${why.slice('stream: '.length)}` : undefined;
    })
    .filter((l): l is string => l !== undefined);
  if (streams.length)
    out.push("The product path's stream choice (its first completed move per row):", ...streams);
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

/** Issue 28: the default (TLS) move beside the same move with --no-secure, per row that has both. */
export function renderTlsCost(rows: readonly Row[]): string {
  const compared = rows.filter((r) => summarize('silobreak-plain', r.runs).attempted > 0);
  if (compared.length === 0) return '';
  const f = (s: Spread | undefined, fmt: (v: number) => string) => (s ? formatSpread(s, fmt) : '—');
  const lines = [
    `TLS (the default: vm move) against --no-secure (plain), medians (min–max); total within ${TLS_TOTAL_FACTOR} x on the full link (issue 28):`,
    '',
    '| row | TLS total s | plain total s | ratio | TLS QEMU downtime ms | plain | TLS ping ms | plain | TLS mirror s | plain | TLS memory s | plain | verdict |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|',
  ];
  for (const r of compared) {
    const c = checkTlsCost(r);
    lines.push(
      `| ${rowName(r)} | ${f(c.tls.totalMs, s1)} | ${f(c.plain.totalMs, s1)} | ` +
        `${c.totalRatio === undefined ? '—' : c.totalRatio.toFixed(2)} | ` +
        `${f(c.tls.downtimeMs, int)} | ${f(c.plain.downtimeMs, int)} | ` +
        `${f(c.tls.pingDowntimeMs, int)} | ${f(c.plain.pingDowntimeMs, int)} | ` +
        `${f(c.tls.mirrorMs, s1)} | ${f(c.plain.mirrorMs, s1)} | ` +
        `${f(c.tls.memoryMs, s1)} | ${f(c.plain.memoryMs, s1)} | ` +
        `${r.key.link === 'full' ? c.status : `${c.status} (shown)`} |`,
    );
  }
  return lines.join('\n');
}

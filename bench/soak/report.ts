// The soak benchmark's figures and their table (pure, unit-tested).

/** What a host (or the manager) holds: a fabric that leaks grows one of these move after move. */
export interface Footprint {
  fds: number;
  processes: number;
  listening: number;
  /** VMs the host's agent reports (an incoming shell left behind counts). */
  vms: number;
  /** Files in the host's datastore (the manager: in its data directory). */
  files: number;
}

export interface SoakReport {
  startedAt: string;
  moves: number;
  cutEvery: number;
  ok: number;
  failed: number;
  /** Moves whose link was cut mid-mirror and that rolled back with the VM on its source. */
  cutsRolledBack: number;
  unexpected: string[];
  moveMs: number[];
  downtimeMs: number[];
  /** Per cut: how long after the link came back the target held nothing of the move. */
  cleanAfterCutMs: number[];
  /** Successful moves after which the guest agent answered its first call on the target. */
  guestAgentAnswered: number;
  records: string;
  before: Record<string, Footprint>;
  after: Record<string, Footprint>;
  loadavg: number[];
}

/** The p-th percentile (0-100) by nearest rank; undefined for no values. */
export function percentile(values: number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

const ms = (v: number | undefined) => (v === undefined ? '-' : `${Math.round(v)} ms`);
const FIELDS: (keyof Footprint)[] = ['fds', 'processes', 'listening', 'vms', 'files'];

export function renderSoak(r: SoakReport): string {
  const cuts = r.cutEvery > 0 ? Math.floor(r.moves / r.cutEvery) : 0;
  const lines = [
    `Soak: ${r.moves} live moves back and forth (guest writing 1 MiB/s with fsync, dirtying 64 MiB/s), link cut mid-mirror every ${r.cutEvery}`,
    `moves ok ${r.ok} of ${r.moves - cuts}, failed ${r.failed}; cut moves rolled back with the VM on its source ${r.cutsRolledBack} of ${cuts}`,
    `move time median ${ms(percentile(r.moveMs, 50))}, p95 ${ms(percentile(r.moveMs, 95))}; QEMU downtime median ${ms(percentile(r.downtimeMs, 50))}, p95 ${ms(percentile(r.downtimeMs, 95))}`,
    `target clean after a cut ended: median ${ms(percentile(r.cleanAfterCutMs, 50))}, max ${ms(percentile(r.cleanAfterCutMs, 100))}`,
    `guest agent answered its first call on the target after ${r.guestAgentAnswered} of ${r.ok} moves`,
    `records: ${r.records}`,
    '',
    `| where | ${FIELDS.map((f) => `${f} before → after`).join(' | ')} | growth |`,
    `|---|${FIELDS.map(() => '--:').join('|')}|--:|`,
  ];
  for (const where of Object.keys(r.before)) {
    const b = r.before[where];
    const a = r.after[where];
    if (!b || !a) continue;
    const growth = FIELDS.reduce((s, f) => s + Math.max(0, a[f] - b[f]), 0);
    lines.push(`| ${where} | ${FIELDS.map((f) => `${b[f]} → ${a[f]}`).join(' | ')} | ${growth} |`);
  }
  if (r.unexpected.length) lines.push('', 'Unexpected:', ...r.unexpected.map((u) => `- ${u}`));
  lines.push('', `load average at the end: ${r.loadavg.map((l) => l.toFixed(1)).join(' ')}`);
  return lines.join('\n');
}

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { MOVE_JOB_KINDS, MoveResult, ToolsStatus } from '../api/index.js';
import type { Tx } from './db.js';

/*
 * The manager's GET /metrics: moves by outcome and what they cost, computed from the stored jobs
 * at each scrape (a fresh registry each time), so the figures survive manager restarts and match
 * `job list`. Conventional names: `silobreak_` prefix, base units, counters ending in _total;
 * labels are bounded (job kind, outcome), never a VM or job id.
 */

/** Seconds: a good live move pauses the guest for tens of milliseconds, a bad one for seconds. */
const DOWNTIME_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const DURATION_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

export interface StoredMove {
  kind: string;
  state: string;
  /** The job's result (a MoveResult when it succeeded), as stored. */
  result: unknown;
}

/** Running VMs per guest tools status (`unknown`: booting, not answered yet). */
export type ToolsCounts = Partial<Record<ToolsStatus | 'unknown', number>>;

/** The exposition of these moves and tools counts (pure but for prom-client's async rendering). */
export async function renderManagerMetrics(
  moves: readonly StoredMove[],
  tools: ToolsCounts = {},
): Promise<string> {
  const registry = new Registry();
  const vmsByTools = new Gauge({
    name: 'silobreak_vms_by_tools_status',
    help: 'Running VMs by guest tools status: current, outdated (older than their host ships), missing, not-answering, unknown.',
    labelNames: ['status'] as const,
    registers: [registry],
  });
  for (const status of [...ToolsStatus.options, 'unknown'] as const)
    vmsByTools.set({ status }, tools[status] ?? 0);
  const labelNames = ['kind'] as const;
  const total = new Counter({
    name: 'silobreak_moves_total',
    help: 'Moves that ended, by job kind and outcome (succeeded, failed, cancelled).',
    labelNames: ['kind', 'outcome'] as const,
    registers: [registry],
  });
  const downtime = new Histogram({
    name: 'silobreak_move_downtime_seconds',
    help: "QEMU's downtime of each succeeded live move's switchover.",
    labelNames,
    buckets: DOWNTIME_BUCKETS,
    registers: [registry],
  });
  const guestDowntime = new Histogram({
    name: 'silobreak_move_guest_downtime_seconds',
    help: "How long each succeeded live move's guest was paused: source pause to target resume, by the hosts' clocks.",
    labelNames,
    buckets: DOWNTIME_BUCKETS,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'silobreak_move_duration_seconds',
    help: 'Total time of each succeeded move.',
    labelNames,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  for (const kind of MOVE_JOB_KINDS)
    for (const outcome of ['succeeded', 'failed', 'cancelled']) total.inc({ kind, outcome }, 0);
  for (const m of moves) {
    total.inc({ kind: m.kind, outcome: m.state });
    const result = MoveResult.safeParse(m.result);
    if (m.state !== 'succeeded' || !result.success) continue;
    const r = result.data;
    duration.observe({ kind: m.kind }, r.totalTimeMs / 1000);
    if (r.downtimeMs !== undefined) downtime.observe({ kind: m.kind }, r.downtimeMs / 1000);
    if (r.guestDowntimeMs !== undefined) guestDowntime.observe({ kind: m.kind }, r.guestDowntimeMs / 1000);
  }
  return registry.metrics();
}

/** The ended moves in the database. */
export async function storedMoves(tx: Tx): Promise<StoredMove[]> {
  const rows = await tx
    .selectFrom('jobs')
    .select(['kind', 'state', 'result'])
    .where('kind', 'in', [...MOVE_JOB_KINDS])
    .where('state', 'in', ['succeeded', 'failed', 'cancelled'])
    .execute();
  return rows.map((r) => ({
    kind: r.kind,
    state: r.state,
    result: r.result ? (JSON.parse(r.result) as unknown) : undefined,
  }));
}

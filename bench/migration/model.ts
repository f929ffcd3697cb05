// What one benchmark row holds and how its runs are summarised per policy (pure).
import type { MigrationStrategy, MoveVmRequest } from '../../src/api/index.js';
import { spread, type Spread } from './summary.js';

/**
 * The contenders of a row. Every one moves through the manager's API as `silobreak vm move` does
 * (run.ts); they differ only in the move's `policy` (movePolicy):
 *  - `silobreak`: the product path, no policy at all (what `vm move` sends; since issue 28 that
 *    is a TLS move: the mirror and memory stream over TLS, only the source accepted);
 *  - `silobreak-plain`: the same with `--no-secure` (secure: false), to show what TLS costs;
 *  - `silobreak-link-given`: Silobreak told the link rate the bench measured with iperf3, which
 *    no user's move has (the headline row before issue 27), kept beside it for comparison;
 *  - the baselines: `policy.strategy` (src/agent/migration/baselines.ts).
 */
export const POLICIES = [
  'silobreak',
  'silobreak-plain',
  'silobreak-link-given',
  'qemu-defaults',
  'libvirt-like',
  'libvirt-multifd-zstd',
  'proxmox-like',
] as const;
export type Policy = (typeof POLICIES)[number];
export type Baseline = Exclude<MigrationStrategy, 'silobreak'>;
/** Every baseline strategy of the agents (model.test.ts holds the list to MigrationStrategy). */
export const BASELINES: readonly Baseline[] = [
  'qemu-defaults',
  'libvirt-like',
  'libvirt-multifd-zstd',
  'proxmox-like',
];

/**
 * The `policy` of the move request: none for the product path (the request `vm move` sends), the
 * measured link rate for the link-given row, the strategy alone for a baseline. The memory-copy
 * time limit is not in it: the bench cancels every contender's job alike (run.ts), since the
 * product path has no policy to carry one.
 */
export function movePolicy(
  policy: Policy,
  linkBitsPerSecond: number,
): NonNullable<MoveVmRequest['policy']> | undefined {
  switch (policy) {
    case 'silobreak':
    case 'silobreak-plain':
      return undefined;
    case 'silobreak-link-given':
      return { linkBitsPerSecond };
    default:
      return { strategy: policy };
  }
}

/**
 * The request's `secure`: absent for Silobreak's rows (the request's default, TLS, as `vm move`
 * sends it), false for `--no-secure` and for the baselines, which stand for tools that migrate in
 * clear unless told otherwise (virsh migrate without --tls, QEMU's defaults).
 */
export function moveSecure(policy: Policy): false | undefined {
  return policy === 'silobreak' || policy === 'silobreak-link-given' ? undefined : false;
}

/**
 * How the table names a contender; in results from before issue 27 (`productPath` false) the
 * `silobreak` runs were told the measured link rate.
 */
export function policyLabel(policy: Policy, productPath = true): string {
  if (policy === 'silobreak')
    return productPath ? 'silobreak (vm move, no policy)' : 'silobreak (link given)';
  if (policy === 'silobreak-link-given') return 'silobreak, link given';
  if (policy === 'silobreak-plain') return 'silobreak --no-secure (plain)';
  return policy;
}

export type Workload = 'idle' | 'dirty' | 'dirty+disk';
export type LinkKind = 'full' | '1gbit';

export interface RowKey {
  /** e.g. `1 GiB / 2 GiB` */
  vm: string;
  workload: Workload;
  link: LinkKind;
}

/** Measured in the same run as the moves of the row. */
export interface RowFacts {
  /** iperf3 between the two host namespaces. */
  linkBitsPerSecond: number;
  /** dd with oflag=dsync into the target datastore directory. */
  fsyncBytesPerSecond: number;
  /** 1-minute load average of the machine when the row started (other work shares its 2 cores). */
  loadAverage?: number;
}

export interface MoveRun {
  policy: Policy;
  run: number;
  from: string;
  to: string;
  /** The manager's job of the move, and the agents' migration id (job progress). */
  jobId?: string | undefined;
  migrationId?: string | undefined;
  /** guest-broken: QEMU completed the move but the guest did not answer afterwards. */
  outcome: 'completed' | 'not-converged' | 'failed' | 'guest-broken';
  error?: string;
  /**
   * The move's job from its creation to its end (what `vm move` waits for); before issue 27 the
   * bench drove the agents itself: prepare on the target to the source removed.
   */
  totalMs?: number;
  mirrorMs?: number;
  /** Allocated bytes of the VM's disks (what the mirror has to copy). */
  diskDataBytes?: number;
  memoryMs?: number;
  memoryBytes?: number;
  /** calc-dirty-rate (page sampling) right before the copy. */
  dirtyRateBytesPerSecond?: number;
  /** Highest dirty rate QEMU reported during the copy. */
  dirtyRatePeakBytesPerSecond?: number;
  iterations?: number;
  downtimeMs?: number;
  /** The gap between ping replies (10 ms interval) from the lab client that spans the switchover. */
  pingDowntimeMs?: number | undefined;
  /** The longest gap elsewhere in the move and when it started, ms after the move started. */
  pingOtherGapMs?: number | undefined;
  pingOtherGapAtMs?: number | undefined;
  /** CPU time the machine's host took from it during the move (steal, all CPUs), ms. */
  stealMs?: number | undefined;
  throttlePeakPercent?: number;
  throttleSeconds?: number;
  /** How the memory stream was encoded (the plan's choice: plain, multifd-zstd, xbzrle...). */
  compression?: string | undefined;
  policyLog?: string[];
}

export interface Row {
  key: RowKey;
  facts: RowFacts;
  runs: MoveRun[];
}

export interface PolicySummary {
  policy: Policy;
  attempted: number;
  converged: number;
  totalMs?: Spread | undefined;
  mirrorMs?: Spread | undefined;
  mirrorBytesPerSecond?: Spread | undefined;
  memoryMs?: Spread | undefined;
  memoryBytesPerSecond?: Spread | undefined;
  dirtyRateBytesPerSecond?: Spread | undefined;
  iterations?: Spread | undefined;
  downtimeMs?: Spread | undefined;
  pingDowntimeMs?: Spread | undefined;
  throttlePeakPercent?: Spread | undefined;
  throttleSeconds?: Spread | undefined;
}

const rate = (bytes: number | undefined, ms: number | undefined): number | undefined =>
  bytes !== undefined && ms !== undefined && ms > 0 ? bytes / (ms / 1000) : undefined;

/** Figures of the completed runs only; a run that did not converge counts in `attempted` alone. */
export function summarize(policy: Policy, runs: readonly MoveRun[]): PolicySummary {
  const mine = runs.filter((r) => r.policy === policy);
  const done = mine.filter((r) => r.outcome === 'completed');
  const of = (pick: (r: MoveRun) => number | undefined) => spread(done.map(pick));
  return {
    policy,
    attempted: mine.length,
    converged: done.length,
    totalMs: of((r) => r.totalMs),
    mirrorMs: of((r) => r.mirrorMs),
    mirrorBytesPerSecond: of((r) => rate(r.diskDataBytes, r.mirrorMs)),
    memoryMs: of((r) => r.memoryMs),
    memoryBytesPerSecond: of((r) => rate(r.memoryBytes, r.memoryMs)),
    dirtyRateBytesPerSecond: spread(mine.map((r) => r.dirtyRateBytesPerSecond)),
    iterations: of((r) => r.iterations),
    // QEMU 7.2 sets `downtime` only after it reports `completed`; a reading taken in between says 0,
    // which no move here can reach (the switchover alone takes tens of ms): not a measurement.
    downtimeMs: of((r) => (r.downtimeMs !== undefined && r.downtimeMs > 0 ? r.downtimeMs : undefined)),
    pingDowntimeMs: of((r) => r.pingDowntimeMs),
    throttlePeakPercent: of((r) => r.throttlePeakPercent),
    throttleSeconds: of((r) => r.throttleSeconds),
  };
}

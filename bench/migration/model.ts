// What one benchmark row holds and how its runs are summarised per policy (pure).
import { spread, type Spread } from './summary.js';

export const POLICIES = ['silobreak', 'qemu-defaults', 'libvirt-like', 'proxmox-like'] as const;
export type Policy = (typeof POLICIES)[number];
export type Baseline = Exclude<Policy, 'silobreak'>;
export const BASELINES: readonly Baseline[] = ['qemu-defaults', 'libvirt-like', 'proxmox-like'];

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
  /** guest-broken: QEMU completed the move but the guest did not answer afterwards. */
  outcome: 'completed' | 'not-converged' | 'failed' | 'guest-broken';
  error?: string;
  /** Prepare on the target to the guest running there, source cleaned up. */
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

// bench/ha's figures and tables (pure, unit-tested): HA restart time against the issue's goal,
// drain against moving the same VMs one by one, a memory-only move against a shared-nothing one.

const MiB = 1024 * 1024;

/** The issue's goal for an HA restart, host death to the guest answering ping (issue 30). */
export const HA_GOAL_MS = 30_000;

/**
 * sanlock's rule for when a host that stopped renewing its delta lease is dead, so that another
 * host may take the resource leases it held: `id_renewal_fail_seconds` (8 I/O timeouts, after which
 * its own sanlock fences it) plus `WATCHDOG_FIRE_TIMEOUT` (60 s, fixed in sanlock: the time a
 * hardware watchdog is given to reset it), counted from the last renewal another host saw.
 */
export const SANLOCK_RENEWAL_FAIL_IO_TIMEOUTS = 8;
export const SANLOCK_WATCHDOG_FIRE_SECONDS = 60;
export const sanlockHostDeadSeconds = (ioTimeoutSeconds: number) =>
  SANLOCK_RENEWAL_FAIL_IO_TIMEOUTS * ioTimeoutSeconds + SANLOCK_WATCHDOG_FIRE_SECONDS;

/** One host of `sanlock client host_status -D`: its delta lease as this daemon last read it. */
export interface SanlockHostStatus {
  hostId: number;
  /** The host's last renewal (its own monotonic seconds, written in its delta lease). */
  timestamp: number;
  /** When this daemon last saw that timestamp change (this daemon's monotonic seconds). */
  lastLive: number | undefined;
  ioTimeout: number | undefined;
}

/**
 * Parses `sanlock client host_status -s <lockspace> -D`: per host a line `<id> timestamp <ts>`
 * (sometimes followed by a state word) and indented `key=value` lines.
 */
export function parseHostStatus(text: string): SanlockHostStatus[] {
  const hosts: SanlockHostStatus[] = [];
  let current: SanlockHostStatus | undefined;
  for (const line of text.split('\n')) {
    const head = /^(\d+) timestamp (\d+)/.exec(line);
    if (head) {
      current = {
        hostId: Number(head[1]),
        timestamp: Number(head[2]),
        lastLive: undefined,
        ioTimeout: undefined,
      };
      hosts.push(current);
      continue;
    }
    const kv = /^\s+(\w+)=(\S*)/.exec(line);
    if (!kv || !current) continue;
    if (kv[1] === 'last_live') current.lastLive = Number(kv[2]);
    if (kv[1] === 'io_timeout') current.ioTimeout = Number(kv[2]);
  }
  return hosts;
}

/**
 * Whether `sanlock client status` shows the resource `resource` held: its line
 * `r <lockspace>:<resource>:<path>:<offset>:<lver> p <pid>`, without the ADD that marks a lease
 * still being acquired (sanlock lists it at once, and an acquire waits while a dead host's lease
 * has not expired) or the REM of one being released.
 */
export function leaseHeld(status: string, resource: string): boolean {
  return status
    .split('\n')
    .some((l) => l.startsWith(`r `) && l.split(':')[1] === resource && /\bp \d+$/.test(l.trim()));
}

/**
 * The wall-clock time (ms) of a monotonic instant in seconds (sanlock's clock: CLOCK_MONOTONIC, as
 * Node's hrtime), given one instant read on both clocks at once.
 */
export const monoToWallMs = (monoSeconds: number, now: { monoMs: number; wallMs: number }) =>
  now.wallMs - (now.monoMs - monoSeconds * 1000);

/** One HA restart: when each thing happened (ms since the epoch), as observed. */
export interface HaSample {
  case: 'power loss' | 'split brain';
  vm: string;
  priority: number;
  from: string;
  to: string;
  /** The strike: the host's power cut (everything killed, link down), or only its link cut. */
  deathAt: number;
  /** The manager's `ha-restart` job for the VM was created: it had found the host dead. */
  detectedAt: number;
  /**
   * The target's sanlock took the VM's lease: after this (the start of the last poll, every
   * 250 ms, that did not see it held) and before `leaseSeenAt`; undefined if never seen.
   */
  leaseAcquiredAt: number | undefined;
  leaseSeenAt?: number | undefined;
  /** The job succeeded: the VM runs on the target and the inventory says so. */
  runningAt: number;
  /** The guest answered ping from the lab's client namespace. */
  pingAt: number;
  /** When sanlock allows the lease to be taken: the target's last sight of the dead host's renewal + host_dead_seconds. */
  leaseFreeAt: number | undefined;
  /** Split brain: when the old QEMU (left running on the cut-off host) died; undefined if it never did. */
  fencedAt?: number | undefined;
  /** Start attempts the job made while the lease was held (its result's leaseWaits). */
  leaseWaits: number;
  /** The guest's records after the restart (sb-diskwriter verify). */
  records: string;
}

export interface HaBreakdown {
  totalMs: number;
  /** Death to the manager's restart job. */
  detectionMs: number;
  /** The restart job to the lease taken on the target (sanlock's expiry of the dead host). */
  leaseWaitMs: number | undefined;
  /** Lease taken to the VM running (its paused QEMU continued, the job adopted it). */
  startMs: number | undefined;
  /** Running to answering ping (the guest boots from its disk). */
  bootMs: number;
  /** Death to when sanlock lets another host take the lease: the floor of any restart. */
  leaseFreeMs: number | undefined;
  fencedMs: number | undefined;
  metGoal: boolean;
}

export function haBreakdown(s: HaSample, goalMs = HA_GOAL_MS): HaBreakdown {
  const totalMs = s.pingAt - s.deathAt;
  return {
    totalMs,
    detectionMs: s.detectedAt - s.deathAt,
    leaseWaitMs: s.leaseAcquiredAt === undefined ? undefined : s.leaseAcquiredAt - s.detectedAt,
    startMs: s.leaseAcquiredAt === undefined ? undefined : s.runningAt - s.leaseAcquiredAt,
    bootMs: s.pingAt - s.runningAt,
    leaseFreeMs: s.leaseFreeAt === undefined ? undefined : s.leaseFreeAt - s.deathAt,
    fencedMs: s.fencedAt === undefined ? undefined : s.fencedAt - s.deathAt,
    metGoal: totalMs <= goalMs,
  };
}

const sec = (ms: number | undefined) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`);
const mib = (bytes: number | undefined) => (bytes === undefined ? '-' : `${(bytes / MiB).toFixed(1)} MiB`);
const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)} x` : '-');

/** The HA table: each restart's time and its parts beside the 30-s goal and sanlock's floor. */
export function renderHaTable(samples: HaSample[], goalMs = HA_GOAL_MS): string {
  const lines = [
    `| case | VM (priority) | from -> to | death to ping | goal ${sec(goalMs)} | detection | lease wait | start | boot to ping | lease free after death (sanlock) | old QEMU killed | records |`,
    '|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const s of samples) {
    const b = haBreakdown(s, goalMs);
    const fenced =
      s.case === 'power loss'
        ? 'at death'
        : b.fencedMs === undefined
          ? 'never'
          : `${sec(b.fencedMs)}${s.fencedAt !== undefined && s.fencedAt < s.runningAt ? ' (before the restart)' : ' (AFTER the restart)'}`;
    lines.push(
      `| ${s.case} | ${s.vm} (${s.priority}) | ${s.from} -> ${s.to} | ${sec(b.totalMs)} | ${b.metGoal ? 'met' : `missed (${ratio(b.totalMs, goalMs)})`} | ${sec(b.detectionMs)} | ${sec(b.leaseWaitMs)} | ${sec(b.startMs)} | ${sec(b.bootMs)} | ${sec(b.leaseFreeMs)} | ${fenced} | ${s.records} |`,
    );
  }
  return lines.join('\n');
}

/** `a-b` of whole numbers, or `a` when they are all the same. */
const span = (values: number[]) => {
  const [lo, hi] = [Math.min(...values), Math.max(...values)];
  return lo === hi ? String(lo) : `${lo}-${hi}`;
};

/** The closing words of the HA part: what bounds the restart, from the samples themselves. */
export function haVerdict(samples: HaSample[], ioTimeoutSeconds: number, deadAfterSeconds: number): string {
  if (samples.length === 0) return 'No HA restart was measured.';
  const b = samples.map((s) => haBreakdown(s));
  const totals = b.map((x) => x.totalMs);
  const leaseShares = b
    .filter((x) => x.leaseFreeMs !== undefined)
    .map((x) => (x.leaseFreeMs as number) / x.totalMs);
  const boots = b.map((x) => x.bootMs);
  const met = b.filter((x) => x.metGoal).length;
  const hostDead = sanlockHostDeadSeconds(ioTimeoutSeconds);
  return [
    `Death to ping: ${sec(Math.min(...totals))} to ${sec(Math.max(...totals))} over ${samples.length} restarts; goal ${sec(HA_GOAL_MS)}: met by ${met} of ${samples.length}.`,
    `What bounds it: sanlock lets another host take a dead host's VM lease only ${hostDead} s (${SANLOCK_RENEWAL_FAIL_IO_TIMEOUTS} I/O timeouts of ${ioTimeoutSeconds} s + ${SANLOCK_WATCHDOG_FIRE_SECONDS} s for a watchdog to fire) after the last renewal it saw;` +
      ` here that moment came ${leaseShares.length ? `at ${span(leaseShares.map((x) => Math.round(x * 100)))} % of the total` : '(not read)'}.` +
      ` Detection (${deadAfterSeconds} s without an answer) runs inside that wait and costs nothing on top; after the lease, the guest's boot to ping took ${sec(Math.min(...boots))} to ${sec(Math.max(...boots))}.`,
    `With sanlock's fixed ${SANLOCK_WATCHDOG_FIRE_SECONDS}-s term no setting of the I/O timeout brings a restart under ${sec(HA_GOAL_MS)} (at 1 s it is still ${sanlockHostDeadSeconds(1)} s); the goal needs another proof that the dead host has stopped writing (e.g. a power fence that confirms it is off), which Silobreak does not have.`,
  ].join('\n');
}

/** One way of emptying host1 of the drain VMs, and its moves (from their jobs). */
export interface DrainRun {
  round: number;
  method: 'drain' | 'one by one';
  /** This method ran first in its round (the other after it), or it is the warm-up. */
  position: 'warm-up' | 'first' | 'second';
  /** The CLI command(s) from the first start to the last exit. */
  wallMs: number;
  /** Each move's job: where the VM went, when, and the disk bytes it mirrored (0: memory only). */
  moves: { vm: string; to: string; startedAt: number; finishedAt: number; diskBytes: number }[];
}

/** The most moves under way at once. */
export function maxConcurrent(intervals: { startedAt: number; finishedAt: number }[]): number {
  const edges = intervals.flatMap((i) => [
    { t: i.startedAt, d: 1 },
    { t: i.finishedAt, d: -1 },
  ]);
  // An end at the same instant as a start comes first: they did not overlap.
  edges.sort((a, b) => a.t - b.t || a.d - b.d);
  let now = 0;
  let max = 0;
  for (const e of edges) {
    now += e.d;
    max = Math.max(max, now);
  }
  return max;
}

/** `vm -> host` of each move, by VM name: two runs sent the VMs to the same hosts when equal. */
export const targetsOf = (run: Pick<DrainRun, 'moves'>) =>
  [...run.moves]
    .sort((a, b) => a.vm.localeCompare(b.vm))
    .map((m) => `${m.vm} -> ${m.to}`)
    .join(', ');

export function renderDrainTable(runs: DrainRun[]): string {
  const lines = [
    '| round | method | ran | VMs | wall time | x one by one | sum of moves | longest move | at once | disk sent | targets |',
    '|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const r of runs) {
    const baseline = runs.find((o) => o.round === r.round && o.method === 'one by one');
    const durations = r.moves.map((m) => m.finishedAt - m.startedAt);
    lines.push(
      `| ${r.round === 0 ? '-' : r.round} | ${r.method === 'drain' ? 'host drain' : 'vm move, one by one'} | ${r.position} | ${r.moves.length} | ${sec(r.wallMs)} | ${r.method === 'one by one' ? '1.00 x' : baseline ? ratio(r.wallMs, baseline.wallMs) : '-'} | ${sec(durations.reduce((a, b) => a + b, 0))} | ${sec(Math.max(0, ...durations))} | ${maxConcurrent(r.moves)} | ${mib(r.moves.reduce((n, m) => n + m.diskBytes, 0))} | ${targetsOf(r)} |`,
    );
  }
  return lines.join('\n');
}

/** One move of the comparison VM, with the job's figures and the kernel's fabric counters. */
export interface MoveSample {
  round: number;
  kind: 'memory only' | 'shared nothing';
  from: string;
  to: string;
  /** The CLI command, start to exit. */
  wallMs: number;
  /** The job's result. */
  totalTimeMs: number;
  downtimeMs: number | undefined;
  guestDowntimeMs: number | undefined;
  diskBytes: number;
  memoryBytes: number;
  /** Fabric counters over the whole move (its link probe included). */
  sourceTxBytes: number;
  targetRxBytes: number;
  /** Both directions of the storage server's link: the disk read from and written to it. */
  storageBytes: number;
  /** The source's fabric tx from the move's prepare-target phase on (after the validation's link probe). */
  sourceTxAfterValidateBytes: number | undefined;
}

export function renderMoveTable(samples: MoveSample[]): string {
  const lines = [
    '| round | move | from -> to | time (CLI) | x memory only | job total | QEMU downtime | guest paused | disk (job) | memory (job) | source sent | after validation | target received | storage server |',
    '|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const memoryOnly = samples.filter((s) => s.kind === 'memory only');
  const baseMs = memoryOnly.length
    ? memoryOnly.reduce((a, s) => a + s.wallMs, 0) / memoryOnly.length
    : undefined;
  for (const s of samples) {
    lines.push(
      `| ${s.round} | ${s.kind} | ${s.from} -> ${s.to} | ${sec(s.wallMs)} | ${baseMs === undefined ? '-' : ratio(s.wallMs, baseMs)} | ${sec(s.totalTimeMs)} | ${s.downtimeMs === undefined ? '-' : `${s.downtimeMs} ms`} | ${s.guestDowntimeMs === undefined ? '-' : `${s.guestDowntimeMs} ms`} | ${mib(s.diskBytes)} | ${mib(s.memoryBytes)} | ${mib(s.sourceTxBytes)} | ${mib(s.sourceTxAfterValidateBytes)} | ${mib(s.targetRxBytes)} | ${mib(s.storageBytes)} |`,
    );
  }
  return lines.join('\n');
}

/** Share of the machine's CPU time that was busy between two reads of /proc/stat's first line. */
export function busyPercent(
  before: { busy: number; total: number },
  after: { busy: number; total: number },
): number | undefined {
  const total = after.total - before.total;
  return total > 0 ? (100 * (after.busy - before.busy)) / total : undefined;
}

/** Busy and total jiffies from /proc/stat's `cpu` line (idle and iowait are not busy). */
export function parseProcStat(text: string): { busy: number; total: number } {
  const fields = (text.split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  return { busy: total - (fields[3] ?? 0) - (fields[4] ?? 0), total };
}

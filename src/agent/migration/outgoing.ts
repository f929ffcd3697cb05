/*
 * The source side of a live move, over the VM's QMP connection (libvirt's order, see
 * migration-anchors.md):
 *
 *   capabilities + parameters from the plan
 *   -> per disk: blockdev-add an NBD client node on the target's export, blockdev-mirror sync=full
 *      copy-mode=write-blocking, all disks in parallel; measure the dirty rate meanwhile
 *      (calc-dirty-rate, page sampling) -> wait until every mirror is READY
 *   -> migrate (memory pre-copy) with the convergence policy applied once per pass
 *   -> at `pre-switchover` (guest paused): non-forced block-job-cancel of every mirror (completes
 *      cleanly: the target holds an exact copy), blockdev-del the NBD nodes, migrate-continue
 *   -> `completed`: the source QEMU is left paused (postmigrate) for the caller to quit.
 *
 * Background copy until the mirrors are in sync, then write-blocking (block-job-change, QEMU 8.2+;
 * Proxmox's order): with write-blocking every guest write is also written to the target before it
 * completes, so a disk in sync stays in sync however fast the guest writes. During the bulk copy
 * the guest's writes do not wait on the target: a link cut there then stalls no guest I/O, and no
 * guest write is in flight on the NBD connection when the rollback shuts it down (with such writes
 * in flight, QEMU 10.0.2 died of heap corruption in 3 of 6 lab runs; README, known issues). QEMU
 * older than 8.2 cannot switch a running mirror and mirrors write-blocking from the start.
 *
 * Until migrate-continue, any failure or cancel rolls back: migrate_cancel, forced cancel of the
 * mirrors, blockdev-del of the NBD nodes, `cont` if the guest was left paused. The VM keeps running
 * here on its own disks. A stalled link (no byte moved for the stall window) is such a failure;
 * the NBD sockets are shut down from the host (`ss -K`) so a mirror waiting on a dead TCP
 * connection cannot hold the rollback for the kernel's retransmission timeout.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { MigrationPhase, MigrationPlan, MigrationStats, PolicyEvent } from '../../api/index.js';
import type { QmpClient, QmpEvent } from '../../qmp/index.js';
import {
  decideBaseline,
  initialBaselineState,
  QEMU_DEFAULT_THROTTLE,
  type BaselineConfig,
  type BaselineState,
} from './baselines.js';
import {
  decideConvergence,
  initialConvergenceState,
  throttleParameters,
  type ConvergenceAction,
  type ConvergenceConfig,
  type ConvergenceState,
  type MigrationSample,
} from './convergence.js';
import { compressionParameters } from './compression.js';
import { throttleSummary } from './throttle-tally.js';
import { UNLIMITED_BANDWIDTH } from './tuning.js';
import {
  cancelDelta,
  deltaOverlayPath,
  finishDelta,
  startDeltaMove,
  waitDeltaCopied,
  type DeltaMove,
} from './delta.js';
import { MigrationCancelled, MigrationConflict, MigrationFailed } from './errors.js';
import {
  advanceProgress,
  initialProgress,
  type ProgressTracker,
  type RawDisk,
  type RawMemory,
} from './progress.js';
import {
  BlockJobs,
  DirtyRateInfo,
  MigrateInfo,
  QemuVersion,
  sampleOf,
  StatusInfo,
  YankInstances,
} from './qemu-replies.js';

const run = promisify(execFile);

export interface OutgoingDisk {
  diskId: string;
  /** The source's format node (what the guest's device uses). */
  nodeName: string;
  /** The target's NBD export of the same disk. */
  exportName: string;
  /** The image file under the format node (a delta move's temporary overlay goes beside it). */
  imagePath: string;
}

export interface OutgoingOptions {
  migrationId: string;
  qmp: QmpClient;
  /**
   * Runs once QEMU reports the migration completed (the source paused, its images inactive): a
   * leased VM's source gives up the lease here, which the target takes before it resumes.
   */
  afterCompleted?: (() => Promise<void>) | undefined;
  /** The disks to mirror; those staying on shared storage the target sees are not among them. */
  disks: OutgoingDisk[];
  /** The target's NBD server; absent when no disk is mirrored (a memory-only move). */
  nbd: { host: string; port: number } | undefined;
  /** The target's memory stream, `tcp:<address>:<port>`. */
  migrationUri: string;
  plan: MigrationPlan;
  convergence: ConvergenceConfig;
  memoryBytes: number;
  /** No byte moved (mirror or memory) for this long = stalled. */
  stallAfterMs: number;
  /** Benchmarks only: drive the copy with a baseline's policy instead of convergence.ts. */
  baseline?: BaselineConfig | undefined;
  log: (msg: string, fields?: Record<string, unknown>) => void;
  /** Milliseconds; injectable for tests of the pacing. */
  pollMs?: { mirror: number; memory: number };
  /** Secure move: QEMU x509 directory (tls.ts); NBD and the memory stream then use TLS. */
  tlsDir?: string | undefined;
  /**
   * Delta move (delta.ts): the target's exports hold a retained copy and every disk's changes
   * since it was kept are in this tracking bitmap; only those are sent.
   */
  deltaBitmap?: string | undefined;
  /** Prefix for host commands when QEMU runs in another network namespace (tests), e.g. ip netns exec. */
  hostCommand?: string[];
}

const QMP_MS = 30_000;
const ROLLBACK_QMP_MS = 15_000;
const STREAM_ACTIVE = ['active', 'setup', 'pre-switchover', 'device', 'cancelling', 'postcopy-active'];
const SHORT = (id: string): string => id.replaceAll('-', '').slice(0, 8);
/** Names of a move's mirror jobs and NBD client nodes: a restarted agent finds leftovers by them. */
export const MIRROR_JOB_PREFIX = 'mig-';
export const NBD_NODE_PREFIX = 'mig-nbd-';

export class OutgoingMigration {
  phase: MigrationPhase = 'validate';
  tracker: ProgressTracker = initialProgress('validate');
  readonly stats: MigrationStats = {};
  readonly policyLog: PolicyEvent[] = [];
  #convergence: ConvergenceState;
  #baseline: BaselineState | undefined;
  readonly #abort = new AbortController();
  #cancelReason: string | undefined;
  #pastPointOfNoReturn = false;
  readonly #startedAtMs = Date.now();
  readonly #nbdNodes = new Map<string, string>();
  readonly #jobs = new Map<string, string>();
  #migrateStarted = false;
  #guestWasRunning = true;
  /** The pre-copy dirty-rate sampling: whether QEMU accepted it. */
  #dirtyRateStarted: Promise<boolean> | undefined;

  readonly #tls: string | undefined;

  constructor(readonly options: OutgoingOptions) {
    this.#tls = options.tlsDir === undefined ? undefined : `mig-tls-${SHORT(options.migrationId)}`;
    this.#convergence = initialConvergenceState(options.convergence);
    if (options.baseline) this.#baseline = initialBaselineState(options.plan);
    const tag = SHORT(options.migrationId);
    // A delta move has its own jobs and nodes (delta.ts).
    if (options.deltaBitmap === undefined)
      for (const d of options.disks) {
        this.#nbdNodes.set(d.diskId, `${NBD_NODE_PREFIX}${tag}-${d.diskId}`.slice(0, 31));
        this.#jobs.set(d.diskId, `${MIRROR_JOB_PREFIX}${tag}-${d.diskId}`);
      }
  }

  /** Asks the move to stop; refused once the switchover is under way (the guest then lives on the target). */
  cancel(reason = 'cancelled by request'): void {
    if (this.#pastPointOfNoReturn) {
      throw new MigrationConflict('the switchover has started: the move can no longer be cancelled');
    }
    this.#cancelReason ??= reason;
    this.#abort.abort();
  }

  get cancelRequested(): boolean {
    return this.#abort.signal.aborted;
  }

  /** Runs the move to `completed`, or rolls back and throws (MigrationCancelled / MigrationFailed). */
  async run(): Promise<void> {
    const { qmp } = this.options;
    try {
      this.#guestWasRunning = (await qmp.execute('query-status', undefined, { schema: StatusInfo })).running;
      // A move right after a cancelled one: QEMU may still be winding the old stream down.
      if (!(await this.#waitMigrationEnded(30_000))) {
        throw new MigrationConflict('a previous migration of this VM is still winding down in QEMU');
      }
      await this.#configure();
      this.#setPhase('mirror-disks');
      const mirrorStart = Date.now();
      if (this.options.deltaBitmap === undefined) await this.#mirror();
      else await this.#mirrorDelta(this.options.deltaBitmap);
      this.stats.mirrorTimeMs = Date.now() - mirrorStart;
      await this.#dirtyRateMeasured();
      this.#setPhase('copy-memory');
      await this.#copyMemory();
      this.#setPhase('done');
      this.#advance([]);
      this.stats.totalTimeMs = Date.now() - this.#startedAtMs;
      this.options.log('migration completed', { ...this.stats });
    } catch (error) {
      if (this.#pastPointOfNoReturn) throw error;
      const failedIn = this.phase;
      await this.#rollback(failedIn, error instanceof MigrationFailed && error.code === 'migration-stalled');
      if (
        this.#abort.signal.aborted &&
        this.#cancelReason !== undefined &&
        !(error instanceof MigrationFailed)
      ) {
        throw new MigrationCancelled(failedIn);
      }
      throw error instanceof MigrationFailed
        ? error
        : new MigrationFailed(error instanceof Error ? error.message : String(error), failedIn);
    }
  }

  #setPhase(phase: MigrationPhase): void {
    this.phase = phase;
    this.tracker = { ...this.tracker, progress: { ...this.tracker.progress, phase } };
    this.options.log('migration phase', { phase });
  }

  #checkCancel(): void {
    if (this.#abort.signal.aborted) throw new MigrationCancelled(this.phase);
  }

  /**
   * The guest's dirty rate before the copy, by page sampling (dirty-bitmap mode kills QEMU 7.2
   * under TCG). Started beside the disk mirrors and read once they are in sync, so its second of
   * sampling is not added to the move (it was ~1.2 s of a 7-10 s move of a 1 GiB VM).
   */
  #startDirtyRate(): void {
    this.#dirtyRateStarted = this.options.qmp.execute('calc-dirty-rate', { 'calc-time': 1 }).then(
      () => true,
      (error: unknown) => {
        this.options.log('dirty rate not measured', { error: String(error) });
        return false;
      },
    );
  }

  async #dirtyRateMeasured(): Promise<void> {
    const { qmp } = this.options;
    if (!(await this.#dirtyRateStarted)) return;
    try {
      for (let i = 0; i < 30; i++) {
        const info = await qmp.execute('query-dirty-rate', undefined, { schema: DirtyRateInfo });
        if (info.status === 'measured') {
          // QEMU reports MiB/s.
          this.stats.dirtyRateBeforeBytesPerSecond = (info['dirty-rate'] ?? 0) * 1024 * 1024;
          return;
        }
        await sleep(100, this.#abort.signal);
      }
    } catch (error) {
      this.#checkCancel();
      this.options.log('dirty rate not measured', { error: String(error) });
    }
  }

  async #configure(): Promise<void> {
    const { qmp, plan, convergence } = this.options;
    const capabilities: Record<string, boolean> = {
      'pause-before-switchover': true,
      events: true,
      'auto-converge': convergence.allowThrottle,
      multifd: plan.multifdChannels > 0,
      xbzrle: plan.xbzrleCacheBytes !== undefined,
      'postcopy-ram': plan.postcopy,
    };
    await qmp.execute('migrate-set-capabilities', {
      capabilities: Object.entries(capabilities).map(([capability, state]) => ({ capability, state })),
    });
    if (this.#tls) {
      await qmp.execute('object-add', {
        'qom-type': 'tls-creds-x509',
        id: this.#tls,
        dir: this.options.tlsDir,
        endpoint: 'client',
        'verify-peer': true,
      });
    }
    await qmp.execute('migrate-set-parameters', {
      // The target's certificate must name its fabric address.
      'tls-creds': this.#tls ?? '',
      'tls-hostname': this.#tls ? this.#targetAddress : '',
      'max-bandwidth': plan.maxBandwidthBytesPerSecond,
      'downtime-limit': convergence.targetDowntimeMs,
      ...(plan.multifdChannels > 0 ? { 'multifd-channels': plan.multifdChannels } : {}),
      ...(plan.xbzrleCacheBytes !== undefined ? { 'xbzrle-cache-size': plan.xbzrleCacheBytes } : {}),
      ...compressionParameters(plan.compression),
      ...(convergence.allowThrottle ? (this.#baseline ? QEMU_DEFAULT_THROTTLE : throttleParameters(0)) : {}),
    });
    this.stats.multifdChannels = plan.multifdChannels;
    if (plan.compression) this.stats.compression = plan.compression;
    this.stats.downtimeLimitMs = convergence.targetDowntimeMs;
  }

  /** The target's fabric address (its NBD server's, and its memory stream's). */
  get #targetAddress(): string {
    return this.options.nbd?.host ?? /^tcp:(.+):\d+$/.exec(this.options.migrationUri)?.[1] ?? '';
  }

  /** The target's NBD server; only asked for when a disk is mirrored. */
  get #nbd(): { host: string; port: number } {
    const nbd = this.options.nbd;
    if (nbd === undefined)
      throw new MigrationFailed('no NBD server on the target for the disks', 'mirror-disks');
    return nbd;
  }

  async #mirror(): Promise<void> {
    const { qmp, disks, plan } = this.options;
    if (disks.length === 0) {
      // Every disk stays on shared storage: nothing to mirror, memory only.
      this.#startDirtyRate();
      this.stats.diskBytes = 0;
      return;
    }
    const nbd = this.#nbd;
    const failures: string[] = [];
    const stopWatching = qmp.onEvent((event) => {
      const id = typeof event.data.device === 'string' ? event.data.device : undefined;
      if (id === undefined || ![...this.#jobs.values()].includes(id)) return;
      if (event.event === 'BLOCK_JOB_COMPLETED' || event.event === 'BLOCK_JOB_CANCELLED') {
        const error = typeof event.data.error === 'string' ? event.data.error : 'ended before it was in sync';
        failures.push(`mirror ${id}: ${error}`);
      }
      if (event.event === 'BLOCK_JOB_ERROR')
        failures.push(`mirror ${id}: I/O error (${String(event.data.operation)})`);
    });
    try {
      const switchable = await this.#canSwitchCopyMode();
      for (const disk of disks) {
        this.#checkCancel();
        const node = this.#nbdNodes.get(disk.diskId) as string;
        await qmp.execute('blockdev-add', {
          driver: 'nbd',
          'node-name': node,
          server: { type: 'inet', host: nbd.host, port: String(nbd.port) },
          export: disk.exportName,
          ...(this.#tls ? { 'tls-creds': this.#tls } : {}),
        });
        this.#added.add(node);
        await qmp.execute('blockdev-mirror', {
          'job-id': this.#jobs.get(disk.diskId),
          device: disk.nodeName,
          target: node,
          sync: 'full',
          'copy-mode': switchable ? 'background' : 'write-blocking',
          'buf-size': plan.mirrorBufSizeBytes,
          'on-source-error': 'stop',
          'on-target-error': 'report',
        });
      }
      this.#startDirtyRate();
      let diskBytes = 0;
      for (;;) {
        if (failures.length) throw new MigrationFailed(failures.join('; '), 'mirror-disks');
        this.#checkCancel();
        const jobs = await qmp.execute('query-block-jobs', undefined, {
          schema: BlockJobs,
          timeoutMs: QMP_MS,
        });
        const raw = this.#rawDisks(jobs);
        this.#advance(raw);
        this.#failIfStalled();
        diskBytes = raw.reduce((s, d) => s + d.len, 0);
        if (raw.length === disks.length && raw.every((d) => d.ready)) {
          // In sync: from now on every guest write reaches the target before it completes.
          if (switchable) {
            for (const job of this.#jobs.values()) {
              await qmp.execute('block-job-change', {
                id: job,
                type: 'mirror',
                'copy-mode': 'write-blocking',
              });
            }
          }
          break;
        }
        if (raw.length < disks.length && failures.length === 0) {
          throw new MigrationFailed('a mirror job ended before it was in sync', 'mirror-disks');
        }
        await sleep(this.options.pollMs?.mirror ?? 250, this.#abort.signal);
      }
      this.stats.diskBytes = diskBytes;
    } finally {
      stopWatching();
    }
  }

  readonly #added = new Set<string>();

  /** A delta move's per-disk state, for its switchover and undo. */
  readonly #deltaMoves: DeltaMove[] = [];

  /**
   * The temporary overlays a delta move left under the source QEMU (they hold the guest's writes
   * since the freeze): the source folds them into the images it keeps, or deletes them with them.
   */
  get deltaOverlays(): { imagePath: string; overlayPath: string }[] {
    return this.#deltaMoves
      .filter((m) => m.overlay !== 'none')
      .map((m) => ({ imagePath: m.disk.imagePath, overlayPath: m.disk.overlayPath }));
  }

  /**
   * The disks as a delta (delta.ts): each freezes under a temporary overlay and its changed
   * clusters go to the target's retained copy, then the overlay is mirrored on top and the
   * mirrors turn write-blocking, as after a full move's mirror phase.
   */
  async #mirrorDelta(bitmap: string): Promise<void> {
    const { qmp, disks, plan } = this.options;
    if (disks.length === 0) {
      this.#startDirtyRate();
      return;
    }
    const tag = SHORT(this.options.migrationId);
    const options = { nbd: this.#nbd, tag, tlsCreds: this.#tls, mirrorBufSizeBytes: plan.mirrorBufSizeBytes };
    for (const disk of disks) {
      this.#checkCancel();
      const move = await startDeltaMove(
        qmp,
        {
          diskId: disk.diskId,
          nodeName: disk.nodeName,
          imagePath: disk.imagePath,
          overlayPath: deltaOverlayPath(disk.imagePath, tag),
          bitmap,
          exportName: disk.exportName,
        },
        options,
      );
      this.#deltaMoves.push(move);
    }
    this.#startDirtyRate();
    const progress = new Map<string, RawDisk>(
      disks.map((d) => [d.diskId, { diskId: d.diskId, offset: 0, len: 0, ready: false }]),
    );
    let deltaBytes = 0;
    let overlayBytes = 0;
    for (const move of this.#deltaMoves) {
      const copied = await waitDeltaCopied(qmp, move, {
        ...options,
        pollMs: this.options.pollMs?.mirror ?? 250,
        tick: (job) => {
          progress.set(move.disk.diskId, { diskId: move.disk.diskId, ...job });
          this.#advance([...progress.values()]);
          this.#failIfStalled();
          this.#checkCancel();
        },
      });
      deltaBytes += copied.deltaBytes;
      overlayBytes += copied.overlayBytes;
    }
    Object.assign(this.stats, {
      diskBytes: deltaBytes + overlayBytes,
      deltaBytes,
      deltaOverlayBytes: overlayBytes,
    });
  }

  /** block-job-change (switching a mirror to write-blocking) came with QEMU 8.2. */
  async #canSwitchCopyMode(): Promise<boolean> {
    const version = QemuVersion.parse(await this.options.qmp.execute('query-version'));
    const { major, minor } = version.qemu;
    return major > 8 || (major === 8 && minor >= 2);
  }

  #rawDisks(jobs: BlockJobs): RawDisk[] {
    const out: RawDisk[] = [];
    for (const disk of this.options.disks) {
      const job = jobs.find((j) => j.device === this.#jobs.get(disk.diskId));
      if (job) out.push({ diskId: disk.diskId, offset: job.offset, len: job.len, ready: job.ready });
    }
    return out;
  }

  #lastMemory: RawMemory | undefined;

  #advance(disks: RawDisk[], memory: RawMemory | undefined = this.#lastMemory): void {
    this.#lastMemory = memory;
    this.tracker = advanceProgress(
      this.tracker,
      {
        atMs: Date.now(),
        phase: this.phase,
        disks: disks.length ? disks : this.tracker.progress.disks.map(toRaw),
        memory,
        memoryBytes: this.options.memoryBytes,
        throttlePercent: this.#convergence.throttle.lastPercent,
      },
      { stallAfterMs: this.options.stallAfterMs, slowBelowBytesPerSecond: 1e6 },
    );
  }

  #failIfStalled(): void {
    const p = this.tracker.progress;
    if (p.health === 'stalled') {
      throw new MigrationFailed(
        `stalled in ${p.phase}: ${p.healthReason ?? ''}`,
        p.phase,
        'migration-stalled',
      );
    }
  }

  async #copyMemory(): Promise<void> {
    const { qmp, migrationUri } = this.options;
    let switchover: Promise<void> | undefined;
    let switchoverError: unknown;
    /** When the source's vCPUs last stopped (the STOP event), unless they ran again since. */
    let stoppedAt: string | undefined;
    const stopWatching = qmp.onEvent((event: QmpEvent) => {
      const { seconds, microseconds } = event.timestamp;
      const at = new Date(seconds * 1000 + microseconds / 1000).toISOString();
      if (event.event === 'MIGRATION') {
        this.options.log('migration status', {
          status: event.data.status,
          at: seconds * 1000 + microseconds / 1000,
        });
      }
      if (event.event === 'STOP') stoppedAt = at;
      if (event.event === 'RESUME') stoppedAt = undefined;
      if (event.event === 'MIGRATION' && event.data.status === 'pre-switchover' && switchover === undefined) {
        // The guest's pause began when QEMU stopped its vCPUs for the switchover; QEMU then drains
        // and flushes the disks (through the write-blocking mirrors) before it says pre-switchover.
        // Timed from pre-switchover, the pause came out shorter than QEMU's own downtime (50 ms
        // against 71 in move.lab.test.ts).
        this.stats.switchoverAt = stoppedAt ?? at;
        switchover = this.#switchover().catch((error: unknown) => {
          switchoverError = error;
        });
      }
    });
    const memoryStart = Date.now();
    try {
      this.#checkCancel();
      this.#migrateStarted = true;
      await qmp.execute('migrate', { uri: migrationUri });
      for (;;) {
        if (switchoverError !== undefined) throw switchoverError;
        const info = await qmp.execute('query-migrate', undefined, {
          schema: MigrateInfo,
          timeoutMs: QMP_MS,
        });
        const status = info.status ?? 'none';
        if (status === 'completed') {
          await this.options.afterCompleted?.();
          const memoryTimeMs = Date.now() - memoryStart;
          this.#finalStats(await this.#withDowntime(info), memoryTimeMs);
          return;
        }
        if (status === 'failed' || status === 'cancelled') {
          throw new MigrationFailed(
            `QEMU reports the migration ${status}: ${info['error-desc'] ?? 'no reason given'}`,
            this.phase,
          );
        }
        if (!this.#pastPointOfNoReturn) {
          this.#checkCancel();
          await this.#applyPolicy(info);
          this.#failIfStalled();
        }
        await sleep(
          this.options.pollMs?.memory ?? 100,
          this.#pastPointOfNoReturn ? undefined : this.#abort.signal,
        );
      }
    } finally {
      stopWatching();
      if (switchover) await switchover;
    }
  }

  async #applyPolicy(info: MigrateInfo): Promise<void> {
    const sample = sampleOf(info, Date.now());
    if (sample === undefined) return;
    const ram = info.ram;
    this.#advance([], {
      transferred: sample.transferredBytes,
      remaining: sample.remainingBytes,
      total: sample.totalBytes,
      passes: sample.dirtySyncCount,
      rate: (sample.mbps * 1e6) / 8,
      dirtyRate: sample.dirtyPagesRate * sample.pageSize,
    });
    if (ram) {
      const dirty = sample.dirtyPagesRate * sample.pageSize;
      this.stats.dirtyRatePeakBytesPerSecond = Math.max(this.stats.dirtyRatePeakBytesPerSecond ?? 0, dirty);
    }
    for (const action of this.#decide(sample)) await this.#act(action);
  }

  #decide(sample: MigrationSample): ConvergenceAction[] {
    if (this.#baseline && this.options.baseline) {
      const step = decideBaseline(this.#baseline, sample, this.options.baseline);
      this.#baseline = step.state;
      return step.actions;
    }
    const step = decideConvergence(this.#convergence, sample, this.options.convergence);
    this.#convergence = step.state;
    return step.actions;
  }

  async #act(action: ConvergenceAction): Promise<void> {
    const { qmp } = this.options;
    this.policyLog.push({ at: new Date().toISOString(), action: describe(action), reason: action.reason });
    this.options.log('convergence action', { action: describe(action), reason: action.reason });
    switch (action.kind) {
      case 'set-downtime-limit':
        await qmp.execute('migrate-set-parameters', { 'downtime-limit': action.ms });
        this.stats.downtimeLimitMs = action.ms;
        return;
      case 'set-throttle':
        await qmp.execute('migrate-set-parameters', throttleParameters(action.percent));
        return;
      case 'start-postcopy':
        await qmp.execute('migrate-start-postcopy');
        return;
      case 'set-bandwidth':
        await qmp.execute('migrate-set-parameters', {
          'max-bandwidth': action.bytesPerSecond ?? UNLIMITED_BANDWIDTH,
        });
        return;
      case 'cancel-stalled':
        throw new MigrationFailed(`stalled: ${action.reason}`, this.phase, 'migration-stalled');
    }
  }

  /**
   * The guest is paused: finish the mirrors, drop the NBD nodes, let QEMU send the last state
   * (libvirt's order: the target's disks are complete before the source lets go of the guest).
   * All mirrors are cancelled at once and the NBD nodes deleted back to back. Measured here (TCG,
   * 2 busy cores): ~60-85 ms of a ~90 ms QEMU-reported downtime is this step, nearly all of it each
   * mirror's final drain + flush (an fsync on the target's datastore); issuing migrate-continue
   * before the mirrors end (the data is already on the target once a write-blocking mirror shows
   * offset = len) was tried and only moved the same cost into QEMU's device phase.
   */
  async #switchover(): Promise<void> {
    if (this.#abort.signal.aborted) return; // the poll loop rolls back
    const { qmp } = this.options;
    this.#pastPointOfNoReturn = true;
    this.#setPhase('switchover');
    const started = Date.now();
    await Promise.all(
      [...this.#jobs.values()].map(async (job) => {
        const done = qmp.waitForEvent('BLOCK_JOB_COMPLETED', {
          timeoutMs: QMP_MS,
          match: (e) => e.data.device === job,
        });
        await qmp.execute('block-job-cancel', { device: job });
        const event = await done;
        if (typeof event.data.error === 'string')
          throw new MigrationFailed(`mirror ${job}: ${event.data.error}`, 'switchover');
      }),
    );
    await Promise.all(this.#deltaMoves.map((move) => finishDelta(qmp, move)));
    const mirrorsMs = Date.now() - started;
    await Promise.all([...this.#added].map((node) => qmp.execute('blockdev-del', { 'node-name': node })));
    this.#added.clear();
    await qmp.execute('migrate-continue', { state: 'pre-switchover' });
    this.options.log('switchover: mirrors finished, migration continues', {
      ms: Date.now() - started,
      mirrorsMs,
    });
  }

  /** QEMU fills in `downtime` a moment after it reports `completed` (it reads 0 until then). */
  async #withDowntime(completed: MigrateInfo): Promise<MigrateInfo> {
    let info = completed;
    for (let i = 0; i < 20 && !info.downtime; i++) {
      await sleep(50);
      info = await this.options.qmp.execute('query-migrate', undefined, {
        schema: MigrateInfo,
        timeoutMs: QMP_MS,
      });
    }
    return info;
  }

  #finalStats(info: MigrateInfo, memoryTimeMs: number): void {
    const summary = throttleSummary((this.#baseline ?? this.#convergence).throttle);
    Object.assign(this.stats, {
      memoryTimeMs,
      memoryBytes: info.ram?.transferred,
      downtimeMs: info.downtime,
      setupTimeMs: info['setup-time'],
      iterations: info.ram?.['dirty-sync-count'],
      throttlePeakPercent: summary.peakPercent,
      throttleSeconds: summary.seconds,
    });
  }

  async #rollback(phase: MigrationPhase, linkDead: boolean): Promise<void> {
    const { qmp, log } = this.options;
    log('rolling back', { phase, reason: this.#cancelReason });
    const step = async (what: string, action: () => Promise<unknown>): Promise<void> => {
      try {
        await action();
      } catch (error) {
        log('rollback step failed', { step: what, error: String(error) });
      }
    };
    const ms = { timeoutMs: ROLLBACK_QMP_MS };
    if (linkDead) {
      // Connections to a dead peer never fail by themselves (no reset, retransmissions for many
      // minutes). QEMU shuts this move's connections down itself first (yank), so every NBD request
      // and send waiting on them fails now and each mirror ends on its own I/O error; the host's
      // `ss -K` backs that up. A forced cancel of a write-blocking mirror while guest writes still
      // wait on the dead connection killed QEMU 10.0.2 (README, known issues).
      await step('yank connections to the target', () => this.#yank());
      await step('destroy connections to the target', () => this.#killSockets());
    }
    if (this.#migrateStarted) {
      await step('migrate_cancel', () => qmp.execute('migrate_cancel', undefined, ms));
      let ended = await this.#waitMigrationEnded(10_000);
      if (!ended && !linkDead) {
        // Still `cancelling`: QEMU 7.2 can wait on its stream threads until their sockets close.
        await step('destroy connections to the target', () => this.#killSockets());
        ended = await this.#waitMigrationEnded(10_000);
      }
      if (!ended) log('rollback: the migration stream has not ended yet', { phase });
    }
    // A delta move: its jobs stop, and the overlay is committed back into the disk (delta.ts).
    for (const move of this.#deltaMoves)
      await step(`undo the delta copy of ${move.disk.diskId}`, () => cancelDelta(qmp, move));
    const jobs = [...this.#jobs.values()];
    // After a yank the mirrors end on their own error within moments: let them, and cancel only
    // those still there.
    const left = linkDead && (await this.#waitJobsGone(jobs, 5_000)) ? [] : await this.#presentJobs(jobs);
    for (const job of left)
      await step(`cancel ${job}`, () => qmp.execute('block-job-cancel', { device: job, force: true }, ms));
    let gone = await this.#waitJobsGone(jobs, 10_000);
    if (!gone) {
      // A mirror waiting on a dead TCP connection: shut its sockets down so its requests fail now.
      await step('destroy connections to the target', () => this.#killSockets());
      gone = await this.#waitJobsGone(jobs, 20_000);
    }
    for (const node of this.#added)
      await step(`blockdev-del ${node}`, () => qmp.execute('blockdev-del', { 'node-name': node }, ms));
    this.#added.clear();
    if (this.#guestWasRunning) await step('resume guest', () => this.#ensureRunning());
    if (this.#tls) await step('drop TLS credentials', () => qmp.execute('object-del', { id: this.#tls }, ms));
    log('rolled back', { phase, mirrorsGone: gone });
  }

  /**
   * The guest runs again. QEMU restarts it itself when a cancelled migration winds down; when the
   * cancel met the migration while it was stopping the guest, it can stay in finish-migrate, so
   * once the stream has ended the guest is continued explicitly.
   */
  async #ensureRunning(): Promise<void> {
    const { qmp } = this.options;
    const ms = { timeoutMs: ROLLBACK_QMP_MS };
    const until = Date.now() + 15_000;
    for (;;) {
      const status = await qmp.execute('query-status', undefined, { schema: StatusInfo, ...ms });
      if (status.running) return;
      const migration = await qmp.execute('query-migrate', undefined, { schema: MigrateInfo, ...ms });
      if (!STREAM_ACTIVE.includes(migration.status ?? 'none')) {
        await qmp.execute('cont', undefined, ms).catch((error: unknown) => {
          this.options.log('cont after rollback failed', { state: status.status, error: String(error) });
        });
      }
      if (Date.now() > until) throw new Error(`the guest is still ${status.status} after the rollback`);
      await sleep(200);
    }
  }

  /** Whether QEMU's migration stream has ended (not active, not cancelling) within `timeoutMs`. */
  async #waitMigrationEnded(timeoutMs: number): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const info = await this.options.qmp
        .execute('query-migrate', undefined, { schema: MigrateInfo, timeoutMs: ROLLBACK_QMP_MS })
        .catch(() => undefined);
      if (info && !STREAM_ACTIVE.includes(info.status ?? 'none')) return true;
      if (Date.now() > until) return false;
      await sleep(100);
    }
  }

  async #waitJobsGone(jobs: string[], timeoutMs: number): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      if ((await this.#presentJobs(jobs)).length === 0) return true;
      if (Date.now() > until) return false;
      await sleep(100);
    }
  }

  /** Which of `jobs` QEMU still has (a concluded job is dismissed by QEMU itself: auto-dismiss). */
  async #presentJobs(jobs: string[]): Promise<string[]> {
    const present = await this.options.qmp
      .execute('query-block-jobs', undefined, { schema: BlockJobs, timeoutMs: ROLLBACK_QMP_MS })
      .catch(() => []);
    return jobs.filter((job) => present.some((j) => j.device === job));
  }

  /**
   * QEMU shuts down this move's connections (the NBD client nodes and the migration stream) from
   * inside: requests waiting on them fail at once. Only instances QEMU has are named (yank refuses
   * the whole call for one it does not know).
   */
  async #yank(): Promise<void> {
    const { qmp, log } = this.options;
    const known = YankInstances.parse(
      await qmp.execute('query-yank', undefined, { timeoutMs: ROLLBACK_QMP_MS }),
    );
    const wanted = known.filter(
      (i) =>
        (i.type === 'block-node' &&
          i['node-name'] !== undefined &&
          (this.#added.has(i['node-name']) ||
            this.#deltaMoves.some((m) => m.nbd && m.names.nbdNode === i['node-name']))) ||
        (i.type === 'migration' && this.#migrateStarted),
    );
    if (wanted.length === 0) return;
    await qmp.execute('yank', { instances: wanted }, { timeoutMs: ROLLBACK_QMP_MS });
    log('yanked connections to the target', { instances: wanted });
  }

  /** Destroys this move's TCP connections to the target (NBD and the migration stream). */
  async #killSockets(): Promise<void> {
    const host = this.#targetAddress;
    const streamPort = /:(\d+)$/.exec(this.options.migrationUri)?.[1];
    const ports = [this.options.nbd?.port, streamPort].filter((p) => p !== undefined);
    if (ports.length === 0) return;
    const filter = ['dst', host, 'and', '('];
    ports.forEach((p, i) => filter.push(...(i ? ['or'] : []), 'dport', '=', `:${p}`));
    filter.push(')');
    const [command = 'ss', ...args] = [...(this.options.hostCommand ?? []), 'ss', '-K', ...filter];
    await run(command, args);
  }
}

function toRaw(d: { diskId: string; bytesDone: number; bytesTotal: number; ready: boolean }): RawDisk {
  return { diskId: d.diskId, offset: d.bytesDone, len: d.bytesTotal, ready: d.ready };
}

function describe(action: ConvergenceAction): string {
  switch (action.kind) {
    case 'set-downtime-limit':
      return `downtime-limit ${action.ms} ms`;
    case 'set-throttle':
      return `throttle ${action.percent} %`;
    case 'start-postcopy':
      return 'post-copy';
    case 'set-bandwidth':
      return action.bytesPerSecond === undefined
        ? 'stream cap off'
        : `stream cap ${Math.round(action.bytesPerSecond / 1e6)} MB/s`;
    case 'cancel-stalled':
      return 'cancel (stalled)';
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new MigrationCancelled('wait'));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new MigrationCancelled('wait'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/*
 * Live storage move on one host (like Hyper-V's Move-VMStorage): a running VM's disks move to
 * another datastore while the guest keeps writing.
 *
 * Per disk, all disks in parallel: a new qcow2 of the same virtual size on the target datastore,
 * opened as new nodes; blockdev-mirror sync=full copy-mode=write-blocking from the disk's current
 * format node; once READY, block-job-complete pivots the guest's device onto the new nodes; the
 * old nodes are deleted and the old file removed. Before the pivot any failure or cancel leaves
 * the guest on the old file: forced cancel, new nodes deleted, new file removed.
 *
 * The new nodes cannot take the old node names while those exist, so a moved disk's node is
 * `m<tag><diskId>` until QEMU restarts; callers find a disk's current node with currentNodeNames().
 * The new chain has its throttle filter (throttle.ts) of the target datastore's group, made in
 * the QEMU first when it has none yet: the disk takes on the target's limits, or none.
 */
import { rm } from 'node:fs/promises';
import { z } from 'zod';
import type { MigrationPhase, MigrationStats } from '../../api/index.js';
import type { QmpClient } from '../../qmp/index.js';
import { MigrationCancelled, MigrationFailed } from './errors.js';
import { advanceProgress, initialProgress, type ProgressTracker, type RawDisk } from './progress.js';
import { BlockJobs } from './qemu-replies.js';
import type { DatastoreLimits } from '../../api/index.js';
import { ensureThrottleGroup, throttleBlockdev } from '../throttle.js';

export interface StorageMoveDisk {
  diskId: string;
  /** The disk's format node in the running QEMU now. */
  nodeName: string;
  /** The old image file and the new one (already created, same virtual size). */
  oldPath: string;
  newPath: string;
}

export interface StorageMoveOptions {
  migrationId: string;
  qmp: QmpClient;
  disks: StorageMoveDisk[];
  /** The target datastore and its limits (its throttle group's). */
  datastore: string;
  limits: DatastoreLimits | undefined;
  bufSizeBytes: number;
  stallAfterMs: number;
  log: (msg: string, fields?: Record<string, unknown>) => void;
}

const QueryBlock = z.array(
  z.looseObject({
    qdev: z.string().optional(),
    inserted: z.looseObject({ 'node-name': z.string() }).optional(),
  }),
);

/** diskId -> the format node its virtio-blk device (id `virtio-disk-<diskId>`) uses right now. */
export async function currentNodeNames(qmp: QmpClient): Promise<Map<string, string>> {
  const blocks = await qmp.execute('query-block', undefined, { schema: QueryBlock });
  const out = new Map<string, string>();
  for (const b of blocks) {
    const m = /virtio-disk-([^/]+)/.exec(b.qdev ?? '');
    if (m?.[1] && b.inserted) out.set(m[1], b.inserted['node-name']);
  }
  return out;
}

/**
 * The nodes under a format node, top down (throttle filter, file), by the agent's names
 * (`disk-x`/`thr-x`/`file-x`) or ours (`m..`/`t..`/`n..`). A QEMU started before throttle filters
 * has no `thr-x`: deleting it fails harmlessly.
 */
export function nodesUnder(formatNode: string): [string, string] {
  return formatNode.startsWith('disk-')
    ? [`thr-${formatNode.slice(5)}`, `file-${formatNode.slice(5)}`]
    : [`t${formatNode.slice(1)}`, `n${formatNode.slice(1)}`];
}

export class StorageMove {
  phase: MigrationPhase = 'prepare';
  tracker: ProgressTracker = initialProgress('prepare');
  readonly stats: MigrationStats = {};
  readonly #abort = new AbortController();
  #pivoted = false;
  readonly #tag: string;
  readonly #added: string[] = [];

  constructor(readonly options: StorageMoveOptions) {
    this.#tag = options.migrationId.replaceAll('-', '').slice(0, 4);
  }

  #job(d: StorageMoveDisk): string {
    return `sm-${this.#tag}-${d.diskId}`;
  }
  #formatNode(d: StorageMoveDisk): string {
    return `m${this.#tag}${d.diskId}`;
  }
  #fileNode(d: StorageMoveDisk): string {
    return `n${this.#tag}${d.diskId}`;
  }
  #throttleNode(d: StorageMoveDisk): string {
    return `t${this.#tag}${d.diskId}`;
  }

  cancel(): void {
    if (!this.#pivoted) this.#abort.abort();
  }
  get cancelRequested(): boolean {
    return this.#abort.signal.aborted;
  }

  /** Moves every disk; returns the new format node of each. Rolls back and throws on failure. */
  async run(): Promise<Map<string, string>> {
    const { qmp, disks, log } = this.options;
    const started = Date.now();
    try {
      await ensureThrottleGroup(qmp, this.options.datastore, this.options.limits);
      for (const d of disks) {
        await qmp.execute('blockdev-add', {
          driver: 'file',
          'node-name': this.#fileNode(d),
          filename: d.newPath,
        });
        this.#added.push(this.#fileNode(d));
        await qmp.execute(
          'blockdev-add',
          throttleBlockdev(this.#throttleNode(d), this.options.datastore, this.#fileNode(d)),
        );
        this.#added.push(this.#throttleNode(d));
        await qmp.execute('blockdev-add', {
          driver: 'qcow2',
          'node-name': this.#formatNode(d),
          file: this.#throttleNode(d),
        });
        this.#added.push(this.#formatNode(d));
      }
      this.#setPhase('mirror-disks');
      for (const d of disks) {
        await qmp.execute('blockdev-mirror', {
          'job-id': this.#job(d),
          device: d.nodeName,
          target: this.#formatNode(d),
          sync: 'full',
          'copy-mode': 'write-blocking',
          'buf-size': this.options.bufSizeBytes,
          'auto-finalize': true,
        });
      }
      await this.#waitReady();
      this.stats.mirrorTimeMs = Date.now() - started;
      this.#setPhase('switchover');
      this.#pivoted = true;
      await Promise.all(
        disks.map(async (d) => {
          const done = qmp.waitForEvent('BLOCK_JOB_COMPLETED', {
            timeoutMs: 60_000,
            match: (e) => e.data.device === this.#job(d),
          });
          await qmp.execute('block-job-complete', { device: this.#job(d) });
          const event = await done;
          if (typeof event.data.error === 'string') {
            throw new MigrationFailed(`pivot of disk ${d.diskId}: ${event.data.error}`, 'switchover');
          }
        }),
      );
    } catch (error) {
      if (this.#pivoted) throw error;
      await this.#rollback();
      if (this.#abort.signal.aborted) throw new MigrationCancelled(this.phase);
      throw error instanceof MigrationFailed
        ? error
        : new MigrationFailed(error instanceof Error ? error.message : String(error), this.phase);
    }
    this.#setPhase('clean-up');
    await this.#dropOldNodes();
    for (const d of disks) await rm(d.oldPath, { force: true });
    this.stats.totalTimeMs = Date.now() - started;
    this.#setPhase('done');
    this.tracker = advanceProgress(this.tracker, {
      atMs: Date.now(),
      phase: 'done',
      disks: this.tracker.progress.disks.map((p) => ({
        diskId: p.diskId,
        offset: p.bytesDone,
        len: p.bytesTotal,
        ready: true,
      })),
      memoryBytes: 0,
      throttlePercent: 0,
    });
    log('storage move completed', { ...this.stats });
    return new Map(disks.map((d) => [d.diskId, this.#formatNode(d)]));
  }

  #setPhase(phase: MigrationPhase): void {
    this.phase = phase;
    this.tracker = { ...this.tracker, progress: { ...this.tracker.progress, phase } };
  }

  async #waitReady(): Promise<void> {
    const { qmp, disks } = this.options;
    for (;;) {
      if (this.#abort.signal.aborted) throw new MigrationCancelled(this.phase);
      const jobs = await qmp.execute('query-block-jobs', undefined, { schema: BlockJobs });
      const raw: RawDisk[] = [];
      for (const d of disks) {
        const job = jobs.find((j) => j.device === this.#job(d));
        if (!job)
          throw new MigrationFailed(`the mirror of disk ${d.diskId} ended before it was in sync`, this.phase);
        raw.push({ diskId: d.diskId, offset: job.offset, len: job.len, ready: job.ready });
      }
      this.tracker = advanceProgress(
        this.tracker,
        { atMs: Date.now(), phase: this.phase, disks: raw, memoryBytes: 0, throttlePercent: 0 },
        { stallAfterMs: this.options.stallAfterMs, slowBelowBytesPerSecond: 1e6 },
      );
      this.stats.diskBytes = raw.reduce((s, d) => s + d.len, 0);
      if (this.tracker.progress.health === 'stalled') {
        throw new MigrationFailed(
          `stalled: ${this.tracker.progress.healthReason ?? ''}`,
          this.phase,
          'migration-stalled',
        );
      }
      if (raw.every((d) => d.ready)) return;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** After the pivot the old nodes are unused: delete them, top down (format node first). */
  async #dropOldNodes(): Promise<void> {
    const { qmp, disks, log } = this.options;
    for (const d of disks) {
      for (const node of [d.nodeName, ...nodesUnder(d.nodeName)]) {
        await qmp.execute('blockdev-del', { 'node-name': node }).catch((error: unknown) => {
          log('old node not deleted', { node, error: String(error) });
        });
      }
    }
  }

  async #rollback(): Promise<void> {
    const { qmp, disks, log } = this.options;
    for (const d of disks) {
      await qmp.execute('block-job-cancel', { device: this.#job(d), force: true }).catch(() => undefined);
    }
    for (let i = 0; i < 100; i++) {
      const jobs = await qmp.execute('query-block-jobs', undefined, { schema: BlockJobs }).catch(() => []);
      if (!jobs.some((j) => disks.some((d) => j.device === this.#job(d)))) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    for (const node of [...this.#added].reverse()) {
      await qmp.execute('blockdev-del', { 'node-name': node }).catch((error: unknown) => {
        log('rollback: node not deleted', { node, error: String(error) });
      });
    }
    for (const d of disks) await rm(d.newPath, { force: true });
    log('storage move rolled back', { phase: this.phase });
  }
}

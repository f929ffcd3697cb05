/*
 * Delta return moves (issue 17): the disk of a VM that arrived on this host tracks what changes
 * in a persistent dirty bitmap started at the switchover; a later move back to a host that kept
 * the disk as it was at departure (its retained copy) sends only the changed clusters.
 *
 * Why not "mirror sync=none write-blocking + blockdev-backup sync=bitmap through the mirror's
 * filter" (both live at once): QEMU 10.0.2 refuses every arrangement of the two jobs on one
 * guest disk (measured, delta.lab.test.ts): backup on the mirror's filter node -> "Node 'M' is
 * busy: block device is in use by block job: mirror", backup on the disk under a mirror -> the
 * same for the disk, mirror above a running backup's filter -> "Need a root block node"; and
 * backup looks its bitmap up on `device` only, so a bitmap on the disk is not found through a
 * filter. blockdev-mirror has no bitmap parameter in 10.0.
 *
 * So the move freezes the tracked disk instead, for the length of the move only:
 *
 *   1. blockdev-snapshot: a temporary qcow2 overlay goes on top of the disk. From here the
 *      guest writes into the overlay; the disk (with the bitmap) no longer changes.
 *   2. blockdev-backup sync=bitmap bitmap=<tracking> bitmap-mode=never of the frozen disk to the
 *      target's NBD export of its retained copy: the changed clusters, nothing else. The disk
 *      cannot change under it, so no ordering question arises.
 *   3. Once that has completed: blockdev-mirror sync=top of the overlay onto the same export
 *      (what the guest wrote since step 1), background until in sync, then write-blocking, as
 *      the full move's mirrors (outgoing.ts). Target = retained + delta + overlay = the disk.
 *   4. Switchover as a full move: non-forced block-job-cancel, blockdev-del of the NBD node.
 *
 * The overlay exists on the departing host only, only during the move: the guest's I/O path
 * between moves is the plain image, VM definitions, deletes, storage and cold moves never see a
 * chain. A cancelled or failed move commits the overlay back into the disk (active block-commit,
 * then pivot); the commit's writes go through the disk and so are recorded by the bitmap, which
 * stays valid for a retry. Should the source QEMU die mid-move, the guest's latest writes are in
 * the overlay file: it must be committed (`qemu-img commit`) before the VM starts from its image.
 */
import { chmod, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import {
  queryNamedBlockNodes,
  type DirtyBitmapInfo,
  type QmpClient,
  type QmpEvent,
} from '../../qmp/index.js';
import { run } from '../host-exec.js';
import { MigrationFailed } from './errors.js';
import { BlockJobs } from './qemu-replies.js';

/** Prefix of every tracking bitmap: a bitmap without it is none of the fabric's. */
export const TRACKING_BITMAP_PREFIX = 'sb-delta-';
/** Names of a delta move's QEMU objects (jobs, nodes) start with this, so leftovers can be found. */
export const DELTA_PREFIX = 'dlt-';

const GENERATION = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** The tracking bitmap of a disk for one generation (the arrival that started it). */
export function trackingBitmapName(generationId: string): string {
  if (!GENERATION.test(generationId)) {
    throw new RangeError(
      `generation id ${JSON.stringify(generationId)}: must be 1-64 letters, digits, '-' or '_', starting with a letter or digit`,
    );
  }
  return `${TRACKING_BITMAP_PREFIX}${generationId}`;
}

/** The generation a bitmap tracks, or undefined for a bitmap that is not a tracking bitmap. */
export function generationOfBitmap(name: string): string | undefined {
  if (!name.startsWith(TRACKING_BITMAP_PREFIX)) return undefined;
  const id = name.slice(TRACKING_BITMAP_PREFIX.length);
  return GENERATION.test(id) ? id : undefined;
}

/** QEMU object names of one delta move of one disk (job ids and node names share QEMU's 31-char limit for nodes). */
export interface DeltaNames {
  overlayNode: string;
  /** The backup's copy-before-write filter (named so the graph reads plainly). */
  cbwNode: string;
  nbdNode: string;
  backupJob: string;
  mirrorJob: string;
}

export function deltaNames(tag: string, diskId: string): DeltaNames {
  const base = `${tag}-${diskId}`;
  const name = (kind: string): string => `${DELTA_PREFIX}${kind}-${base}`.slice(0, 31);
  return {
    overlayNode: name('ovl'),
    cbwNode: name('cbw'),
    nbdNode: name('nbd'),
    backupJob: name('bak'),
    mirrorJob: name('mir'),
  };
}

/**
 * Where the temporary overlay of an image goes during a delta move: beside the image, named after
 * it, so whoever starts the VM again after a crash of its QEMU mid-move finds it (the guest's
 * writes since the freeze are only there: commit it before starting from the image).
 */
export function deltaOverlayPath(imagePath: string, tag: string): string {
  return `${imagePath}.${DELTA_PREFIX}${tag}.qcow2`;
}

/** The image a delta overlay belongs to, or undefined for a file that is no delta overlay. */
export function imageOfDeltaOverlay(file: string): string | undefined {
  const m = new RegExp(`^(.+)\\.${DELTA_PREFIX}[A-Za-z0-9_-]+\\.qcow2$`).exec(file);
  return m?.[1];
}

export type TrackingBitmap = DirtyBitmapInfo;

/**
 * Starts tracking on the arrived disk. Call it on the target between `completed` and `cont`: the
 * source's mirror writes have all landed then and the guest has not run yet, so the bitmap starts
 * exactly at the switchover (in incoming.ts's resume: after nbd-server-stop, before cont). The
 * writable export has activated the node by then; QEMU 10.0.2 would also accept the bitmap on a
 * still inactive node (late-block-activate) and keep it through the activation at `cont`.
 */
export async function startTracking(qmp: QmpClient, nodeName: string, bitmap: string): Promise<void> {
  await qmp.execute('block-dirty-bitmap-add', { node: nodeName, name: bitmap, persistent: true });
}

/** The tracking bitmap of a node, or undefined when it has none of that name. */
export async function trackingBitmap(
  qmp: QmpClient,
  nodeName: string,
  bitmap: string,
): Promise<TrackingBitmap | undefined> {
  const nodes = await queryNamedBlockNodes(qmp);
  const node = nodes.find((n) => n['node-name'] === nodeName);
  return node?.['dirty-bitmaps']?.find((b) => b.name === bitmap);
}

export interface DeltaDisk {
  diskId: string;
  /** The guest's format node carrying the tracking bitmap. */
  nodeName: string;
  /** Its image file (the backing file named in the temporary overlay). */
  imagePath: string;
  /** Where the temporary overlay goes: `deltaOverlayPath(imagePath, tag)`. */
  overlayPath: string;
  bitmap: string;
  /** The target's writable NBD export of the retained copy. */
  exportName: string;
}

export interface DeltaOptions {
  nbd: { host: string; port: number };
  /** Identifies this move's objects (e.g. a short migration id). */
  tag: string;
  mirrorBufSizeBytes?: number;
  /** Secure move: id of the tls-creds-x509 object (client endpoint) the NBD connection uses. */
  tlsCreds?: string | undefined;
  /** Test knob: rate limit of the changed-cluster copy, bytes/s. */
  backupSpeed?: number;
}

export interface DeltaMove {
  disk: DeltaDisk;
  names: DeltaNames;
  /** What is in place so far, for the undo. */
  overlay: 'none' | 'file' | 'node' | 'on-top';
  nbd: boolean;
  /** What the bitmap marked when the disk was frozen: what the copy sends. */
  deltaBytes: number;
  /** The backup job's end event (subscribed before the job starts: a small delta ends at once). */
  backupEnd: Promise<QmpEvent> | undefined;
}

/** A delta copy's progress: the changed clusters first, then the overlay's mirror on top. */
export interface DeltaJobProgress {
  stage: 'changed-clusters' | 'overlay';
  offset: number;
  len: number;
  ready: boolean;
}

export interface DeltaCopied {
  /** Bytes the changed-cluster copy sent (the backup job's len). */
  deltaBytes: number;
  /** Bytes the overlay's mirror copied until it was in sync (the guest's writes since the freeze). */
  overlayBytes: number;
  backupMs: number;
  mirrorMs: number;
}

const QMP_MS = 30_000;
/** Upper bound for the copy of the changed clusters (a stuck target fails the move). */
const BACKUP_MS = 3_600_000;
/** Upper bound for committing the overlay back on an undo. */
const COMMIT_MS = 600_000;

const fail = (message: string): MigrationFailed => new MigrationFailed(message, 'mirror-disks');

/**
 * Why a disk cannot go as a delta (undefined: it can). A bitmap QEMU marks inconsistent (QEMU
 * died with the image open: the bitmap's in-use flag stayed set) or that is absent (QEMU died
 * before it first stored it) misses writes; the move must copy everything.
 */
export function deltaRefusal(bitmap: TrackingBitmap | undefined, name: string): string | undefined {
  if (!bitmap) return `the disk has no tracking bitmap ${name}`;
  if (bitmap.inconsistent)
    return `the tracking bitmap ${name} is inconsistent (QEMU stopped without storing it)`;
  if (bitmap.persistent === false) return `the tracking bitmap ${name} is not persistent`;
  if (bitmap.recording === false) return `the tracking bitmap ${name} is not recording`;
  return undefined;
}

/**
 * Steps 1 and 2: freezes the disk under a temporary overlay, connects to the target's export and
 * starts the copy of the changed clusters. On an error, whatever was put in place is undone.
 */
export async function startDeltaMove(
  qmp: QmpClient,
  disk: DeltaDisk,
  options: DeltaOptions,
): Promise<DeltaMove> {
  const names = deltaNames(options.tag, disk.diskId);
  const move: DeltaMove = { disk, names, overlay: 'none', nbd: false, deltaBytes: 0, backupEnd: undefined };
  const refusal = deltaRefusal(await trackingBitmap(qmp, disk.nodeName, disk.bitmap), disk.bitmap);
  if (refusal) throw fail(`no delta move for disk ${disk.diskId}: ${refusal}`);
  try {
    // The backing file name is recorded in the overlay for the offline commit afterwards.
    await run('qemu-img', [
      'create',
      '-q',
      '-f',
      'qcow2',
      '-b',
      disk.imagePath,
      '-F',
      'qcow2',
      disk.overlayPath,
    ]);
    await chmod(disk.overlayPath, 0o600);
    move.overlay = 'file';
    await qmp.execute('blockdev-add', {
      driver: 'qcow2',
      'node-name': names.overlayNode,
      file: { driver: 'file', filename: disk.overlayPath },
      backing: null,
    });
    move.overlay = 'node';
    await qmp.execute('blockdev-snapshot', { node: disk.nodeName, overlay: names.overlayNode });
    move.overlay = 'on-top';
    // Frozen: the count no longer changes.
    move.deltaBytes = (await trackingBitmap(qmp, disk.nodeName, disk.bitmap))?.count ?? 0;
    await qmp.execute('blockdev-add', {
      driver: 'nbd',
      'node-name': names.nbdNode,
      server: { type: 'inet', host: options.nbd.host, port: String(options.nbd.port) },
      export: disk.exportName,
      ...(options.tlsCreds ? { 'tls-creds': options.tlsCreds } : {}),
    });
    move.nbd = true;
    move.backupEnd = jobEnd(qmp, names.backupJob, BACKUP_MS);
    move.backupEnd.catch(() => undefined);
    await qmp.execute('blockdev-backup', {
      'job-id': names.backupJob,
      device: disk.nodeName,
      target: names.nbdNode,
      sync: 'bitmap',
      bitmap: disk.bitmap,
      // The bitmap stays as it is: a failed or cancelled move can retry from it.
      'bitmap-mode': 'never',
      'filter-node-name': names.cbwNode,
      'on-source-error': 'report',
      'on-target-error': 'report',
      ...(options.backupSpeed ? { speed: options.backupSpeed } : {}),
    });
    return move;
  } catch (error) {
    await cancelDelta(qmp, move).catch(() => undefined);
    throw error;
  }
}

/**
 * Step 3: waits until the changed clusters are on the target, then mirrors the overlay onto it
 * and returns once that mirror is in sync and write-blocking (from then on the target stays equal
 * to the guest's disk, as after a full move's mirror phase).
 */
export async function waitDeltaCopied(
  qmp: QmpClient,
  move: DeltaMove,
  options: DeltaOptions & {
    timeoutMs?: number;
    pollMs?: number;
    /** Called at each poll with the running job's figures; throwing from it ends the wait. */
    tick?: (job: DeltaJobProgress) => void;
  },
): Promise<DeltaCopied> {
  const { names } = move;
  const timeoutMs = options.timeoutMs ?? 600_000;
  const started = Date.now();
  if (!move.backupEnd) throw fail('no copy of the changed clusters was started');
  let ended: QmpEvent | undefined;
  void move.backupEnd.then(
    (e) => (ended = e),
    () => undefined,
  );
  while (ended === undefined) {
    const jobs = await qmp.execute('query-block-jobs', undefined, { schema: BlockJobs, timeoutMs: QMP_MS });
    const job = jobs.find((j) => j.device === names.backupJob);
    if (job) options.tick?.({ stage: 'changed-clusters', offset: job.offset, len: job.len, ready: false });
    if (ended !== undefined || !job) break;
    if (Date.now() - started > timeoutMs) throw fail(`delta copy not done within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 50));
  }
  const backupEnd = await move.backupEnd;
  if (backupEnd.event !== 'BLOCK_JOB_COMPLETED' || typeof backupEnd.data.error === 'string') {
    throw fail(`copy of the changed clusters failed: ${String(backupEnd.data.error ?? 'cancelled')}`);
  }
  const deltaBytes = Number(backupEnd.data.len);
  const backupMs = Date.now() - started;
  const mirrorStarted = Date.now();
  await qmp.execute('blockdev-mirror', {
    'job-id': names.mirrorJob,
    device: names.overlayNode,
    target: names.nbdNode,
    // Only what the overlay holds: the target already has the frozen disk.
    sync: 'top',
    // Background until in sync, then write-blocking (outgoing.ts says why).
    'copy-mode': 'background',
    ...(options.mirrorBufSizeBytes ? { 'buf-size': options.mirrorBufSizeBytes } : {}),
    'on-source-error': 'stop',
    'on-target-error': 'report',
  });
  for (;;) {
    const jobs = await qmp.execute('query-block-jobs', undefined, { schema: BlockJobs, timeoutMs: QMP_MS });
    const job = jobs.find((j) => j.device === names.mirrorJob);
    if (!job) throw fail(`mirror ${names.mirrorJob} ended before it was in sync`);
    if (job.error) throw fail(`mirror ${names.mirrorJob}: ${job.error}`);
    options.tick?.({
      stage: 'overlay',
      offset: deltaBytes + job.offset,
      len: deltaBytes + job.len,
      ready: job.ready,
    });
    if (job.ready) {
      await qmp.execute('block-job-change', {
        id: names.mirrorJob,
        type: 'mirror',
        'copy-mode': 'write-blocking',
      });
      return { deltaBytes, overlayBytes: job.offset, backupMs, mirrorMs: Date.now() - mirrorStarted };
    }
    if (Date.now() - started > timeoutMs) throw fail(`delta copy not in sync within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 50));
  }
}

/**
 * Step 4, with the guest paused at the switchover: the mirror ends cleanly (the target then holds
 * the disk exactly), the NBD connection goes. The overlay stays under the source QEMU, which quits;
 * `flattenLeftBehind` then folds it into the image the host keeps.
 */
export async function finishDelta(qmp: QmpClient, move: DeltaMove): Promise<void> {
  const done = jobEnd(qmp, move.names.mirrorJob, QMP_MS);
  await qmp.execute('block-job-cancel', { device: move.names.mirrorJob });
  const end = await done;
  if (typeof end.data.error === 'string') throw fail(`mirror ${move.names.mirrorJob}: ${end.data.error}`);
  await qmp.execute('blockdev-del', { 'node-name': move.names.nbdNode });
  move.nbd = false;
}

/**
 * Undo before the switchover: the jobs stop, the NBD node goes, the overlay is committed back
 * into the disk (active commit, then pivot) and removed. The guest keeps running throughout; the
 * disk carries every write and its bitmap recorded the commit's writes, so it is as if no move had
 * been tried. The target's retained copy was written only where the bitmap is set (the backup
 * copies bitmap clusters, what the overlay's mirror wrote is recorded through the commit): a retry
 * onto the same copy with the same bitmap is still exact, though the copy is no longer the disk
 * at departure.
 */
export async function cancelDelta(qmp: QmpClient, move: DeltaMove): Promise<void> {
  const { names } = move;
  for (const job of [names.mirrorJob, names.backupJob]) {
    if (!(await jobPresent(qmp, job))) continue;
    const gone = jobEnd(qmp, job, QMP_MS);
    await qmp.execute('block-job-cancel', { device: job, force: true });
    await gone;
  }
  if (move.nbd) {
    await qmp.execute('blockdev-del', { 'node-name': names.nbdNode });
    move.nbd = false;
  }
  if (move.overlay === 'on-top') {
    const commitJob = `${names.overlayNode}-c`.slice(0, 31);
    const ready = qmp.waitForEvent('BLOCK_JOB_READY', {
      timeoutMs: COMMIT_MS,
      match: (e) => e.data.device === commitJob,
    });
    await qmp.execute('block-commit', { 'job-id': commitJob, device: names.overlayNode });
    await ready;
    const completed = jobEnd(qmp, commitJob, QMP_MS);
    await qmp.execute('job-complete', { id: commitJob });
    const end = await completed;
    if (end.event !== 'BLOCK_JOB_COMPLETED' || typeof end.data.error === 'string') {
      throw fail(`commit of the overlay failed: ${String(end.data.error ?? 'cancelled')}`);
    }
    move.overlay = 'node';
  }
  if (move.overlay === 'node') {
    await qmp.execute('blockdev-del', { 'node-name': names.overlayNode });
    move.overlay = 'file';
  }
  if (move.overlay === 'file') {
    await rm(move.disk.overlayPath, { force: true });
    move.overlay = 'none';
  }
}

/**
 * After a delta move, on the host left behind (its QEMU has quit): the overlay is committed into
 * the image and deleted, and the image's tracking bitmaps are removed; the image is then the disk
 * exactly as it left, ready to be this host's retained copy.
 */
export async function flattenLeftBehind(imagePath: string, overlayPath: string): Promise<void> {
  await run('qemu-img', ['commit', '-q', '-d', overlayPath], COMMIT_MS);
  await rm(overlayPath, { force: true });
  await removeTrackingBitmaps(imagePath);
}

/**
 * Before a VM starts from its images: a delta overlay left beside an image (the source QEMU died
 * mid-move, or the agent did before it could fold it) holds the guest's latest writes, so it is
 * committed into the image first. Returns the overlays committed.
 */
export async function commitLeftoverOverlays(imagePath: string): Promise<string[]> {
  const dir = path.dirname(imagePath);
  const leftovers = (await readdir(dir).catch(() => [] as string[]))
    .map((f) => path.join(dir, f))
    .filter((f) => imageOfDeltaOverlay(f) === imagePath);
  for (const overlay of leftovers) {
    await run('qemu-img', ['commit', '-q', '-d', overlay], COMMIT_MS);
    await rm(overlay, { force: true });
  }
  return leftovers;
}

const ImageBitmaps = z.looseObject({
  'format-specific': z
    .looseObject({
      data: z.looseObject({ bitmaps: z.array(z.looseObject({ name: z.string() })).optional() }),
    })
    .optional(),
});

/** Removes the fabric's tracking bitmaps from an image no QEMU has open. */
export async function removeTrackingBitmaps(imagePath: string): Promise<string[]> {
  const info = ImageBitmaps.parse(JSON.parse(await run('qemu-img', ['info', '--output=json', imagePath])));
  const names = (info['format-specific']?.data.bitmaps ?? [])
    .map((b) => b.name)
    .filter((n) => generationOfBitmap(n) !== undefined);
  for (const name of names) await run('qemu-img', ['bitmap', '--remove', imagePath, name]);
  return names;
}

async function jobPresent(qmp: QmpClient, job: string): Promise<boolean> {
  const jobs = await qmp.execute('query-block-jobs', undefined, { schema: BlockJobs, timeoutMs: QMP_MS });
  return jobs.some((j) => j.device === job);
}

/** The next BLOCK_JOB_COMPLETED or BLOCK_JOB_CANCELLED of `job`. */
function jobEnd(qmp: QmpClient, job: string, timeoutMs: number): Promise<QmpEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(fail(`block job ${job} did not end within ${timeoutMs} ms`));
    }, timeoutMs);
    const stop = qmp.onEvent((e) => {
      if ((e.event === 'BLOCK_JOB_COMPLETED' || e.event === 'BLOCK_JOB_CANCELLED') && e.data.device === job) {
        clearTimeout(timer);
        stop();
        resolve(e);
      }
    });
  });
}

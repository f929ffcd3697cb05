import { readFile, stat } from 'node:fs/promises';
import type {
  DatastoreLost,
  DatastoreStats,
  DiskStats,
  GuestStats,
  HostStats,
  LockspaceStatus,
  VmState,
} from '../api/index.js';
import { LATENCY_BOUNDS_NS } from '../api/index.js';
import { queryBlock, queryBlockstats, type QmpClient } from '../qmp/index.js';
import { readGuestUsage, type GuestReply } from './guest-ops.js';
import type { HostInventory } from './host.js';
import { run } from './host-exec.js';
import type { Logger } from './logger.js';
import {
  QemuImgInfo,
  blockCounters,
  counterEpoch,
  datastoreTotals,
  diskImage,
  diskImageOfBlock,
  findDiskEntry,
  guestAgentVersion,
  guestFilesystems,
  latencyHistograms,
  needsHistograms,
  processStartTicks,
  type DiskImage,
} from './stats-parse.js';
import type { VmRuntime } from './vm-runtime.js';
import type { VmService } from './vm-service.js';

/*
 * Gathers one host's storage statistics (src/api/stats.ts) and the VM figures /metrics shows
 * beside them: one gathering for both. Only read-only QMP queries touch a VM, except that a
 * running one (not migrating) gets its latency histograms switched on once per QEMU process.
 * Everything a poll asks runs in parallel with short deadlines, so a slow guest costs at most
 * GUEST_POLL_BUDGET_MS, and a silent one is left alone for a while.
 */

const MiB = 1024 * 1024;
/** QMP queries of a poll: QEMU answers these in milliseconds even while migrating. */
const QMP_STATS_TIMEOUT_MS = 2_000;
/** Whole guest-agent session of a poll (connect, sync, guest-info, guest-get-fsinfo). */
const GUEST_POLL_BUDGET_MS = 1_200;
/** A guest that did not answer is not asked again for this long (its figures are unknown meanwhile). */
const SILENT_GUEST_BACKOFF_MS = 20_000;
/** While another guest-agent session runs, the last answer stands in if it is this recent. */
const GUEST_ANSWER_MAX_AGE_MS = 60_000;
/** A datastore's filesystem type is looked up again after this long (a remount may change it). */
const FS_TYPE_TTL_MS = 5 * 60_000;

export interface VmSnapshot {
  name: string;
  state: VmState;
  vcpus: number;
  memoryBytes: number;
}

/** One poll: the contract's statistics, plus each VM's state and size for /metrics. */
export interface HostSnapshot {
  stats: HostStats;
  vms: VmSnapshot[];
}

type GuestUsage = Pick<GuestStats, 'agentVersion' | 'filesystems'>;
const UNKNOWN_GUEST: GuestUsage = { agentVersion: null, filesystems: null };

/**
 * What the poll knows of each guest. `ask` runs one guest-agent session, or returns undefined
 * when another session holds the agent. A guest that failed to answer is not asked again for
 * SILENT_GUEST_BACKOFF_MS (its figures are unknown meanwhile); a busy agent lets the last answer
 * stand in while it is recent. A new QEMU process (epoch) starts afresh.
 */
export class GuestPolls {
  readonly #answers = new Map<string, { epoch: string; at: number; usage: GuestUsage }>();
  readonly #silent = new Map<string, { epoch: string; until: number }>();

  constructor(
    private readonly ask: (vm: string) => Promise<GuestReply | undefined>,
    private readonly now: () => number = Date.now,
  ) {}

  async usage(vm: string, epoch: string): Promise<GuestUsage> {
    const silent = this.#silent.get(vm);
    if (silent?.epoch === epoch && silent.until > this.now()) return UNKNOWN_GUEST;
    let reply: GuestReply | undefined;
    try {
      reply = await this.ask(vm);
    } catch {
      this.#silent.set(vm, { epoch, until: this.now() + SILENT_GUEST_BACKOFF_MS });
      this.#answers.delete(vm);
      return UNKNOWN_GUEST;
    }
    if (reply === undefined) {
      const last = this.#answers.get(vm);
      return last?.epoch === epoch && this.now() - last.at < GUEST_ANSWER_MAX_AGE_MS
        ? last.usage
        : UNKNOWN_GUEST;
    }
    const usage: GuestUsage = {
      agentVersion: guestAgentVersion(reply.version),
      filesystems: reply.fsinfo === undefined ? null : guestFilesystems(reply.fsinfo),
    };
    this.#silent.delete(vm);
    this.#answers.set(vm, { epoch, at: this.now(), usage });
    return usage;
  }

  /** Drops what is known of the VMs `gone` picks. */
  forget(gone: (vm: string) => boolean): void {
    for (const map of [this.#answers, this.#silent])
      for (const vm of map.keys()) if (gone(vm)) map.delete(vm);
  }
}

export class StatsCollector {
  /** qemu-img info of images no QEMU holds, by path; valid while size and mtime stay. */
  readonly #images = new Map<string, { key: string; image: DiskImage }>();
  /** Drives whose histograms this agent switched on (or failed to): `epoch/disk`. */
  readonly #histogramsTried = new Set<string>();
  readonly #guests: GuestPolls;
  readonly #fsTypes = new Map<string, { at: number; fsType: string }>();

  constructor(
    private readonly hostName: string,
    private readonly inventory: HostInventory,
    private readonly vms: VmService,
    private readonly log: Logger,
    /** The host's cluster lockspace, refreshed from sanlock (none without one). */
    private readonly lockspace: () => Promise<LockspaceStatus | undefined> = async () => undefined,
  ) {
    this.#guests = new GuestPolls((vm) => {
      const deadline = Date.now() + GUEST_POLL_BUDGET_MS;
      return vms.tryWithGuestAgent(vm, GUEST_POLL_BUDGET_MS, (qga) => readGuestUsage(qga, deadline));
    });
  }

  async collect(): Promise<HostSnapshot> {
    const runtimes = this.vms.runtimes();
    const [stores, perVm, lockspace] = await Promise.all([
      this.inventory.datastores(),
      Promise.all(runtimes.map((r) => this.#vm(r))),
      this.lockspace().catch(() => undefined),
    ]);
    const disks = perVm.flatMap((v) => v.disks);
    const totals = datastoreTotals(disks);
    const datastores = await Promise.all(
      stores.map(async (d): Promise<DatastoreStats> => {
        const lost = await this.#lost(d.name, d.kind, lockspace);
        return {
          name: d.name,
          // findmnt stats the directory: not on a storage known to be lost.
          fsType: lost?.cause === 'lockspace-lost' || !lost ? await this.#fsType(d.path) : 'unknown',
          capacityBytes: d.capacityBytes,
          freeBytes: d.freeBytes,
          provisionedBytes: totals.get(d.name)?.provisionedBytes ?? 0,
          allocatedBytes: totals.get(d.name)?.allocatedBytes ?? 0,
          ...(lost ? { lost } : {}),
        };
      }),
    );
    this.#forgetGone(runtimes, disks);
    return {
      stats: {
        host: this.hostName,
        sampledAt: new Date().toISOString(),
        datastores,
        disks,
        guests: perVm.map((v) => v.guest),
      },
      vms: perVm.map((v) => v.vm),
    };
  }

  /**
   * Why this host does not reach a shared datastore: its bounded check (HostInventory.checkShared,
   * the answer describing it just used), else its cluster lockspace on it dropped by sanlock.
   */
  async #lost(
    name: string,
    kind: 'local' | 'shared',
    lockspace: LockspaceStatus | undefined,
  ): Promise<DatastoreLost | undefined> {
    if (kind !== 'shared') return undefined;
    const check = await this.inventory.checkShared(name);
    if (!check.ok) return check.lost;
    if (lockspace?.datastore === name && lockspace.state === 'lost')
      return {
        cause: 'lockspace-lost',
        detail: `sanlock dropped lockspace ${lockspace.name} on it: the host's lease renewals failed`,
      };
    return undefined;
  }

  /** Drops what belongs to VMs, images and QEMU processes that are gone: the caches stay small. */
  #forgetGone(runtimes: VmRuntime[], disks: DiskStats[]): void {
    const names = new Set(runtimes.map((r) => r.def.name));
    this.#guests.forget((name) => !names.has(name));
    const paths = new Set(runtimes.flatMap((r) => r.def.disks.map((d) => d.path)));
    for (const file of this.#images.keys()) if (!paths.has(file)) this.#images.delete(file);
    const epochs = new Set(disks.map((d) => d.counterEpoch));
    for (const key of this.#histogramsTried)
      if (!epochs.has(key.slice(0, key.indexOf('/')))) this.#histogramsTried.delete(key);
  }

  async #vm(runtime: VmRuntime): Promise<{ vm: VmSnapshot; disks: DiskStats[]; guest: GuestStats }> {
    const def = runtime.def;
    const state = await runtime.state();
    const epoch = await this.#epoch(runtime.pid);
    const qmp = epoch === null ? undefined : this.#qmpOf(runtime);
    const [disks, usage] = await Promise.all([
      qmp && epoch !== null ? this.#runningDisks(runtime, qmp, state, epoch) : this.#stoppedDisks(runtime),
      epoch !== null && state === 'running' ? this.#guests.usage(def.name, epoch) : UNKNOWN_GUEST,
    ]);
    return {
      vm: { name: def.name, state, vcpus: def.vcpus, memoryBytes: def.memoryMiB * MiB },
      disks,
      guest: { vm: def.name, vmId: def.id, ...usage },
    };
  }

  /** pid and start time of the VM's QEMU; null when it has none. */
  async #epoch(pid: number | undefined): Promise<string | null> {
    if (pid === undefined) return null;
    const ticks = processStartTicks(await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => ''));
    return ticks === undefined ? null : counterEpoch(pid, ticks);
  }

  #qmpOf(runtime: VmRuntime): QmpClient | undefined {
    try {
      return runtime.qmp();
    } catch {
      return undefined; // between start and connect, or just exited
    }
  }

  async #runningDisks(
    runtime: VmRuntime,
    qmp: QmpClient,
    state: VmState,
    epoch: string,
  ): Promise<DiskStats[]> {
    const def = runtime.def;
    const [blockstats, blocks] = await Promise.all([
      queryBlockstats(qmp, { timeoutMs: QMP_STATS_TIMEOUT_MS }).catch(() => []),
      queryBlock(qmp, { timeoutMs: QMP_STATS_TIMEOUT_MS }).catch(() => []),
    ]);
    return Promise.all(
      def.disks.map(async (disk): Promise<DiskStats> => {
        const entry = findDiskEntry(blockstats, disk.id, (e) => e['node-name']);
        const block = findDiskEntry(blocks, disk.id, (e) => e.inserted?.['node-name']);
        if (entry?.qdev !== undefined && state === 'running' && needsHistograms(entry.stats))
          await this.#switchOnHistograms(qmp, runtime.def.name, disk.id, entry.qdev, epoch);
        return {
          vm: def.name,
          vmId: def.id,
          disk: disk.id,
          datastore: disk.datastore,
          ...(diskImageOfBlock(block) ?? (await this.#image(disk))),
          counterEpoch: epoch,
          counters: entry ? blockCounters(entry.stats) : null,
          histograms: entry ? latencyHistograms(entry.stats) : null,
        };
      }),
    );
  }

  /**
   * Once per QEMU process and drive. Only for a running VM, never during a migration: the
   * histograms are accounting only, but a move is not the moment to try anything new. The drive is
   * named by its device path (QEMU 10 refuses both the node name and the virtio-blk-pci id).
   */
  async #switchOnHistograms(qmp: QmpClient, vm: string, diskId: string, qdev: string, epoch: string) {
    const key = `${epoch}/${diskId}`;
    if (this.#histogramsTried.has(key)) return;
    this.#histogramsTried.add(key);
    try {
      await qmp.execute(
        'block-latency-histogram-set',
        { id: qdev, boundaries: [...LATENCY_BOUNDS_NS] },
        { timeoutMs: QMP_STATS_TIMEOUT_MS },
      );
    } catch (error) {
      this.log.warn('cannot switch on latency histograms', { vm, disk: diskId, error: String(error) });
    }
  }

  #stoppedDisks(runtime: VmRuntime): Promise<DiskStats[]> {
    const def = runtime.def;
    return Promise.all(
      def.disks.map(async (disk): Promise<DiskStats> => ({
        vm: def.name,
        vmId: def.id,
        disk: disk.id,
        datastore: disk.datastore,
        ...(await this.#image(disk)),
        counterEpoch: null,
        counters: null,
        histograms: null,
      })),
    );
  }

  /**
   * The image as qemu-img sees it, asked again only when its size or mtime changed. On a shared
   * datastore this host does not reach now, the file is not touched (a stat(2) on a hung mount
   * would hold one of the agent's threads for ever): the last answer, else what the definition says.
   */
  async #image(disk: {
    path: string;
    datastore: string;
    format: DiskImage['format'];
    sizeBytes: number;
  }): Promise<DiskImage> {
    if (await this.#unreachable(disk.datastore))
      return (
        this.#images.get(disk.path)?.image ?? {
          format: disk.format,
          formatVersion: null,
          virtualSizeBytes: disk.sizeBytes,
          allocatedBytes: 0,
        }
      );
    const fileStat = await stat(disk.path).catch(() => undefined);
    const fallback: DiskImage = {
      format: disk.format,
      formatVersion: null,
      virtualSizeBytes: disk.sizeBytes,
      allocatedBytes: fileStat ? fileStat.blocks * 512 : 0,
    };
    if (!fileStat) return fallback;
    const key = `${fileStat.size}/${fileStat.mtimeMs}`;
    const cached = this.#images.get(disk.path);
    if (cached?.key === key) return cached.image;
    let image = fallback;
    try {
      // -U: a QEMU may hold the image's lock; a read-only look at the header is still safe.
      const out = await run('qemu-img', ['info', '-U', '--output=json', disk.path], 10_000);
      image = diskImage(QemuImgInfo.parse(JSON.parse(out))) ?? fallback;
    } catch (error) {
      // Remembered like an answer: asked (and logged) again only once the file changes.
      this.log.warn('cannot read disk image info', { path: disk.path, error: String(error) });
    }
    this.#images.set(disk.path, { key, image });
    return image;
  }

  /** Whether `datastore` is a shared one this host does not reach now (HostInventory.checkShared). */
  async #unreachable(datastore: string): Promise<boolean> {
    const d = this.inventory.configured().find((s) => s.name === datastore);
    return d?.kind === 'shared' && !(await this.inventory.checkShared(d.name)).ok;
  }

  /** The type of the filesystem holding a datastore, as findmnt names it (ext4, xfs, nfs4...). */
  async #fsType(dir: string): Promise<string> {
    const cached = this.#fsTypes.get(dir);
    if (cached && Date.now() - cached.at < FS_TYPE_TTL_MS) return cached.fsType;
    const fsType = await run('findmnt', ['--noheadings', '--output', 'FSTYPE', '--target', dir], 5_000)
      .then((out) => out.trim().split('\n')[0]?.trim() || 'unknown')
      .catch(() => 'unknown');
    this.#fsTypes.set(dir, { at: Date.now(), fsType });
    return fsType;
  }
}

/*
 * The agent's moves: the target side (prepare, abort, finish an incoming VM), the source side
 * (start, watch, cancel, complete an outgoing one) and the per-host limit of simultaneous moves.
 * The QMP work is in incoming.ts / outgoing.ts; this file ties it to the agent's VMs and disks.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import {
  describeLinkFigure,
  hasTlsCredentials,
  moveTlsDir,
  TLS_CRL_FILE,
  TLS_FILES,
} from '../../api/index.js';
import type {
  CompleteMigrationRequest,
  IncomingPrepared,
  LinkFigure,
  MigrationPlan,
  MigrationStatus,
  MoveStorageRequest,
  PlanRequest,
  PrepareIncomingRequest,
  RetainedCopy,
  StartMigrationRequest,
  Vm,
} from '../../api/index.js';
import type { AgentCore } from '../core.js';
import { createQcow2, diskImageInfo } from '../datastores.js';
import { InsufficientCapacity, InvalidInput } from '../errors.js';
import { diskNodeName } from '../naming.js';
import { sharedImages } from '../shared-images.js';
import { CPU_MODEL, MACHINE_TYPE } from '../qemu-argv.js';
import { baselineAutoConverge, baselinePlan } from './baselines.js';
import { DEFAULT_CONVERGENCE } from './convergence.js';
import { MigrationConflict, MigrationFailed, MigrationNotFound } from './errors.js';
import { IncomingMigration } from './incoming.js';
import { MIRROR_JOB_PREFIX, NBD_NODE_PREFIX, OutgoingMigration } from './outgoing.js';
import { BlockJobs, MigrateInfo, StatusInfo, YankInstances } from './qemu-replies.js';
import { currentNodeNames, StorageMove } from './storage.js';
import { PortAllocator, type PortLease } from './ports.js';
import { LinkProbes } from './link-probe.js';
import { initialProgress } from './progress.js';
import { deltaRefusal, flattenLeftBehind, trackingBitmap, trackingBitmapName } from './delta.js';
import { RetainedStore, type KeptDisk } from './retained.js';
import { chooseTuning, migrationPlan } from './tuning.js';
import {
  chooseCompression,
  choiceNeedsReDirty,
  linkBeatsCompression,
  plainChoice,
  type CompressionChoice,
} from './compression.js';
import { idleCoresDuring, measureStreamFacts, SHORT_WINDOW_MS } from './stream-facts.js';
import { hostDn } from '../../pki/index.js';

const MiB = 1024 * 1024;

/** The link a plan is made for: the caller's figure wins, else the manager's (probed now or stored). */
function planLink(request: z.output<typeof PlanRequest>): LinkFigure | undefined {
  const given = request.policy.linkBitsPerSecond;
  if (given === undefined) return request.link;
  return { bitsPerSecond: given, source: 'given', measuredAt: new Date().toISOString() };
}
const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));
const Journal = z.object({
  vmName: z.string(),
  /** A delta move onto a retained copy: its images go back there if the move does not arrive. */
  fromRetained: z.object({ vmId: z.string() }).optional(),
  /** Disks opened where they are on shared storage: the source's running disks, never deleted here. */
  sharedDisks: z.array(z.string()).optional(),
});
const QEMU_ADDRESS_IN_USE = /Address already in use|Failed to bind/;
/**
 * How often incoming moves are checked for a manager that stopped asking about them (at most; a
 * quarter of the host's orphanMoveSeconds when that is shorter).
 */
const ORPHAN_SWEEP_MS = 30_000;
const NamedNodes = z.array(z.looseObject({ 'node-name': z.string() }));

interface MoveRecord {
  id: string;
  role: 'source' | 'target' | 'storage';
  vmName: string;
  state: MigrationStatus['state'];
  error?: { code: string; detail: string };
  startedAt: string;
  finishedAt?: string;
  outgoing?: OutgoingMigration;
  storage?: StorageMove;
  incoming?: IncomingMigration;
  /** Target: when the guest ran again here (the end of its pause), for the manager's result. */
  resumedAt?: string;
  leases: PortLease[];
  /** Target of a delta move: the retained copy's images are this VM's disks until it arrives. */
  fromRetained?: { vmId: string; disks: KeptDisk[] };
  /**
   * Disks that stay on shared storage (ids): on the target the source's running images, opened
   * where they are; on the source the images the target runs from now. Neither side ever deletes
   * them for the move (an abort, a removal after it, a retained copy).
   */
  shared: ReadonlySet<string>;
  /** Target: when the manager last asked about this move (an orphan is one nobody asks about). */
  lastContactAt: number;
  /** Settles when the record leaves `running`. */
  settled: Promise<void>;
  settle: () => void;
}

export interface MigrationServiceOptions {
  /** Simultaneous outgoing moves on this host; the rest wait in line (default 2, like Hyper-V). */
  maxConcurrent?: number;
  portRange?: readonly [number, number];
}

export class MigrationService {
  readonly #moves = new Map<string, MoveRecord>();
  readonly #ports: PortAllocator;
  readonly #maxConcurrent: number;
  #running = 0;
  readonly #queue: (() => void)[] = [];
  readonly retained: RetainedStore;
  /** Link probes (issue 27): their senders take ports from the same allocator as the moves. */
  readonly links: LinkProbes;

  constructor(
    private readonly core: AgentCore,
    options: MigrationServiceOptions = {},
  ) {
    this.#ports = new PortAllocator(options.portRange);
    this.#maxConcurrent = options.maxConcurrent ?? 2;
    // Retained copies live on local datastores only: a disk on shared storage is the one the VM
    // runs from wherever it moved, never a copy left behind.
    this.retained = new RetainedStore(() =>
      this.core.inventory.configured().filter((d) => d.kind === 'local'),
    );
    this.links = new LinkProbes(this.#ports, () => this.core.config.fabricAddress, this.core.log);
  }

  async plan(request: z.output<typeof PlanRequest>): Promise<MigrationPlan> {
    const plan = await this.#tuningPlan(request);
    if (request.deltaGeneration === undefined) return plan;
    return {
      ...plan,
      delta: await this.#deltaCheck(request.vmName, request.deltaGeneration, request.deltaDisks),
    };
  }

  /**
   * Whether every disk the move copies (`diskIds`; all when absent: disks staying on shared
   * storage are never tracked) carries a usable tracking bitmap of the generation, and what it marks.
   */
  async #deltaCheck(
    vmName: string,
    generationId: string,
    diskIds: readonly string[] | undefined,
  ): Promise<NonNullable<MigrationPlan['delta']>> {
    const runtime = this.core.vms.runtime(vmName);
    const refused = (reason: string) => ({ usable: false as const, generationId, reason });
    if (!runtime.active) return refused(`${vmName} is not running`);
    const unknown = diskIds?.find((id) => !runtime.def.disks.some((d) => d.id === id));
    if (unknown !== undefined) return refused(`${vmName} has no disk ${unknown}`);
    const bitmap = trackingBitmapName(generationId);
    const nodes = await currentNodeNames(runtime.qmp());
    let bytes = 0;
    for (const disk of runtime.def.disks.filter((d) => diskIds?.includes(d.id) ?? true)) {
      const node = nodes.get(disk.id) ?? diskNodeName(disk.id);
      const found = await trackingBitmap(runtime.qmp(), node, bitmap);
      const refusal = deltaRefusal(found, bitmap);
      if (refusal) return refused(`disk ${disk.id}: ${refusal}`);
      bytes += found?.count ?? 0;
    }
    return { usable: true, generationId, bytes };
  }

  async #tuningPlan(request: z.output<typeof PlanRequest>): Promise<MigrationPlan> {
    const runtime = this.core.vms.runtime(request.vmName);
    const def = runtime.def;
    const policy = request.policy;
    if (policy.strategy !== 'silobreak') return baselinePlan(policy.strategy, def.memoryMiB * MiB);
    const link = planLink(request);
    const compression = await this.#chooseCompression(runtime, policy, link, def.memoryMiB * MiB);
    const tuning = chooseTuning({
      linkBitsPerSecond: link?.bitsPerSecond,
      accelerator: this.core.accelerator.accelerator,
      hostCpus: this.core.inventory.cpus,
      hostMemoryBytes: this.core.inventory.memoryBytes,
      vcpus: def.vcpus,
      memoryBytes: def.memoryMiB * MiB,
      diskCount: def.disks.length,
      allowPostcopy: policy.allowPostcopy,
      targetDowntimeMs: policy.targetDowntimeMs,
      maxDowntimeMs: policy.maxDowntimeMs,
      compression,
    });
    const plan = migrationPlan(tuning, policy.allowPostcopy);
    const said = link
      ? `link rate ${describeLinkFigure(link, Date.now())}`
      : 'link rate unknown: none given, measured or stored';
    return { ...plan, ...(link ? { link } : {}), reasons: [said, ...plan.reasons] };
  }

  /**
   * The plan is made on the source before the target prepares (both must agree on multifd), so the
   * figures are measured here and now: the guest's dirty rate and the idle CPU (~1.1 s, ~1.4 s for a
   * guest outrunning the link), but only when the link is slow enough for the guest to
   * matter (else the choice is plain at once).
   */
  async #chooseCompression(
    runtime: ReturnType<AgentCore['vms']['runtime']>,
    policy: z.output<typeof PlanRequest>['policy'],
    figure: LinkFigure | undefined,
    memoryBytes: number,
  ): Promise<CompressionChoice> {
    const link = figure === undefined ? undefined : figure.bitsPerSecond / 8;
    const base = {
      linkBytesPerSecond: link,
      memoryBytes,
      allowPostcopy: policy.allowPostcopy,
      hostCores: this.core.inventory.cpus,
    };
    if (policy.compression === 'off') return plainChoice("compression off in the move's policy: plain");
    // An unknown link, or one too fast for every core: plain at once, no probe (the full-link move).
    if (link === undefined || linkBeatsCompression({ ...base, spareCores: undefined }))
      return chooseCompression({ ...base, spareCores: undefined });
    const qmp = (() => {
      try {
        return runtime.qmp();
      } catch {
        return undefined; // not running: nothing to sample
      }
    })();
    if (!qmp) {
      const { idle } = await idleCoresDuring(sleep(SHORT_WINDOW_MS));
      return chooseCompression({ ...base, spareCores: idle });
    }
    const facts = await measureStreamFacts(qmp, (long) => choiceNeedsReDirty({ ...base, ...long }));
    return chooseCompression({ ...base, ...facts });
  }

  // ---- target side ----

  async prepareIncoming(request: z.output<typeof PrepareIncomingRequest>): Promise<IncomingPrepared> {
    const { vm, plan, migrationId, track, fromRetained } = request;
    const tlsDir = await this.#tlsDir(request.secure);
    if (this.#moves.has(migrationId)) throw new MigrationConflict(`migration ${migrationId} exists already`);
    this.#assertNoMoveOf(vm.name);
    if (vm.machineType !== MACHINE_TYPE)
      throw new InvalidInput(
        `vm.machineType: this host runs ${MACHINE_TYPE}, not ${vm.machineType}`,
        'vm.machineType',
      );
    if (vm.cpuModel !== CPU_MODEL)
      throw new InvalidInput(`vm.cpuModel: this host offers ${CPU_MODEL}, not ${vm.cpuModel}`, 'vm.cpuModel');

    const vms = this.core.vms;
    const adopt = await this.#sharedImages(vm);
    // Defining creates the disks with the same virtual size and checks names, MACs, switches; the
    // space was checked by the manager with the allocated rule (thin target disks). A disk on
    // shared storage is opened where it is.
    await vms.define(
      {
        id: vm.id,
        name: vm.name,
        vcpus: vm.vcpus,
        memoryMiB: vm.memoryMiB,
        disks: vm.disks.map((d) => ({ id: d.id, datastore: d.datastore, sizeBytes: d.virtualSizeBytes })),
        nics: vm.nics,
        guestIp: vm.guestIp,
        guestGateway: vm.guestGateway,
        start: false,
      },
      { reserveVirtualSize: false, adopt },
    );
    const record = this.#record(migrationId, 'target', vm.name);
    record.shared = new Set(adopt.keys());
    try {
      // Only the disks that are copied: those staying on shared storage are neither exported nor delta'd.
      const copied = vms.runtime(vm.name).def.disks.filter((d) => !record.shared.has(d.id));
      if (fromRetained !== undefined) {
        // The defined (empty) disks are replaced by the retained images, checked first.
        const disks = copied;
        const taken = disks.map((d) => ({ id: d.id, datastore: d.datastore, path: d.path }));
        await this.retained.take(
          vm.id,
          fromRetained,
          disks.map((d) => ({ ...d, virtualSizeBytes: d.sizeBytes })),
        );
        record.fromRetained = { vmId: vm.id, disks: taken };
      }
      await this.#writeJournal(migrationId, vm.name, record.fromRetained, record.shared);
      await vms.start(vm.name, { incoming: true, paused: true });
      const runtime = vms.runtime(vm.name);
      const address = this.core.config.fabricAddress;
      const stream = await this.#ports.allocate(address);
      record.leases.push(stream);
      const prepare = async (nbdPort: number | undefined) => {
        const prepared = new IncomingMigration({
          qmp: runtime.qmp(),
          disks: copied.map((d) => ({ diskId: d.id, nodeName: diskNodeName(d.id) })),
          address,
          nbdPort,
          migrationPort: stream.port,
          plan,
          // Only the source host the manager announced may connect (its certificate's subject).
          tls: tlsDir === undefined ? undefined : { dir: tlsDir, peerDn: hostDn(request.sourceHost) },
          trackingBitmap: track === undefined ? undefined : trackingBitmapName(track),
          log: (msg, fields) => this.core.log.info(msg, { migration: migrationId, vm: vm.name, ...fields }),
          beforeResume: async () => {
            const leases = runtime.leases;
            if (leases && runtime.pid !== undefined) await leases.acquireHandedOver(runtime.def, runtime.pid);
          },
        });
        await prepared.prepare();
        return prepared;
      };
      // No disk to export (all stay on shared storage): no NBD server, no port for one.
      const nbd =
        copied.length === 0
          ? { lease: undefined, result: await prepare(undefined) }
          : await this.#ports.withPort(
              address,
              (port) => prepare(port.port),
              (error) => error instanceof Error && QEMU_ADDRESS_IN_USE.test(error.message),
            );
      const incoming = nbd.result;
      if (nbd.lease) record.leases.push(nbd.lease);
      record.incoming = incoming;
      void this.#watchIncoming(record);
      const shared = vm.disks.flatMap((d) =>
        d.shared && d.datastore !== undefined ? [{ diskId: d.id, datastore: d.datastore, ...d.shared }] : [],
      );
      return {
        migrationId,
        ...(nbd.lease ? { nbd: { host: address, port: nbd.lease.port } } : {}),
        exports: incoming.exports.map((e) => {
          const disk = runtime.def.disks.find((d) => d.id === e.diskId);
          return {
            diskId: e.diskId,
            exportName: e.exportName,
            virtualSizeBytes: disk?.sizeBytes ?? 0,
            datastore: disk?.datastore ?? '',
            path: disk?.path ?? '',
          };
        }),
        shared,
        migrationUri: incoming.migrationUri,
        ...(fromRetained === undefined ? {} : { retainedGeneration: fromRetained }),
      };
    } catch (error) {
      this.#finish(record, 'failed', error);
      await this.#removeIncoming(record);
      throw error;
    }
  }

  /**
   * The incoming disks that stay on shared storage, checked against this host before anything is
   * made: each names a shared datastore here of the same storage, and its file is a qcow2 image
   * inside that datastore (after symlinks) of the disk's virtual size. Disk id -> the image's path.
   */
  #sharedImages(vm: z.output<typeof PrepareIncomingRequest>['vm']): Promise<Map<string, string>> {
    return sharedImages(this.core.inventory, this.core.config.hostName, vm.disks, 'vm.disks');
  }

  /** A failed incoming copy cleans up by itself: the target must be clean even with no manager. */
  async #watchIncoming(record: MoveRecord): Promise<void> {
    const outcome = await record.incoming?.outcome;
    if (record.state !== 'running') return;
    if (outcome?.state === 'resumed') {
      record.resumedAt = outcome.resumedAt;
      this.#release(record);
      this.#finish(record, 'completed');
      this.core.log.info('incoming VM resumed', {
        migration: record.id,
        vm: record.vmName,
        ms: outcome.resumeMs,
      });
    } else {
      this.core.log.warn('incoming migration failed; removing the half-made VM', {
        migration: record.id,
        reason: outcome?.reason,
      });
      this.#finish(record, 'failed', new MigrationFailed(outcome?.reason ?? 'failed', 'copy-memory'));
      await this.#removeIncoming(record);
    }
  }

  async abortIncoming(id: string): Promise<MigrationStatus> {
    const record = await this.#target(id);
    if (record.state === 'running' && record.incoming === undefined) {
      // Adopted after a restart: a guest that already runs here is not torn down. A QEMU that
      // is gone (an incoming copy that failed exits) has nothing to ask: it is removed below.
      const runtime = this.core.vms.runtime(record.vmName);
      const status = runtime.active
        ? await runtime
            .qmp()
            .execute('query-status', undefined, { schema: StatusInfo })
            .catch(() => undefined)
        : undefined;
      if (status?.running) this.#finish(record, 'completed');
    }
    if (record.state === 'completed') {
      throw new MigrationConflict(`the guest of migration ${id} already runs on this host: not aborted`);
    }
    if (record.state === 'running') {
      this.#finish(record, 'cancelled');
      await this.#removeIncoming(record);
    }
    return this.status(id);
  }

  async finishIncoming(id: string, timeoutMs = 120_000): Promise<Vm> {
    const record = await this.#target(id);
    if (record.state === 'running' && record.incoming === undefined)
      await this.#resumeAdopted(record, timeoutMs);
    if (record.state === 'running') await record.incoming?.resumed(timeoutMs);
    await record.settled;
    if (record.state !== 'completed') {
      throw new MigrationConflict(`migration ${id} is ${record.state}: there is no VM to finish`);
    }
    return this.core.vms.get(record.vmName);
  }

  async #retainedConsumed(vmId: string): Promise<void> {
    await this.retained.consumed(vmId).catch((error: unknown) =>
      this.core.log.warn('cannot remove the record of a consumed retained copy', {
        vmId,
        error: errorText(error),
      }),
    );
  }

  async #removeIncoming(record: MoveRecord): Promise<void> {
    record.incoming?.close();
    const vms = this.core.vms;
    try {
      await vms.stop(record.vmName);
      // A delta move onto a retained copy: the images go back, good for a retry (retained.ts).
      if (record.fromRetained) {
        await this.retained.putBack(record.fromRetained.vmId, record.fromRetained.disks);
        record.fromRetained = undefined;
      }
      // Never the disks on shared storage: they are the source's, which runs on them.
      await vms.delete(record.vmName, true, record.shared);
    } catch (error) {
      this.core.log.warn('cleaning up the incoming VM failed', { vm: record.vmName, error: String(error) });
    }
    this.#release(record);
  }

  // ---- source side ----

  async startOutgoing(request: z.output<typeof StartMigrationRequest>): Promise<MigrationStatus> {
    const { migrationId, vmName, plan, target, policy } = request;
    const runtime = this.core.vms.runtime(vmName);
    if (!runtime.active)
      throw new MigrationConflict(`VM "${vmName}" is not running: a live move needs a running VM`);
    const tlsDir = await this.#tlsDir(request.secure);
    // A disk moved live between datastores keeps its new node name until QEMU restarts.
    const nodes = await currentNodeNames(runtime.qmp());
    if (this.#moves.has(migrationId)) throw new MigrationConflict(`migration ${migrationId} exists already`);
    this.#assertNoMoveOf(vmName);
    const exports = new Map(target.exports.map((e) => [e.diskId, e.exportName]));
    const shared = await this.#stayingDisks(runtime.def.disks, target.shared);
    const missing = runtime.def.disks.find((d) => !exports.has(d.id) && !shared.has(d.id));
    if (missing)
      throw new InvalidInput(`target.exports: no export for disk "${missing.id}"`, 'target.exports');
    const mirrored = runtime.def.disks.filter((d) => !shared.has(d.id));
    if (mirrored.length && target.nbd === undefined)
      throw new InvalidInput(
        `target.nbd: disk ${mirrored.map((d) => d.id).join(', ')} is to be mirrored, and the target has no NBD server`,
        'target.nbd',
      );

    const record = this.#record(migrationId, 'source', vmName);
    record.shared = shared;
    const baseline =
      policy.strategy === 'silobreak'
        ? undefined
        : {
            strategy: policy.strategy,
            timeLimitMs: policy.timeLimitSeconds === undefined ? undefined : policy.timeLimitSeconds * 1000,
          };
    const outgoing = new OutgoingMigration({
      migrationId,
      qmp: runtime.qmp(),
      afterCompleted: async () => {
        const leases = runtime.leases;
        if (leases && runtime.pid !== undefined) await leases.release(runtime.def, runtime.pid);
      },
      // Disks on shared storage the target opened where they are: nothing to mirror.
      disks: mirrored.map((d) => ({
        diskId: d.id,
        nodeName: nodes.get(d.id) ?? diskNodeName(d.id),
        exportName: exports.get(d.id) ?? d.id,
        imagePath: d.path,
      })),
      ...(target.retainedGeneration === undefined
        ? {}
        : { deltaBitmap: trackingBitmapName(target.retainedGeneration) }),
      nbd: target.nbd,
      migrationUri: target.migrationUri,
      plan,
      convergence: {
        ...DEFAULT_CONVERGENCE,
        targetDowntimeMs: plan.targetDowntimeMs,
        maxDowntimeMs: plan.maxDowntimeMs,
        allowThrottle: baseline ? baselineAutoConverge(baseline.strategy) : policy.allowThrottle,
        maxThrottlePercent: policy.maxThrottlePercent,
        allowPostcopy: plan.postcopy,
        stallWindowMs: policy.stallWindowSeconds * 1000,
        timeLimitMs: policy.timeLimitSeconds === undefined ? undefined : policy.timeLimitSeconds * 1000,
        bandwidthCapBytesPerSecond: plan.slowLink ? plan.maxBandwidthBytesPerSecond : undefined,
      },
      memoryBytes: runtime.def.memoryMiB * MiB,
      stallAfterMs: Math.min(30_000, policy.stallWindowSeconds * 1000),
      log: (msg, fields) => this.core.log.info(msg, { migration: migrationId, vm: vmName, ...fields }),
      baseline,
      tlsDir,
    });
    record.outgoing = outgoing;
    void this.#runInSlot(record, outgoing);
    return this.status(migrationId);
  }

  /**
   * The disks the target opened where they are (IncomingPrepared.shared), checked against this
   * host: each is on a shared datastore here of the same storage, at the same file. A disk the
   * source would leave unmirrored must really be the image the target runs from.
   */
  async #stayingDisks(
    disks: readonly { id: string; datastore: string; path: string }[],
    shared: z.output<typeof StartMigrationRequest>['target']['shared'],
  ): Promise<Set<string>> {
    const staying = new Set<string>();
    for (const [i, s] of shared.entries()) {
      const field = `target.shared.${i}`;
      const disk = disks.find((d) => d.id === s.diskId);
      if (!disk)
        throw new InvalidInput(`${field}.diskId: the VM has no disk "${s.diskId}"`, `${field}.diskId`);
      const store = this.core.inventory.datastore(disk.datastore, `${field}.diskId`);
      const storageId = await this.core.inventory.storageIdOf(store.name);
      if (storageId !== s.storageId)
        throw new InvalidInput(
          `${field}.storageId: disk ${disk.id} is on datastore "${store.name}" of host ${this.core.config.hostName}, ${storageId === undefined ? 'local storage' : `storage ${storageId}`}, not storage ${s.storageId}: it must be mirrored`,
          `${field}.storageId`,
        );
      const file = path.relative(path.resolve(store.path), path.resolve(disk.path));
      if (file !== s.file)
        throw new InvalidInput(
          `${field}.file: disk ${disk.id} is ${file} on storage ${storageId}, not ${s.file}`,
          `${field}.file`,
        );
      staying.add(disk.id);
    }
    return staying;
  }

  // ---- retained copies (issue 17) ----

  listRetained(): Promise<RetainedCopy[]> {
    return this.retained.list();
  }

  async releaseRetained(vmId: string): Promise<void> {
    const busy = [...this.#moves.values()].find(
      (m) => m.state === 'running' && m.fromRetained?.vmId === vmId,
    );
    if (busy)
      throw new MigrationConflict(`the retained copy of VM ${vmId} is in use by migration ${busy.id}`);
    await this.retained.release(vmId);
  }

  // ---- storage moves on this host ----

  async moveStorage(vmName: string, request: z.output<typeof MoveStorageRequest>): Promise<MigrationStatus> {
    const migrationId = request.migrationId ?? randomUUID();
    const vms = this.core.vms;
    const runtime = vms.runtime(vmName);
    if (!runtime.active) {
      throw new MigrationConflict(`VM "${vmName}" is not running: a live storage move needs a running VM`);
    }
    const store = this.core.inventory.datastore(request.datastore, 'datastore');
    const chosen = request.diskIds ?? runtime.def.disks.map((d) => d.id);
    const disks = chosen.map((id, i) => {
      const disk = runtime.def.disks.find((d) => d.id === id);
      if (!disk) throw new InvalidInput(`diskIds.${i}: VM "${vmName}" has no disk "${id}"`, `diskIds.${i}`);
      if (disk.datastore === store.name) {
        throw new InvalidInput(
          `datastore: disk "${id}" is already on datastore "${store.name}"`,
          'datastore',
        );
      }
      return disk;
    });
    // Space rule: the allocated size of each disk must fit (the mirror copies allocated data only).
    const allocated = await Promise.all(
      disks.map((d) => diskImageInfo(d.path).then((i) => i.allocatedBytes)),
    );
    const needed = allocated.reduce((a, b) => a + b, 0);
    const { freeBytes } = await this.core.inventory.space(store.name);
    if (needed > freeBytes) throw new InsufficientCapacity(store.name, needed, freeBytes, 'datastore');
    const nodes = await currentNodeNames(runtime.qmp());
    if (this.#moves.has(migrationId)) throw new MigrationConflict(`migration ${migrationId} exists already`);
    this.#assertNoMoveOf(vmName);

    const record = this.#record(migrationId, 'storage', vmName);
    const moves = disks.map((d) => ({
      diskId: d.id,
      nodeName: nodes.get(d.id) ?? diskNodeName(d.id),
      oldPath: d.path,
      newPath: path.join(path.resolve(store.path), `${vmName}-${d.id}-${migrationId.slice(0, 8)}.qcow2`),
      sizeBytes: d.sizeBytes,
    }));
    const storage = new StorageMove({
      migrationId,
      qmp: runtime.qmp(),
      disks: moves,
      datastore: store.name,
      limits: store.limits,
      bufSizeBytes: 64 * MiB,
      stallAfterMs: 30_000,
      log: (msg, fields) => this.core.log.info(msg, { migration: migrationId, vm: vmName, ...fields }),
    });
    record.storage = storage;
    void this.#runInSlot(record, {
      cancelRequested: () => storage.cancelRequested,
      run: async () => {
        for (const m of moves) await createQcow2(m.newPath, m.sizeBytes);
        await storage.run();
        await vms.relocateDisks(
          vmName,
          moves.map((m) => ({ id: m.diskId, datastore: store.name, path: m.newPath })),
        );
      },
    });
    return this.status(migrationId);
  }

  async #runInSlot(
    record: MoveRecord,
    move: OutgoingMigration | { cancelRequested: () => boolean; run: () => Promise<unknown> },
  ): Promise<void> {
    const cancelled = () =>
      move instanceof OutgoingMigration ? move.cancelRequested : move.cancelRequested();
    await this.#slot();
    try {
      if (cancelled()) {
        this.#finish(record, 'cancelled');
        return;
      }
      await move.run();
      this.#finish(record, 'completed');
    } catch (error) {
      const restarted = await this.#restartIfDied(record);
      this.#finish(
        record,
        restarted || !cancelled() || error instanceof MigrationFailed ? 'failed' : 'cancelled',
        restarted
          ? new MigrationFailed(
              `${errorText(error)}; ${restarted}`,
              record.outgoing?.phase ?? 'rollback',
              'source-restarted',
            )
          : error,
      );
    } finally {
      this.#running -= 1;
      this.#queue.shift()?.();
    }
  }

  /**
   * The source's guest must survive a failed move. Should its QEMU have died in the rollback
   * anyway (a QEMU defect: README, known issues), the VM is started again from its disk at once,
   * and the move's error says so (the guest rebooted: never silently).
   */
  async #restartIfDied(record: MoveRecord): Promise<string | undefined> {
    if (record.role === 'target') return undefined;
    const runtime = this.core.vms.runtime(record.vmName);
    const state = await runtime.state().catch(() => 'crashed' as const);
    if (state !== 'crashed') return undefined;
    this.core.log.error(
      'the source QEMU died during the rollback of a move; starting the VM again from its disk',
      {
        migration: record.id,
        vm: record.vmName,
      },
    );
    try {
      await this.core.vms.start(record.vmName);
      return `the source QEMU died during the rollback; ${record.vmName} was started again from its disk (the guest rebooted)`;
    } catch (error) {
      return `the source QEMU died during the rollback and starting ${record.vmName} again failed: ${errorText(error)}`;
    }
  }

  #slot(): Promise<void> {
    if (this.#running < this.#maxConcurrent) {
      this.#running += 1;
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.#queue.push(() => {
        this.#running += 1;
        resolve();
      }),
    );
  }

  cancel(id: string): MigrationStatus {
    const record = this.#moves.get(id);
    if (!record || record.role === 'target') throw new MigrationNotFound(id);
    if (record.state === 'running') {
      record.outgoing?.cancel();
      record.storage?.cancel();
    }
    return this.status(id);
  }

  /**
   * After the switchover: the source QEMU goes, and its disks too unless kept or retained. A
   * delta move's temporary overlay holds the guest's last writes here: it is folded into the image
   * when the image stays, deleted with it otherwise.
   */
  async complete(
    id: string,
    { keepSource, retain }: z.output<typeof CompleteMigrationRequest>,
  ): Promise<MigrationStatus> {
    const record = this.#get(id, 'source');
    if (record.state !== 'completed') {
      throw new MigrationConflict(
        `migration ${id} is ${record.state}: only a completed move can be completed`,
      );
    }
    const vms = this.core.vms;
    if (vms.runtimes().some((r) => r.def.name === record.vmName)) {
      await vms.stop(record.vmName);
      const def = vms.runtime(record.vmName).def;
      const kept = keepSource || retain !== undefined;
      for (const overlay of record.outgoing?.deltaOverlays ?? []) {
        if (kept) await flattenLeftBehind(overlay.imagePath, overlay.overlayPath);
        else await rm(overlay.overlayPath, { force: true });
      }
      // The target runs from the disks on shared storage now: they are neither a retained copy
      // (only local disks are) nor deleted.
      const local = def.disks.filter((d) => !record.shared.has(d.id));
      if (retain !== undefined && local.length) {
        await this.retained.keep(
          { id: def.id, name: def.name },
          retain,
          local.map((d) => ({ id: d.id, datastore: d.datastore, path: d.path })),
        );
      }
      await vms.delete(record.vmName, !kept, record.shared);
    }
    return this.status(id);
  }

  status(id: string): MigrationStatus {
    const record = this.#moves.get(id);
    if (!record) throw new MigrationNotFound(id);
    record.lastContactAt = Date.now();
    const outgoing = record.outgoing ?? record.storage;
    const progress = outgoing?.tracker.progress ?? {
      ...initialProgress(record.state === 'completed' ? 'done' : 'prepare').progress,
      ...(record.state === 'completed' ? { percent: 100 } : {}),
    };
    return {
      id: record.id,
      role: record.role,
      vmName: record.vmName,
      state: record.state,
      progress,
      stats: outgoing?.stats ?? (record.resumedAt ? { resumedAt: record.resumedAt } : {}),
      policyLog: record.outgoing?.policyLog ?? [],
      ...(record.error ? { error: record.error } : {}),
      startedAt: record.startedAt,
      ...(record.finishedAt ? { finishedAt: record.finishedAt } : {}),
    };
  }

  list(): MigrationStatus[] {
    return [...this.#moves.keys()].map((id) => this.status(id));
  }

  // ---- housekeeping: nothing of a move outlives it ----

  /**
   * After an agent start, and then every sweep: a move this agent lost track of (it restarted
   * mid-move, or the manager that drove the move never came back: nobody asked about it for the
   * host's orphanMoveSeconds) must not leave a half-made VM, a listening QEMU or a paused guest
   * behind.
   */
  async startHousekeeping(): Promise<void> {
    const orphanAfterMs = this.core.config.orphanMoveSeconds * 1000;
    await this.#adoptJournals();
    await this.#tidyOutgoingLeftovers();
    this.#sweepTimer = setInterval(
      () => {
        void this.#sweepOrphans(orphanAfterMs).catch((error: unknown) =>
          this.core.log.warn('orphan sweep failed', { error: errorText(error) }),
        );
      },
      Math.min(ORPHAN_SWEEP_MS, orphanAfterMs / 4),
    );
    this.#sweepTimer.unref();
  }

  stopHousekeeping(): void {
    clearInterval(this.#sweepTimer);
  }

  #sweepTimer: NodeJS.Timeout | undefined;

  /**
   * Source side after a restart: the outgoing move's driver died with the old agent, so a QEMU
   * may still hold its mirrors, NBD nodes or a migration stopped before the switchover (the guest
   * paused at pre-switchover). Undone here; a migration that completed (the guest lives on the
   * target now) is left alone.
   */
  async #tidyOutgoingLeftovers(): Promise<void> {
    const incoming = new Set(
      [...this.#moves.values()].filter((m) => m.role === 'target').map((m) => m.vmName),
    );
    for (const runtime of this.core.vms.runtimes()) {
      // An incoming VM's copy goes on without its agent: it is the journal's, not a leftover.
      if (!runtime.active || incoming.has(runtime.def.name)) continue;
      const vm = runtime.def.name;
      try {
        const qmp = runtime.qmp();
        const status = await qmp.execute('query-status', undefined, { schema: StatusInfo });
        if (status.status === 'inmigrate') continue;
        const migrate = await qmp.execute('query-migrate', undefined, { schema: MigrateInfo });
        if (migrate.status === 'completed') continue;
        const jobs = (await qmp.execute('query-block-jobs', undefined, { schema: BlockJobs }))
          .map((j) => j.device)
          .filter((id) => id.startsWith(MIRROR_JOB_PREFIX));
        // NBD client nodes outlive their mirror when it failed by itself (the target went away).
        const nodes = NamedNodes.parse(await qmp.execute('query-named-block-nodes'))
          .map((n) => n['node-name'])
          .filter((name) => name.startsWith(NBD_NODE_PREFIX));
        const streamActive = ['active', 'setup', 'pre-switchover', 'device'].includes(
          migrate.status ?? 'none',
        );
        if (jobs.length === 0 && nodes.length === 0 && !streamActive) continue;
        this.core.log.warn('undoing a move this agent lost at its restart', { vm, jobs, nodes });
        const yank = YankInstances.parse(await qmp.execute('query-yank')).filter(
          (i) =>
            (i.type === 'migration' && streamActive) ||
            (i.type === 'block-node' && nodes.includes(i['node-name'] ?? '')),
        );
        if (yank.length) await qmp.execute('yank', { instances: yank });
        if (streamActive) await qmp.execute('migrate_cancel');
        for (const job of jobs) {
          await qmp.execute('block-job-cancel', { device: job, force: true }).catch(() => undefined);
        }
        // A node can only go once no job uses it.
        for (let i = 0; i < 100; i++) {
          const left = await qmp.execute('query-block-jobs', undefined, { schema: BlockJobs });
          if (!left.some((j) => jobs.includes(j.device))) break;
          await sleep(100);
        }
        for (const node of nodes) {
          await qmp.execute('blockdev-del', { 'node-name': node }).catch(() => undefined);
        }
        const after = await qmp.execute('query-status', undefined, { schema: StatusInfo });
        // Stopped by the migration itself (not by a person): it runs again.
        if (after.status === 'finish-migrate') await qmp.execute('cont');
        this.core.log.info('move undone after the restart; the guest runs here', { vm });
      } catch (error) {
        this.core.log.warn('cannot tidy a lost move', { vm, error: errorText(error) });
      }
    }
  }

  /** Target side after a restart: each journal names an incoming VM, adopted so the sweep sees it. */
  async #adoptJournals(): Promise<void> {
    const dir = path.dirname(this.#journalFile('x'));
    const files = await readdir(dir).catch(() => [] as string[]);
    for (const file of files.filter((f) => f.endsWith('.json'))) {
      await this.#target(file.slice(0, -5)).catch(() => undefined);
    }
  }

  /**
   * An incoming move nobody asked about for `orphanAfterMs` is an orphan: its copy completed (the
   * guest is resumed here: it must not be lost), or it never will (the half-made VM is removed).
   */
  async #sweepOrphans(orphanAfterMs: number): Promise<void> {
    const now = Date.now();
    for (const record of this.#moves.values()) {
      if (record.role !== 'target' || record.state !== 'running') continue;
      if (now - record.lastContactAt < orphanAfterMs) continue;
      const qmp = this.core.vms
        .runtimes()
        .find((r) => r.def.name === record.vmName && r.active)
        ?.qmp();
      const migrate = await qmp
        ?.execute('query-migrate', undefined, { schema: MigrateInfo })
        .catch(() => undefined);
      if (migrate?.status === 'completed') {
        this.core.log.warn('an incoming move completed with nobody to finish it: resuming the guest here', {
          migration: record.id,
          vm: record.vmName,
        });
        await this.#resumeAdopted(record, 10_000).catch((error: unknown) =>
          this.core.log.warn('cannot resume an orphaned incoming guest', {
            vm: record.vmName,
            error: errorText(error),
          }),
        );
        continue;
      }
      this.core.log.warn('removing an orphaned incoming VM: no manager asked about its move', {
        migration: record.id,
        vm: record.vmName,
        silentMs: now - record.lastContactAt,
      });
      record.incoming?.close();
      this.#finish(
        record,
        'failed',
        new MigrationFailed(
          `orphaned: no manager asked about this move for ${Math.round(orphanAfterMs / 1000)} s`,
          'prepare',
          'migration-orphaned',
        ),
      );
      await this.#removeIncoming(record);
    }
  }

  // ---- shared ----

  #assertNoMoveOf(vmName: string): void {
    const busy = [...this.#moves.values()].find((m) => m.vmName === vmName && m.state === 'running');
    if (busy) throw new MigrationConflict(`VM "${vmName}" is already moving (migration ${busy.id})`);
  }

  #record(id: string, role: MoveRecord['role'], vmName: string): MoveRecord {
    let settle: () => void = () => undefined;
    const settled = new Promise<void>((resolve) => (settle = resolve));
    const record: MoveRecord = {
      id,
      role,
      vmName,
      state: 'running',
      startedAt: new Date().toISOString(),
      leases: [],
      shared: new Set(),
      lastContactAt: Date.now(),
      settled,
      settle,
    };
    this.#moves.set(id, record);
    return record;
  }

  #finish(record: MoveRecord, state: MigrationStatus['state'], error?: unknown): void {
    if (record.state !== 'running') return;
    record.state = state;
    record.finishedAt = new Date().toISOString();
    if (record.role === 'target') void rm(this.#journalFile(record.id), { force: true });
    if (error !== undefined && state === 'failed') {
      record.error = {
        code:
          typeof (error as { code?: unknown }).code === 'string'
            ? (error as { code: string }).code
            : 'migration-failed',
        detail: error instanceof Error ? error.message : String(error),
      };
    }
    if (record.role === 'source') this.#release(record);
    // A delta move arrived: the retained images are the running VM's disks now.
    if (record.role === 'target' && state === 'completed' && record.fromRetained) {
      const { vmId } = record.fromRetained;
      record.fromRetained = undefined;
      void this.#retainedConsumed(vmId);
    }
    record.settle();
  }

  #release(record: MoveRecord): void {
    for (const lease of record.leases) lease.release();
    record.leases = [];
  }

  /** A secure move needs this host's fabric certificates in <stateDir>/tls (see tls.ts). */
  async #tlsDir(secure: boolean): Promise<string | undefined> {
    if (!secure) return undefined;
    const dir = moveTlsDir(this.core.config.stateDir);
    if (!(await hasTlsCredentials(dir))) {
      throw new InvalidInput(
        `secure: host ${this.core.config.hostName} has no fabric certificates in ${dir} (${TLS_FILES.join(', ')}; ` +
          `${TLS_CRL_FILE} optional): enroll it, or move with --no-secure over a trusted dedicated link`,
        'secure',
      );
    }
    return dir;
  }

  // ---- target moves across an agent restart ----
  // The copy itself needs no agent, so a target agent that dies mid-move must not strand the
  // guest: a small journal names the VM of each incoming move, and a restarted agent adopts it.

  #journalFile(id: string): string {
    return path.join(this.core.config.stateDir, 'migrations', `${id}.json`);
  }

  async #writeJournal(
    id: string,
    vmName: string,
    fromRetained: MoveRecord['fromRetained'],
    shared: ReadonlySet<string>,
  ): Promise<void> {
    await mkdir(path.dirname(this.#journalFile(id)), { recursive: true });
    const journal = {
      vmName,
      ...(fromRetained ? { fromRetained: { vmId: fromRetained.vmId } } : {}),
      ...(shared.size ? { sharedDisks: [...shared] } : {}),
    };
    await writeFile(this.#journalFile(id), `${JSON.stringify(journal)}\n`);
  }

  async #target(id: string): Promise<MoveRecord> {
    const known = this.#moves.get(id);
    if (known) {
      if (known.role !== 'target') throw new MigrationNotFound(id);
      return known;
    }
    const text = await readFile(this.#journalFile(id), 'utf8').catch(() => undefined);
    const parsed = text === undefined ? undefined : Journal.safeParse(JSON.parse(text));
    if (!parsed?.success) throw new MigrationNotFound(id);
    this.core.log.info('adopting an incoming move after an agent restart', { migration: id });
    const record = this.#record(id, 'target', parsed.data.vmName);
    record.shared = new Set(parsed.data.sharedDisks ?? []);
    const retainedVm = parsed.data.fromRetained?.vmId;
    if (retainedVm !== undefined) {
      const def = this.core.vms.runtimes().find((r) => r.def.name === record.vmName)?.def;
      if (def) {
        record.fromRetained = {
          vmId: retainedVm,
          disks: def.disks.map((d) => ({ id: d.id, datastore: d.datastore, path: d.path })),
        };
      }
    }
    return record;
  }

  /**
   * An adopted move: resume the guest once its copy has completed here. The source reports
   * completion a moment before this side has loaded the last device state, so an incoming copy
   * still `active` is waited for (up to timeoutMs); one that failed or never started is refused.
   */
  async #resumeAdopted(record: MoveRecord, timeoutMs: number): Promise<void> {
    const qmp = this.core.vms.runtime(record.vmName).qmp();
    const until = Date.now() + timeoutMs;
    for (;;) {
      const status = await qmp.execute('query-status', undefined, { schema: StatusInfo });
      if (status.running) {
        this.#finish(record, 'completed');
        return;
      }
      const migrate = await qmp.execute('query-migrate', undefined, { schema: MigrateInfo });
      if (migrate.status === 'completed') break;
      if ((migrate.status !== 'active' && migrate.status !== 'device') || Date.now() > until) {
        throw new MigrationConflict(
          `migration ${record.id} has not completed on this host (${migrate.status ?? 'none'})`,
        );
      }
      await sleep(100);
    }
    await qmp.execute('nbd-server-stop').catch(() => undefined);
    await qmp.execute('cont');
    await qmp
      .execute('announce-self', { initial: 50, max: 550, rounds: 5, step: 100 })
      .catch(() => undefined);
    this.#finish(record, 'completed');
  }

  #get(id: string, role: MoveRecord['role']): MoveRecord {
    const record = this.#moves.get(id);
    if (!record || record.role !== role) throw new MigrationNotFound(id);
    return record;
  }
}

import { randomUUID } from 'node:crypto';
import { access, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { GuestExecRequest, GuestExecResult, GuestInfo, ValidVmSpec, Vm, VmDisk } from '../api/index.js';
import { createQcow2 } from './datastores.js';
import { commitLeftoverOverlays } from './migration/delta.js';
import { DefinitionStore, type VmDefinition } from './definitions.js';
import {
  DiskFileExists,
  InsufficientCapacity,
  InsufficientMemory,
  InvalidInput,
  MacInUse,
  VmAlreadyExists,
  VmIdInUse,
  VmNotFound,
  VmStateConflict,
  ToolsDiskMissing,
  HostUpgrading,
} from './errors.js';
import { guestExec, readGuestInfo } from './guest-ops.js';
import type { HostInventory } from './host.js';
import { MAX_DISK_ID, diskNodeName, newMac, newTapName } from './naming.js';
import { ChangeJournal } from './journal.js';
import { QgaClient } from './qga.js';
import { CPU_MODEL, MACHINE_TYPE } from './qemu-argv.js';
import { SerialQueue } from './serial-queue.js';
import { VmRuntime, type RuntimeHost } from './vm-runtime.js';

/*
 * The VMs of this host: their definitions on disk and their QEMU runtimes. Every request is checked
 * in full before anything is created, and whatever a failing define did create is removed again.
 */

const MiB = 1024 * 1024;
const QGA_SYNC_TIMEOUT_MS = 10_000;

/** A disk's id: the one given, else `disk<N>` by its place in the spec. */
export const diskIdAt = (d: { id?: string | undefined }, i: number): string => d.id ?? `disk${i}`;

export class VmService {
  readonly #store: DefinitionStore;
  readonly #vms = new Map<string, VmRuntime>();
  readonly #guestQueues = new Map<string, SerialQueue>();
  /** Definitions change one at a time, so checks of names, ids, MACs and space see a stable host. */
  readonly #defineQueue = new SerialQueue();
  /** Memory promised to VMs whose QEMU is being started right now. */
  #startingBytes = 0;
  /** VMs whose QEMU is being started right now. */
  readonly #starting = new Set<string>();
  /** Why no VM may start now (an upgrade of the host), while something holds the starts. */
  #startsHeld: string | undefined;
  /** VMs (and, through DatastoreAdmin, datastores) that appeared or vanished here. */
  readonly journal = new ChangeJournal();

  constructor(
    private readonly inventory: HostInventory,
    private readonly runtimeHost: RuntimeHost,
  ) {
    this.#store = new DefinitionStore(runtimeHost.stateDir);
  }

  /** Loads the definitions and re-attaches to VMs whose QEMU is still running. */
  async init(): Promise<void> {
    await this.#store.init();
    const invalid = (file: string, error: unknown) =>
      this.runtimeHost.log.error('ignoring a damaged VM definition', { file, error: String(error) });
    for (const def of await this.#store.loadAll(invalid)) {
      const runtime = new VmRuntime(def, this.runtimeHost);
      this.#vms.set(def.name, runtime);
      await runtime.exclusive(() => runtime.attach());
    }
  }

  /** Lets go of every QEMU without stopping it. */
  async close(): Promise<void> {
    for (const runtime of this.#vms.values()) await runtime.detach();
  }

  runtime(name: string): VmRuntime {
    const runtime = this.#vms.get(name);
    if (!runtime) throw new VmNotFound(name);
    return runtime;
  }

  runtimes(): VmRuntime[] {
    return [...this.#vms.values()];
  }

  /** Memory not promised to VMs that run or are starting. */
  unpromisedMemoryBytes(): number {
    const promised = this.runtimes()
      .filter((r) => r.active)
      .reduce((sum, r) => sum + r.def.memoryMiB * MiB, this.#startingBytes);
    return Math.max(0, this.inventory.memoryBytes - promised);
  }

  async list(): Promise<Vm[]> {
    return Promise.all(this.runtimes().map((r) => this.describe(r)));
  }

  get(name: string): Promise<Vm> {
    return this.describe(this.runtime(name));
  }

  async describe(runtime: VmRuntime): Promise<Vm> {
    const def = runtime.def;
    const disks = await Promise.all(
      def.disks.map(async (d): Promise<VmDisk> => ({
        id: d.id,
        datastore: d.datastore,
        path: d.path,
        format: d.format,
        virtualSizeBytes: d.sizeBytes,
        // What the image occupies on the host's filesystem (qemu-img's actual-size).
        allocatedBytes: await stat(d.path).then(
          (s) => s.blocks * 512,
          () => 0,
        ),
        nodeName: diskNodeName(d.id),
      })),
    );
    return {
      id: def.id,
      name: def.name,
      state: await runtime.state(),
      ...(runtime.pid === undefined ? {} : { pid: runtime.pid }),
      vcpus: def.vcpus,
      memoryMiB: def.memoryMiB,
      disks,
      nics: def.nics,
      ...(def.guestIp === undefined ? {} : { guestIp: def.guestIp }),
      ...(def.guestGateway === undefined ? {} : { guestGateway: def.guestGateway }),
      machineType: def.machineType,
      cpuModel: def.cpuModel,
      accelerator: runtime.accelerator,
      createdAt: def.createdAt,
      toolsDisk: def.toolsDisk,
      ...(runtime.startedAt === undefined ? {} : { startedAt: runtime.startedAt }),
    };
  }

  /** Defines a VM (creating its disks) and starts it when asked; all or nothing. */
  /**
   * `reserveVirtualSize: false` is for a move's target: its thin disks only receive the source's
   * allocated data, which the manager's pre-move check already measured against the free space
   * (reserving the virtual size would refuse moves that fit). A disk that still runs out of room
   * fails the mirror, and the move rolls back.
   */
  /**
   * `adopt` is for a move's target too: disk id -> an existing image on shared storage (checked by
   * the caller) that the VM opens where it is. Such a disk is not created, needs no space, and is
   * never deleted by a failed define.
   */
  async define(
    spec: ValidVmSpec,
    options: { reserveVirtualSize?: boolean; adopt?: ReadonlyMap<string, string> } = {},
  ): Promise<Vm> {
    const adopt = options.adopt ?? new Map<string, string>();
    const runtime = await this.#defineQueue.run(async () => {
      const def = await this.#plan(spec, options.reserveVirtualSize ?? true, adopt);
      const created: string[] = [];
      try {
        for (const disk of def.disks) {
          if (adopt.has(disk.id)) continue;
          await createQcow2(disk.path, disk.sizeBytes);
          created.push(disk.path);
        }
        await this.#store.save(def);
      } catch (error) {
        for (const file of created) await rm(file, { force: true });
        throw error;
      }
      const runtime = new VmRuntime(def, this.runtimeHost);
      this.#vms.set(def.name, runtime);
      this.journal.record({ kind: 'vm', action: 'created', name: def.name, id: def.id });
      this.runtimeHost.log.info('VM defined', { vm: def.name, id: def.id });
      return runtime;
    });
    if (spec.start) {
      try {
        await this.#start(runtime, {});
      } catch (error) {
        await this.#remove(runtime, true);
        throw error;
      }
    }
    return this.describe(runtime);
  }

  /** Checks a spec against this host and returns the definition it would become; creates nothing. */
  async #plan(
    spec: ValidVmSpec,
    reserveVirtualSize: boolean,
    adopt: ReadonlyMap<string, string>,
  ): Promise<VmDefinition> {
    if (this.#vms.has(spec.name)) throw new VmAlreadyExists(spec.name);
    const id = spec.id ?? randomUUID();
    const sameId = this.runtimes().find((r) => r.def.id === id);
    if (sameId) throw new VmIdInUse(id, sameId.def.name);
    if (spec.guestGateway !== undefined && spec.guestIp === undefined)
      throw new InvalidInput(
        'guestGateway: needs guestIp as well (the guest has no other address)',
        'guestGateway',
      );
    if (spec.memoryMiB * MiB > this.inventory.memoryBytes)
      throw new InsufficientMemory(spec.memoryMiB * MiB, this.inventory.memoryBytes, 'host memory');

    const disks: VmDefinition['disks'] = [];
    const wanted = new Map<string, number>();
    for (const [i, d] of spec.disks.entries()) {
      const diskId = diskIdAt(d, i);
      if (diskId.length > MAX_DISK_ID)
        throw new InvalidInput(`disks.${i}.id: must be at most ${MAX_DISK_ID} characters`, `disks.${i}.id`);
      if (disks.some((other) => other.id === diskId))
        throw new InvalidInput(`disks.${i}.id: "${diskId}" is used twice in this VM`, `disks.${i}.id`);
      const store = this.inventory.datastore(d.datastore, `disks.${i}.datastore`);
      const adopted = adopt.get(diskId);
      if (adopted !== undefined) {
        // One image, one VM on this host: a second definition opening it would write it twice.
        const user = this.runtimes().find((r) => r.def.disks.some((x) => x.path === adopted));
        if (user)
          throw new InvalidInput(
            `disks.${i}: ${adopted} is the disk of VM "${user.def.name}" on this host already`,
            `disks.${i}`,
          );
        disks.push({
          id: diskId,
          datastore: store.name,
          path: adopted,
          format: 'qcow2',
          sizeBytes: d.sizeBytes,
        });
        continue;
      }
      const file = path.join(path.resolve(store.path), `${spec.name}-${diskId}.qcow2`);
      if (
        await access(file).then(
          () => true,
          () => false,
        )
      )
        throw new DiskFileExists(file, `disks.${i}`);
      const total = (wanted.get(store.name) ?? 0) + d.sizeBytes;
      const { freeBytes } = await this.inventory.space(store.name);
      if (reserveVirtualSize && total > freeBytes)
        throw new InsufficientCapacity(store.name, total, freeBytes, `disks.${i}.sizeBytes`);
      wanted.set(store.name, total);
      disks.push({ id: diskId, datastore: store.name, path: file, format: 'qcow2', sizeBytes: d.sizeBytes });
    }

    const nics: VmDefinition['nics'] = [];
    const macs = new Map(this.runtimes().flatMap((r) => r.def.nics.map((n) => [n.mac, r.def.name] as const)));
    const taps = new Set(this.runtimes().flatMap((r) => r.def.nics.map((n) => n.tap)));
    for (const [i, n] of spec.nics.entries()) {
      const nicId = n.id ?? `nic${i}`;
      if (nics.some((other) => other.id === nicId))
        throw new InvalidInput(`nics.${i}.id: "${nicId}" is used twice in this VM`, `nics.${i}.id`);
      this.inventory.bridgeOf(n.vswitch, `nics.${i}.vswitch`);
      const owner = n.mac === undefined ? undefined : macs.get(n.mac);
      if (n.mac !== undefined && owner !== undefined) throw new MacInUse(n.mac, owner, `nics.${i}.mac`);
      const mac = n.mac ?? newMac(new Set(macs.keys()));
      const tap = newTapName(id, nicId, taps);
      macs.set(mac, spec.name);
      taps.add(tap);
      nics.push({ id: nicId, vswitch: n.vswitch, mac, tap });
    }

    return {
      id,
      name: spec.name,
      toolsDisk: false,
      vcpus: spec.vcpus,
      memoryMiB: spec.memoryMiB,
      disks,
      nics,
      ...(spec.guestIp === undefined ? {} : { guestIp: spec.guestIp }),
      ...(spec.guestGateway === undefined ? {} : { guestGateway: spec.guestGateway }),
      machineType: MACHINE_TYPE,
      cpuModel: CPU_MODEL,
      createdAt: new Date().toISOString(),
    };
  }

  async start(name: string, options: Parameters<VmRuntime['start']>[0] = {}): Promise<Vm> {
    const runtime = this.runtime(name);
    await this.#start(runtime, options);
    return this.describe(runtime);
  }

  #start(runtime: VmRuntime, options: Parameters<VmRuntime['start']>[0]): Promise<void> {
    return runtime.exclusive(async () => {
      if (this.#startsHeld !== undefined) throw new HostUpgrading(`starting VM "${runtime.def.name}"`);
      if (runtime.active) throw new VmStateConflict(runtime.def.name, await runtime.state(), 'start');
      const bytes = runtime.def.memoryMiB * MiB;
      const unpromised = this.unpromisedMemoryBytes();
      if (bytes > unpromised) throw new InsufficientMemory(bytes, unpromised, 'unpromised host memory');
      this.#startingBytes += bytes;
      this.#starting.add(runtime.def.name);
      try {
        if (!options?.incoming) {
          for (const disk of runtime.def.disks) {
            const committed = await commitLeftoverOverlays(disk.path);
            if (committed.length)
              this.runtimeHost.log.warn('committed a delta overlay left by a move', {
                vm: runtime.def.name,
                committed,
              });
          }
        }
        await runtime.start(options);
      } finally {
        this.#startingBytes -= bytes;
        this.#starting.delete(runtime.def.name);
      }
    });
  }

  /**
   * Holds every VM start (incoming moves too) for `reason` (an upgrade of the host): the VMs that
   * run or start now, when any do (nothing is held then), else the release of the hold. The hold
   * is taken before the VMs are looked at, so a start cannot slip in between.
   */
  holdStarts(reason: string): { release: () => void } | { running: string[] } {
    if (this.#startsHeld !== undefined) throw new HostUpgrading(reason);
    this.#startsHeld = reason;
    const running = [
      ...new Set([
        ...this.runtimes()
          .filter((r) => r.active)
          .map((r) => r.def.name),
        ...this.#starting,
      ]),
    ].sort();
    if (running.length) {
      this.#startsHeld = undefined;
      return { running };
    }
    return { release: () => (this.#startsHeld = undefined) };
  }

  /** Records new datastores and files of disks moved live (migration/storage.ts). */
  async relocateDisks(name: string, moved: { id: string; datastore: string; path: string }[]): Promise<void> {
    const runtime = this.runtime(name);
    const def = {
      ...runtime.def,
      disks: runtime.def.disks.map((d) => {
        const m = moved.find((x) => x.id === d.id);
        return m ? { ...d, datastore: m.datastore, path: m.path } : d;
      }),
    };
    await this.#store.save(def);
    runtime.relocateDisks(def);
  }

  async shutdown(name: string, timeoutSeconds: number): Promise<Vm> {
    const runtime = this.runtime(name);
    await runtime.exclusive(() => runtime.shutdown(timeoutSeconds));
    return this.describe(runtime);
  }

  async stop(name: string): Promise<Vm> {
    const runtime = this.runtime(name);
    await runtime.exclusive(() => runtime.forceStop());
    return this.describe(runtime);
  }

  /** `keep`: disk ids whose files stay whatever `deleteDisks` says (a move's disks on shared storage). */
  async delete(name: string, deleteDisks: boolean, keep: ReadonlySet<string> = new Set()): Promise<void> {
    await this.#remove(this.runtime(name), deleteDisks, keep);
  }

  async #remove(
    runtime: VmRuntime,
    deleteDisks: boolean,
    keep: ReadonlySet<string> = new Set(),
  ): Promise<void> {
    await this.#defineQueue.run(() =>
      runtime.exclusive(async () => {
        if (runtime.active) throw new VmStateConflict(runtime.def.name, await runtime.state(), 'delete');
        await this.#store.remove(runtime.def.name);
        this.#vms.delete(runtime.def.name);
        this.journal.record({ kind: 'vm', action: 'deleted', name: runtime.def.name, id: runtime.def.id });
        this.#guestQueues.delete(runtime.def.name);
        for (const log of [runtime.paths.console, runtime.paths.qemuLog]) await rm(log, { force: true });
        const doomed = deleteDisks ? runtime.def.disks.filter((d) => !keep.has(d.id)) : [];
        for (const disk of doomed) await rm(disk.path, { force: true });
        this.runtimeHost.log.info('VM deleted', {
          vm: runtime.def.name,
          deleteDisks,
          ...(deleteDisks && keep.size ? { kept: [...keep] } : {}),
        });
      }),
    );
  }

  /**
   * Inserts or ejects the guest tools disk: hot-plugged into a running (or paused) VM, recorded for
   * the next start of a stopped one. Asking for what already is changes nothing.
   */
  async setToolsDisk(name: string, inserted: boolean): Promise<Vm> {
    const runtime = this.runtime(name);
    await runtime.exclusive(async () => {
      if (runtime.def.toolsDisk === inserted) return;
      const state = await runtime.state();
      const action = inserted ? 'insert the tools disk into' : 'eject the tools disk from';
      if (!['stopped', 'crashed', 'running', 'paused'].includes(state))
        throw new VmStateConflict(name, state, action);
      const iso = inserted ? await this.runtimeHost.toolsIso?.() : undefined;
      if (inserted && iso === undefined) throw new ToolsDiskMissing();
      if (runtime.active) {
        if (iso !== undefined) await runtime.plugTools(iso);
        else await runtime.unplugTools();
      }
      const def = { ...runtime.def, toolsDisk: inserted };
      await this.#store.save(def);
      runtime.setToolsDisk(def);
      this.runtimeHost.log.info(inserted ? 'tools disk inserted' : 'tools disk ejected', { vm: name, state });
    });
    return this.describe(runtime);
  }

  guestInfo(name: string): Promise<GuestInfo> {
    return this.#withGuestAgent(name, (qga) => readGuestInfo(qga));
  }

  async guestExec(name: string, request: z.output<typeof GuestExecRequest>): Promise<GuestExecResult> {
    return this.#withGuestAgent(name, (qga) => guestExec(qga, { vm: name, ...request }));
  }

  /**
   * Runs `task` with the guest agent now, or returns undefined when another session holds or
   * awaits it: a statistics poll never waits behind a guest-exec.
   */
  async tryWithGuestAgent<T>(
    name: string,
    syncTimeoutMs: number,
    task: (qga: QgaClient) => Promise<T>,
  ): Promise<T | undefined> {
    if (!this.#guestQueue(name).idle) return undefined;
    return this.#withGuestAgent(name, task, syncTimeoutMs);
  }

  #guestQueue(name: string): SerialQueue {
    let queue = this.#guestQueues.get(name);
    if (!queue) this.#guestQueues.set(name, (queue = new SerialQueue()));
    return queue;
  }

  /** One guest-agent session at a time per VM: qemu-ga serves a single client. */
  #withGuestAgent<T>(
    name: string,
    task: (qga: QgaClient) => Promise<T>,
    syncTimeoutMs = QGA_SYNC_TIMEOUT_MS,
  ): Promise<T> {
    const runtime = this.runtime(name);
    return this.#guestQueue(name).run(async () => {
      if (!runtime.active) throw new VmStateConflict(name, 'stopped', 'reach the guest agent of');
      const qga = await QgaClient.open(runtime.paths.qga, name, syncTimeoutMs);
      try {
        return await task(qga);
      } finally {
        qga.close();
      }
    });
  }
}

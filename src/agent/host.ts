import { cpus, totalmem } from 'node:os';
import path from 'node:path';
import {
  DEFAULT_DATASTORE_CLASS,
  type AgentConfig,
  type Datastore,
  type DatastoreConfig,
  type DatastoreLimits,
  type DatastoreProbe,
  type DatastoreSpec,
  type DatastoreUpdate,
  type VSwitch,
} from '../api/index.js';
import { datastoreSpace, type DatastoreSpace } from './datastores.js';
import { DatastoreExists, DatastoreNotFound, InvalidInput, VSwitchNotFound } from './errors.js';
import { checkSharedDatastore, type SharedCheck } from './shared-health.js';
import { sharedStorageId } from './shared-storage.js';
import { ensureBridge } from './vswitches.js';

/** A shared datastore's check answers every caller within this time of it (stats, lists, moves). */
const CHECK_REUSE_MS = 1_000;

/**
 * The datastores and virtual switches of this host, and its size. Datastores change at runtime
 * (the datastore routes); `persist` keeps each new list in the agent's configuration file.
 */
export class HostInventory {
  readonly memoryBytes = totalmem();
  readonly cpus = cpus().length;
  #stores: DatastoreConfig[];
  readonly #probes = new Map<string, DatastoreProbe>();
  /** Shared datastores' storage ids by datastore name (read from their markers once). */
  readonly #storageIds = new Map<string, string>();
  /** Shared datastores' last bounded check (shared-health.ts), by name; one at a time per datastore. */
  readonly #checks = new Map<string, { at: number; result: Promise<SharedCheck> }>();
  /** Shared datastores' last space measured while reachable: what they show while lost. */
  readonly #lastSpace = new Map<string, DatastoreSpace>();

  constructor(
    private readonly config: AgentConfig,
    private readonly persist: (stores: readonly DatastoreConfig[]) => Promise<void> = async () => {},
  ) {
    this.#stores = [...config.datastores];
  }

  /** The datastores as configured (name, path, class, limits). */
  configured(): readonly DatastoreConfig[] {
    return this.#stores;
  }

  /**
   * Reads (or writes) the marker of every shared datastore configured. One that cannot be read now
   * (its storage not mounted yet) is read again when the datastore is next described.
   */
  async init(warn: (msg: string, fields: Record<string, unknown>) => void = () => undefined): Promise<void> {
    for (const d of this.#stores.filter((s) => s.kind === 'shared')) {
      try {
        await this.#storageIdOf(d);
      } catch (error) {
        warn('shared datastore not identified yet', { datastore: d.name, error: String(error) });
      }
    }
    const byId = new Map<string, string>();
    for (const [name, id] of this.#storageIds) {
      const other = byId.get(id);
      if (other !== undefined)
        warn('two datastores of this host are one shared storage', {
          datastores: [other, name],
          storageId: id,
        });
      byId.set(id, name);
    }
  }

  /** A shared datastore's storage id (its marker's, read once); undefined for a local one. */
  async #storageIdOf(d: DatastoreConfig): Promise<string | undefined> {
    if (d.kind !== 'shared') return undefined;
    const known = this.#storageIds.get(d.name);
    if (known !== undefined) return known;
    const id = await sharedStorageId(d.path);
    this.#storageIds.set(d.name, id);
    return id;
  }

  /** The storage id of a shared datastore as read so far (undefined for a local one or one not read yet). */
  storageId(name: string): string | undefined {
    return this.#storageIds.get(name);
  }

  /** A datastore's storage id, its marker read now if not yet; undefined for a local one. */
  storageIdOf(name: string): Promise<string | undefined> {
    return this.#storageIdOf(this.datastore(name, 'datastore'));
  }

  /** Makes every switch's bridge (and attaches its uplink) when missing. */
  async ensureSwitches(): Promise<void> {
    for (const s of this.config.vswitches) await ensureBridge(s.bridge, s.uplink);
  }

  /** The named datastore, or the default one (first marked default, else the first) when unnamed. */
  datastore(name: string | undefined, field: string): DatastoreConfig {
    const stores = this.#stores;
    const found =
      name === undefined ? (stores.find((d) => d.default) ?? stores[0]) : stores.find((d) => d.name === name);
    if (!found) throw new DatastoreNotFound(name ?? '(default)', field);
    return found;
  }

  /** The limits of a datastore (none for one this host does not know: it has no group to limit). */
  limitsOf(name: string): DatastoreLimits | undefined {
    return this.#stores.find((d) => d.name === name)?.limits;
  }

  async space(name: string): Promise<DatastoreSpace> {
    const d = this.datastore(name, 'datastore');
    if (d.kind !== 'shared') return datastoreSpace(d.path);
    const check = await this.checkShared(d.name);
    if (!check.ok) throw new InvalidInput(`datastore: ${check.lost.detail}`, 'datastore');
    return check.space;
  }

  /**
   * Whether this host reaches the shared datastore `name` now: a bounded check in a child
   * (shared-health.ts), never a syscall of the agent's own on a mount that may hang. Checks asked
   * for within CHECK_REUSE_MS of the last (or while it runs) share its answer.
   */
  checkShared(name: string): Promise<SharedCheck> {
    const d = this.datastore(name, 'datastore');
    const last = this.#checks.get(d.name);
    if (last && Date.now() - last.at < CHECK_REUSE_MS) return last.result;
    const result = checkSharedDatastore(d.path, this.#storageIds.get(d.name)).then((check) => {
      if (check.ok) this.#lastSpace.set(d.name, check.space);
      return check;
    });
    this.#checks.set(d.name, { at: Date.now(), result });
    // A check still running when the reuse time is over is waited for, not started twice.
    void result.then(() => {
      const entry = this.#checks.get(d.name);
      if (entry?.result === result) entry.at = Date.now();
    });
    return result;
  }

  async datastores(): Promise<Datastore[]> {
    return Promise.all(this.#stores.map((d) => this.describe(d.name)));
  }

  async describe(name: string): Promise<Datastore> {
    const d = this.datastore(name, 'name');
    const probe = this.#probes.get(d.name);
    let space: DatastoreSpace;
    if (d.kind === 'shared') {
      // Bounded: a lost shared datastore shows its last figures (GET /v1/stats says it is lost).
      const check = await this.checkShared(d.name);
      space = check.ok ? check.space : (this.#lastSpace.get(d.name) ?? { capacityBytes: 0, freeBytes: 0 });
    } else space = await datastoreSpace(d.path);
    let storageId: string | undefined;
    if (d.kind === 'shared') {
      storageId = this.#storageIds.get(d.name);
      if (storageId === undefined) {
        // Not identified since the agent started (its mount was missing): the check read the marker.
        const check = await this.checkShared(d.name);
        if (!check.ok) throw new InvalidInput(`path: ${check.lost.detail}`, 'path');
        storageId = check.storageId;
        this.#storageIds.set(d.name, storageId);
      }
    }
    return {
      name: d.name,
      path: d.path,
      default: d.name === this.datastore(undefined, 'datastore').name,
      ...space,
      class: d.class,
      ...(d.limits === undefined ? {} : { limits: d.limits }),
      ...(probe === undefined ? {} : { probe }),
      kind: d.kind,
      ...(storageId === undefined ? {} : { storageId }),
    };
  }

  recordProbe(name: string, probe: DatastoreProbe): void {
    this.#probes.set(name, probe);
  }

  /** Adds a datastore (the caller made its directory) and persists the list. */
  async add(spec: DatastoreSpec): Promise<DatastoreConfig> {
    if (this.#stores.some((d) => d.name === spec.name))
      throw new DatastoreExists(`a datastore named "${spec.name}" exists already`, 'name');
    const dir = path.resolve(spec.path);
    const same = this.#stores.find((d) => path.resolve(d.path) === dir);
    if (same) throw new DatastoreExists(`datastore "${same.name}" has that directory already`, 'path');
    const store: DatastoreConfig = {
      name: spec.name,
      path: dir,
      default: false,
      class: spec.class ?? DEFAULT_DATASTORE_CLASS,
      ...(spec.limits === undefined || isUnlimited(spec.limits) ? {} : { limits: spec.limits }),
      kind: spec.kind ?? 'local',
    };
    // Identified before it is kept: a marker that cannot be read or written refuses the add.
    const storageId = store.kind === 'shared' ? await sharedStorageId(dir) : undefined;
    const twin = [...this.#storageIds].find(([, other]) => other === storageId)?.[0];
    if (twin !== undefined)
      throw new DatastoreExists(
        `datastore "${twin}" is that shared storage already (storage ${storageId})`,
        'path',
      );
    const stores = [...this.#stores, store];
    await this.#commit(spec.default === true ? withDefault(stores, store.name) : stores);
    if (storageId !== undefined) this.#storageIds.set(store.name, storageId);
    return store;
  }

  /** Changes a datastore's settings and persists the list; returns the new and the old settings. */
  async update(
    name: string,
    update: DatastoreUpdate,
  ): Promise<{ before: DatastoreConfig; after: DatastoreConfig }> {
    const before = this.datastore(name, 'name');
    const { limits: _old, ...rest } = before;
    const limits = update.limits === undefined ? before.limits : (update.limits ?? undefined);
    const after: DatastoreConfig = {
      ...rest,
      ...(update.class === undefined ? {} : { class: update.class }),
      ...(limits === undefined || isUnlimited(limits) ? {} : { limits }),
    };
    const stores = this.#stores.map((d) => (d.name === name ? after : d));
    await this.#commit(update.default === true ? withDefault(stores, name) : stores);
    return { before, after };
  }

  /** Removes a datastore from the list (the caller checked nothing lives there) and persists it. */
  async remove(name: string): Promise<void> {
    this.datastore(name, 'name');
    const stores = this.#stores.filter((d) => d.name !== name);
    if (stores.length === 0)
      throw new InvalidInput('name: the last datastore of a host cannot be removed', 'name');
    await this.#commit(stores);
    this.#probes.delete(name);
    this.#storageIds.delete(name);
  }

  async #commit(stores: DatastoreConfig[]): Promise<void> {
    await this.persist(stores);
    this.#stores = stores;
  }

  vswitches(): VSwitch[] {
    return this.config.vswitches.map((s) => ({
      name: s.name,
      bridge: s.bridge,
      ...(s.uplink === undefined ? {} : { uplink: s.uplink }),
    }));
  }

  bridgeOf(vswitch: string, field = 'vswitch'): string {
    const found = this.config.vswitches.find((s) => s.name === vswitch);
    if (!found) throw new VSwitchNotFound(vswitch, field);
    return found.bridge;
  }
}

const isUnlimited = (l: DatastoreLimits) => l.iops === undefined && l.bytesPerSecond === undefined;
const withDefault = (stores: DatastoreConfig[], name: string) =>
  stores.map((d) => ({ ...d, default: d.name === name }));

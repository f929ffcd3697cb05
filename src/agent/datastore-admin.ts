import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import type {
  AgentConfig,
  Datastore,
  DatastoreConfig,
  DatastoreSpec,
  DatastoreUpdate,
} from '../api/index.js';
import { checkDatastorePath } from './datastore-roots.js';
import { probeDatastore } from './datastore-probe.js';
import { writeFileAtomic } from './definitions.js';
import { DatastoreExists, DatastoreInUse, HostCommandFailed, InvalidInput } from './errors.js';
import type { HostInventory } from './host.js';
import type { Logger } from './logger.js';
import { setThrottleLimits } from './throttle.js';
import type { VmService } from './vm-service.js';

/*
 * Datastores managed at runtime (the datastore routes): add, change class and limits, remove,
 * probe. Limits reach running VMs at once (a qom-set on their QEMU's throttle group); a VM whose
 * QEMU was started by an agent before throttle groups existed gets them at its next start.
 */
export class DatastoreAdmin {
  constructor(
    private readonly inventory: HostInventory,
    private readonly vms: VmService,
    private readonly log: Logger,
    private readonly config: Pick<AgentConfig, 'datastoreRoots' | 'stateDir'>,
  ) {}

  /** Adds a datastore where the rules allow one (datastore-roots.ts), at its real path. */
  async add(spec: DatastoreSpec): Promise<Datastore> {
    const rules = () => ({
      roots: this.config.datastoreRoots,
      stateDir: this.config.stateDir,
      existing: this.inventory.configured(),
    });
    if (this.inventory.configured().some((d) => d.name === spec.name))
      throw new DatastoreExists(`a datastore named "${spec.name}" exists already`, 'name');
    const real = await checkDatastorePath(spec.path, rules());
    if (spec.kind === 'shared') {
      // Storage other hosts see is mounted, never made: a missing mount is an error, not a new storage.
      const isDir = await stat(real).then(
        (s) => s.isDirectory(),
        () => false,
      );
      if (!isDir)
        throw new InvalidInput(
          `path: ${real} is not a directory: mount the shared storage there first`,
          'path',
        );
    } else {
      try {
        await mkdir(real, { recursive: true, mode: 0o700 });
      } catch (error) {
        throw new HostCommandFailed(`mkdir ${real}`, String(error));
      }
    }
    // Again, now that it exists: a symlink put in its way meanwhile must not lead elsewhere.
    const made = await checkDatastorePath(real, rules());
    const store = await this.inventory.add({ ...spec, path: made });
    this.vms.journal.record({ kind: 'datastore', action: 'created', name: store.name });
    this.log.info('datastore added', {
      datastore: store.name,
      path: store.path,
      class: store.class,
      kind: store.kind,
      ...(store.kind === 'shared' ? { storageId: this.inventory.storageId(store.name) } : {}),
    });
    if (spec.probe !== false) await this.probe(store.name);
    return this.inventory.describe(store.name);
  }

  async update(name: string, update: DatastoreUpdate): Promise<Datastore> {
    const { before, after } = await this.inventory.update(name, update);
    this.log.info('datastore changed', { datastore: name, class: after.class, limits: after.limits ?? null });
    if (JSON.stringify(before.limits) !== JSON.stringify(after.limits)) await this.#applyLimits(after);
    return this.inventory.describe(name);
  }

  async remove(name: string): Promise<void> {
    const store = this.inventory.datastore(name, 'name');
    const users = this.vms
      .runtimes()
      .filter((r) => r.def.disks.some((d) => d.datastore === store.name))
      .map((r) => `VM "${r.def.name}"`);
    // Any image in the directory: retained copies of moved VMs, half-made or orphaned images. On
    // shared storage the other hosts' VMs have theirs there: only this host's VMs count.
    const images =
      store.kind === 'shared'
        ? []
        : (await readdir(store.path).catch(() => [] as string[])).filter((f) => f.endsWith('.qcow2'));
    if (images.length) users.push(`${images.length} image file(s) (${images.slice(0, 3).join(', ')})`);
    if (users.length) throw new DatastoreInUse(store.name, users);
    await this.inventory.remove(name);
    this.vms.journal.record({ kind: 'datastore', action: 'deleted', name });
    this.log.info('datastore removed; its directory stays', { datastore: name, path: store.path });
  }

  async probe(name: string): Promise<Datastore> {
    const store = this.inventory.datastore(name, 'name');
    try {
      const probe = await probeDatastore(store.path);
      this.inventory.recordProbe(store.name, probe);
      this.log.info('datastore probed', { datastore: store.name, ...probe });
    } catch (error) {
      throw new HostCommandFailed(`probing ${store.path}`, String(error));
    }
    return this.inventory.describe(store.name);
  }

  /** Sets the new limits in every running QEMU with a disk on the datastore. */
  async #applyLimits(store: DatastoreConfig): Promise<void> {
    for (const runtime of this.vms.runtimes()) {
      if (!runtime.active || !runtime.def.disks.some((d) => d.datastore === store.name)) continue;
      try {
        await setThrottleLimits(runtime.qmp(), store.name, store.limits);
      } catch (error) {
        this.log.warn('limits not applied to a running VM; they apply at its next start', {
          vm: runtime.def.name,
          datastore: store.name,
          error: String(error),
        });
      }
    }
  }
}

/** Keeps a new datastore list in the agent's configuration file (other fields untouched). */
export function persistDatastoresIn(configFile: string) {
  return async (stores: readonly DatastoreConfig[]): Promise<void> => {
    const raw = JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown>;
    await writeFileAtomic(configFile, `${JSON.stringify({ ...raw, datastores: stores }, null, 2)}\n`);
  };
}

import { cpus, totalmem } from 'node:os';
import type { AgentConfig, Datastore, VSwitch } from '../api/index.js';
import { datastoreSpace, type DatastoreSpace } from './datastores.js';
import { DatastoreNotFound, VSwitchNotFound } from './errors.js';
import { ensureBridge } from './vswitches.js';

type DatastoreConfig = AgentConfig['datastores'][number];

/** The configured datastores and virtual switches of this host, and its size. */
export class HostInventory {
  readonly memoryBytes = totalmem();
  readonly cpus = cpus().length;

  constructor(private readonly config: AgentConfig) {}

  /** Makes every switch's bridge (and attaches its uplink) when missing. */
  async ensureSwitches(): Promise<void> {
    for (const s of this.config.vswitches) await ensureBridge(s.bridge, s.uplink);
  }

  /** The named datastore, or the default one (first marked default, else the first) when unnamed. */
  datastore(name: string | undefined, field: string): DatastoreConfig {
    const stores = this.config.datastores;
    const found =
      name === undefined ? (stores.find((d) => d.default) ?? stores[0]) : stores.find((d) => d.name === name);
    if (!found) throw new DatastoreNotFound(name ?? '(default)', field);
    return found;
  }

  space(name: string): Promise<DatastoreSpace> {
    return datastoreSpace(this.datastore(name, 'datastore').path);
  }

  async datastores(): Promise<Datastore[]> {
    const defaultName = this.datastore(undefined, 'datastore').name;
    return Promise.all(
      this.config.datastores.map(async (d) => ({
        name: d.name,
        path: d.path,
        default: d.name === defaultName,
        ...(await datastoreSpace(d.path)),
      })),
    );
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

import {
  hasTlsCredentials,
  moveTlsDir,
  type AgentConfig,
  type HostInfo,
  type HostStats,
} from '../api/index.js';
import type { AcceleratorChoice } from './accelerator.js';
import { DatastoreAdmin } from './datastore-admin.js';
import type { HostInventory } from './host.js';
import type { HostLeases } from './leases.js';
import type { Logger } from './logger.js';
import { renderMetrics } from './metrics.js';
import { CPU_MODEL, MACHINE_TYPE } from './qemu-argv.js';
import { StatsCollector } from './stats.js';
import { HostUpgrade } from './upgrade.js';
import { installedVersions } from './versions.js';
import type { VmService } from './vm-service.js';

/** Everything one running agent knows: what routes (the built-in ones and plugins) work with. */
export class AgentCore {
  constructor(
    readonly config: AgentConfig,
    readonly inventory: HostInventory,
    readonly vms: VmService,
    readonly accelerator: AcceleratorChoice,
    readonly versions: { agent: string; qemu: string; tools?: string | undefined },
    readonly log: Logger,
    /** The host's sanlock leases (config `sanlock`), for clusters. */
    readonly leases?: HostLeases,
  ) {
    this.#stats = new StatsCollector(config.hostName, inventory, vms, log, async () => {
      await leases?.refresh();
      return leases?.status();
    });
    this.datastores = new DatastoreAdmin(inventory, vms, log, config);
    this.upgrade = new HostUpgrade({
      config: config.upgrade,
      vms,
      versions,
      installed: installedVersions,
      log,
    });
  }

  readonly datastores: DatastoreAdmin;
  /** The host's upgrade (POST /v1/host/upgrade). */
  readonly upgrade: HostUpgrade;

  readonly #stats: StatsCollector;

  async hostInfo(): Promise<HostInfo> {
    await this.leases?.refresh();
    return {
      name: this.config.hostName,
      fabricAddress: this.config.fabricAddress,
      agentVersion: this.versions.agent,
      qemuVersion: this.versions.qemu,
      accelerator: this.accelerator.accelerator,
      ...(this.accelerator.warning === undefined ? {} : { acceleratorWarning: this.accelerator.warning }),
      cpus: this.inventory.cpus,
      memoryBytes: this.inventory.memoryBytes,
      memoryFreeBytes: this.vms.unpromisedMemoryBytes(),
      machineType: MACHINE_TYPE,
      cpuModel: CPU_MODEL,
      ...(this.versions.tools === undefined ? {} : { toolsVersion: this.versions.tools }),
      moveTls: await hasTlsCredentials(moveTlsDir(this.config.stateDir)),
      sanlock: this.leases !== undefined,
      ...(this.leases?.status() ? { lockspace: this.leases.status() } : {}),
    };
  }

  /** The storage statistics contract (src/api/stats.ts). */
  async stats(): Promise<HostStats> {
    return (await this.#stats.collect()).stats;
  }

  /** /metrics: the same poll as stats(), with the host's memory and the VMs' states beside it. */
  async metrics(): Promise<string> {
    const { stats, vms } = await this.#stats.collect();
    return renderMetrics({
      accelerator: this.accelerator.accelerator,
      memoryBytes: this.inventory.memoryBytes,
      memoryFreeBytes: this.vms.unpromisedMemoryBytes(),
      vms,
      stats,
    });
  }
}

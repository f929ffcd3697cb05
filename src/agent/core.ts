import type { AgentConfig, HostInfo, HostStats } from '../api/index.js';
import type { AcceleratorChoice } from './accelerator.js';
import type { HostInventory } from './host.js';
import type { Logger } from './logger.js';
import { renderMetrics } from './metrics.js';
import { CPU_MODEL, MACHINE_TYPE } from './qemu-argv.js';
import type { VmService } from './vm-service.js';

const MiB = 1024 * 1024;

/** Everything one running agent knows: what routes (the built-in ones and plugins) work with. */
export class AgentCore {
  constructor(
    readonly config: AgentConfig,
    readonly inventory: HostInventory,
    readonly vms: VmService,
    readonly accelerator: AcceleratorChoice,
    readonly versions: { agent: string; qemu: string },
    readonly log: Logger,
  ) {}

  hostInfo(): HostInfo {
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
    };
  }

  /** The storage statistics contract (src/api/stats.ts). TODO(agentstats): disks and guests. */
  async stats(): Promise<HostStats> {
    const datastores = await this.inventory.datastores();
    return {
      host: this.config.hostName,
      sampledAt: new Date().toISOString(),
      datastores: datastores.map((d) => ({
        name: d.name,
        fsType: 'unknown',
        capacityBytes: d.capacityBytes,
        freeBytes: d.freeBytes,
        provisionedBytes: 0,
        allocatedBytes: 0,
      })),
      disks: [],
      guests: [],
    };
  }

  async metrics(): Promise<string> {
    const vms = await Promise.all(
      this.vms.runtimes().map(async (runtime) => ({
        name: runtime.def.name,
        state: await runtime.state(),
        vcpus: runtime.def.vcpus,
        memoryBytes: runtime.def.memoryMiB * MiB,
        disks: await this.vms.diskCounters(runtime),
      })),
    );
    return renderMetrics({
      host: this.config.hostName,
      accelerator: this.accelerator.accelerator,
      memoryBytes: this.inventory.memoryBytes,
      memoryFreeBytes: this.vms.unpromisedMemoryBytes(),
      datastores: await this.inventory.datastores(),
      vms,
    });
  }
}

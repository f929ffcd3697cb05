/*
 * The upgrade planner's input from the manager's inventory (the agents' last reports): every host
 * with its datastores and virtual switches, every VM with its disks' space needs as a move checks
 * them.
 */
import type { Host, ManagedVm, Page } from '../../api/index.js';
import type { Db } from '../db.js';
import { listDatastores, listHosts, listVms, listVSwitches } from '../inventory.js';
import { requiredBytes } from '../move/checks.js';
import type { UpgradeHostFacts, UpgradeVmFacts } from './plan.js';

async function everything<T>(
  page: (q: { limit: number; cursor?: string | undefined }) => Promise<Page<T>>,
): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | undefined;
  do {
    const p = await page({ limit: 1000, cursor });
    out.push(...p.items);
    cursor = p.nextCursor ?? undefined;
  } while (cursor !== undefined);
  return out;
}

export interface UpgradeFacts {
  hosts: UpgradeHostFacts[];
  vms: UpgradeVmFacts[];
  /** Host name by id, to resolve references. */
  hostIds: Map<string, string>;
}

export async function loadUpgradeFacts(db: Db): Promise<UpgradeFacts> {
  const [hosts, datastores, vswitches, vms] = await Promise.all([
    everything((q) => listHosts(db, q)),
    everything((q) => listDatastores(db, q)),
    everything((q) => listVSwitches(db, q)),
    everything((q) => listVms(db, q)),
  ]);
  const hostFacts = hosts.map((h: Host): UpgradeHostFacts => {
    return {
      name: h.name,
      cluster: h.cluster,
      state: h.state,
      maintenance: h.maintenance,
      agentVersion: h.agentVersion,
      qemuVersion: h.qemuVersion,
      machineType: h.machineType,
      cpuModel: h.cpuModel,
      memoryFreeBytes: h.memoryFreeBytes,
      memoryBytes: h.memoryBytes,
      datastores: datastores
        .filter((d) => d.hostId === h.id)
        .map((d) => ({ name: d.name, default: d.default, freeBytes: d.freeBytes, storageId: d.storageId })),
      vswitches: vswitches.filter((s) => s.hostId === h.id).map((s) => s.name),
    };
  });
  const vmFacts = vms.map((vm: ManagedVm): UpgradeVmFacts => {
    return {
      id: vm.id,
      name: vm.name,
      host: vm.host,
      state: vm.state,
      memoryBytes: vm.memoryMiB * 2 ** 20,
      machineType: vm.machineType,
      cpuModel: vm.cpuModel,
      ha: vm.ha,
      disks: vm.disks.map((d) => ({ id: d.id, datastore: d.datastore, requiredBytes: requiredBytes(d) })),
      vswitches: [...new Set(vm.nics.map((n) => n.vswitch))],
    };
  });
  return { hosts: hostFacts, vms: vmFacts, hostIds: new Map(hosts.map((h) => [h.id, h.name])) };
}

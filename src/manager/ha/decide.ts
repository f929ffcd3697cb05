/*
 * The HA decision (issue 30): pure, so every rule is testable without a manager. Given the hosts
 * of the clusters (their reachability and since when, maintenance, lockspace, free memory and the
 * shared storages they see) and the VMs, it says which hosts are dead, which of their VMs restart
 * where, by priority, and which cannot restart and why.
 *
 * A host is dead when its agent has not answered for `deadAfterSeconds`. That alone never makes a
 * restart safe: the restart itself waits for the VM's lease, which the dead host's sanlock gives up
 * (by killing the QEMU) when it loses the storage, and which the others may take only once its
 * lease has expired. A host that is merely cut off from the manager but still renews its lease
 * keeps its VMs, and the restart keeps waiting: two QEMUs never run one VM's disks.
 *
 * Order: higher priority first, then name. A VM's preferred hosts come first, in its order; then
 * the peer with the most free memory. Memory is booked as VMs are placed, so one round never
 * overfills a host.
 */

export interface HaHost {
  name: string;
  cluster: string | null;
  reachable: boolean;
  /** When the manager last heard from its agent (ms since the epoch). */
  lastSeenMs: number;
  maintenance: 'none' | 'entering' | 'in';
  /** The host is in its cluster's lockspace: it can hold VM leases. */
  leases: boolean;
  memoryFreeBytes: number;
  /** Storage ids of the shared datastores it sees. */
  sharedStorage: readonly string[];
}

export interface HaVm {
  name: string;
  host: string;
  /** The inventory's last word (a dead host's VMs read as it last reported them). */
  running: boolean;
  memoryBytes: number;
  protected: boolean;
  priority: number;
  preferredHosts: readonly string[];
  /** Each disk: the storage id of its shared datastore, or null for a local one. */
  disks: readonly { id: string; datastore: string; storageId: string | null }[];
}

export interface HaRestart {
  vm: string;
  from: string;
  to: string;
  priority: number;
}

export interface HaStranded {
  vm: string;
  from: string;
  reason: string;
}

export interface HaDecision {
  deadHosts: string[];
  restarts: HaRestart[];
  stranded: HaStranded[];
}

/** The manager's default: an agent silent this long (5 polls) is dead as far as HA is concerned. */
export const DEFAULT_HA_DEAD_AFTER_SECONDS = 10;

export function decideHa(input: {
  hosts: readonly HaHost[];
  vms: readonly HaVm[];
  nowMs: number;
  deadAfterSeconds: number;
  /** VMs whose restart is already under way (a job runs): left alone. */
  restarting?: ReadonlySet<string>;
}): HaDecision {
  const dead = input.hosts.filter(
    (h) => h.cluster !== null && !h.reachable && input.nowMs - h.lastSeenMs >= input.deadAfterSeconds * 1000,
  );
  const deadNames = new Set(dead.map((h) => h.name));
  const byName = new Map(input.hosts.map((h) => [h.name, h]));
  const freeMemory = new Map(input.hosts.map((h) => [h.name, h.memoryFreeBytes]));
  const candidates = input.vms
    .filter((vm) => deadNames.has(vm.host) && vm.running && vm.protected && !input.restarting?.has(vm.name))
    .sort((a, b) => b.priority - a.priority || a.name.localeCompare(b.name));
  const restarts: HaRestart[] = [];
  const stranded: HaStranded[] = [];
  for (const vm of candidates) {
    const from = byName.get(vm.host)!;
    const local = vm.disks.find((d) => d.storageId === null);
    if (local) {
      stranded.push({
        vm: vm.name,
        from: vm.host,
        reason: `disk ${local.id} is on ${vm.host}'s local datastore ${local.datastore}`,
      });
      continue;
    }
    const storages = [...new Set(vm.disks.map((d) => d.storageId!))];
    const refusals: string[] = [];
    const fits = (h: HaHost): boolean => {
      const why =
        h.cluster !== from.cluster
          ? 'in another cluster'
          : !h.reachable || deadNames.has(h.name)
            ? 'unreachable'
            : h.maintenance !== 'none'
              ? 'in maintenance'
              : !h.leases
                ? 'not in the lockspace'
                : !storages.every((s) => h.sharedStorage.includes(s))
                  ? "does not see the VM's shared storage"
                  : (freeMemory.get(h.name) ?? 0) < vm.memoryBytes
                    ? 'not enough free memory'
                    : undefined;
      if (why && h.cluster === from.cluster && h.name !== from.name) refusals.push(`${h.name}: ${why}`);
      return why === undefined;
    };
    const peers = input.hosts.filter((h) => h.name !== from.name && fits(h));
    const preferred = vm.preferredHosts.map((n) => peers.find((h) => h.name === n)).find((h) => h);
    const target =
      preferred ??
      [...peers].sort(
        (a, b) =>
          (freeMemory.get(b.name) ?? 0) - (freeMemory.get(a.name) ?? 0) || a.name.localeCompare(b.name),
      )[0];
    if (!target) {
      stranded.push({
        vm: vm.name,
        from: vm.host,
        reason: refusals.length
          ? `no host can take it (${refusals.join('; ')})`
          : 'the cluster has no other host',
      });
      continue;
    }
    freeMemory.set(target.name, (freeMemory.get(target.name) ?? 0) - vm.memoryBytes);
    restarts.push({ vm: vm.name, from: vm.host, to: target.name, priority: vm.priority });
  }
  return { deadHosts: dead.map((h) => h.name).sort(), restarts, stranded };
}

/*
 * A drain's choices (pure): in which order the VMs leave a host going into maintenance, and which
 * hosts each one tries, best first. The move checks (a dry run per candidate) have the last word
 * on whether a VM fits; these only order and leave out what cannot take it now.
 */
import type { HostMaintenance, HostState, VmHa, VmState } from '../api/index.js';

export interface DrainVm {
  id: string;
  name: string;
  /** As the inventory last saw it (the move checks read the agent's own). */
  state: VmState;
  memoryBytes: number;
  ha: VmHa;
}

export interface DrainHost {
  id: string;
  name: string;
  clusterId: string | null;
  state: HostState;
  maintenance: HostMaintenance;
  /** As the inventory last saw it. */
  memoryFreeBytes: number;
}

/**
 * VMs a drain leaves where they are: nothing runs (a powered-off VM may stay on a host in
 * maintenance, as vSphere keeps powered-off VMs registered; it cannot be started there).
 */
export const STAYING_STATES: readonly VmState[] = ['stopped', 'crashed'];
/** States a VM passes through on its own: a drain waits for them to end before it moves the VM. */
export const PASSING_STATES: readonly VmState[] = ['starting', 'shutting-down', 'migrating', 'incoming'];

/** The order VMs leave: HA priority, highest first; protected before unprotected; then by name. */
export function drainOrder<T extends Pick<DrainVm, 'name' | 'ha'>>(vms: readonly T[]): T[] {
  return [...vms].sort(
    (a, b) =>
      b.ha.priority - a.ha.priority ||
      Number(b.ha.protected) - Number(a.ha.protected) ||
      (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
}

export interface DrainTargets {
  /** Hosts to try, best first: cluster peers, then the rest; preferred hosts, then most room. */
  candidates: DrainHost[];
  /** Hosts without the VM's memory once the drain's moves under way to them are counted. */
  noRoom: { host: DrainHost; freeBytes: number }[];
  /** Hosts that cannot take any VM now, and why. */
  excluded: { host: DrainHost; why: string }[];
}

/**
 * The hosts `vm` may go to from `source`. `reservedBytes`: memory that moves under way will take
 * on each host (by id), which the inventory's free figure may not show yet.
 */
export function drainTargets(
  vm: Pick<DrainVm, 'memoryBytes' | 'ha'>,
  source: Pick<DrainHost, 'id' | 'clusterId'>,
  hosts: readonly DrainHost[],
  reservedBytes: ReadonlyMap<string, number> = new Map(),
): DrainTargets {
  const out: DrainTargets = { candidates: [], noRoom: [], excluded: [] };
  const free = (h: DrainHost) => h.memoryFreeBytes - (reservedBytes.get(h.id) ?? 0);
  for (const h of hosts) {
    if (h.id === source.id) continue;
    if (h.state !== 'connected') out.excluded.push({ host: h, why: `host ${h.name} is unreachable` });
    else if (h.maintenance !== 'none')
      out.excluded.push({ host: h, why: `host ${h.name} is ${h.maintenance} maintenance` });
    else if (free(h) < vm.memoryBytes) out.noRoom.push({ host: h, freeBytes: free(h) });
    else out.candidates.push(h);
  }
  out.candidates.sort(
    targetRank({
      peer: (h) => source.clusterId !== null && h.clusterId === source.clusterId,
      preferredHosts: vm.ha.preferredHosts,
      free,
    }),
  );
  return out;
}

/** Where `host` stands in a VM's preferred hosts: 0 for the first, their count when not one. */
export function preferenceOf(preferredHosts: readonly string[], host: string): number {
  const i = preferredHosts.indexOf(host);
  return i < 0 ? preferredHosts.length : i;
}

/**
 * The drain's order of the hosts that can take a VM, as a sort comparator (the upgrade planner
 * ranks by it too, so its plan shows what the drain will do): the source's cluster peers first,
 * then the VM's preferred hosts in their order, then the most free memory, then the name.
 */
export function targetRank<H extends { name: string }>(by: {
  peer: (h: H) => boolean;
  preferredHosts: readonly string[];
  free: (h: H) => number;
}): (a: H, b: H) => number {
  const preference = (h: H) => preferenceOf(by.preferredHosts, h.name);
  return (a, b) =>
    Number(by.peer(b)) - Number(by.peer(a)) ||
    preference(a) - preference(b) ||
    by.free(b) - by.free(a) ||
    (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

const MiB = 2 ** 20;

/** Why a VM found no host, one clause per host (refusals: the failed checks of each one tried). */
export function whyNoTarget(
  vm: Pick<DrainVm, 'name' | 'memoryBytes'>,
  targets: Pick<DrainTargets, 'noRoom' | 'excluded'>,
  refusals: readonly { host: string; why: string }[],
): string {
  const clauses = [
    ...refusals.map((r) => `${r.host}: ${r.why}`),
    ...targets.noRoom.map(
      (n) =>
        `${n.host.name}: ${Math.max(0, Math.floor(n.freeBytes / MiB))} MiB free, ${vm.name} needs ${Math.ceil(vm.memoryBytes / MiB)} MiB`,
    ),
    ...targets.excluded.map((e) => e.why),
  ];
  return clauses.length ? `no host can take it (${clauses.join('; ')})` : 'there is no other host';
}

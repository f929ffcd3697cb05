/*
 * The rolling upgrade's plan (pure: the inventory in, an ordered plan or the stranded VMs out).
 * Hosts are upgraded one at a time; before each, its VMs leave as a drain moves them, and the
 * plan proves that each has somewhere to go at that moment.
 *
 * Order: at each step, of the hosts still to upgrade, the one with the fewest VMs to move now,
 * then the one whose most important VM (HA priority) matters least, then by name. Fewest first:
 * each step moves as little as it can, and a release that misbehaves shows itself first where the
 * least runs (a canary); the most important VMs move last, when the most hosts run the new
 * release to take them; the name makes the plan the same every time it is asked.
 *
 * Targets, for each VM in the drain's order (HA priority, highest first; protected first; name):
 * every other host that is up, not in maintenance, has the VM's memory free (counting the plan's
 * earlier moves), room on its default datastore for the disks it does not see (shared datastores
 * it sees keep theirs: a memory-only move), the same machine type and CPU model, the VM's virtual
 * switches, no VM of its name, and a QEMU not older than the one the VM runs on. Of those, the
 * drain's choice: a cluster peer first, then the VM's preferred hosts in order, then the most free
 * memory, then the name. A VM with no such host strands the plan: every other host is named with
 * each rule it fails.
 *
 * QEMU (QEMU_RULE): a live move starts a new QEMU process for the VM on the target, and a VM cannot
 * move from a QEMU to an older one (its migration stream and devices may not be understood). So a
 * VM runs on the QEMU of the host it is on (the agent upgrades only a host where no VM runs), and
 * after a move on its target's; a host upgraded by an earlier step runs the new QEMU, so a VM
 * moved onto it can only go on to other upgraded hosts (or ones as new). This is conservative: it
 * never plans a move to an older QEMU, even for a VM first booted on that older QEMU.
 */
import type {
  HostMaintenance,
  HostState,
  StrandedVm,
  UpgradeMove,
  UpgradePlan,
  UpgradeStay,
  UpgradeStep,
  UpgradeTargetRule,
  VmHa,
  VmState,
} from '../../api/index.js';
import { storageKey } from '../../api/index.js';
import { drainOrder, preferenceOf, STAYING_STATES, targetRank } from '../drain-plan.js';
import { compareVersions } from '../tools-status.js';

export const ORDER_RULE =
  'one host at a time: the one with the fewest VMs to move then, then the one whose most important VM (HA priority) matters least, then by name; so each step moves as little as it can, a bad release shows itself first where the least runs, and the most important VMs move when the most hosts run the new release';

export const QEMU_RULE =
  'a VM runs on the QEMU of its host, and a move starts it on the target QEMU; it may only move to a QEMU as new or newer, so a VM moved onto an upgraded host goes on only to upgraded hosts';

export interface UpgradeDatastore {
  name: string;
  default: boolean;
  freeBytes: number;
  /** A shared datastore's storage id: hosts whose datastores carry it see the same files. */
  storageId?: string | undefined;
}

export interface UpgradeHostFacts {
  name: string;
  /** Its cluster's name; null for a standalone host. */
  cluster: string | null;
  state: HostState;
  maintenance: HostMaintenance;
  agentVersion: string;
  qemuVersion: string;
  machineType: string;
  cpuModel: string;
  memoryFreeBytes: number;
  memoryBytes: number;
  datastores: UpgradeDatastore[];
  vswitches: string[];
}

export interface UpgradeVmFacts {
  id: string;
  name: string;
  host: string;
  state: VmState;
  memoryBytes: number;
  /** The QEMU version the VM runs on, when the inventory knows it; else its host's. */
  qemuVersion?: string | undefined;
  machineType: string;
  cpuModel: string;
  /** HA settings: priority 0-1000 (higher first), protected, preferred hosts by name. */
  ha: VmHa;
  /** Each disk's datastore on its host and the space a move needs for it (the move checks' rule). */
  disks: { id: string; datastore: string; requiredBytes: number }[];
  vswitches: string[];
}

export interface UpgradeInput {
  /** Every host the manager knows: those to upgrade and all the others. */
  hosts: readonly UpgradeHostFacts[];
  /** Names of the hosts to upgrade (each one of `hosts`). */
  upgrade: readonly string[];
  vms: readonly UpgradeVmFacts[];
  /** The QEMU the upgraded hosts run afterwards; absent: the newest any host runs now. */
  targetQemuVersion?: string | undefined;
}

export type UpgradeOutcome = { ok: true; plan: UpgradePlan } | { ok: false; stranded: StrandedVm[] };

/** The hosts of the plan whose QEMU is newer than `target` (an upgrade to it would go backwards). */
export function newerThanTarget(
  hosts: readonly Pick<UpgradeHostFacts, 'name' | 'qemuVersion'>[],
  target: string,
): { name: string; qemuVersion: string }[] {
  return hosts.filter((h) => compareVersions(h.qemuVersion, target) > 0);
}

const MiB = 2 ** 20;
const size = (bytes: number) =>
  bytes >= 1024 * MiB
    ? `${(bytes / (1024 * MiB)).toFixed(1)} GiB`
    : `${Math.max(0, Math.floor(bytes / MiB))} MiB`;
const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** What changes as the plan goes: where each VM is, what runs where, free memory and space. */
class Fabric {
  readonly hosts = new Map<string, UpgradeHostFacts>();
  readonly free = new Map<string, number>();
  readonly qemu = new Map<string, string>();
  /** Free bytes per storage: a shared one (by storage id) is one budget whichever host writes. */
  readonly space = new Map<string, number>();
  readonly vmHost = new Map<string, string>();
  readonly vmQemu = new Map<string, string>();
  readonly vmName = new Map<string, string>();

  constructor(input: UpgradeInput) {
    for (const h of input.hosts) {
      this.hosts.set(h.name, h);
      this.free.set(h.name, h.memoryFreeBytes);
      this.qemu.set(h.name, h.qemuVersion);
      for (const d of h.datastores) this.space.set(storeKey(h.name, d), d.freeBytes);
    }
    for (const vm of input.vms) {
      this.vmHost.set(vm.id, vm.host);
      this.vmName.set(vm.id, vm.name);
      this.vmQemu.set(vm.id, vm.qemuVersion ?? this.hosts.get(vm.host)?.qemuVersion ?? '0');
    }
  }

  /** Whether a VM named `vm` is on `host` now. */
  hasVmNamed(host: string, vm: string): boolean {
    return [...this.vmHost].some(([id, h]) => h === host && this.vmName.get(id) === vm);
  }

  host(name: string): UpgradeHostFacts {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`upgrade plan: unknown host ${name}`);
    return h;
  }
}

const storeKey = (host: string, d: UpgradeDatastore) =>
  storageKey({ host, name: d.name, storageId: d.storageId });

/** The disks of `vm` (on `source`) that `target` does not see, and where they would go. */
function disksToMirror(
  vm: UpgradeVmFacts,
  source: UpgradeHostFacts,
  target: UpgradeHostFacts,
): { bytes: number; store: UpgradeDatastore | undefined } {
  const seen = new Set(target.datastores.flatMap((d) => (d.storageId === undefined ? [] : [d.storageId])));
  const bytes = vm.disks
    .filter((disk) => {
      const storageId = source.datastores.find((d) => d.name === disk.datastore)?.storageId;
      return storageId === undefined || !seen.has(storageId);
    })
    .reduce((sum, disk) => sum + disk.requiredBytes, 0);
  return { bytes, store: target.datastores.find((d) => d.default) ?? target.datastores[0] };
}

type Failure = { rule: UpgradeTargetRule; detail: string };

/** Every rule `target` fails for `vm` leaving `source` now. */
function failures(
  f: Fabric,
  vm: UpgradeVmFacts,
  source: UpgradeHostFacts,
  target: UpgradeHostFacts,
): Failure[] {
  const out: Failure[] = [];
  const fail = (rule: UpgradeTargetRule, detail: string) => out.push({ rule, detail });
  if (target.state !== 'connected') fail('host-up', `${target.name} is unreachable`);
  if (target.maintenance !== 'none')
    fail('maintenance', `${target.name} is ${target.maintenance} maintenance`);
  const free = f.free.get(target.name) ?? 0;
  if (free < vm.memoryBytes)
    fail('memory', `${target.name} has ${size(free)} free, ${vm.name} needs ${size(vm.memoryBytes)}`);
  const mirror = disksToMirror(vm, source, target);
  if (mirror.bytes > 0) {
    const room = mirror.store ? (f.space.get(storeKey(target.name, mirror.store)) ?? 0) : 0;
    if (!mirror.store) fail('disk-space', `${target.name} has no datastore for ${vm.name}'s disks`);
    else if (room < mirror.bytes)
      fail(
        'disk-space',
        `datastore ${mirror.store.name} on ${target.name} has ${size(room)} free, ${vm.name}'s disks need ${size(mirror.bytes)}`,
      );
  }
  if (target.machineType !== vm.machineType)
    fail('machine-type', `${vm.name} uses ${vm.machineType}, ${target.name} offers ${target.machineType}`);
  if (target.cpuModel !== vm.cpuModel)
    fail('cpu-model', `${vm.name} uses ${vm.cpuModel}, ${target.name} offers ${target.cpuModel}`);
  const vmQemu = f.vmQemu.get(vm.id) ?? '0';
  const targetQemu = f.qemu.get(target.name) ?? '0';
  if (compareVersions(targetQemu, vmQemu) < 0)
    fail(
      'qemu-version',
      `${vm.name} runs on QEMU ${vmQemu}, ${target.name} has the older ${targetQemu}: a VM cannot move to an older QEMU`,
    );
  const missing = vm.vswitches.filter((s) => !target.vswitches.includes(s));
  if (missing.length) fail('vswitches', `${target.name} has no virtual switch ${missing.join(', ')}`);
  if (f.hasVmNamed(target.name, vm.name))
    fail('name-free', `${target.name} has a VM named ${vm.name} already`);
  return out;
}

export function planUpgrade(input: UpgradeInput): UpgradeOutcome {
  const f = new Fabric(input);
  const target =
    input.targetQemuVersion ??
    input.hosts.map((h) => h.qemuVersion).sort((a, b) => compareVersions(b, a))[0] ??
    '0';
  const vmsOn = (host: string) => input.vms.filter((vm) => f.vmHost.get(vm.id) === host);
  const moving = (host: string) => vmsOn(host).filter((vm) => !STAYING_STATES.includes(vm.state));
  const topPriority = (host: string) => Math.max(-1, ...moving(host).map((vm) => vm.ha.priority));

  const left = [...new Set(input.upgrade)];
  const steps: UpgradeStep[] = [];
  const stranded: StrandedVm[] = [];
  while (left.length) {
    left.sort(
      (a, b) => moving(a).length - moving(b).length || topPriority(a) - topPriority(b) || byName(a, b),
    );
    const name = left.shift() ?? '';
    const source = f.host(name);
    const step = steps.length + 1;
    const count = moving(name).length;
    const why =
      left.length === 0
        ? steps.length === 0
          ? 'the only host to upgrade'
          : 'the last host left'
        : `${count} VM${count === 1 ? '' : 's'} to move${count ? `, highest HA priority ${topPriority(name)}` : ''}: the fewest of the hosts left`;
    const moves: UpgradeMove[] = [];
    for (const vm of drainOrder(moving(name))) {
      const move = placeVm(f, vm, source, step);
      if ('stranded' in move) stranded.push(move.stranded);
      else moves.push(move);
    }
    const stays: UpgradeStay[] = vmsOn(name)
      .filter((vm) => STAYING_STATES.includes(vm.state))
      .sort((a, b) => byName(a.name, b.name))
      .map((vm) => ({
        vm: vm.name,
        vmId: vm.id,
        why: `${vm.state}: stays on ${name}, starts on QEMU ${target} when started`,
      }));
    const from = f.qemu.get(name) ?? source.qemuVersion;
    const to = compareVersions(from, target) > 0 ? from : target;
    f.qemu.set(name, to);
    steps.push({
      step,
      host: name,
      cluster: source.cluster,
      agentVersion: source.agentVersion,
      qemuVersion: { from, to },
      why,
      moves,
      stays,
    });
  }
  if (stranded.length) return { ok: false, stranded };
  return { ok: true, plan: { targetQemuVersion: target, orderRule: ORDER_RULE, qemuRule: QEMU_RULE, steps } };
}

/** Chooses the host `vm` goes to from `source` at `step`, and books it; or says why there is none. */
function placeVm(
  f: Fabric,
  vm: UpgradeVmFacts,
  source: UpgradeHostFacts,
  step: number,
): UpgradeMove | { stranded: StrandedVm } {
  const others = [...f.hosts.values()].filter((h) => h.name !== source.name);
  const verdicts = others.map((h) => ({ host: h, failed: failures(f, vm, source, h) }));
  const peer = (h: UpgradeHostFacts) => source.cluster !== null && h.cluster === source.cluster;
  const free = (h: UpgradeHostFacts) => f.free.get(h.name) ?? 0;
  const fits = verdicts
    .filter((v) => v.failed.length === 0)
    .map((v) => v.host)
    .sort(targetRank({ peer, preferredHosts: vm.ha.preferredHosts, free }));
  const chosen = fits[0];
  if (!chosen)
    return {
      stranded: {
        step,
        vm: vm.name,
        vmId: vm.id,
        host: source.name,
        targets: verdicts
          .sort((a, b) => byName(a.host.name, b.host.name))
          .map((v) => ({ host: v.host.name, failed: v.failed })),
      },
    };

  const mirror = disksToMirror(vm, source, chosen);
  // Book the move: memory and space on the target, freed on the source (the drain's move leaves
  // no copy behind), and the VM now runs on the target's QEMU.
  f.free.set(chosen.name, free(chosen) - vm.memoryBytes);
  f.free.set(source.name, (f.free.get(source.name) ?? 0) + vm.memoryBytes);
  if (mirror.store && mirror.bytes > 0) {
    const key = storeKey(chosen.name, mirror.store);
    f.space.set(key, (f.space.get(key) ?? 0) - mirror.bytes);
  }
  f.vmHost.set(vm.id, chosen.name);
  f.vmQemu.set(vm.id, f.qemu.get(chosen.name) ?? chosen.qemuVersion);

  const rank = [
    ...(peer(chosen)
      ? [`cluster peer (${source.cluster ?? ''})`]
      : source.cluster !== null
        ? [`not of cluster ${source.cluster}: no peer can take it`]
        : []),
    preferenceOf(vm.ha.preferredHosts, chosen.name) < vm.ha.preferredHosts.length
      ? 'preferred host'
      : 'most free memory',
  ].join(', ');
  const skipped = verdicts
    .filter((v) => v.failed.length > 0)
    .sort((a, b) => Number(peer(b.host)) - Number(peer(a.host)) || byName(a.host.name, b.host.name));
  const shown = skipped.slice(0, 3).map((v) => `${v.host.name}: ${v.failed.map((x) => x.rule).join(', ')}`);
  if (skipped.length > 3) shown.push(`${skipped.length - 3} more`);
  const memoryOnly = vm.disks.length > 0 && mirror.bytes === 0;
  const disks = memoryOnly
    ? 'memory only'
    : mirror.bytes > 0
      ? `disks mirrored (${size(mirror.bytes)} on ${mirror.store?.name ?? '?'})`
      : 'no disks';
  const why = [
    rank,
    `${size(free(chosen))} free after`,
    disks,
    ...(shown.length ? [`not ${shown.join('; ')}`] : []),
  ].join('; ');
  return { vm: vm.name, vmId: vm.id, to: chosen.name, memoryOnly, why };
}

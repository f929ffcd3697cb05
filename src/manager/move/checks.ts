/*
 * The checks before a move (pure: facts in, a plan with every check's verdict out). A move starts
 * only when all pass; a dry run returns them all. Each failed check says what to fix.
 *
 * Space rule (the "allocated" rule): a disk needs its allocated size on the source plus a margin
 * for what the guest writes while the move runs (5 % of its virtual size, at least 64 MiB, never
 * more than the virtual size). Target disks are thin like the source's (the mirror writes zeroes
 * as holes), so reserving the full virtual size would refuse moves that fit; the target is no
 * more over-committed than the source was. Disks going to the same datastore add up.
 */
import path from 'node:path';
import { compareVersions } from '../tools-status.js';
import {
  describeDiskRoute,
  SoftwareVersion,
  type DatastoreKind,
  type HostMaintenance,
  type MoveCheck,
  type MoveDatastores,
  type MoveDiskPlan,
  type MovePlan,
  type VmState,
} from '../../api/index.js';

const MiB = 1024 * 1024;
const MARGIN_MIN = 64 * MiB;
const MARGIN_SHARE = 0.05;

export const SPACE_RULE =
  'allocated: each disk needs its allocated size plus 5 % of its virtual size (at least 64 MiB, at most the virtual size) for writes during the move; disks on one datastore add up';

export interface DiskFacts {
  id: string;
  datastore: string;
  /** The image file on the source host. */
  path: string;
  virtualSizeBytes: number;
  allocatedBytes: number;
}

export interface DatastoreFacts {
  name: string;
  freeBytes: number;
  default: boolean;
  /** The directory on its host. */
  path: string;
  kind: DatastoreKind;
  /** A shared datastore's storage: hosts whose datastores carry the same id see the same files. */
  storageId?: string | undefined;
}

export interface VmFacts {
  id: string;
  name: string;
  state: VmState;
  memoryMiB: number;
  machineType: string;
  cpuModel: string;
  disks: DiskFacts[];
  nics: { id: string; vswitch: string }[];
  /** The guest tools disk is inserted. */
  toolsDisk: boolean;
  /** The guest agent version last reported; undefined when none ever answered. */
  toolsVersion: string | undefined;
}

export interface HostFacts {
  id: string;
  name: string;
  /** Answered the manager just now (with fromInventory: connected at the leader's last poll). */
  reachable: boolean;
  unreachableReason?: string | undefined;
  /** Facts from the inventory, not the agent: this manager does not lead, so it may not ask it. */
  fromInventory?: boolean;
  memoryFreeBytes: number;
  machineType: string;
  cpuModel: string;
  /** As `qemu-system-x86_64 --version` gives it, e.g. 10.0.2. */
  qemuVersion: string;
  accelerator: 'kvm' | 'tcg';
  datastores: DatastoreFacts[];
  vswitches: string[];
  /** Names of the VMs defined on the host. */
  vmNames: string[];
  /** The guest agent version on the host's tools disk; undefined when it has none. */
  toolsVersion: string | undefined;
  /**
   * The host holds the fabric certificates a TLS move needs (<stateDir>/tls); undefined when
   * unknown (an unreachable host, an agent that does not say: its prepare refuses then).
   */
  moveTls: boolean | undefined;
  /** A host in maintenance (entering or in) takes no VM: a move to it is refused. */
  maintenance: HostMaintenance;
}

/** What the agents' engine can do (a move that needs more is refused, saying so). */
export interface EngineAbilities {
  coldMove: boolean;
  secure: boolean;
}

export interface MoveFacts {
  vm: VmFacts;
  source: HostFacts;
  target: HostFacts;
  datastore?: MoveDatastores | undefined;
  secure: boolean;
  /** Other moves of this VM that have not ended. */
  inFlight: { jobId: string; kind: string }[];
  engine: EngineAbilities;
}

export function requiredBytes(disk: Pick<DiskFacts, 'virtualSizeBytes' | 'allocatedBytes'>): number {
  const margin = Math.max(MARGIN_MIN, Math.ceil(disk.virtualSizeBytes * MARGIN_SHARE));
  return Math.min(disk.virtualSizeBytes, disk.allocatedBytes + margin);
}

const size = (bytes: number) =>
  bytes >= 1024 * MiB ? `${(bytes / (1024 * MiB)).toFixed(1)} GiB` : `${Math.ceil(bytes / MiB)} MiB`;

class Checks {
  readonly list: MoveCheck[] = [];
  add(check: string, ok: boolean, detail: string, field?: string): void {
    this.list.push({ check, ok, detail, ...(field !== undefined ? { field } : {}) });
  }
  /** A passed check worth knowing before the move. */
  warn(check: string, detail: string): void {
    this.list.push({ check, ok: true, warning: true, detail });
  }
}

/*
 * The guest tools: an inserted tools disk is a file of the source host, as an ISO on a local
 * datastore blocks a vMotion: eject it first. Tools older than the target's only warn (the
 * Hyper-V habit: the move works, the upgrade is one insert away).
 */
function checkGuestTools(c: Checks, vm: VmFacts, target: HostFacts): void {
  c.add(
    'tools-disk',
    !vm.toolsDisk,
    vm.toolsDisk
      ? `${vm.name} has the guest tools disk inserted: eject it first (silobreak vm tools eject ${vm.name})`
      : 'no guest tools disk inserted',
  );
  if (vm.toolsVersion && target.toolsVersion && compareVersions(vm.toolsVersion, target.toolsVersion) < 0)
    c.warn(
      'guest-tools',
      `${vm.name}'s guest agent ${vm.toolsVersion} is older than ${target.name}'s tools ${target.toolsVersion}: ` +
        `upgrade it after the move (silobreak vm tools insert ${vm.name})`,
    );
}

function checkNotMoving(c: Checks, facts: { inFlight: MoveFacts['inFlight']; vm: VmFacts }): void {
  const busy = facts.inFlight[0];
  c.add(
    'no-move-in-flight',
    !busy,
    busy
      ? `${facts.vm.name} is already being moved by job ${busy.jobId} (${busy.kind}): wait for it or cancel it (silobreak vm move --cancel ${busy.jobId})`
      : `no other move of ${facts.vm.name} is in flight`,
  );
}

function checkReachable(c: Checks, host: HostFacts, role: 'source' | 'target'): void {
  c.add(
    `${role}-reachable`,
    host.reachable,
    host.reachable
      ? host.fromInventory
        ? `${role} host ${host.name} answered the leading manager's last poll`
        : `${role} host ${host.name} answers`
      : `${role} host ${host.name} is unreachable (${host.unreachableReason ?? 'no answer'}): start its agent or check the network, then retry`,
    role === 'target' ? 'to' : undefined,
  );
}

function checkNotInMaintenance(c: Checks, target: HostFacts): void {
  c.add(
    'target-maintenance',
    target.maintenance === 'none',
    target.maintenance === 'none'
      ? `host ${target.name} is not in maintenance`
      : `host ${target.name} is ${target.maintenance === 'in' ? 'in' : 'entering'} maintenance and takes no VM: choose another host, or end its maintenance (silobreak host resume ${target.name})`,
    'to',
  );
}

/**
 * Where a disk goes in a move to another host:
 * - `stays`: its datastore is shared and the target has a datastore of the same storage (the
 *   one asked for, or found by its storage id when none was asked for): the target opens the same
 *   file (its path relative to the datastore's root), nothing is copied;
 * - `copy`: mirrored (or copied cold) to `toDatastore` (the one asked for, else the target's
 *   default; undefined when it has none); `note` says why a shared disk is copied;
 * - `refused`: the datastore asked for is the disk's shared datastore, which the target does not
 *   see (no datastore of that storage there): said rather than copied somewhere unasked.
 * A cold move copies every disk (a stopped VM's definition cannot yet move without its disks),
 * and refuses to copy a disk onto the very storage it is on.
 */
export type DiskRoute =
  | { kind: 'stays'; toDatastore: string; storageId: string; file: string }
  | { kind: 'copy'; toDatastore: string | undefined; note?: string }
  | { kind: 'refused'; detail: string };

/** A disk file's path relative to its datastore's root, or undefined when it is not under it. */
export function fileInDatastore(datastorePath: string, diskPath: string): string | undefined {
  const file = path.posix.relative(path.posix.resolve(datastorePath), path.posix.resolve(diskPath));
  if (file === '' || file.startsWith('..') || path.posix.isAbsolute(file)) return undefined;
  return file;
}

export function routeDisk(q: {
  disk: DiskFacts;
  source: HostFacts;
  target: HostFacts;
  /** The datastore asked for this disk, if any. */
  requested: string | undefined;
  live: boolean;
}): DiskRoute {
  const { disk, source, target, requested, live } = q;
  const fallback = target.datastores.find((d) => d.default)?.name;
  const from = source.datastores.find((d) => d.name === disk.datastore);
  const storageId = from?.kind === 'shared' ? from.storageId : undefined;
  const copy = (to: string | undefined, note?: string): DiskRoute => ({
    kind: 'copy',
    toDatastore: to,
    ...(note === undefined ? {} : { note }),
  });
  if (from === undefined || storageId === undefined) return copy(requested ?? fallback);
  const twin = target.datastores.find((d) => d.kind === 'shared' && d.storageId === storageId);
  const file = fileInDatastore(from.path, disk.path);
  const shared = `shared datastore ${from.name} (storage ${storageId})`;
  if (requested !== undefined && requested !== twin?.name) {
    // Asked by the name it has on the source, on a target that does not see that storage.
    if (requested === from.name && twin === undefined)
      return {
        kind: 'refused',
        detail: `disk ${disk.id}: datastore ${requested} is ${shared}, which host ${target.name} does not see (${target.datastores.some((d) => d.name === requested) ? `its datastore ${requested} is other storage` : `it has no datastore ${requested}`}): mount that storage on ${target.name} and add it as a shared datastore, or name another datastore of ${target.name} to copy the disk to`,
      };
    return copy(requested);
  }
  if (twin === undefined)
    return copy(
      requested ?? fallback,
      `disk ${disk.id} is on ${shared}, which host ${target.name} does not see: it is copied (shared-nothing)`,
    );
  if (!live) {
    if (requested !== undefined)
      return {
        kind: 'refused',
        detail: `disk ${disk.id}: a cold move cannot leave a disk in place yet, and copying it onto the storage it is on (${twin.name} on ${target.name} is ${shared}) is refused: start ${source.name === target.name ? 'the VM' : 'the VM and move it live (memory only)'}, or name a datastore of other storage`,
      };
    return copy(
      fallback,
      `disk ${disk.id} is on ${shared}, which ${target.name} sees as ${twin.name}, but a cold move copies every disk: start the VM to move it by memory alone`,
    );
  }
  if (file === undefined)
    return copy(
      requested ?? fallback,
      `disk ${disk.id}'s file ${disk.path} is not under its datastore's directory ${from.path}: it is copied`,
    );
  return { kind: 'stays', toDatastore: twin.name, storageId, file };
}

/** Per-disk target datastores, with the checks that they exist and have room. */
function planDisks(
  c: Checks,
  disks: DiskFacts[],
  target: HostFacts,
  choose: (disk: DiskFacts) => string | undefined,
  field: string,
): MoveDiskPlan[] {
  const names = target.datastores.map((d) => d.name).join(', ') || 'none';
  const plans: MoveDiskPlan[] = [];
  for (const disk of disks) {
    const to = choose(disk);
    const exists = to !== undefined && target.datastores.some((d) => d.name === to);
    if (!exists) {
      c.add(
        'datastore-exists',
        false,
        to === undefined
          ? `disk ${disk.id}: host ${target.name} has no default datastore; name one with datastore (it has ${names})`
          : `disk ${disk.id}: host ${target.name} has no datastore ${to} (it has ${names})`,
        field,
      );
      continue;
    }
    plans.push({
      diskId: disk.id,
      fromDatastore: disk.datastore,
      toDatastore: to,
      virtualSizeBytes: disk.virtualSizeBytes,
      allocatedBytes: disk.allocatedBytes,
      requiredBytes: requiredBytes(disk),
    });
  }
  const byStore = new Map<string, MoveDiskPlan[]>();
  for (const p of plans) byStore.set(p.toDatastore, [...(byStore.get(p.toDatastore) ?? []), p]);
  for (const [store, group] of byStore) {
    const free = target.datastores.find((d) => d.name === store)?.freeBytes ?? 0;
    const need = group.reduce((sum, p) => sum + p.requiredBytes, 0);
    const list = group
      .map(
        (p) =>
          `${p.diskId} ${size(p.requiredBytes)} (allocated ${size(p.allocatedBytes)}, virtual ${size(p.virtualSizeBytes)})`,
      )
      .join(', ');
    c.add(
      'datastore-space',
      need <= free,
      need <= free
        ? `datastore ${store} on ${target.name}: ${size(free)} free, the disks need ${size(need)} (allocated rule)`
        : `datastore ${store} on ${target.name} has ${size(free)} free but the disks need ${size(need)} by the allocated rule: ${list}; free space there or choose another datastore`,
      field,
    );
  }
  return plans;
}

/**
 * QEMU 7.2 under TCG loses guest memory writes made during a live migration's pre-copy: about 1 in
 * 4 moves of a freshly booted busy guest left its kernel dead on the target (1 in 6 plain QEMU
 * migrations). QEMU 10.0 lost none in the same runs, so live moves under TCG need it. Under KVM the
 * kernel tracks dirty pages, so the check does not apply.
 */
export const MIN_TCG_LIVE_QEMU_MAJOR = 10;

/**
 * A live move starts the VM in the target's QEMU, which must read the source QEMU's migration
 * stream and devices: a newer QEMU reads an older one's, never the other way round. So a VM on an
 * upgraded host cannot go back to one not yet upgraded (a rolling upgrade's drains keep to this).
 * Versions compare as numbers (10.10 is newer than 10.9); one that is not a version (an agent
 * that could not read it) is not compared here.
 */
function checkQemuForLiveMove(c: Checks, vm: VmFacts, source: HostFacts, target: HostFacts): void {
  const old = [source, target].filter(
    (h) => h.accelerator === 'tcg' && qemuMajor(h.qemuVersion) < MIN_TCG_LIVE_QEMU_MAJOR,
  );
  const backwards =
    isVersion(source.qemuVersion) &&
    isVersion(target.qemuVersion) &&
    compareVersions(target.qemuVersion, source.qemuVersion) < 0;
  const problems = [
    ...(backwards
      ? [
          `${vm.name} runs on QEMU ${source.qemuVersion} (host ${source.name}) and host ${target.name} has the older QEMU ${target.qemuVersion}: a running VM cannot move to an older QEMU (its migration stream and devices would not be understood); choose a host with QEMU ${source.qemuVersion} or newer, or upgrade ${target.name} first`,
        ]
      : []),
    ...(old.length
      ? [
          `${old.map((h) => `host ${h.name} runs QEMU ${h.qemuVersion} under TCG`).join(', ')}: QEMU before ${MIN_TCG_LIVE_QEMU_MAJOR} loses guest memory writes during a live move under TCG (the guest can die on the target); upgrade QEMU there (on Debian 12 from bookworm-backports, as scripts/setup.sh does) or stop the VM and move it cold`,
        ]
      : []),
  ];
  c.add(
    'qemu-version',
    problems.length === 0,
    problems.length === 0
      ? source.qemuVersion === target.qemuVersion
        ? `QEMU ${source.qemuVersion} on both hosts can move a running guest`
        : `QEMU ${source.qemuVersion} to ${target.qemuVersion} can move a running guest (not to an older QEMU)`
      : problems.join('; '),
    'to',
  );
}

const isVersion = (version: string) => SoftwareVersion.safeParse(version).success;

function qemuMajor(version: string): number {
  const major = Number(/^(\d+)\./.exec(version)?.[1]);
  return Number.isFinite(major) ? major : 0;
}

/**
 * TLS on the move's QEMU hops (the default). A cold move's copy always runs over TLS-PSK with a
 * secret of its own (cold.ts), so it is secure as it is; a live one needs each host's fabric
 * certificates, checked here so a host without them refuses the move before any work starts.
 */
function checkSecure(c: Checks, facts: MoveFacts, cold: boolean): void {
  if (!facts.secure) {
    c.warn(
      'secure',
      'no TLS (--no-secure): the disks and memory cross the link in clear; only for a trusted dedicated link',
    );
    return;
  }
  if (cold) {
    c.add('secure', true, 'the cold copy runs over TLS with a secret of this move');
    return;
  }
  if (!facts.engine.secure) {
    c.add(
      'secure',
      false,
      'secure: TLS for the mirror and memory stream is not available in this version; move with --no-secure',
      'secure',
    );
    return;
  }
  const missing = [facts.source, facts.target].filter((h) => h.moveTls === false).map((h) => h.name);
  c.add(
    'secure',
    missing.length === 0,
    missing.length === 0
      ? 'TLS on the disk mirror and the memory stream; the target accepts only the source host'
      : `secure: ${missing.map((n) => `host ${n}`).join(' and ')} ${missing.length > 1 ? 'have' : 'has'} no fabric certificates for TLS (<stateDir>/tls): enroll ${missing.length > 1 ? 'them' : 'it'}, or move with --no-secure over a trusted dedicated link`,
    'secure',
  );
}

/** A move to another host: every check of the issue, in one list. */
export function planMove(facts: MoveFacts): MovePlan {
  const { vm, source, target } = facts;
  const c = new Checks();
  const live = vm.state === 'running';
  const cold = vm.state === 'stopped';
  c.add(
    'vm-state',
    live || cold,
    live
      ? `${vm.name} is running: a live move`
      : cold
        ? `${vm.name} is stopped: a cold move (disks copied, definition moved)`
        : `${vm.name} is ${vm.state}: a move needs it running or stopped; wait until it is, then retry`,
  );
  if (cold && !facts.engine.coldMove) {
    c.add(
      'cold-move',
      false,
      `${vm.name} is stopped and the hosts' agents cannot copy a stopped VM's disks yet: start it to move it live`,
    );
  }
  checkNotMoving(c, facts);
  const sameHost = source.id === target.id;
  c.add(
    'target-host',
    !sameHost,
    sameHost
      ? `${vm.name} already is on ${target.name}: choose another host, or move its disks with move-storage`
      : `from ${source.name} to ${target.name}`,
    'to',
  );
  checkReachable(c, source, 'source');
  checkReachable(c, target, 'target');
  if (!sameHost) checkNotInMaintenance(c, target);
  checkGuestTools(c, vm, target);
  checkSecure(c, facts, cold);
  const memoryBytes = live ? vm.memoryMiB * MiB : 0;
  if (live) {
    checkQemuForLiveMove(c, vm, source, target);
    c.add(
      'target-memory',
      target.memoryFreeBytes >= memoryBytes,
      `host ${target.name} has ${size(target.memoryFreeBytes)} free, ${vm.name} needs ${size(memoryBytes)}` +
        (target.memoryFreeBytes >= memoryBytes ? '' : ': stop or move VMs there, or choose another host'),
      'to',
    );
  }
  c.add(
    'machine-type',
    vm.machineType === target.machineType,
    vm.machineType === target.machineType
      ? `machine type ${vm.machineType} on both`
      : `${vm.name} uses machine type ${vm.machineType} but ${target.name} offers ${target.machineType}: choose a host with the same QEMU machine type`,
    'to',
  );
  c.add(
    'cpu-model',
    vm.cpuModel === target.cpuModel,
    vm.cpuModel === target.cpuModel
      ? `CPU model ${vm.cpuModel} on both`
      : `${vm.name} uses CPU model ${vm.cpuModel} but ${target.name} offers ${target.cpuModel}: choose a host with the same CPU model`,
    'to',
  );
  const missing = vm.nics.filter((n) => !target.vswitches.includes(n.vswitch));
  c.add(
    'vswitches',
    missing.length === 0,
    missing.length === 0
      ? `virtual switches ${[...new Set(vm.nics.map((n) => n.vswitch))].join(', ') || '(none needed)'} exist on ${target.name}`
      : `host ${target.name} has no virtual switch ${[...new Set(missing.map((n) => n.vswitch))].join(', ')} (NIC ${missing.map((n) => n.id).join(', ')}; it has ${target.vswitches.join(', ') || 'none'}): create it there or choose another host`,
    'to',
  );
  const nameTaken = !sameHost && target.vmNames.includes(vm.name);
  c.add(
    'name-free',
    !nameTaken,
    nameTaken
      ? `host ${target.name} already has a VM named ${vm.name}: rename or remove it first`
      : `the name ${vm.name} is free on ${target.name}`,
    'to',
  );
  const request = facts.datastore;
  const routes = new Map(
    vm.disks.map((disk) => [
      disk.id,
      routeDisk({
        disk,
        source,
        target,
        requested: typeof request === 'string' ? request : request?.[disk.id],
        live,
      }),
    ]),
  );
  const copied = planDisks(
    c,
    vm.disks.filter((d) => routes.get(d.id)?.kind === 'copy'),
    target,
    (disk) => {
      const route = routes.get(disk.id);
      return route?.kind === 'copy' ? route.toDatastore : undefined;
    },
    'datastore',
  );
  const disks: MoveDiskPlan[] = [];
  for (const disk of vm.disks) {
    const route = routes.get(disk.id);
    if (route?.kind === 'refused') c.add('shared-storage', false, route.detail, 'datastore');
    if (route?.kind === 'copy') {
      const planned = copied.find((p) => p.diskId === disk.id);
      if (planned) disks.push(planned);
      if (route.note !== undefined) c.warn('shared-storage', route.note);
    }
    if (route?.kind === 'stays')
      disks.push({
        diskId: disk.id,
        fromDatastore: disk.datastore,
        toDatastore: route.toDatastore,
        virtualSizeBytes: disk.virtualSizeBytes,
        allocatedBytes: disk.allocatedBytes,
        requiredBytes: 0,
        stays: { storageId: route.storageId, file: route.file },
      });
  }
  const staying = disks.filter((d) => d.stays);
  const memoryOnly = live && staying.length === vm.disks.length;
  if (staying.length)
    c.add(
      'shared-storage',
      true,
      `${staying.map((d) => `disk ${d.diskId} ${describeDiskRoute(d)}`).join('; ')}: host ${target.name} sees the same storage, nothing of ${staying.length === 1 ? 'it' : 'them'} is copied` +
        (memoryOnly ? '; the move is memory only' : ''),
    );
  if (request !== undefined && typeof request !== 'string') {
    const unknown = Object.keys(request).filter((id) => !vm.disks.some((d) => d.id === id));
    if (unknown.length) {
      c.add(
        'disk-ids',
        false,
        `datastore names disk ${unknown.join(', ')}, which ${vm.name} does not have (its disks: ${vm.disks.map((d) => d.id).join(', ') || 'none'})`,
        'datastore',
      );
    }
  }
  return {
    kind: 'vm-move',
    vm: { id: vm.id, name: vm.name },
    mode: cold ? 'cold' : 'live',
    from: source.name,
    to: target.name,
    disks,
    memoryOnly,
    memoryBytes,
    spaceRule: SPACE_RULE,
    checks: c.list,
    ok: c.list.every((x) => x.ok),
  };
}

export interface StorageMoveFacts {
  vm: VmFacts;
  host: HostFacts;
  datastore: string;
  diskIds?: string[] | undefined;
  inFlight: MoveFacts['inFlight'];
}

/** Disks to another datastore of the same host, while the VM runs. */
export function planStorageMove(facts: StorageMoveFacts): MovePlan {
  const { vm, host, datastore } = facts;
  const c = new Checks();
  c.add(
    'vm-state',
    vm.state === 'running',
    vm.state === 'running'
      ? `${vm.name} is running: its disks move live`
      : `${vm.name} is ${vm.state}: move-storage moves the disks of a running VM; start it first`,
  );
  checkNotMoving(c, facts);
  checkReachable(c, host, 'source');
  const unknown = (facts.diskIds ?? []).filter((id) => !vm.disks.some((d) => d.id === id));
  if (unknown.length) {
    c.add(
      'disk-ids',
      false,
      `${vm.name} has no disk ${unknown.join(', ')} (its disks: ${vm.disks.map((d) => d.id).join(', ') || 'none'})`,
      'disks',
    );
  }
  const chosen = vm.disks.filter((d) => (facts.diskIds ? facts.diskIds.includes(d.id) : true));
  const already = chosen.filter((d) => d.datastore === datastore);
  if (facts.diskIds && already.length) {
    c.add(
      'disks-elsewhere',
      false,
      `disk ${already.map((d) => d.id).join(', ')} already is on datastore ${datastore}: leave it out`,
      'disks',
    );
  }
  const moving = chosen.filter((d) => d.datastore !== datastore);
  c.add(
    'disks-to-move',
    moving.length > 0,
    moving.length > 0
      ? `disk ${moving.map((d) => d.id).join(', ')} to ${datastore}`
      : `every disk of ${vm.name} already is on datastore ${datastore}: nothing to move`,
    'datastore',
  );
  const disks = planDisks(c, moving, host, () => datastore, 'datastore');
  return {
    kind: 'vm-move-storage',
    vm: { id: vm.id, name: vm.name },
    mode: 'live',
    from: host.name,
    to: host.name,
    disks,
    memoryOnly: false,
    memoryBytes: 0,
    spaceRule: SPACE_RULE,
    checks: c.list,
    ok: c.list.every((x) => x.ok),
  };
}

/** The failed checks as one sentence per check. */
export function failedChecks(plan: MovePlan): MoveCheck[] {
  return plan.checks.filter((x) => !x.ok);
}

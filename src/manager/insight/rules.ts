import {
  DEFAULT_STORAGE_THRESHOLDS,
  type DatastoreLost,
  type DatastoreLostCause,
  type IssueSeverity,
  type StorageRule,
  type StorageThresholds,
  type ToolsStatus,
  sharedStorageSubject,
  storageKey,
} from '../../api/index.js';
import { compareVersions } from '../tools-status.js';
import { percentileMs, worstAvgLatencyMs, type IoSums } from './rates.js';

/*
 * The Storage Explorer's issue rules, pure: figures in, findings out, no I/O. The thresholds and
 * why they are what they are: DEFAULT_STORAGE_THRESHOLDS in src/api/storage.ts, each overridable
 * per datastore. Rules on I/O look at one "sustained" period (SUSTAINED_SECONDS, the last complete
 * 5-minute bucket): a burst shorter than that does not fire them.
 */

/** Period over which latency and throughput must hold (vCenter's "sustained for 5 minutes"). */
export const SUSTAINED_SECONDS = 300;
/** Part of that period the samples must cover: a VM up for one minute of it proves nothing. */
export const SUSTAINED_COVERAGE = 0.8;

export interface DatastoreFacts {
  host: string;
  name: string;
  fsType: string;
  capacityBytes: number;
  freeBytes: number;
  provisionedBytes: number;
  daysUntilFull: number | null;
  /** I/O of all its disks over the last sustained period; null when none. */
  sustained: IoSums | null;
  thresholds: StorageThresholds;
  /** A shared datastore's storage id (the inventory's); absent or null for a local one. */
  storageId?: string | null;
  /** Why its host does not reach this shared datastore, as the agent last said; absent or null when it does. */
  lost?: DatastoreLost | null;
}

export interface DiskFacts {
  vm: string;
  vmId: string;
  disk: string;
  host: string;
  datastore: string;
  format: 'qcow2' | 'raw';
  formatVersion: string | null;
  sustained: IoSums | null;
  thresholds: StorageThresholds;
}

export interface GuestFsFacts {
  vm: string;
  vmId: string;
  host: string;
  mountpoint: string;
  totalBytes: number;
  usedBytes: number;
  thresholds: StorageThresholds;
}

export interface Finding {
  rule: StorageRule;
  severity: IssueSeverity;
  subject: { kind: 'datastore' | 'disk' | 'vm'; key: string; name: string; host: string | null };
  message: string;
  value: number | null;
  threshold: number | null;
}

const pct = (n: number) => `${n.toFixed(1)} %`;
const round = (n: number, digits = 1) => Number(n.toFixed(digits));
const MiB = 2 ** 20;

/** The effective thresholds of a datastore: defaults, then its overrides. */
export function effectiveThresholds(overrides: Partial<StorageThresholds> | undefined): StorageThresholds {
  return { ...DEFAULT_STORAGE_THRESHOLDS, ...(overrides ?? {}) };
}

/** Band of a value that is bad when high (warning at `warning`, critical at `critical`). */
function above(value: number, warning: number, critical: number): IssueSeverity | undefined {
  if (value >= critical) return 'critical';
  if (value >= warning) return 'warning';
  return undefined;
}

const covers = (s: IoSums | null): s is IoSums =>
  s !== null && s.seconds >= SUSTAINED_SECONDS * SUSTAINED_COVERAGE;

/** What each way of losing a shared datastore means for its host, in an issue's words. */
const LOST_CAUSES: Record<DatastoreLostCause, string> = {
  'no-answer': 'its mount does not answer',
  error: 'its mount fails',
  'not-the-storage': 'the storage is not mounted',
  'lockspace-lost': 'its cluster lockspace on it was lost',
};

/**
 * A host that cannot reach a shared datastore it configures: critical, since its VMs on that
 * storage stall (and, in a cluster, are fenced once its lease lapses) and nothing moves there.
 */
export function sharedLossFinding(
  d: Pick<DatastoreFacts, 'host' | 'name' | 'storageId' | 'lost'>,
): Finding | undefined {
  if (!d.lost) return undefined;
  const storage = d.storageId ? ` (storage ${d.storageId})` : '';
  return {
    rule: 'shared-datastore-lost',
    severity: 'critical',
    subject: { kind: 'datastore', key: `${d.host}/${d.name}`, name: `${d.host}/${d.name}`, host: d.host },
    message: `${d.host} cannot reach shared datastore ${d.name}${storage}: ${LOST_CAUSES[d.lost.cause]} (${d.lost.detail})`,
    value: null,
    threshold: null,
  };
}

/** The figures the capacity rules read: one datastore's, or one shared storage's (sharedStorageFindings). */
type CapacityFacts = Pick<
  DatastoreFacts,
  'capacityBytes' | 'freeBytes' | 'provisionedBytes' | 'daysUntilFull' | 'thresholds'
>;

/**
 * A datastore's rules: its host's reach of it (shared ones), its I/O latency as its host sees it,
 * and, for a local one, its space (a shared storage's space is one issue for all its hosts:
 * sharedStorageFindings).
 */
export function datastoreFindings(d: DatastoreFacts): Finding[] {
  const t = d.thresholds;
  const subject = {
    kind: 'datastore' as const,
    key: `${d.host}/${d.name}`,
    name: `${d.host}/${d.name}`,
    host: d.host,
  };
  const out: Finding[] = [];
  const lost = sharedLossFinding(d);
  if (lost) out.push(lost);
  if (!d.storageId) out.push(...capacityFindings(d, subject));
  if (covers(d.sustained)) {
    const p90 = Math.max(
      percentileMs(d.sustained.readBins, 0.9) ?? 0,
      percentileMs(d.sustained.writeBins, 0.9) ?? 0,
    );
    if (p90 > t.datastoreLatencyP90Ms)
      out.push({
        rule: 'high-latency',
        severity: 'warning',
        subject,
        message: `p90 latency ${p90.toFixed(1)} ms over ${SUSTAINED_SECONDS / 60} minutes (above ${t.datastoreLatencyP90Ms} ms)`,
        value: round(p90, 2),
        threshold: t.datastoreLatencyP90Ms,
      });
  }
  return out;
}

/**
 * A shared storage's space, once for all the hosts that see it (each host's datastore row is one
 * view of the same filesystem): on what can be counted on, the largest capacity, the least free
 * space and the soonest full any of them reported, and the provisioned size of every host's disks
 * on it (each host counts its own VMs'). Its thresholds are those of the first host's datastore by
 * name. The subject is the storage (storageKey), named with the datastores that see it, on no host.
 */
export function sharedStorageFindings(datastores: readonly DatastoreFacts[]): Finding[] {
  const byStorage = new Map<string, DatastoreFacts[]>();
  for (const d of datastores) {
    if (!d.storageId) continue;
    const key = storageKey(d);
    byStorage.set(key, [...(byStorage.get(key) ?? []), d]);
  }
  return [...byStorage].flatMap(([key, views]) => {
    const sorted = [...views].sort((a, b) => `${a.host}/${a.name}`.localeCompare(`${b.host}/${b.name}`));
    const days = sorted.flatMap((d) => (d.daysUntilFull === null ? [] : [d.daysUntilFull]));
    const facts: CapacityFacts = {
      capacityBytes: Math.max(...sorted.map((d) => d.capacityBytes)),
      freeBytes: Math.min(...sorted.map((d) => d.freeBytes)),
      provisionedBytes: sorted.reduce((sum, d) => sum + d.provisionedBytes, 0),
      daysUntilFull: days.length ? Math.min(...days) : null,
      thresholds: sorted[0]!.thresholds,
    };
    const name = sharedStorageSubject(
      key,
      sorted.map((d) => `${d.host}/${d.name}`),
    );
    return capacityFindings(facts, { kind: 'datastore', key, name, host: null });
  });
}

/** Space rules: free space below its bands, full within its bands, provisioned far past capacity. */
function capacityFindings(d: CapacityFacts, subject: Finding['subject']): Finding[] {
  const t = d.thresholds;
  const out: Finding[] = [];
  const freePercent = d.capacityBytes > 0 ? (d.freeBytes / d.capacityBytes) * 100 : null;

  if (freePercent !== null) {
    const severity =
      freePercent < t.freeCriticalPercent
        ? 'critical'
        : freePercent < t.freeWarningPercent
          ? 'warning'
          : undefined;
    if (severity)
      out.push({
        rule: 'low-capacity',
        severity,
        subject,
        message: `${pct(freePercent)} free (below ${severity === 'critical' ? t.freeCriticalPercent : t.freeWarningPercent} %)`,
        value: round(freePercent, 2),
        threshold: severity === 'critical' ? t.freeCriticalPercent : t.freeWarningPercent,
      });
  }

  const days = d.daysUntilFull;
  if (days !== null && days < t.daysUntilFullInfo) {
    const [severity, band]: [IssueSeverity, number] =
      days < t.daysUntilFullCritical
        ? ['critical', t.daysUntilFullCritical]
        : days < t.daysUntilFullWarning
          ? ['warning', t.daysUntilFullWarning]
          : ['info', t.daysUntilFullInfo];
    out.push({
      rule: 'days-until-full',
      severity,
      subject,
      message: `full in ${days.toFixed(1)} days at the growth of the last ${t.trendWindowHours} h (under ${band})`,
      value: round(days, 2),
      threshold: band,
    });
  }

  if (d.capacityBytes > 0) {
    const ratio = d.provisionedBytes / d.capacityBytes;
    if (ratio >= t.overcommitWarningRatio) {
      // Thin disks make a high ratio normal; it becomes urgent when the space runs out too.
      const atRisk =
        (freePercent !== null && freePercent < t.freeWarningPercent) ||
        (days !== null && days < t.daysUntilFullInfo);
      const critical = ratio >= t.overcommitCriticalRatio;
      const severity: IssueSeverity = critical
        ? atRisk
          ? 'critical'
          : 'warning'
        : atRisk
          ? 'warning'
          : 'info';
      out.push({
        rule: 'over-commitment',
        severity,
        subject,
        message:
          `provisioned ${ratio.toFixed(2)}x the capacity (above ${critical ? t.overcommitCriticalRatio : t.overcommitWarningRatio})` +
          (atRisk ? ' while free space runs low or shrinks' : '; free space is not shrinking'),
        value: round(ratio, 3),
        threshold: critical ? t.overcommitCriticalRatio : t.overcommitWarningRatio,
      });
    }
  }
  return out;
}

/**
 * Format version mismatch: a qcow2 disk at an older compat level than the newest in the fabric
 * (warning when a newer one shares its datastore, info when only elsewhere); and datastores whose
 * filesystem type differs from the fabric's most common one (info).
 */
export function mismatchFindings(
  disks: readonly DiskFacts[],
  datastores: readonly DatastoreFacts[],
): Finding[] {
  const out: Finding[] = [];
  const versions = disks.filter((d) => d.format === 'qcow2' && d.formatVersion !== null);
  const newest = (list: readonly DiskFacts[]) =>
    list.reduce<string | null>(
      (m, d) =>
        d.formatVersion !== null && (m === null || compareVersions(d.formatVersion, m) > 0)
          ? d.formatVersion
          : m,
      null,
    );
  const fabricNewest = newest(versions);
  const byDatastore = new Map<string, DiskFacts[]>();
  for (const d of versions) {
    const key = `${d.host}/${d.datastore}`;
    const list = byDatastore.get(key);
    if (list) list.push(d);
    else byDatastore.set(key, [d]);
  }
  const localNewest = new Map([...byDatastore].map(([k, list]) => [k, newest(list)]));
  for (const d of versions) {
    if (
      fabricNewest === null ||
      d.formatVersion === null ||
      compareVersions(d.formatVersion, fabricNewest) >= 0
    )
      continue;
    const local = localNewest.get(`${d.host}/${d.datastore}`) ?? null;
    const mixedHere = local !== null && compareVersions(d.formatVersion, local) < 0;
    out.push({
      rule: 'format-version-mismatch',
      severity: mixedHere ? 'warning' : 'info',
      subject: { kind: 'disk', key: `${d.vmId}/${d.disk}`, name: `${d.vm}/${d.disk}`, host: d.host },
      message:
        `qcow2 compat ${d.formatVersion} where ${mixedHere ? `datastore ${d.host}/${d.datastore}` : 'the fabric'} ` +
        `has ${mixedHere ? local : fabricNewest} (qemu-img amend -o compat=${fabricNewest} upgrades it while the VM is off)`,
      value: null,
      threshold: null,
    });
  }

  const known = datastores.filter((d) => d.fsType !== 'unknown' && d.fsType !== '');
  const counts = new Map<string, number>();
  for (const d of known) counts.set(d.fsType, (counts.get(d.fsType) ?? 0) + 1);
  if (counts.size > 1) {
    // The most common type (ties: the first in name order) is the fabric's; the others differ.
    const [common] = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0] ?? [''];
    for (const d of known.filter((x) => x.fsType !== common))
      out.push({
        rule: 'filesystem-mismatch',
        severity: 'info',
        subject: { kind: 'datastore', key: `${d.host}/${d.name}`, name: `${d.host}/${d.name}`, host: d.host },
        message: `filesystem ${d.fsType} where most datastores of the fabric use ${common}`,
        value: null,
        threshold: null,
      });
  }
  return out;
}

/** VM latency per disk, and VM throughput per VM (its disks together), over the sustained period. */
export function vmIoFindings(disks: readonly DiskFacts[]): Finding[] {
  const out: Finding[] = [];
  const perVm = new Map<
    string,
    { vm: string; host: string; bytes: number; seconds: number; t: StorageThresholds }
  >();
  for (const d of disks) {
    if (!covers(d.sustained)) continue;
    const s = d.sustained;
    const t = d.thresholds;
    const latency = worstAvgLatencyMs(s);
    const severity =
      latency === null ? undefined : above(latency, t.vmLatencyWarningMs, t.vmLatencyCriticalMs);
    if (severity && latency !== null)
      out.push({
        rule: 'vm-latency',
        severity,
        subject: { kind: 'disk', key: `${d.vmId}/${d.disk}`, name: `${d.vm}/${d.disk}`, host: d.host },
        message: `average ${s.writeOps > 0 && s.writeNs / s.writeOps / 1e6 === latency ? 'write' : 'read'} latency ${latency.toFixed(1)} ms over ${SUSTAINED_SECONDS / 60} minutes`,
        value: round(latency, 2),
        threshold: severity === 'critical' ? t.vmLatencyCriticalMs : t.vmLatencyWarningMs,
      });
    const vm = perVm.get(d.vmId) ?? { vm: d.vm, host: d.host, bytes: 0, seconds: s.seconds, t };
    vm.bytes += s.readBytes + s.writeBytes;
    vm.seconds = Math.max(vm.seconds, s.seconds);
    perVm.set(d.vmId, vm);
  }
  for (const [vmId, v] of perVm) {
    const rate = v.bytes / v.seconds;
    const severity = above(
      rate,
      v.t.vmThroughputWarningBytesPerSecond,
      v.t.vmThroughputCriticalBytesPerSecond,
    );
    if (!severity) continue;
    const threshold =
      severity === 'critical'
        ? v.t.vmThroughputCriticalBytesPerSecond
        : v.t.vmThroughputWarningBytesPerSecond;
    out.push({
      rule: 'vm-throughput',
      severity,
      subject: { kind: 'vm', key: vmId, name: v.vm, host: v.host },
      message: `${(rate / MiB).toFixed(0)} MiB/s over ${SUSTAINED_SECONDS / 60} minutes (above ${(threshold / MiB).toFixed(0)} MiB/s)`,
      value: Math.round(rate),
      threshold,
    });
  }
  return out;
}

/** A guest filesystem nearly full; unknown usage (no guest agent) never fires. */
export function guestFindings(filesystems: readonly GuestFsFacts[]): Finding[] {
  const out: Finding[] = [];
  for (const f of filesystems) {
    if (!(f.totalBytes > 0)) continue;
    const used = (f.usedBytes / f.totalBytes) * 100;
    const t = f.thresholds;
    const severity = above(used, t.guestUsedWarningPercent, t.guestUsedCriticalPercent);
    if (!severity) continue;
    out.push({
      rule: 'vm-low-disk-space',
      severity,
      subject: {
        kind: 'vm',
        key: `${f.vmId}:${f.mountpoint}`,
        name: `${f.vm}:${f.mountpoint}`,
        host: f.host,
      },
      message: `guest filesystem ${f.mountpoint} is ${pct(used)} full`,
      value: round(used, 2),
      threshold: severity === 'critical' ? t.guestUsedCriticalPercent : t.guestUsedWarningPercent,
    });
  }
  return out;
}

/** Every rule over the fabric's figures. */
/** A running VM's guest tools (tools-status.ts decides the status). */
export interface GuestToolsFacts {
  vm: string;
  vmId: string;
  host: string;
  status: ToolsStatus | null;
  installed: string | null;
  current: string | null;
}

/**
 * Guest tools that need attention, so that "which VMs need an upgrade" is one issue list: an
 * outdated or silent agent warns, one never heard since the boot is worth knowing (info).
 */
export function toolsFindings(vms: readonly GuestToolsFacts[]): Finding[] {
  return vms.flatMap((v): Finding[] => {
    if (v.status === null || v.status === 'current') return [];
    const subject = { kind: 'vm' as const, key: v.vmId, name: v.vm, host: v.host };
    const message =
      v.status === 'outdated'
        ? `VM ${v.vm}: guest agent ${v.installed} is older than ${v.host}'s tools ${v.current}: silobreak vm tools insert ${v.vm}`
        : v.status === 'not-answering'
          ? `VM ${v.vm}: its guest agent (${v.installed}) stopped answering`
          : `VM ${v.vm}: no guest agent answered since it started`;
    return [
      {
        rule: 'vm-tools',
        severity: v.status === 'missing' ? 'info' : 'warning',
        subject,
        message,
        value: null,
        threshold: null,
      },
    ];
  });
}

export function evaluateRules(input: {
  datastores: readonly DatastoreFacts[];
  disks: readonly DiskFacts[];
  guestFilesystems: readonly GuestFsFacts[];
  guestTools?: readonly GuestToolsFacts[];
}): Finding[] {
  return [
    ...input.datastores.flatMap(datastoreFindings),
    ...sharedStorageFindings(input.datastores),
    ...mismatchFindings(input.disks, input.datastores),
    ...vmIoFindings(input.disks),
    ...guestFindings(input.guestFilesystems),
    ...toolsFindings(input.guestTools ?? []),
  ];
}

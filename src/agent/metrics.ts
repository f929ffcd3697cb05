import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import {
  VmState,
  type Accelerator,
  type BlockCounters,
  type DatastoreStats,
  type DiskStats,
  type HostStats,
  type LatencyHistograms,
} from '../api/index.js';
import type { VmSnapshot } from './stats.js';

/*
 * Prometheus text exposition (format 0.0.4) of one host's figures, rendered with prom-client into
 * a fresh registry per scrape (nothing is remembered between scrapes: the agent's poll is the one
 * source). Base units in names, counters end in _total, every series carries the host label so a
 * scraper of many agents can tell them apart. (Its media type is the metrics route's, in
 * src/api/agent-routes.ts.)
 */

export interface MetricsSnapshot {
  accelerator: Accelerator;
  memoryBytes: number;
  memoryFreeBytes: number;
  vms: VmSnapshot[];
  stats: HostStats;
}

type Labels = Record<string, string>;
interface Sample {
  labels: Labels;
  value: number;
}
type BucketValue = { labels: Labels; value: number; metricName: string };

const NS = 1e9; // per second
const OPS = ['read', 'write', 'flush'] as const;

/**
 * A histogram whose buckets QEMU already counted (block-latency-histogram-set): the values are
 * given, not observed. It has no _sum: QEMU's bins start when the agent switched them on, its
 * total times at QEMU's start, so no exact sum of the binned requests exists — the average comes
 * from silobreak_disk_*_time_seconds_total ÷ silobreak_disk_*_operations_total instead.
 */
class BinnedHistogram extends Histogram<string> {
  readonly #name: string;
  readonly #help: string;
  readonly #values: BucketValue[];
  constructor(name: string, help: string, values: BucketValue[], registry: Registry) {
    super({ name, help, labelNames: [], registers: [] });
    [this.#name, this.#help, this.#values] = [name, help, values];
    registry.registerMetric(this);
  }
  /** What the registry renders in the text format (it prefers this to get() when present). */
  getForPromString() {
    return Promise.resolve({
      name: this.#name,
      help: this.#help,
      type: 'histogram',
      values: this.#values,
      aggregator: 'sum',
    });
  }
}

/** Cumulative buckets (le in seconds), then _count, from QEMU's per-bin counts. */
export function latencyBuckets(labels: Labels, boundariesNs: readonly number[], bins: readonly number[]) {
  const values: BucketValue[] = [];
  let cumulative = 0;
  bins.forEach((count, i) => {
    cumulative += count;
    const bound = boundariesNs[i];
    const le = bound === undefined ? '+Inf' : String(bound / NS);
    values.push({
      labels: { ...labels, le },
      value: cumulative,
      metricName: 'silobreak_disk_latency_seconds_bucket',
    });
  });
  values.push({ labels, value: cumulative, metricName: 'silobreak_disk_latency_seconds_count' });
  return values;
}

/** Disk counters since the VM's QEMU started (a restart or a move starts them again from zero). */
const DISK_COUNTERS: [name: string, what: string, pick: (c: BlockCounters) => number][] = [
  ['silobreak_disk_read_operations_total', 'Read requests of the guest on the disk', (c) => c.readOps],
  ['silobreak_disk_write_operations_total', 'Write requests of the guest on the disk', (c) => c.writeOps],
  ['silobreak_disk_flush_operations_total', 'Flush requests of the guest on the disk', (c) => c.flushOps],
  ['silobreak_disk_read_bytes_total', 'Bytes read by the guest from the disk', (c) => c.readBytes],
  ['silobreak_disk_written_bytes_total', 'Bytes written by the guest to the disk', (c) => c.writeBytes],
  [
    'silobreak_disk_read_time_seconds_total',
    "Time the disk's reads took, summed,",
    (c) => c.readTotalNs / NS,
  ],
  [
    'silobreak_disk_write_time_seconds_total',
    "Time the disk's writes took, summed,",
    (c) => c.writeTotalNs / NS,
  ],
  [
    'silobreak_disk_flush_time_seconds_total',
    "Time the disk's flushes took, summed,",
    (c) => c.flushTotalNs / NS,
  ],
  // The first names, kept for the dashboards built on them.
  ['silobreak_vm_disk_read_bytes_total', 'As silobreak_disk_read_bytes_total:', (c) => c.readBytes],
  ['silobreak_vm_disk_written_bytes_total', 'As silobreak_disk_written_bytes_total:', (c) => c.writeBytes],
  ['silobreak_vm_disk_read_ops_total', 'As silobreak_disk_read_operations_total:', (c) => c.readOps],
  ['silobreak_vm_disk_write_ops_total', 'As silobreak_disk_write_operations_total:', (c) => c.writeOps],
];

interface Family {
  name: string;
  help: string;
  labelNames: string[];
  samples: Sample[];
}

export async function renderMetrics(s: MetricsSnapshot): Promise<string> {
  const registry = new Registry();
  const host = { host: s.stats.host };
  const gauge = (f: Family) => {
    const g = new Gauge({ name: f.name, help: f.help, labelNames: f.labelNames, registers: [registry] });
    for (const { labels, value } of f.samples) g.set(labels, value);
  };
  const H = ['host'];
  const HVM = ['host', 'vm'];
  const HVMD = ['host', 'vm', 'disk'];
  const HDS = ['host', 'datastore'];
  const HVMFS = ['host', 'vm', 'mountpoint', 'fstype'];
  const perVm = (pick: (vm: VmSnapshot) => number) =>
    s.vms.map((vm) => ({ labels: { ...host, vm: vm.name }, value: pick(vm) }));
  const diskLabels = (d: DiskStats) => ({ ...host, vm: d.vm, disk: d.disk });
  const perDisk = (pick: (d: DiskStats) => number) =>
    s.stats.disks.map((d) => ({ labels: diskLabels(d), value: pick(d) }));
  const perDatastore = (pick: (d: DatastoreStats) => number) =>
    s.stats.datastores.map((d) => ({ labels: { ...host, datastore: d.name }, value: pick(d) }));
  const guestFs = s.stats.guests.flatMap((g) =>
    (g.filesystems ?? []).map((f) => ({
      labels: { ...host, vm: g.vm, mountpoint: f.mountpoint, fstype: f.type },
      f,
    })),
  );
  const info = (name: string, help: string, labelNames: string[], labels: Labels[]) =>
    gauge({
      name,
      help: `${help} (value is always 1).`,
      labelNames,
      samples: labels.map((l) => ({ labels: l, value: 1 })),
    });

  info(
    'silobreak_accelerator_info',
    'Accelerator this host runs its VMs with',
    [...H, 'accelerator'],
    [{ ...host, accelerator: s.accelerator }],
  );
  gauge({
    name: 'silobreak_host_memory_bytes',
    help: 'Physical memory of the host.',
    labelNames: H,
    samples: [{ labels: host, value: s.memoryBytes }],
  });
  gauge({
    name: 'silobreak_host_memory_unpromised_bytes',
    help: 'Host memory not promised to running VMs.',
    labelNames: H,
    samples: [{ labels: host, value: s.memoryFreeBytes }],
  });
  gauge({
    name: 'silobreak_vms',
    help: 'VMs defined on the host, by state.',
    labelNames: [...H, 'state'],
    samples: VmState.options.map((state) => ({
      labels: { ...host, state },
      value: s.vms.filter((vm) => vm.state === state).length,
    })),
  });
  gauge({
    name: 'silobreak_vm_running',
    help: '1 when the VM has a QEMU process, 0 when it is stopped.',
    labelNames: HVM,
    samples: perVm((vm) => (vm.state === 'stopped' || vm.state === 'crashed' ? 0 : 1)),
  });
  gauge({
    name: 'silobreak_vm_vcpus',
    help: 'Virtual CPUs of the VM.',
    labelNames: HVM,
    samples: perVm((vm) => vm.vcpus),
  });
  gauge({
    name: 'silobreak_vm_memory_bytes',
    help: 'Memory of the VM.',
    labelNames: HVM,
    samples: perVm((vm) => vm.memoryBytes),
  });

  const counted = s.stats.disks.flatMap((d) => (d.counters ? [{ d, c: d.counters }] : []));
  for (const [name, what, pick] of DISK_COUNTERS) {
    const counter = new Counter({
      name,
      help: `${what} since its QEMU started.`,
      labelNames: HVMD,
      registers: [registry],
    });
    for (const { d, c } of counted) counter.inc(diskLabels(d), pick(c));
  }
  const histograms = s.stats.disks.flatMap((d) => (d.histograms ? [{ d, h: d.histograms }] : []));
  new BinnedHistogram(
    'silobreak_disk_latency_seconds',
    "Latency of the disk's requests by operation, from QEMU's bins since the agent switched them on (no _sum, see the _time_seconds_total counters).",
    histograms.flatMap(({ d, h }) =>
      OPS.flatMap((op) => latencyBuckets({ ...diskLabels(d), op }, h.boundariesNs, binsOf(h, op))),
    ),
    registry,
  );
  info(
    'silobreak_disk_info',
    'Image format and format version (qcow2 compat level) of the disk',
    [...HVMD, 'datastore', 'format', 'format_version'],
    s.stats.disks.map((d) => ({
      ...diskLabels(d),
      datastore: d.datastore,
      format: d.format,
      format_version: d.formatVersion ?? '',
    })),
  );
  gauge({
    name: 'silobreak_disk_virtual_bytes',
    help: 'Size of the disk as the guest sees it.',
    labelNames: HVMD,
    samples: perDisk((d) => d.virtualSizeBytes),
  });
  gauge({
    name: 'silobreak_disk_allocated_bytes',
    help: "Bytes the disk's image takes on its datastore.",
    labelNames: HVMD,
    samples: perDisk((d) => d.allocatedBytes),
  });

  info(
    'silobreak_datastore_info',
    'Filesystem type of the datastore',
    [...HDS, 'fs_type'],
    s.stats.datastores.map((d) => ({ ...host, datastore: d.name, fs_type: d.fsType })),
  );
  for (const [name, help, pick] of [
    [
      'silobreak_datastore_capacity_bytes',
      'Size of the filesystem holding the datastore.',
      (d) => d.capacityBytes,
    ],
    [
      'silobreak_datastore_free_bytes',
      'Bytes still free for new disks on the datastore.',
      (d) => d.freeBytes,
    ],
    [
      'silobreak_datastore_provisioned_bytes',
      'Sum of the virtual sizes of the disks on the datastore.',
      (d) => d.provisionedBytes,
    ],
    [
      'silobreak_datastore_allocated_bytes',
      'Sum of the bytes the disks on the datastore take.',
      (d) => d.allocatedBytes,
    ],
    [
      'silobreak_datastore_lost',
      '1 while this host cannot reach this shared datastore (hung or stale mount, another storage, lockspace lost), else 0.',
      (d) => (d.lost ? 1 : 0),
    ],
  ] satisfies [string, string, (d: DatastoreStats) => number][])
    gauge({ name, help, labelNames: HDS, samples: perDatastore(pick) });

  info(
    'silobreak_guest_agent_info',
    "Version of the VM's guest agent, when it answered",
    [...HVM, 'version'],
    s.stats.guests.flatMap((g) =>
      g.agentVersion === null ? [] : [{ ...host, vm: g.vm, version: g.agentVersion }],
    ),
  );
  gauge({
    name: 'silobreak_guest_filesystem_size_bytes',
    help: 'Size of a guest filesystem (used + available to users), from its guest agent.',
    labelNames: HVMFS,
    samples: guestFs.map(({ labels, f }) => ({ labels, value: f.totalBytes })),
  });
  gauge({
    name: 'silobreak_guest_filesystem_used_bytes',
    help: 'Used bytes of a guest filesystem, from its guest agent.',
    labelNames: HVMFS,
    samples: guestFs.map(({ labels, f }) => ({ labels, value: f.usedBytes })),
  });

  return registry.metrics();
}

function binsOf(h: LatencyHistograms, op: (typeof OPS)[number]): number[] {
  return op === 'read' ? h.read : op === 'write' ? h.write : h.flush;
}

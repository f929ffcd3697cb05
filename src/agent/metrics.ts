import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import {
  VmState,
  type Accelerator,
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

const NS_PER_SECOND = 1e9;
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
    const le = bound === undefined ? '+Inf' : String(bound / NS_PER_SECOND);
    values.push({
      labels: { ...labels, le },
      value: cumulative,
      metricName: 'silobreak_disk_latency_seconds_bucket',
    });
  });
  values.push({ labels, value: cumulative, metricName: 'silobreak_disk_latency_seconds_count' });
  return values;
}

export async function renderMetrics(s: MetricsSnapshot): Promise<string> {
  const registry = new Registry();
  const host = { host: s.stats.host };
  const add = (
    type: 'gauge' | 'counter',
    name: string,
    help: string,
    labelNames: string[],
    samples: Sample[],
  ) => {
    const config = { name, help, labelNames, registers: [registry] };
    if (type === 'gauge') {
      const gauge = new Gauge(config);
      for (const { labels, value } of samples) gauge.set(labels, value);
    } else {
      const counter = new Counter(config);
      for (const { labels, value } of samples) counter.inc(labels, value);
    }
  };
  const perVm = (pick: (vm: VmSnapshot) => number) =>
    s.vms.map((vm) => ({ labels: { ...host, vm: vm.name }, value: pick(vm) }));
  const diskLabels = (d: DiskStats) => ({ ...host, vm: d.vm, disk: d.disk });
  const perDisk = (pick: (d: DiskStats) => number) =>
    s.stats.disks.map((d) => ({ labels: diskLabels(d), value: pick(d) }));
  const counted = s.stats.disks.flatMap((d) => (d.counters ? [{ d, c: d.counters }] : []));
  const perCounters = (pick: (c: NonNullable<DiskStats['counters']>) => number) =>
    counted.map(({ d, c }) => ({ labels: diskLabels(d), value: pick(c) }));
  const perDatastore = (pick: (d: HostStats['datastores'][number]) => number) =>
    s.stats.datastores.map((d) => ({ labels: { ...host, datastore: d.name }, value: pick(d) }));
  const guestFs = s.stats.guests.flatMap((g) =>
    (g.filesystems ?? []).map((f) => ({
      labels: { ...host, vm: g.vm, mountpoint: f.mountpoint, fstype: f.type },
      f,
    })),
  );
  const HVM = ['host', 'vm'];
  const HVMD = ['host', 'vm', 'disk'];
  const HDS = ['host', 'datastore'];
  const HVMFS = ['host', 'vm', 'mountpoint', 'fstype'];

  add(
    'gauge',
    'silobreak_accelerator_info',
    'Accelerator this host runs its VMs with (value is always 1).',
    ['host', 'accelerator'],
    [{ labels: { ...host, accelerator: s.accelerator }, value: 1 }],
  );
  add(
    'gauge',
    'silobreak_host_memory_bytes',
    'Physical memory of the host.',
    ['host'],
    [{ labels: host, value: s.memoryBytes }],
  );
  add(
    'gauge',
    'silobreak_host_memory_unpromised_bytes',
    'Host memory not promised to running VMs.',
    ['host'],
    [{ labels: host, value: s.memoryFreeBytes }],
  );
  add(
    'gauge',
    'silobreak_vms',
    'VMs defined on the host, by state.',
    ['host', 'state'],
    VmState.options.map((state) => ({
      labels: { ...host, state },
      value: s.vms.filter((vm) => vm.state === state).length,
    })),
  );
  add(
    'gauge',
    'silobreak_vm_running',
    '1 when the VM has a QEMU process, 0 when it is stopped.',
    HVM,
    perVm((vm) => (vm.state === 'stopped' || vm.state === 'crashed' ? 0 : 1)),
  );
  add(
    'gauge',
    'silobreak_vm_vcpus',
    'Virtual CPUs of the VM.',
    HVM,
    perVm((vm) => vm.vcpus),
  );
  add(
    'gauge',
    'silobreak_vm_memory_bytes',
    'Memory of the VM.',
    HVM,
    perVm((vm) => vm.memoryBytes),
  );

  // Disk I/O since the VM's QEMU started (a restart or a move starts them again from zero).
  const since = 'since its QEMU started';
  add(
    'counter',
    'silobreak_disk_read_operations_total',
    `Read requests of the guest on the disk ${since}.`,
    HVMD,
    perCounters((c) => c.readOps),
  );
  add(
    'counter',
    'silobreak_disk_write_operations_total',
    `Write requests of the guest on the disk ${since}.`,
    HVMD,
    perCounters((c) => c.writeOps),
  );
  add(
    'counter',
    'silobreak_disk_flush_operations_total',
    `Flush requests of the guest on the disk ${since}.`,
    HVMD,
    perCounters((c) => c.flushOps),
  );
  add(
    'counter',
    'silobreak_disk_read_bytes_total',
    `Bytes read by the guest from the disk ${since}.`,
    HVMD,
    perCounters((c) => c.readBytes),
  );
  add(
    'counter',
    'silobreak_disk_written_bytes_total',
    `Bytes written by the guest to the disk ${since}.`,
    HVMD,
    perCounters((c) => c.writeBytes),
  );
  add(
    'counter',
    'silobreak_disk_read_time_seconds_total',
    `Time the disk's read requests took, summed, ${since}.`,
    HVMD,
    perCounters((c) => c.readTotalNs / NS_PER_SECOND),
  );
  add(
    'counter',
    'silobreak_disk_write_time_seconds_total',
    `Time the disk's write requests took, summed, ${since}.`,
    HVMD,
    perCounters((c) => c.writeTotalNs / NS_PER_SECOND),
  );
  add(
    'counter',
    'silobreak_disk_flush_time_seconds_total',
    `Time the disk's flush requests took, summed, ${since}.`,
    HVMD,
    perCounters((c) => c.flushTotalNs / NS_PER_SECOND),
  );
  // The first names of the byte and request counters, kept for dashboards built on them.
  add(
    'counter',
    'silobreak_vm_disk_read_bytes_total',
    `Bytes read by the guest from the disk ${since} (as silobreak_disk_read_bytes_total).`,
    HVMD,
    perCounters((c) => c.readBytes),
  );
  add(
    'counter',
    'silobreak_vm_disk_written_bytes_total',
    `Bytes written by the guest to the disk ${since} (as silobreak_disk_written_bytes_total).`,
    HVMD,
    perCounters((c) => c.writeBytes),
  );
  add(
    'counter',
    'silobreak_vm_disk_read_ops_total',
    `Read requests of the guest on the disk ${since} (as silobreak_disk_read_operations_total).`,
    HVMD,
    perCounters((c) => c.readOps),
  );
  add(
    'counter',
    'silobreak_vm_disk_write_ops_total',
    `Write requests of the guest on the disk ${since} (as silobreak_disk_write_operations_total).`,
    HVMD,
    perCounters((c) => c.writeOps),
  );

  const histograms = s.stats.disks.flatMap((d) => (d.histograms ? [{ d, h: d.histograms }] : []));
  new BinnedHistogram(
    'silobreak_disk_latency_seconds',
    "Latency of the disk's requests by operation, from QEMU's bins since the agent switched them on (no _sum, see the _time_seconds_total counters).",
    histograms.flatMap(({ d, h }) =>
      OPS.flatMap((op) => latencyBuckets({ ...diskLabels(d), op }, h.boundariesNs, binsOf(h, op))),
    ),
    registry,
  );

  add(
    'gauge',
    'silobreak_disk_info',
    'Image format and format version (qcow2 compat level) of the disk (value is always 1).',
    [...HVMD, 'datastore', 'format', 'format_version'],
    s.stats.disks.map((d) => ({
      labels: {
        ...diskLabels(d),
        datastore: d.datastore,
        format: d.format,
        format_version: d.formatVersion ?? '',
      },
      value: 1,
    })),
  );
  add(
    'gauge',
    'silobreak_disk_virtual_bytes',
    'Size of the disk as the guest sees it.',
    HVMD,
    perDisk((d) => d.virtualSizeBytes),
  );
  add(
    'gauge',
    'silobreak_disk_allocated_bytes',
    "Bytes the disk's image takes on its datastore.",
    HVMD,
    perDisk((d) => d.allocatedBytes),
  );

  add(
    'gauge',
    'silobreak_datastore_info',
    'Filesystem type of the datastore (value is always 1).',
    [...HDS, 'fs_type'],
    s.stats.datastores.map((d) => ({
      labels: { ...host, datastore: d.name, fs_type: d.fsType },
      value: 1,
    })),
  );
  add(
    'gauge',
    'silobreak_datastore_capacity_bytes',
    'Size of the filesystem holding the datastore.',
    HDS,
    perDatastore((d) => d.capacityBytes),
  );
  add(
    'gauge',
    'silobreak_datastore_free_bytes',
    'Bytes still free for new disks on the datastore.',
    HDS,
    perDatastore((d) => d.freeBytes),
  );
  add(
    'gauge',
    'silobreak_datastore_provisioned_bytes',
    'Sum of the virtual sizes of the disks on the datastore.',
    HDS,
    perDatastore((d) => d.provisionedBytes),
  );
  add(
    'gauge',
    'silobreak_datastore_allocated_bytes',
    'Sum of the bytes the disks on the datastore take.',
    HDS,
    perDatastore((d) => d.allocatedBytes),
  );

  add(
    'gauge',
    'silobreak_guest_agent_info',
    "Version of the VM's guest agent, when it answered (value is always 1).",
    [...HVM, 'version'],
    s.stats.guests.flatMap((g) =>
      g.agentVersion === null ? [] : [{ labels: { ...host, vm: g.vm, version: g.agentVersion }, value: 1 }],
    ),
  );
  add(
    'gauge',
    'silobreak_guest_filesystem_size_bytes',
    'Size of a guest filesystem (used + available to users), from its guest agent.',
    HVMFS,
    guestFs.map(({ labels, f }) => ({ labels, value: f.totalBytes })),
  );
  add(
    'gauge',
    'silobreak_guest_filesystem_used_bytes',
    'Used bytes of a guest filesystem, from its guest agent.',
    HVMFS,
    guestFs.map(({ labels, f }) => ({ labels, value: f.usedBytes })),
  );

  return registry.metrics();
}

function binsOf(h: LatencyHistograms, op: (typeof OPS)[number]): number[] {
  return op === 'read' ? h.read : op === 'write' ? h.write : h.flush;
}

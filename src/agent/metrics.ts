import { VmState, type Accelerator } from '../api/index.js';

/*
 * Prometheus text exposition (format 0.0.4) of one host's figures. Pure: the agent gathers a
 * snapshot, this renders it. Base units in names, counters end in _total, every series carries
 * the host label so a scraper of many agents can tell them apart. (Its media type is the metrics
 * route's, in src/api/agent-routes.ts.)
 */

export interface DiskCounters {
  disk: string;
  readBytes: number;
  writeBytes: number;
  readOps: number;
  writeOps: number;
}

export interface MetricsSnapshot {
  host: string;
  accelerator: Accelerator;
  memoryBytes: number;
  memoryFreeBytes: number;
  datastores: { name: string; capacityBytes: number; freeBytes: number }[];
  vms: { name: string; state: VmState; vcpus: number; memoryBytes: number; disks: DiskCounters[] }[];
}

type Labels = Record<string, string>;
interface Family {
  name: string;
  help: string;
  type: 'gauge' | 'counter';
  samples: { labels: Labels; value: number }[];
}

export function escapeLabelValue(value: string): string {
  return value.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function renderFamily(family: Family): string {
  const lines = [`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`];
  for (const { labels, value } of family.samples) {
    const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
    lines.push(`${family.name}${pairs.length ? `{${pairs.join(',')}}` : ''} ${formatValue(value)}`);
  }
  return lines.join('\n');
}

export function renderMetrics(s: MetricsSnapshot): string {
  const host = { host: s.host };
  const perVm = (pick: (vm: MetricsSnapshot['vms'][number]) => number) =>
    s.vms.map((vm) => ({ labels: { ...host, vm: vm.name }, value: pick(vm) }));
  const perDisk = (pick: (d: DiskCounters) => number) =>
    s.vms.flatMap((vm) =>
      vm.disks.map((d) => ({ labels: { ...host, vm: vm.name, disk: d.disk }, value: pick(d) })),
    );
  const perDatastore = (pick: (d: MetricsSnapshot['datastores'][number]) => number) =>
    s.datastores.map((d) => ({ labels: { ...host, datastore: d.name }, value: pick(d) }));

  const families: Family[] = [
    {
      name: 'silobreak_accelerator_info',
      help: 'Accelerator this host runs its VMs with (value is always 1).',
      type: 'gauge',
      samples: [{ labels: { ...host, accelerator: s.accelerator }, value: 1 }],
    },
    {
      name: 'silobreak_host_memory_bytes',
      help: 'Physical memory of the host.',
      type: 'gauge',
      samples: [{ labels: host, value: s.memoryBytes }],
    },
    {
      name: 'silobreak_host_memory_unpromised_bytes',
      help: 'Host memory not promised to running VMs.',
      type: 'gauge',
      samples: [{ labels: host, value: s.memoryFreeBytes }],
    },
    {
      name: 'silobreak_vms',
      help: 'VMs defined on the host, by state.',
      type: 'gauge',
      samples: VmState.options.map((state) => ({
        labels: { ...host, state },
        value: s.vms.filter((vm) => vm.state === state).length,
      })),
    },
    {
      name: 'silobreak_vm_running',
      help: '1 when the VM has a QEMU process, 0 when it is stopped.',
      type: 'gauge',
      samples: perVm((vm) => (vm.state === 'stopped' || vm.state === 'crashed' ? 0 : 1)),
    },
    {
      name: 'silobreak_vm_vcpus',
      help: 'Virtual CPUs of the VM.',
      type: 'gauge',
      samples: perVm((vm) => vm.vcpus),
    },
    {
      name: 'silobreak_vm_memory_bytes',
      help: 'Memory of the VM.',
      type: 'gauge',
      samples: perVm((vm) => vm.memoryBytes),
    },
    {
      name: 'silobreak_vm_disk_read_bytes_total',
      help: 'Bytes read by the guest from the disk since its QEMU started.',
      type: 'counter',
      samples: perDisk((d) => d.readBytes),
    },
    {
      name: 'silobreak_vm_disk_written_bytes_total',
      help: 'Bytes written by the guest to the disk since its QEMU started.',
      type: 'counter',
      samples: perDisk((d) => d.writeBytes),
    },
    {
      name: 'silobreak_vm_disk_read_ops_total',
      help: 'Read requests of the guest on the disk since its QEMU started.',
      type: 'counter',
      samples: perDisk((d) => d.readOps),
    },
    {
      name: 'silobreak_vm_disk_write_ops_total',
      help: 'Write requests of the guest on the disk since its QEMU started.',
      type: 'counter',
      samples: perDisk((d) => d.writeOps),
    },
    {
      name: 'silobreak_datastore_capacity_bytes',
      help: 'Size of the filesystem holding the datastore.',
      type: 'gauge',
      samples: perDatastore((d) => d.capacityBytes),
    },
    {
      name: 'silobreak_datastore_free_bytes',
      help: 'Bytes still free for new disks on the datastore.',
      type: 'gauge',
      samples: perDatastore((d) => d.freeBytes),
    },
  ];
  return `${families.map(renderFamily).join('\n')}\n`;
}

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DiskStats } from '../api/index.js';
import { latencyBuckets, renderMetrics, type MetricsSnapshot } from './metrics.js';

const VM_ID = '6b3a3f7e-2f4c-4d0e-9a51-0c2b8f1d2e3a';
const runningDisk: DiskStats = {
  vm: 'web-1',
  vmId: VM_ID,
  disk: 'disk0',
  datastore: 'ds1',
  format: 'qcow2',
  formatVersion: '1.1',
  virtualSizeBytes: 10 * 2 ** 30,
  allocatedBytes: 3 * 2 ** 30,
  counterEpoch: '4242-98765',
  counters: {
    readOps: 3,
    writeOps: 5,
    flushOps: 2,
    readBytes: 4096,
    writeBytes: 8192,
    readTotalNs: 1_500_000_000,
    writeTotalNs: 250_000_000,
    flushTotalNs: 0,
  },
  histograms: {
    boundariesNs: [100_000, 15_000_000],
    read: [1, 1, 1],
    write: [4, 1, 0],
    flush: [0, 2, 0],
  },
};
const stoppedDisk: DiskStats = {
  ...runningDisk,
  vm: 'db-1',
  vmId: '0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6',
  formatVersion: '0.10',
  virtualSizeBytes: 2 ** 30,
  allocatedBytes: 2 ** 20,
  counterEpoch: null,
  counters: null,
  histograms: null,
};

const snapshot: MetricsSnapshot = {
  accelerator: 'tcg',
  memoryBytes: 8 * 2 ** 30,
  memoryFreeBytes: 7 * 2 ** 30,
  vms: [
    { name: 'web-1', state: 'running', vcpus: 2, memoryBytes: 2 ** 30 },
    { name: 'db-1', state: 'stopped', vcpus: 1, memoryBytes: 2 ** 29 },
  ],
  stats: {
    host: 'host-a',
    sampledAt: '2026-12-01T18:00:00.000Z',
    datastores: [
      {
        name: 'ds1',
        fsType: 'ext4',
        capacityBytes: 1000,
        freeBytes: 400,
        provisionedBytes: 11 * 2 ** 30,
        allocatedBytes: 3 * 2 ** 30 + 2 ** 20,
      },
    ],
    disks: [runningDisk, stoppedDisk],
    guests: [
      {
        vm: 'web-1',
        vmId: VM_ID,
        agentVersion: '7.2.19',
        filesystems: [{ mountpoint: '/da"ta\\x\n', type: 'ext4', totalBytes: 1000, usedBytes: 250 }],
      },
      { vm: 'db-1', vmId: stoppedDisk.vmId, agentVersion: null, filesystems: null },
    ],
  },
};

const SAMPLE =
  /^([a-z_:][a-z0-9_:]*)(\{([a-z_][a-z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/;
const SUFFIXES = { histogram: ['_bucket', '_count', '_sum'], counter: [''], gauge: [''] } as const;

test('every line is a HELP, a TYPE or a well-formed sample of a declared family', async () => {
  const text = await renderMetrics(snapshot);
  assert.ok(text.endsWith('\n'));
  const declared = new Map<string, keyof typeof SUFFIXES>();
  let samples = 0;
  for (const line of text.trimEnd().split('\n')) {
    if (line === '') continue; // prom-client separates families with a blank line
    const type = /^# TYPE (\S+) (gauge|counter|histogram)$/.exec(line);
    if (type) {
      const [, name = '', kind = ''] = type;
      assert.ok(!declared.has(name), `${line}: declared twice`);
      declared.set(name, kind as keyof typeof SUFFIXES);
      continue;
    }
    if (line.startsWith('# HELP ')) continue;
    const sample = SAMPLE.exec(line);
    assert.ok(sample, `malformed line: ${JSON.stringify(line)}`);
    samples++;
    const name = sample[1] ?? '';
    const family = [...declared].find(([f, kind]) => SUFFIXES[kind].some((suffix) => name === f + suffix));
    assert.ok(family, `${name} has no TYPE before its samples`);
    assert.ok(name.startsWith('silobreak_'), name);
    assert.equal(
      family[0].endsWith('_total'),
      family[1] === 'counter',
      `${name}: only counters end in _total`,
    );
    assert.match(sample[2] ?? '', /^\{host="host-a"/, `${line}: every series carries the host`);
  }
  assert.ok(samples > 40, `${samples} samples`);
});

test('the figures of the snapshot appear with their labels, old names included', async () => {
  const lines = new Set((await renderMetrics(snapshot)).split('\n'));
  const d = 'host="host-a",vm="web-1",disk="disk0"';
  for (const expected of [
    'silobreak_accelerator_info{host="host-a",accelerator="tcg"} 1',
    'silobreak_host_memory_bytes{host="host-a"} 8589934592',
    'silobreak_host_memory_unpromised_bytes{host="host-a"} 7516192768',
    'silobreak_vms{host="host-a",state="running"} 1',
    'silobreak_vms{host="host-a",state="stopped"} 1',
    'silobreak_vms{host="host-a",state="migrating"} 0',
    'silobreak_vm_running{host="host-a",vm="web-1"} 1',
    'silobreak_vm_running{host="host-a",vm="db-1"} 0',
    'silobreak_vm_vcpus{host="host-a",vm="web-1"} 2',
    'silobreak_vm_memory_bytes{host="host-a",vm="db-1"} 536870912',
    `silobreak_vm_disk_read_bytes_total{${d}} 4096`,
    `silobreak_vm_disk_written_bytes_total{${d}} 8192`,
    `silobreak_vm_disk_read_ops_total{${d}} 3`,
    `silobreak_vm_disk_write_ops_total{${d}} 5`,
    `silobreak_disk_read_operations_total{${d}} 3`,
    `silobreak_disk_write_operations_total{${d}} 5`,
    `silobreak_disk_flush_operations_total{${d}} 2`,
    `silobreak_disk_read_bytes_total{${d}} 4096`,
    `silobreak_disk_written_bytes_total{${d}} 8192`,
    `silobreak_disk_read_time_seconds_total{${d}} 1.5`,
    `silobreak_disk_write_time_seconds_total{${d}} 0.25`,
    `silobreak_disk_flush_time_seconds_total{${d}} 0`,
    `silobreak_disk_info{${d},datastore="ds1",format="qcow2",format_version="1.1"} 1`,
    'silobreak_disk_info{host="host-a",vm="db-1",disk="disk0",datastore="ds1",format="qcow2",format_version="0.10"} 1',
    `silobreak_disk_virtual_bytes{${d}} 10737418240`,
    'silobreak_disk_allocated_bytes{host="host-a",vm="db-1",disk="disk0"} 1048576',
    'silobreak_datastore_capacity_bytes{host="host-a",datastore="ds1"} 1000',
    'silobreak_datastore_free_bytes{host="host-a",datastore="ds1"} 400',
    'silobreak_datastore_provisioned_bytes{host="host-a",datastore="ds1"} 11811160064',
    'silobreak_datastore_allocated_bytes{host="host-a",datastore="ds1"} 3222274048',
    'silobreak_datastore_info{host="host-a",datastore="ds1",fs_type="ext4"} 1',
    'silobreak_datastore_lost{host="host-a",datastore="ds1"} 0',
    'silobreak_guest_agent_info{host="host-a",vm="web-1",version="7.2.19"} 1',
    // Guest-controlled text is escaped (quote, backslash, newline).
    'silobreak_guest_filesystem_size_bytes{host="host-a",vm="web-1",mountpoint="/da\\"ta\\\\x\\n",fstype="ext4"} 1000',
    'silobreak_guest_filesystem_used_bytes{host="host-a",vm="web-1",mountpoint="/da\\"ta\\\\x\\n",fstype="ext4"} 250',
    `silobreak_disk_latency_seconds_bucket{${d},op="write",le="0.0001"} 4`,
    `silobreak_disk_latency_seconds_bucket{${d},op="write",le="0.015"} 5`,
    `silobreak_disk_latency_seconds_bucket{${d},op="write",le="+Inf"} 5`,
    `silobreak_disk_latency_seconds_count{${d},op="write"} 5`,
    `silobreak_disk_latency_seconds_count{${d},op="flush"} 2`,
  ])
    assert.ok(lines.has(expected), `missing: ${expected}`);
});

test('unknown stays absent: no counters for a stopped disk, no agent version or filesystems without an agent', async () => {
  const text = await renderMetrics(snapshot);
  assert.doesNotMatch(text, /^silobreak_disk_\w+_total\{[^}]*vm="db-1"/m);
  assert.doesNotMatch(text, /^silobreak_disk_latency_seconds\w*\{[^}]*vm="db-1"/m);
  assert.doesNotMatch(text, /^silobreak_guest_\w+\{[^}]*vm="db-1"/m);
});

test('latency buckets are cumulative, end in +Inf and count as many as the bins hold', () => {
  const values = latencyBuckets({ host: 'h' }, [1_000_000, 5_000_000], [2, 0, 7]);
  assert.deepEqual(
    values.map((v) => [v.metricName.replace('silobreak_disk_latency_seconds', ''), v.labels.le, v.value]),
    [
      ['_bucket', '0.001', 2],
      ['_bucket', '0.005', 2],
      ['_bucket', '+Inf', 9],
      ['_count', undefined, 9],
    ],
  );
});

test('a fresh registry per render: nothing is carried over from an earlier scrape', async () => {
  await renderMetrics(snapshot);
  const empty = await renderMetrics({
    ...snapshot,
    vms: [],
    stats: { ...snapshot.stats, disks: [], guests: [], datastores: [] },
  });
  assert.doesNotMatch(empty, /vm="web-1"/);
  assert.doesNotMatch(empty, /datastore="ds1"/);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { escapeLabelValue, renderMetrics, type MetricsSnapshot } from './metrics.js';

const snapshot: MetricsSnapshot = {
  host: 'host-a',
  accelerator: 'tcg',
  memoryBytes: 8 * 2 ** 30,
  memoryFreeBytes: 7 * 2 ** 30,
  datastores: [{ name: 'ds1', capacityBytes: 1000, freeBytes: 400 }],
  vms: [
    {
      name: 'web-1',
      state: 'running',
      vcpus: 2,
      memoryBytes: 2 ** 30,
      disks: [{ disk: 'disk0', readBytes: 4096, writeBytes: 8192, readOps: 3, writeOps: 5 }],
    },
    { name: 'db-1', state: 'stopped', vcpus: 1, memoryBytes: 2 ** 29, disks: [] },
  ],
};

const SAMPLE = /^([a-z_:][a-z0-9_:]*)(\{([a-z_][a-z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.e+]+|NaN|[+-]Inf)$/;

test('every line is a HELP, a TYPE or a well-formed sample of a declared family', () => {
  const text = renderMetrics(snapshot);
  assert.ok(text.endsWith('\n'));
  const declared = new Map<string, string>();
  for (const line of text.trimEnd().split('\n')) {
    const type = /^# TYPE (\S+) (gauge|counter)$/.exec(line);
    if (type) {
      assert.ok(!declared.has(type[1] ?? ''), `${line}: declared twice`);
      declared.set(type[1] ?? '', type[2] ?? '');
      continue;
    }
    if (line.startsWith('# HELP ')) continue;
    const sample = SAMPLE.exec(line);
    assert.ok(sample, `malformed line: ${line}`);
    const name = sample[1] ?? '';
    assert.ok(declared.has(name), `${name} has no TYPE before its samples`);
    assert.ok(name.startsWith('silobreak_'), name);
    assert.equal(
      name.endsWith('_total'),
      declared.get(name) === 'counter',
      `${name}: only counters end in _total`,
    );
  }
});

test('the figures of the snapshot appear with their labels', () => {
  const lines = new Set(renderMetrics(snapshot).split('\n'));
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
    'silobreak_vm_disk_read_bytes_total{host="host-a",vm="web-1",disk="disk0"} 4096',
    'silobreak_vm_disk_written_bytes_total{host="host-a",vm="web-1",disk="disk0"} 8192',
    'silobreak_vm_disk_read_ops_total{host="host-a",vm="web-1",disk="disk0"} 3',
    'silobreak_vm_disk_write_ops_total{host="host-a",vm="web-1",disk="disk0"} 5',
    'silobreak_datastore_capacity_bytes{host="host-a",datastore="ds1"} 1000',
    'silobreak_datastore_free_bytes{host="host-a",datastore="ds1"} 400',
  ])
    assert.ok(lines.has(expected), `missing: ${expected}`);
});

test('label values are escaped', () => {
  assert.equal(escapeLabelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
});

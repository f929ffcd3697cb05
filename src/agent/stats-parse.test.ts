import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LATENCY_BOUNDS_NS } from '../api/index.js';
import { QueryBlock, QueryBlockstats } from '../qmp/index.js';
import {
  MAX_GUEST_FILESYSTEMS,
  QemuImgInfo,
  blockCounters,
  counterEpoch,
  datastoreTotals,
  diskImage,
  diskImageOfBlock,
  findDiskEntry,
  guestAgentVersion,
  guestFilesystems,
  latencyHistograms,
  needsHistograms,
  processStartTicks,
} from './stats-parse.js';

// Replies as QEMU 10.0.2 gives them for a -blockdev qcow2 node behind a virtio-blk-pci device
// (trimmed of the fields nothing reads; `device` is empty with -blockdev).
const histogram = (bins: number[]) => ({ boundaries: [100_000, 500_000, 1_000_000], bins });
const stats = (over: Record<string, unknown> = {}) => ({
  rd_bytes: 4096,
  wr_bytes: 1_048_576,
  rd_operations: 1,
  wr_operations: 256,
  flush_operations: 12,
  rd_total_time_ns: 70_000,
  wr_total_time_ns: 90_000_000,
  flush_total_time_ns: 30_000_000,
  wr_highest_offset: 1_048_576,
  account_invalid: true,
  account_failed: true,
  timed_stats: [],
  ...over,
});
const blockstatsReply = [
  {
    device: '',
    qdev: '/machine/peripheral/virtio-disk-disk0/virtio-backend',
    'node-name': 'disk-disk0',
    stats: stats({
      rd_latency_histogram: histogram([1, 0, 0, 0]),
      wr_latency_histogram: histogram([200, 50, 6, 0]),
      flush_latency_histogram: histogram([0, 0, 2, 10]),
      zone_append_latency_histogram: histogram([0, 0, 0, 0]),
    }),
    parent: { 'node-name': 'file-disk0', stats: stats() },
  },
  {
    device: '',
    qdev: '/machine/peripheral/virtio-disk-logs/virtio-backend',
    // a live storage move gave this disk a new node
    'node-name': 'm3logs',
    stats: stats({ wr_operations: 7 }),
  },
];

test('a disk is found by its device first (node names change in storage moves), else by its node', () => {
  const entries = QueryBlockstats.parse(blockstatsReply);
  assert.equal(findDiskEntry(entries, 'logs', (e) => e['node-name'])?.stats.wr_operations, 7);
  assert.equal(
    findDiskEntry(entries, 'disk0', (e) => e['node-name']),
    entries[0],
  );
  assert.equal(
    findDiskEntry(entries, 'disk1', (e) => e['node-name']),
    undefined,
  );
  const exportOnly = QueryBlockstats.parse([{ 'node-name': 'disk-disk1', stats: stats() }]);
  assert.equal(
    findDiskEntry(exportOnly, 'disk1', (e) => e['node-name']),
    exportOnly[0],
  );
  // "disk1" must not match the device of "disk10"
  const ten = QueryBlockstats.parse([
    { qdev: '/machine/peripheral/virtio-disk-disk10/virtio-backend', stats: stats() },
  ]);
  assert.equal(
    findDiskEntry(ten, 'disk1', (e) => e['node-name']),
    undefined,
  );
});

test('blockstats become the contract counters and histograms (bins one longer than bounds)', () => {
  const [entry] = QueryBlockstats.parse(blockstatsReply);
  assert.ok(entry);
  assert.deepEqual(blockCounters(entry.stats), {
    readOps: 1,
    writeOps: 256,
    flushOps: 12,
    readBytes: 4096,
    writeBytes: 1_048_576,
    readTotalNs: 70_000,
    writeTotalNs: 90_000_000,
    flushTotalNs: 30_000_000,
  });
  assert.deepEqual(latencyHistograms(entry.stats), {
    boundariesNs: [100_000, 500_000, 1_000_000],
    read: [1, 0, 0, 0],
    write: [200, 50, 6, 0],
    flush: [0, 0, 2, 10],
  });
});

test('histograms count as missing unless all three directions agree', () => {
  const parse = (over: Record<string, unknown>) => QueryBlockstats.parse([{ stats: stats(over) }])[0]?.stats;
  const none = parse({});
  assert.ok(none);
  assert.equal(latencyHistograms(none), null);
  assert.equal(needsHistograms(none), true);
  const partial = parse({ rd_latency_histogram: histogram([0, 0, 0, 0]) });
  assert.ok(partial);
  assert.equal(latencyHistograms(partial), null);
  const mismatched = parse({
    rd_latency_histogram: histogram([0, 0, 0, 0]),
    wr_latency_histogram: histogram([0, 0, 0, 0]),
    flush_latency_histogram: { boundaries: [1], bins: [0, 0] },
  });
  assert.ok(mismatched);
  assert.equal(latencyHistograms(mismatched), null);
});

test('histograms with other bounds are reported but set again; ours are left alone', () => {
  const [entry] = QueryBlockstats.parse(blockstatsReply);
  assert.ok(entry);
  assert.equal(needsHistograms(entry.stats), true);
  const ours = { boundaries: [...LATENCY_BOUNDS_NS], bins: LATENCY_BOUNDS_NS.map(() => 0).concat(0) };
  const set = QueryBlockstats.parse([
    {
      stats: stats({ rd_latency_histogram: ours, wr_latency_histogram: ours, flush_latency_histogram: ours }),
    },
  ])[0];
  assert.ok(set);
  assert.equal(needsHistograms(set.stats), false);
});

test('the latency bounds are ascending and straddle the alarm thresholds (15 ms, 50 ms)', () => {
  assert.ok(LATENCY_BOUNDS_NS.every((b, i) => i === 0 || b > (LATENCY_BOUNDS_NS[i - 1] ?? 0)));
  for (const thresholdMs of [15, 50]) assert.ok(LATENCY_BOUNDS_NS.includes(thresholdMs * 1_000_000));
});

const qemuImgInfo = (compat: string | undefined, format = 'qcow2') => ({
  children: [{ name: 'file', info: { format: 'file', 'virtual-size': 197120, filename: 'x' } }],
  'virtual-size': 67_108_864,
  filename: 'x.qcow2',
  'cluster-size': 65536,
  format,
  'actual-size': 200_704,
  ...(compat === undefined
    ? {}
    : {
        'format-specific': {
          type: 'qcow2',
          data: { compat, 'compression-type': 'zlib', 'refcount-bits': 16 },
        },
      }),
  'dirty-flag': false,
});

test('qemu-img info gives format, compat level and sizes', () => {
  assert.deepEqual(diskImage(QemuImgInfo.parse(qemuImgInfo('0.10'))), {
    format: 'qcow2',
    formatVersion: '0.10',
    virtualSizeBytes: 67_108_864,
    allocatedBytes: 200_704,
  });
  assert.equal(diskImage(QemuImgInfo.parse(qemuImgInfo('1.1')))?.formatVersion, '1.1');
  assert.deepEqual(diskImage(QemuImgInfo.parse(qemuImgInfo(undefined, 'raw'))), {
    format: 'raw',
    formatVersion: null,
    virtualSizeBytes: 67_108_864,
    allocatedBytes: 200_704,
  });
  assert.equal(diskImage(QemuImgInfo.parse(qemuImgInfo(undefined, 'vmdk'))), undefined);
});

test("query-block's image of a running disk gives the same figures", () => {
  const [entry] = QueryBlock.parse([
    {
      device: '',
      qdev: '/machine/peripheral/virtio-disk-disk0/virtio-backend',
      locked: false,
      removable: false,
      type: 'unknown',
      'io-status': 'ok',
      inserted: {
        file: '/ds/a.qcow2',
        'node-name': 'disk-disk0',
        ro: false,
        drv: 'qcow2',
        backing_file_depth: 0,
        encrypted: false,
        detect_zeroes: 'off',
        write_threshold: 0,
        image: { ...qemuImgInfo('0.10'), filename: '/ds/a.qcow2' },
      },
    },
  ]);
  assert.deepEqual(diskImageOfBlock(entry), {
    format: 'qcow2',
    formatVersion: '0.10',
    virtualSizeBytes: 67_108_864,
    allocatedBytes: 200_704,
  });
  assert.equal(diskImageOfBlock(undefined), undefined);
});

test('provisioned and allocated are summed per datastore', () => {
  const totals = datastoreTotals([
    { datastore: 'a', virtualSizeBytes: 10, allocatedBytes: 1 },
    { datastore: 'b', virtualSizeBytes: 100, allocatedBytes: 50 },
    { datastore: 'a', virtualSizeBytes: 20, allocatedBytes: 3 },
  ]);
  assert.deepEqual(Object.fromEntries(totals), {
    a: { provisionedBytes: 30, allocatedBytes: 4 },
    b: { provisionedBytes: 100, allocatedBytes: 50 },
  });
  assert.equal(datastoreTotals([]).size, 0);
});

// guest-get-fsinfo as qemu-ga 7.2 answers in the lab guest.
const dataFs = {
  name: 'vda',
  mountpoint: '/data',
  type: 'ext4',
  'total-bytes': 124_800_000,
  'used-bytes': 1_400_000,
  disk: [{ 'bus-type': 'virtio', bus: 0, unit: 0, target: 0, dev: '/dev/vda' }],
};

test('guest filesystems: size and use where measured, duplicates once, null when none is measured', () => {
  assert.deepEqual(guestFilesystems([dataFs, { ...dataFs, name: 'vda-bind' }]), [
    { mountpoint: '/data', type: 'ext4', totalBytes: 124_800_000, usedBytes: 1_400_000 },
  ]);
  const unmeasured = { name: 'vdb', mountpoint: '/old', type: 'vfat', disk: [] };
  assert.deepEqual(guestFilesystems([unmeasured, dataFs]), [
    { mountpoint: '/data', type: 'ext4', totalBytes: 124_800_000, usedBytes: 1_400_000 },
  ]);
  assert.equal(guestFilesystems([unmeasured]), null, 'an agent too old to measure: unknown, not 0');
  assert.deepEqual(guestFilesystems([]), [], 'only tmpfs mounted: known to have none');
});

test('guest filesystems: hostile entries are dropped and the list is capped', () => {
  const hostile = [
    { ...dataFs, 'used-bytes': -5 },
    { ...dataFs, 'total-bytes': 1.5 },
    { ...dataFs, mountpoint: 'x'.repeat(10_000) },
    'not an object',
    null,
  ];
  assert.equal(guestFilesystems(hostile), null);
  const many = Array.from({ length: MAX_GUEST_FILESYSTEMS + 10 }, (_, i) => ({
    ...dataFs,
    mountpoint: `/m${i}`,
  }));
  const kept = guestFilesystems(many);
  assert.equal(kept?.length, MAX_GUEST_FILESYSTEMS);
  assert.equal(kept?.[0]?.mountpoint, '/m0');
});

test('guest agent versions are kept when plausible', () => {
  assert.equal(guestAgentVersion('7.2.19'), '7.2.19');
  assert.equal(guestAgentVersion('10.0.2+ds-2'), '10.0.2+ds-2');
  assert.equal(guestAgentVersion(''), null);
  assert.equal(guestAgentVersion('7.2\nevil'), null);
  assert.equal(guestAgentVersion('9'.repeat(100)), null);
});

test('the counter epoch comes from the pid and the start time in /proc/<pid>/stat', () => {
  const line =
    '29096 (qemu-system-x86) S 1 29094 29094 0 -1 138445260 3752 0 0 0 4 9 0 0 20 0 1 0 1171737 0 0 18446744073709551615 0 0';
  assert.equal(processStartTicks(line), '1171737');
  // A command name with spaces and parentheses does not shift the fields.
  const odd = '77 (a) b (c) S 1 2 3 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 0';
  assert.equal(processStartTicks(odd), '555');
  assert.equal(processStartTicks(''), undefined);
  assert.equal(counterEpoch(29096, '1171737'), '29096-1171737');
});

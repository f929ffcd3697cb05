// Time series of disks, datastores and VMs through the REST API of a real manager (SQLite in a temp
// dir). The stats go in through the store's own ingestion (ingestHostStats, what the collector
// calls with each agent's sample): 30 s samples over the last 20 minutes with rates and latency
// bins that change from sample to sample. Every expectation is computed from those samples.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  LATENCY_BOUNDS_NS,
  ManagerClient,
  SERIES_MAX_POINTS,
  type DirectionFigures,
  type DiskStats,
  type HostStats,
  type SeriesPoint,
  type Vm,
} from '../../api/index.js';
import type { RunningManager } from '../manager.js';
import { rejects, seedHost, startTestManager, testVm, type TestManager } from '../test-inventory.js';
import { percentileMs } from './rates.js';
import { ingestHostStats } from './store.js';

const GiB = 2 ** 30;
const STEP_MS = 30_000;
const SAMPLES = 41;
const CAPACITY = 100 * GiB;

let t: TestManager;
let manager: RunningManager;
let admin: ManagerClient;

const webBase = testVm('web1', 'running', 1);
const root = webBase.disks[0];
assert.ok(root);
const web: Vm = { ...webBase, disks: [root, { ...root, id: 'data', path: '/d/web1-data.qcow2' }] };
const db1 = testVm('db1', 'running', 2);
const idle = testVm('idle', 'stopped', 3);

/** One disk's I/O in one 30 s interval: operations per direction, all in one latency bin each. */
interface Delta {
  readOps: number;
  writeOps: number;
  readBytes: number;
  writeBytes: number;
  /** Upper bound (ms) of the bin holding the interval's reads and writes. */
  readBinMs: number;
  writeBinMs: number;
}
/** What each disk did in interval i (between samples i-1 and i). */
const DISKS: Record<string, (i: number) => Delta> = {
  'web1/root': (i) => ({
    readOps: 30 * (100 + 10 * (i % 7)),
    writeOps: 30 * 20 * (1 + (i % 3)),
    readBytes: 30 * (100 + 10 * (i % 7)) * 4096,
    writeBytes: 30 * 20 * (1 + (i % 3)) * 65536,
    readBinMs: i % 2 ? 2 : 10,
    writeBinMs: 75,
  }),
  'web1/data': (i) => ({
    readOps: 150,
    writeOps: 30 * 40 + i,
    readBytes: 150 * 512,
    writeBytes: (30 * 40 + i) * 8192,
    readBinMs: 1,
    writeBinMs: i % 4 ? 15 : 100,
  }),
  'db1/root': (i) => ({
    readOps: 0,
    writeOps: 300 + 7 * i,
    readBytes: 0,
    writeBytes: (300 + 7 * i) * 4096,
    readBinMs: 1,
    writeBinMs: 5,
  }),
};
const freeAt = (i: number) => 60 * GiB - i * 0.25 * GiB;

/** Sample times (ms), the last one now. */
const nowAtStart = Date.now();
const sampleMs = (i: number) => nowAtStart - (SAMPLES - 1 - i) * STEP_MS;

function binOf(ms: number, ops: number): number[] {
  const bins = new Array<number>(LATENCY_BOUNDS_NS.length + 1).fill(0);
  const i = LATENCY_BOUNDS_NS.indexOf(ms * 1e6);
  assert.ok(i >= 0, `${ms} ms is a bound`);
  bins[i] = ops;
  return bins;
}
const addBins = (a: number[], b: number[]) => a.map((v, i) => v + (b[i] ?? 0));

/** Cumulative counters and histograms of every disk after sample i. */
function hostStatsAt(i: number): HostStats {
  const disks: DiskStats[] = Object.keys(DISKS).map((key) => {
    const [vmName, diskId] = key.split('/') as [string, string];
    const vm = vmName === 'web1' ? web : db1;
    const total = { readOps: 0, writeOps: 0, readBytes: 0, writeBytes: 0, readNs: 0, writeNs: 0 };
    let readBins = binOf(1, 0);
    let writeBins = binOf(1, 0);
    for (let k = 1; k <= i; k++) {
      const d = DISKS[key]?.(k);
      assert.ok(d);
      total.readOps += d.readOps;
      total.writeOps += d.writeOps;
      total.readBytes += d.readBytes;
      total.writeBytes += d.writeBytes;
      total.readNs += d.readOps * d.readBinMs * 0.9e6;
      total.writeNs += d.writeOps * d.writeBinMs * 0.9e6;
      readBins = addBins(readBins, binOf(d.readBinMs, d.readOps));
      writeBins = addBins(writeBins, binOf(d.writeBinMs, d.writeOps));
    }
    return {
      vm: vm.name,
      vmId: vm.id,
      disk: diskId,
      datastore: 'local',
      format: 'qcow2',
      formatVersion: '1.1',
      virtualSizeBytes: 10 * GiB,
      allocatedBytes: GiB,
      counterEpoch: 'pid-1',
      counters: {
        readOps: total.readOps,
        writeOps: total.writeOps,
        flushOps: 0,
        readBytes: total.readBytes,
        writeBytes: total.writeBytes,
        readTotalNs: total.readNs,
        writeTotalNs: total.writeNs,
        flushTotalNs: 0,
      },
      histograms: {
        boundariesNs: [...LATENCY_BOUNDS_NS],
        read: readBins,
        write: writeBins,
        flush: binOf(1, 0),
      },
    };
  });
  return {
    host: 'h1',
    sampledAt: new Date(sampleMs(i)).toISOString(),
    datastores: [
      {
        name: 'local',
        fsType: 'ext4',
        capacityBytes: CAPACITY,
        freeBytes: freeAt(i),
        provisionedBytes: 30 * GiB,
        allocatedBytes: 3 * GiB,
      },
    ],
    disks,
    guests: [],
  };
}

before(async () => {
  t = await startTestManager('sb-series-api-', { statsIntervalSeconds: 3600 });
  ({ manager, admin } = t);
  await seedHost(manager.db, 'h1', 9, [web, db1, idle]);
  for (let i = 0; i < SAMPLES; i++) await ingestHostStats(manager.db, hostStatsAt(i));
});

after(async () => {
  await t.close();
});

/**
 * What a point of these disks should say: the intervals that ended in its bucket, summed (their
 * time once: the disks were sampled together), and the figures of those sums.
 */
function expectedPoint(disks: string[], atIso: string, step: number) {
  const bucket = Date.parse(atIso) / 1000;
  let seconds = 0;
  const sum = { readOps: 0, writeOps: 0, readBytes: 0, writeBytes: 0, readNs: 0, writeNs: 0 };
  let readBins = binOf(1, 0);
  let writeBins = binOf(1, 0);
  for (let i = 1; i < SAMPLES; i++) {
    const end = Math.floor(sampleMs(i) / 1000);
    if (Math.floor(end / step) * step !== bucket) continue;
    seconds += STEP_MS / 1000;
    for (const key of disks) {
      const d = DISKS[key]?.(i);
      assert.ok(d);
      sum.readOps += d.readOps;
      sum.writeOps += d.writeOps;
      sum.readBytes += d.readBytes;
      sum.writeBytes += d.writeBytes;
      readBins = addBins(readBins, binOf(d.readBinMs, d.readOps));
      writeBins = addBins(writeBins, binOf(d.writeBinMs, d.writeOps));
    }
  }
  return { seconds, sum, readBins, writeBins };
}

function assertClose(actual: number | null, expected: number | null, what: string, tolerance = 0.0011) {
  if (expected === null) return assert.equal(actual, null, `${what}: null`);
  assert.ok(actual !== null && Math.abs(actual - expected) <= tolerance, `${what}: ${actual} vs ${expected}`);
}

/** Checks every point of a series against the seeded samples; returns how many had figures. */
function checkPoints(points: readonly SeriesPoint[], disks: string[], step: number): number {
  let measured = 0;
  for (const p of points) {
    const e = expectedPoint(disks, p.at, step);
    assert.equal(p.coveredSeconds, e.seconds, `${p.at}: covered seconds`);
    if (e.seconds === 0) {
      assert.equal(p.iops, null, `${p.at}: an empty bucket has no figures, not 0`);
      continue;
    }
    measured++;
    const dir = (f: DirectionFigures, ops: number, bytes: number, bins: number[], name: string) => {
      assertClose(f.iops, ops / e.seconds, `${p.at} ${name} iops`);
      assertClose(f.bytesPerSecond, bytes / e.seconds, `${p.at} ${name} bytes/s`, 0.051);
      assertClose(f.p90LatencyMs, percentileMs(bins, 0.9), `${p.at} ${name} p90`);
      assertClose(f.p99LatencyMs, percentileMs(bins, 0.99), `${p.at} ${name} p99`);
    };
    dir(p.read, e.sum.readOps, e.sum.readBytes, e.readBins, 'read');
    dir(p.write, e.sum.writeOps, e.sum.writeBytes, e.writeBins, 'write');
    assertClose(p.iops, (e.sum.readOps + e.sum.writeOps) / e.seconds, `${p.at} iops`);
    assertClose(
      p.throughputBytesPerSecond,
      (e.sum.readBytes + e.sum.writeBytes) / e.seconds,
      `${p.at} throughput`,
      0.051,
    );
  }
  return measured;
}

/** Points one step apart, aligned to it, the last one holding now, `from`/`to` spanning them. */
function checkFrame(
  s: { stepSeconds: number; from: string; to: string; points: readonly { at: string }[] },
  step: number,
  count: number,
) {
  assert.equal(s.stepSeconds, step);
  assert.equal(s.points.length, count);
  assert.ok(s.points.length <= SERIES_MAX_POINTS);
  const ats = s.points.map((p) => Date.parse(p.at) / 1000);
  ats.forEach((at, i) => {
    assert.equal(at % step, 0, 'aligned to the step');
    if (i > 0) assert.equal(at - (ats[i - 1] ?? 0), step, 'one step apart');
  });
  assert.equal(s.from, s.points[0]?.at);
  const last = ats[ats.length - 1] ?? 0;
  assert.equal(Date.parse(s.to) / 1000, last + step);
  assert.ok(
    Date.now() / 1000 >= last && Date.now() / 1000 < last + step + 5,
    'the last bucket is the current one',
  );
}

test('a disk series: one point per 30 s over 15 minutes, each bucket the figures of its samples', async () => {
  const s = await admin.getDiskSeries('web1', 'root', { window: '15m' });
  assert.equal(s.vm, 'web1');
  assert.equal(s.vmId, web.id);
  assert.equal(s.host, 'h1');
  assert.equal(s.datastore, 'local');
  assert.equal(s.window, '15m');
  checkFrame(s, 30, 30);
  assert.ok(checkPoints(s.points, ['web1/root'], 30) >= 28, 'nearly every bucket has a sample');
  // Reads alternate between the 1-2 ms and 5-10 ms bins: the p90 moves with them.
  const p90s = new Set(s.points.map((p) => p.read.p90LatencyMs).filter((v) => v !== null));
  assert.ok(p90s.size >= 2, `p90 follows each bucket's bins (${[...p90s].join(', ')})`);
  // By id too.
  assert.equal((await admin.getDiskSeries(web.id, 'data', { window: '15m' })).disk, 'data');
});

test('the window picks the tier: 30 s up to 15 min, 5 min up to 3 h, then hourly (192 points at 8 days)', async () => {
  const cases: [string, number, number][] = [
    ['1m', 30, 2],
    ['15m', 30, 30],
    ['16m', 300, 4],
    ['1h', 300, 12],
    ['3h', 300, 36],
    ['4h', 3600, 4],
    ['24h', 3600, 24],
    ['8d', 3600, 192],
  ];
  for (const [window, step, count] of cases) {
    const s = await admin.getDiskSeries('web1', 'root', { window });
    checkFrame(s, step, count);
    const measured = checkPoints(s.points, ['web1/root'], step);
    assert.ok(measured >= 1, `${window}: some bucket has figures`);
  }
  // The default window is the explorer's (1 h).
  assert.equal((await admin.getDiskSeries('web1', 'root')).stepSeconds, 300);
});

test('a datastore series sums its disks and gives capacity, used and free as last sampled', async () => {
  for (const [window, step] of [
    ['15m', 30],
    ['1h', 300],
    // Hourly points of 5-minute space points: the hour's last one.
    ['4h', 3600],
  ] as const) {
    const s = await admin.getDatastoreSeries('h1', 'local', { window });
    assert.equal(s.host, 'h1');
    assert.equal(s.datastore, 'local');
    assert.equal(s.stepSeconds, step);
    // As many buckets have figures as the intervals' ends fall into (20 minutes of samples may sit in
    // one hour or span two, depending on the time of day the test runs).
    const from = Date.parse(s.from) / 1000;
    const buckets = new Set(
      Array.from({ length: SAMPLES - 1 }, (_, k) => Math.floor(sampleMs(k + 1) / 1000 / step) * step).filter(
        (bucket) => bucket >= from,
      ),
    );
    const measured = checkPoints(s.points, Object.keys(DISKS), step);
    assert.equal(measured, buckets.size, `${window}: buckets with figures`);
    for (const p of s.points) {
      const bucket = Date.parse(p.at) / 1000;
      const inBucket = Array.from({ length: SAMPLES }, (_, i) => i).filter(
        (i) => Math.floor(sampleMs(i) / 1000 / step) * step === bucket,
      );
      const last = inBucket[inBucket.length - 1];
      if (last === undefined) {
        assert.equal(p.capacityBytes, null, `${p.at}: no space sample`);
        continue;
      }
      assert.equal(p.capacityBytes, CAPACITY);
      assert.equal(p.freeBytes, freeAt(last), `${p.at}: the bucket's last free space`);
      assert.equal(p.usedBytes, CAPACITY - freeAt(last));
    }
  }
});

test('a VM series sums its disks; a VM without figures has empty points, not zeros', async () => {
  const s = await admin.getVmSeries('web1', { window: '15m' });
  assert.deepEqual(s.disks, ['data', 'root']);
  checkFrame(s, 30, 30);
  assert.ok(checkPoints(s.points, ['web1/root', 'web1/data'], 30) >= 28);
  const one = await admin.getVmSeries('db1', { window: '1h' });
  assert.ok(checkPoints(one.points, ['db1/root'], 300) >= 2);
  const none = await admin.getVmSeries('idle', { window: '1h' });
  assert.deepEqual(none.disks, []);
  assert.ok(
    none.points.every((p) => p.iops === null && p.read.p99LatencyMs === null && p.coveredSeconds === 0),
  );
  // A disk the VM has but the store has not sampled: an empty series too.
  const unsampled = await admin.getDiskSeries('idle', 'root', { window: '15m' });
  assert.equal(unsampled.host, null);
  assert.ok(unsampled.points.every((p) => p.iops === null));
});

test('unknown VM, disk, host or datastore: not-found naming it; a bad window: 400 naming it', async () => {
  const vm = await rejects(admin.getVmSeries('nope'), 404, 'vm');
  assert.match(vm.message, /nope/);
  await rejects(admin.getDiskSeries('nope', 'root'), 404, 'vm');
  const disk = await rejects(admin.getDiskSeries('web1', 'nope'), 404, 'disk');
  assert.match(disk.message, /web1\/nope/);
  const ds = await rejects(admin.getDatastoreSeries('h1', 'nope'), 404, 'datastore');
  assert.match(ds.message, /h1\/nope/);
  await rejects(admin.getDatastoreSeries('h9', 'local'), 404, 'host');
  for (const window of ['9d', 'soon', '0m', '30s']) {
    const e = await rejects(admin.getVmSeries('web1', { window }), 400, 'window');
    assert.match(e.message, /window/);
    await rejects(admin.getDiskSeries('web1', 'root', { window }), 400, 'window');
    await rejects(admin.getDatastoreSeries('h1', 'local', { window }), 400, 'window');
  }
  await rejects(admin.http.raw('GET', '/api/v1/vms/web1/series?window=1h&step=60'), 400, 'step');
});

test('every reply matched its route', () => {
  assert.deepEqual(t.breaches, []);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_STORAGE_THRESHOLDS, LATENCY_BOUNDS_NS, thresholdOrderProblem } from '../../api/index.js';
import { BIN_COUNT, emptySums, type IoSums } from './rates.js';
import { compareVersions } from '../tools-status.js';
import {
  datastoreFindings,
  effectiveThresholds,
  evaluateRules,
  guestFindings,
  mismatchFindings,
  SUSTAINED_COVERAGE,
  SUSTAINED_SECONDS,
  toolsFindings,
  vmIoFindings,
  type DatastoreFacts,
  type GuestToolsFacts,
  type DiskFacts,
} from './rules.js';

const GiB = 2 ** 30;
const t = effectiveThresholds(undefined);

const ds = (over: Partial<DatastoreFacts> = {}): DatastoreFacts => ({
  host: 'h1',
  name: 'local',
  fsType: 'ext4',
  capacityBytes: 100 * GiB,
  freeBytes: 50 * GiB,
  provisionedBytes: 50 * GiB,
  daysUntilFull: null,
  sustained: null,
  thresholds: t,
  ...over,
});
const disk = (over: Partial<DiskFacts> = {}): DiskFacts => ({
  vm: 'web1',
  vmId: 'id-web1',
  disk: 'root',
  host: 'h1',
  datastore: 'local',
  format: 'qcow2',
  formatVersion: '1.1',
  sustained: null,
  thresholds: t,
  ...over,
});
/** Five minutes of I/O: `ops` writes at `latencyMs` each (all in the bin ending at binMs). */
function io(
  ops: number,
  latencyMs: number,
  opts: { seconds?: number; bytes?: number; binMs?: number } = {},
): IoSums {
  const s = emptySums();
  s.seconds = opts.seconds ?? SUSTAINED_SECONDS;
  s.writeOps = ops;
  s.writeNs = ops * latencyMs * 1e6;
  s.writeBytes = opts.bytes ?? 0;
  if (opts.binMs !== undefined) s.writeBins[LATENCY_BOUNDS_NS.indexOf(opts.binMs * 1e6)] = ops;
  return s;
}
const rules = (list: { rule: string; severity: string }[]) => list.map((f) => `${f.rule}:${f.severity}`);

test('the defaults are those documented, in order, and overrides replace single fields', () => {
  assert.deepEqual(t, DEFAULT_STORAGE_THRESHOLDS);
  assert.equal(thresholdOrderProblem(t), undefined);
  assert.equal(effectiveThresholds({ freeWarningPercent: 40 }).freeWarningPercent, 40);
  assert.equal(effectiveThresholds({ freeWarningPercent: 40 }).freeCriticalPercent, 15);
  assert.equal(
    thresholdOrderProblem(effectiveThresholds({ guestUsedWarningPercent: 99 }))?.field,
    'guestUsedWarningPercent',
  );
});

test('low capacity: free space bands at 25 % (warning) and 15 % (critical)', () => {
  assert.deepEqual(rules(datastoreFindings(ds({ freeBytes: 26 * GiB }))), []);
  assert.deepEqual(rules(datastoreFindings(ds({ freeBytes: 24 * GiB }))), ['low-capacity:warning']);
  assert.deepEqual(rules(datastoreFindings(ds({ freeBytes: 14 * GiB }))), ['low-capacity:critical']);
  assert.deepEqual(
    rules(datastoreFindings(ds({ capacityBytes: 0, freeBytes: 0 }))),
    [],
    'no capacity: no figure',
  );
  const [f] = datastoreFindings(ds({ freeBytes: 10 * GiB }));
  assert.equal(f?.value, 10);
  assert.equal(f?.threshold, 15);
});

test('days until full: bands under 120 (info), 60 (warning) and 30 (critical) days', () => {
  const band = (days: number | null) => rules(datastoreFindings(ds({ daysUntilFull: days })));
  assert.deepEqual(band(null), []);
  assert.deepEqual(band(200), []);
  assert.deepEqual(band(119), ['days-until-full:info']);
  assert.deepEqual(band(59), ['days-until-full:warning']);
  assert.deepEqual(band(29.9), ['days-until-full:critical']);
});

test('over-commitment weighs the ratio with the free-space trend', () => {
  const over = (provisioned: number, extra: Partial<DatastoreFacts> = {}) =>
    datastoreFindings(ds({ provisionedBytes: provisioned * GiB, ...extra })).find(
      (f) => f.rule === 'over-commitment',
    )?.severity;
  assert.equal(over(140), undefined, 'ratio 1.4');
  assert.equal(over(150), 'info', 'ratio 1.5, space fine');
  assert.equal(over(250), 'warning', 'ratio 2.5 but free space is not shrinking');
  assert.equal(over(250, { daysUntilFull: 90 }), 'critical', 'ratio 2.5 and full within 120 days');
  assert.equal(over(160, { freeBytes: 20 * GiB }), 'warning', 'ratio 1.6 and low free space');
});

test('high latency: p90 above 15 ms over a covered 5-minute period', () => {
  const hl = (s: IoSums | null) =>
    datastoreFindings(ds({ sustained: s })).filter((f) => f.rule === 'high-latency');
  assert.equal(hl(io(1000, 25, { binMs: 30 })).length, 1);
  assert.equal(hl(io(1000, 5, { binMs: 10 })).length, 0);
  assert.equal(
    hl(io(1000, 25, { binMs: 30, seconds: SUSTAINED_SECONDS * SUSTAINED_COVERAGE - 1 })).length,
    0,
    'not sustained',
  );
  assert.equal(hl(null).length, 0);
  // 85 % of writes fast, 15 % slow: p90 lands among the slow ones.
  const mixed = io(1000, 5, { binMs: 10 });
  mixed.writeBins[LATENCY_BOUNDS_NS.indexOf(10e6)] = 850;
  mixed.writeBins[LATENCY_BOUNDS_NS.indexOf(50e6)] = 150;
  assert.equal(hl(mixed).length, 1);
});

test("VM latency by the slower direction, VM throughput by the VM's disks together", () => {
  assert.deepEqual(rules(vmIoFindings([disk({ sustained: io(100, 40) })])), []);
  assert.deepEqual(rules(vmIoFindings([disk({ sustained: io(100, 60) })])), ['vm-latency:warning']);
  assert.deepEqual(rules(vmIoFindings([disk({ sustained: io(100, 80) })])), ['vm-latency:critical']);
  // Many fast reads do not hide slow writes.
  const s = io(100, 60);
  s.readOps = 100_000;
  s.readNs = 100_000 * 1e6;
  assert.deepEqual(rules(vmIoFindings([disk({ sustained: s })])), ['vm-latency:warning']);
  const MiB = 2 ** 20;
  const bytes = (rate: number) => io(10, 1, { bytes: rate * SUSTAINED_SECONDS * MiB });
  assert.deepEqual(rules(vmIoFindings([disk({ sustained: bytes(150) })])), []);
  assert.deepEqual(
    rules(vmIoFindings([disk({ sustained: bytes(150) }), disk({ disk: 'data', sustained: bytes(150) })])),
    ['vm-throughput:warning'],
    '300 MiB/s over two disks of one VM',
  );
  assert.deepEqual(rules(vmIoFindings([disk({ sustained: bytes(600) })])), ['vm-throughput:critical']);
  assert.deepEqual(
    rules(vmIoFindings([disk({ sustained: { ...bytes(600), seconds: 60 } })])),
    [],
    'one minute',
  );
});

test('format version mismatch: old compat beside a newer one (warning) or elsewhere in the fabric (info)', () => {
  assert.ok(compareVersions('0.10', '1.1') < 0);
  assert.ok(compareVersions('1.10', '1.9') > 0);
  const same = [
    disk({ vmId: 'a', formatVersion: '1.1' }),
    disk({ vmId: 'b', vm: 'old', formatVersion: '0.10' }),
  ];
  const found = mismatchFindings(same, []);
  assert.deepEqual(rules(found), ['format-version-mismatch:warning']);
  assert.equal(found[0]?.subject.name, 'old/root');
  const elsewhere = [
    disk({ vmId: 'a', formatVersion: '1.1' }),
    disk({ vmId: 'b', vm: 'old', datastore: 'second', formatVersion: '0.10' }),
  ];
  assert.deepEqual(rules(mismatchFindings(elsewhere, [])), ['format-version-mismatch:info']);
  assert.deepEqual(
    rules(
      mismatchFindings(
        [disk(), disk({ vmId: 'b' }), disk({ vmId: 'c', format: 'raw', formatVersion: null })],
        [],
      ),
    ),
    [],
  );
});

test("filesystem mismatch: a datastore whose filesystem differs from the fabric's usual one", () => {
  const list = [
    ds({ name: 'a' }),
    ds({ name: 'b' }),
    ds({ name: 'c', fsType: 'xfs' }),
    ds({ name: 'd', fsType: 'unknown' }),
  ];
  const found = mismatchFindings([], list);
  assert.deepEqual(rules(found), ['filesystem-mismatch:info']);
  assert.equal(found[0]?.subject.name, 'h1/c');
  assert.deepEqual(mismatchFindings([], [ds(), ds({ name: 'b' })]), []);
});

test('VM low disk space: 90 % warns, 95 % critical; unknown usage never fires', () => {
  const fs = (used: number, total = 100) => ({
    vm: 'web1',
    vmId: 'id',
    host: 'h1',
    mountpoint: '/',
    totalBytes: total,
    usedBytes: used,
    thresholds: t,
  });
  assert.deepEqual(rules(guestFindings([fs(89)])), []);
  assert.deepEqual(rules(guestFindings([fs(90)])), ['vm-low-disk-space:warning']);
  assert.deepEqual(rules(guestFindings([fs(95)])), ['vm-low-disk-space:critical']);
  assert.deepEqual(rules(guestFindings([fs(0, 0)])), []);
});

test('every rule through evaluateRules, with per-datastore thresholds', () => {
  const lenient = effectiveThresholds({ freeWarningPercent: 5, freeCriticalPercent: 1 });
  const all = evaluateRules({
    datastores: [
      ds({ freeBytes: 10 * GiB }),
      ds({ name: 'relaxed', freeBytes: 10 * GiB, thresholds: lenient }),
    ],
    disks: [disk()],
    guestFilesystems: [],
  });
  assert.deepEqual(
    all.map((f) => `${f.rule}:${f.subject.name}`),
    ['low-capacity:h1/local'],
  );
  assert.equal(BIN_COUNT, LATENCY_BOUNDS_NS.length + 1);
});

test('guest tools: outdated and silent agents warn, a missing one is info, current or unknown ones are quiet', () => {
  const vm = (status: GuestToolsFacts['status']): GuestToolsFacts => ({
    vm: `vm-${status ?? 'booting'}`,
    vmId: `id-${status ?? 'booting'}`,
    host: 'h1',
    status,
    installed: '7.2.22',
    current: '10.0.2',
  });
  const findings = toolsFindings([
    vm('current'),
    vm(null),
    vm('outdated'),
    vm('not-answering'),
    vm('missing'),
  ]);
  assert.deepEqual(
    findings.map((f) => [f.subject.name, f.rule, f.severity]),
    [
      ['vm-outdated', 'vm-tools', 'warning'],
      ['vm-not-answering', 'vm-tools', 'warning'],
      ['vm-missing', 'vm-tools', 'info'],
    ],
  );
  assert.match(
    findings[0]?.message ?? '',
    /7\.2\.22 is older than h1's tools 10\.0\.2: silobreak vm tools insert vm-outdated/,
  );
});

test('a host that cannot reach its shared datastore is a critical issue naming host, datastore, storage and what the agent saw', () => {
  const storageId = '0b7c1f4e-2a57-4c7e-9a55-6a8f1d3e9b21';
  const shared = (lost: DatastoreFacts['lost']) =>
    datastoreFindings(ds({ host: 'host2', name: 'shared', storageId, lost })).filter(
      (f) => f.rule === 'shared-datastore-lost',
    );
  assert.deepEqual(shared(null), [], 'reachable: no issue');
  assert.deepEqual(shared(undefined), [], 'a local datastore (or an agent that does not say): no issue');
  const [hung] = shared({
    cause: 'no-answer',
    detail: '/mnt/shared did not answer within 5 s (a hung network mount: server or link gone)',
  });
  assert.deepEqual(hung, {
    rule: 'shared-datastore-lost',
    severity: 'critical',
    subject: { kind: 'datastore', key: 'host2/shared', name: 'host2/shared', host: 'host2' },
    message: `host2 cannot reach shared datastore shared (storage ${storageId}): its mount does not answer (/mnt/shared did not answer within 5 s (a hung network mount: server or link gone))`,
    value: null,
    threshold: null,
  });
  const [lease] = shared({ cause: 'lockspace-lost', detail: 'sanlock dropped lockspace sb1 on it' });
  assert.match(lease!.message, /its cluster lockspace on it was lost \(sanlock dropped lockspace sb1/);
  const [stale] = shared({ cause: 'error', detail: 'Transport endpoint is not connected' });
  assert.match(stale!.message, /its mount fails \(Transport endpoint is not connected\)/);
  const [gone] = shared({ cause: 'not-the-storage', detail: 'no marker' });
  assert.match(gone!.message, /the storage is not mounted/);
  // The other datastore rules still see its (last) figures.
  const all = evaluateRules({
    datastores: [
      ds({ name: 'shared', storageId, freeBytes: 5 * GiB, lost: { cause: 'error', detail: 'x' } }),
    ],
    disks: [],
    guestFilesystems: [],
  });
  assert.deepEqual(all.map((f) => f.rule).sort(), ['low-capacity', 'shared-datastore-lost']);
});

test('a shared storage short of space is one issue for all its hosts, on the figures that can be counted on', () => {
  const storageId = 'nfs-a';
  const view = (host: string, over: Partial<DatastoreFacts>) =>
    ds({ host, name: 'shared', storageId, lost: null, ...over });
  const findings = evaluateRules({
    datastores: [
      // Each host measured the same filesystem at its own moment, and provisions its own VMs' disks.
      view('host2', {
        capacityBytes: 100 * GiB,
        freeBytes: 12 * GiB,
        provisionedBytes: 120 * GiB,
        daysUntilFull: 9,
      }),
      view('host1', {
        capacityBytes: 101 * GiB,
        freeBytes: 13 * GiB,
        provisionedBytes: 80 * GiB,
        daysUntilFull: 12,
      }),
      view('host3', {
        capacityBytes: 100 * GiB,
        freeBytes: 14 * GiB,
        provisionedBytes: 0,
        daysUntilFull: null,
      }),
      // A local datastore short of space beside it stays its host's issue.
      ds({ host: 'host1', name: 'local', freeBytes: 20 * GiB }),
    ],
    disks: [],
    guestFilesystems: [],
  });
  const shared = findings.filter((f) => f.subject.key === 'storage nfs-a');
  assert.deepEqual(
    shared.map((f) => [f.rule, f.severity, f.value]),
    [
      ['low-capacity', 'critical', round2((12 / 101) * 100)],
      ['days-until-full', 'critical', 9],
      ['over-commitment', 'warning', round3(200 / 101)],
    ],
    "each space rule once, on the largest capacity, the least free, the soonest full and every host's disks",
  );
  for (const f of shared)
    assert.deepEqual(
      f.subject,
      {
        kind: 'datastore',
        key: 'storage nfs-a',
        name: 'storage nfs-a (host1/shared, host2/shared, host3/shared)',
        host: null,
      },
      `${f.rule} is about the storage, named with the datastores that see it`,
    );
  assert.deepEqual(
    findings.filter((f) => f.subject.key !== 'storage nfs-a').map((f) => `${f.subject.name} ${f.rule}`),
    ['host1/local low-capacity'],
    'no space issue per host for the shared storage; the local datastore keeps its own',
  );
});
const round2 = (n: number) => Number(n.toFixed(2));
const round3 = (n: number) => Number(n.toFixed(3));

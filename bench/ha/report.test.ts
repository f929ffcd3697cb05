import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  busyPercent,
  haBreakdown,
  haVerdict,
  leaseHeld,
  maxConcurrent,
  monoToWallMs,
  parseHostStatus,
  parseProcStat,
  renderDrainTable,
  renderHaTable,
  renderMoveTable,
  sanlockHostDeadSeconds,
  targetsOf,
  type DrainRun,
  type HaSample,
  type MoveSample,
} from './report.js';

const T0 = 1_800_000_000_000;
const sample = (over: Partial<HaSample> = {}): HaSample => ({
  case: 'power loss',
  vm: 'ha1',
  priority: 900,
  from: 'host3',
  to: 'host1',
  deathAt: T0,
  detectedAt: T0 + 11_000,
  leaseAcquiredAt: T0 + 76_500,
  runningAt: T0 + 77_000,
  pingAt: T0 + 84_000,
  leaseFreeAt: T0 + 75_000,
  leaseWaits: 0,
  records: '1234 records (>= 1200)',
  ...over,
});

test("sanlock's host-dead time: 8 I/O timeouts and the 60-s watchdog term", () => {
  assert.equal(sanlockHostDeadSeconds(2), 76);
  assert.equal(sanlockHostDeadSeconds(10), 140);
  assert.equal(sanlockHostDeadSeconds(1), 68);
});

test('sanlock host_status -D is read per host: its timestamp, last_live and io_timeout', () => {
  const text = [
    '1 timestamp 50013',
    '    last_check=50014',
    '    last_live=50014',
    '    last_req=0',
    '    owner_id=1',
    '    owner_generation=1',
    '    timestamp=50013',
    '    io_timeout=2',
    '    owner_name=host1',
    '3 timestamp 49980 FAIL',
    '    last_check=50014',
    '    last_live=49982',
    '    io_timeout=2',
    '',
  ].join('\n');
  assert.deepEqual(parseHostStatus(text), [
    { hostId: 1, timestamp: 50013, lastLive: 50014, ioTimeout: 2 },
    { hostId: 3, timestamp: 49980, lastLive: 49982, ioTimeout: 2 },
  ]);
  assert.deepEqual(parseHostStatus(''), []);
  // Without -D there are only the head lines.
  assert.deepEqual(parseHostStatus('2 timestamp 7\n'), [
    { hostId: 2, timestamp: 7, lastLive: undefined, ioTimeout: undefined },
  ]);
});

test('a lease counts as held once sanlock lists it without ADD (as a restart waiting for it shows it)', () => {
  const id = 'd2b613c3-1712-4212-a332-1f2353880c94';
  const ls = 'sbf19fc9f95f614ef5b9ff642db73828e2';
  const file = `/var/lib/silobreak/lab-mounts/habench/host1/shared/.silobreak/leases/${id}`;
  const status = (line: string) => `daemon 5e7c-host1\np -1 helper\ns ${ls}:1:/x/lockspace:0\n${line}\n`;
  assert.equal(leaseHeld(status(`r ${ls}:${id}::0:0 p 1042 ADD`), id), false);
  assert.equal(leaseHeld(status(`r ${ls}:${id}:${file}:0:0 p 1042 ADD`), id), false);
  assert.equal(leaseHeld(status(`r ${ls}:${id}:${file}:0:2 p 1042`), id), true);
  assert.equal(leaseHeld(status(`r ${ls}:${id}:${file}:0:2 p 1042 REM`), id), false);
  assert.equal(leaseHeld(status(`r ${ls}:other:${file}:0:2 p 1042`), id), false);
  assert.equal(leaseHeld('', id), false);
});

test('a monotonic instant is placed on the wall clock by one reading of both', () => {
  const now = { monoMs: 50_020_500, wallMs: T0 };
  assert.equal(monoToWallMs(50_014, now), T0 - 6_500);
  assert.equal(monoToWallMs(50_020.5, now), T0);
});

test('an HA restart splits into detection, lease wait, start and boot, which add up to the total', () => {
  const b = haBreakdown(sample());
  assert.deepEqual(b, {
    totalMs: 84_000,
    detectionMs: 11_000,
    leaseWaitMs: 65_500,
    startMs: 500,
    bootMs: 7_000,
    leaseFreeMs: 75_000,
    fencedMs: undefined,
    metGoal: false,
  });
  assert.equal(b.detectionMs + b.leaseWaitMs! + b.startMs! + b.bootMs, b.totalMs);
  assert.equal(haBreakdown(sample({ pingAt: T0 + 29_000 })).metGoal, true);
  assert.equal(haBreakdown(sample({ pingAt: T0 + 30_001 })).metGoal, false);
  const unseen = haBreakdown(sample({ leaseAcquiredAt: undefined, leaseFreeAt: undefined }));
  assert.deepEqual(
    [unseen.leaseWaitMs, unseen.startMs, unseen.leaseFreeMs],
    [undefined, undefined, undefined],
  );
});

test('the HA table shows each restart against the goal, and says when the old QEMU died', () => {
  const text = renderHaTable([
    sample(),
    sample({ case: 'split brain', vm: 'ha3', priority: 500, from: 'host2', fencedAt: T0 + 21_000 }),
    sample({ case: 'split brain', vm: 'ha4', fencedAt: T0 + 80_000 }),
    sample({ case: 'split brain', vm: 'ha5', fencedAt: undefined }),
  ]);
  const rows = text.split('\n');
  assert.equal(rows.length, 6);
  assert.equal(
    rows[2],
    '| power loss | ha1 (900) | host3 -> host1 | 84.0 s | missed (2.80 x) | 11.0 s | 65.5 s | 0.5 s | 7.0 s | 75.0 s | at death | 1234 records (>= 1200) |',
  );
  assert.match(rows[3] ?? '', /\| ha3 \(500\) \| host2 -> host1 \|.*\| 21\.0 s \(before the restart\) \|/);
  assert.match(rows[4] ?? '', /\| 80\.0 s \(AFTER the restart\) \|/);
  assert.match(rows[5] ?? '', /\| never \|/);
  assert.match(rows[0] ?? '', /goal 30\.0 s/);
});

test('the HA verdict names the lease as the bound, from the samples', () => {
  const text = haVerdict(
    [sample(), sample({ vm: 'ha2', pingAt: T0 + 90_000, leaseFreeAt: T0 + 72_000 })],
    2,
    10,
  );
  assert.match(text, /Death to ping: 84\.0 s to 90\.0 s over 2 restarts; goal 30\.0 s: met by 0 of 2\./);
  assert.match(text, /only 76 s \(8 I\/O timeouts of 2 s \+ 60 s/);
  assert.match(text, /at 80-89 % of the total/);
  assert.match(text, /Detection \(10 s without an answer\)/);
  assert.match(text, /boot to ping took 7\.0 s to 13\.0 s/);
  assert.match(haVerdict([sample()], 2, 10), /at 89 % of the total/);
  assert.equal(haVerdict([], 2, 10), 'No HA restart was measured.');
});

test('moves at once: overlapping intervals count, touching ones do not', () => {
  assert.equal(maxConcurrent([]), 0);
  assert.equal(
    maxConcurrent([
      { startedAt: 0, finishedAt: 10 },
      { startedAt: 10, finishedAt: 20 },
    ]),
    1,
  );
  assert.equal(
    maxConcurrent([
      { startedAt: 0, finishedAt: 10 },
      { startedAt: 2, finishedAt: 12 },
      { startedAt: 11, finishedAt: 15 },
      { startedAt: 11, finishedAt: 13 },
    ]),
    3,
  );
});

const moves = (to: string[], startSeconds: number[], length: number): DrainRun['moves'] =>
  to.map((t, i) => ({
    vm: `d${i + 1}`,
    to: t,
    startedAt: startSeconds[i]! * 1000,
    finishedAt: startSeconds[i]! * 1000 + length,
    diskBytes: 0,
  }));

test('the drain table sets each drain against the one-by-one moves of its round', () => {
  const targets = ['host2', 'host3', 'host2', 'host3'];
  const runs: DrainRun[] = [
    {
      round: 0,
      method: 'drain',
      position: 'warm-up',
      wallMs: 20_000,
      moves: moves(targets, [0, 0, 6, 6], 6_000),
    },
    {
      round: 1,
      method: 'one by one',
      position: 'first',
      wallMs: 28_000,
      moves: moves(targets, [0, 7, 14, 21], 6_000),
    },
    {
      round: 1,
      method: 'drain',
      position: 'second',
      wallMs: 14_000,
      moves: moves(targets, [0, 0, 7, 7], 6_000),
    },
  ];
  const rows = renderDrainTable(runs).split('\n');
  assert.equal(
    rows[2],
    '| - | host drain | warm-up | 4 | 20.0 s | - | 24.0 s | 6.0 s | 2 | 0.0 MiB | d1 -> host2, d2 -> host3, d3 -> host2, d4 -> host3 |',
  );
  assert.match(
    rows[3] ?? '',
    /^\| 1 \| vm move, one by one \| first \| 4 \| 28\.0 s \| 1\.00 x \| 24\.0 s \| 6\.0 s \| 1 \|/,
  );
  assert.match(
    rows[4] ?? '',
    /^\| 1 \| host drain \| second \| 4 \| 14\.0 s \| 0\.50 x \| 24\.0 s \| 6\.0 s \| 2 \|/,
  );
  assert.equal(targetsOf(runs[1]!), targetsOf(runs[2]!));
});

test('the move table sets each move against the memory-only move, with the job and the counters', () => {
  const base: MoveSample = {
    round: 1,
    kind: 'memory only',
    from: 'host2',
    to: 'host3',
    wallMs: 6_000,
    totalTimeMs: 5_200,
    downtimeMs: 15,
    guestDowntimeMs: 120,
    diskBytes: 0,
    memoryBytes: 300 * 1024 * 1024,
    sourceTxBytes: 600 * 1024 * 1024,
    targetRxBytes: 610 * 1024 * 1024,
    storageBytes: 8 * 1024 * 1024,
    sourceTxAfterValidateBytes: 310 * 1024 * 1024,
  };
  const rows = renderMoveTable([
    base,
    {
      ...base,
      kind: 'shared nothing',
      from: 'host3',
      to: 'host1',
      wallMs: 24_000,
      diskBytes: 2048 * 1024 * 1024,
      sourceTxAfterValidateBytes: undefined,
      downtimeMs: undefined,
    },
  ]).split('\n');
  assert.equal(
    rows[2],
    '| 1 | memory only | host2 -> host3 | 6.0 s | 1.00 x | 5.2 s | 15 ms | 120 ms | 0.0 MiB | 300.0 MiB | 600.0 MiB | 310.0 MiB | 610.0 MiB | 8.0 MiB |',
  );
  assert.match(
    rows[3] ?? '',
    /^\| 1 \| shared nothing \| host3 -> host1 \| 24\.0 s \| 4\.00 x \| 5\.2 s \| - \| 120 ms \| 2048\.0 MiB \|.*\| - \|/,
  );
});

test("the machine's busy share comes from /proc/stat's cpu line", () => {
  const a = parseProcStat('cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3\n');
  assert.deepEqual(a, { busy: 200, total: 1000 });
  const b = parseProcStat('cpu  200 0 200 800 100 0 0 0 0 0\n');
  assert.equal(busyPercent(a, b), (100 * 200) / 300);
  assert.equal(busyPercent(a, a), undefined);
});

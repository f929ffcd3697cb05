import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  DEFAULT_PLACEMENT_SETTINGS,
  HELD_AT_LIMIT_SHARE,
  PlacementSettings,
  placementSettingsProblem,
} from '../../api/index.js';
import {
  demandReason,
  estimatedMoveSeconds,
  heldAtLimit,
  isCool,
  isHot,
  plan,
  type Demand,
  type PlanInput,
  type Target,
  type ThrottledIo,
  type VmFacts,
} from './planner.js';

const GiB = 2 ** 30;
const S: PlacementSettings = { ...DEFAULT_PLACEMENT_SETTINGS };
const NOW = Date.parse('2026-06-01T12:00:00Z');
const MIN = 60_000;

const target = (host: string, cls: string, over: Partial<Target> = {}): Target => ({
  host,
  datastore: 'local',
  cls,
  storageId: null,
  connected: true,
  maintenance: 'none',
  memoryFreeBytes: 16 * GiB,
  capacityBytes: 100 * GiB,
  freeBytes: 80 * GiB,
  iopsBudget: cls === 'fast' ? null : 400,
  limits: { iops: cls === 'fast' ? null : 400, bytesPerSecond: null },
  ...over,
});
const TARGETS = [target('host1', 'standard'), target('host2', 'standard'), target('host3', 'fast')];

/** A running VM on host1/local, idle, never moved. */
const vm = (name: string, over: Partial<VmFacts> = {}): VmFacts => ({
  id: `id-${name}`,
  name,
  running: true,
  memoryBytes: GiB,
  diskBytes: 4 * GiB,
  at: { host: 'host1', datastore: 'local' },
  cls: 'standard',
  home: null,
  placedFor: null,
  priority: 50,
  pinned: false,
  excluded: false,
  lastMoveAt: null,
  movesToday: 0,
  moving: false,
  movingTo: null,
  demand: { iops: 5, latencyMs: 1 },
  arrivalIops: null,
  hotSince: null,
  coolSince: null,
  ...over,
});
const hot = (over: Partial<VmFacts> = {}) =>
  vm('busy', { demand: { iops: 400, latencyMs: 40 }, hotSince: NOW - 6 * MIN, ...over });

const input = (vms: VmFacts[], over: Partial<PlanInput> = {}): PlanInput => ({
  vms,
  targets: TARGETS,
  settings: S,
  windows: [],
  movesInFlight: 0,
  now: NOW,
  ...over,
});

test('the defaults keep their own hysteresis and pass their schema', () => {
  assert.equal(PlacementSettings.safeParse(DEFAULT_PLACEMENT_SETTINGS).success, true);
  assert.equal(placementSettingsProblem(S), undefined);
  assert.equal(placementSettingsProblem({ ...S, coolIops: S.hotIops })?.field, 'coolIops');
  assert.equal(
    placementSettingsProblem({ ...S, coolHoldSeconds: S.holdSeconds - 1 })?.field,
    'coolHoldSeconds',
  );
});

test('a VM hot for the hold time is recommended onto the fast class, with its reason and prediction', () => {
  const { moves } = plan(input([hot(), vm('idle')]));
  assert.equal(moves.length, 1);
  const [m] = moves;
  assert.equal(m?.kind, 'to-fast');
  assert.equal(m?.vm, 'busy');
  assert.deepEqual(m?.to, { host: 'host3', datastore: 'local', cls: 'fast' });
  assert.equal(m?.reason.metric, 'iops');
  assert.equal(m?.reason.value, 400);
  assert.equal(m?.reason.threshold, S.hotIops);
  assert.equal(m?.reason.windowSeconds, S.demandWindowSeconds);
  assert.equal(m?.reason.heldSeconds, 360);
  assert.equal(m?.predicted.iops, 400);
  assert.equal(m?.predicted.memoryFreeBytes, 15 * GiB);
});

test('not before the hold time, and not when its latency stays low', () => {
  assert.equal(plan(input([hot({ hotSince: NOW - 4 * MIN })])).moves.length, 0);
  // First round: the streak starts now.
  const first = plan(input([hot({ hotSince: null })]));
  assert.equal(first.moves.length, 0);
  assert.equal(first.streaks.get('id-busy')?.hotSince, NOW);
  assert.equal(plan(input([hot({ demand: { iops: 400, latencyMs: 2 } })])).moves.length, 0);
  // The latency condition can be dropped.
  const noLatency = { ...S, hotLatencyMs: 0 };
  assert.equal(
    plan(input([hot({ demand: { iops: 400, latencyMs: 2 } })], { settings: noLatency })).moves.length,
    1,
  );
});

const MiB = 2 ** 20;
/** I/O on host1's datastore `local` (limited to 400 IOPS in TARGETS) with its limits. */
const onLocal = (iops: number, over: Partial<ThrottledIo> = {}): ThrottledIo => ({
  datastore: 'local',
  iops,
  bytesPerSecond: iops * 4096,
  limits: { iops: 400, bytesPerSecond: null },
  ...over,
});
/** Random 4 KiB I/O held by a 400-IOPS throttle: the latency a single-queue guest then sees. */
const held: Demand = { iops: 400, latencyMs: 4.5, throttled: [onLocal(400)] };

test('a VM held at its datastore limit is hot with the default thresholds, whatever its latency', () => {
  // The first round starts its streak; after the hold it is recommended onto the fast class.
  const first = plan(input([vm('busy', { demand: held })]));
  assert.equal(first.streaks.get('id-busy')?.hotSince, NOW);
  assert.equal(first.moves.length, 0);
  const { moves } = plan(input([hot({ demand: held })]));
  assert.equal(moves.length, 1);
  const [m] = moves;
  assert.equal(m?.kind, 'to-fast');
  assert.equal(m?.to.cls, 'fast');
  assert.equal(m?.reason.metric, 'iops-limit');
  assert.equal(m?.reason.value, 400);
  assert.equal(m?.reason.threshold, 400 * HELD_AT_LIMIT_SHARE);
  assert.equal(m?.reason.heldSeconds, 360);
  assert.equal(
    m?.reason.text,
    "held at its datastore's 400-IOPS limit: 400 IOPS, at least 90 % of it, for 360 s (hold 300 s)",
  );
  assert.equal(
    demandReason(held, S),
    "held at its datastore's 400-IOPS limit: 400 IOPS, at least 90 % of it",
  );
  // Without the limit the same figures are not hot: 4.5 ms is below 15 ms.
  assert.equal(isHot({ iops: 400, latencyMs: 4.5 }, S), false);
});

test('held means at least the share of the limit: 90 % is held, below it is served', () => {
  const at = (iops: number) => ({ iops, latencyMs: 2, throttled: [onLocal(iops)] });
  assert.equal(isHot(at(400 * HELD_AT_LIMIT_SHARE), S), true);
  assert.equal(isHot(at(400 * HELD_AT_LIMIT_SHARE - 1), S), false);
  assert.equal(plan(input([hot({ demand: at(350) })])).moves.length, 0);
  assert.match(
    demandReason(at(350), S) ?? '',
    /^IOPS 350 ≥ 200, but p90 latency 2 ms < 15 ms and at no limit$/,
  );
  // No limit on the datastore: nothing is held, however busy.
  const unlimited = {
    iops: 5000,
    latencyMs: 1,
    throttled: [onLocal(5000, { limits: { iops: null, bytesPerSecond: null } })],
  };
  assert.equal(heldAtLimit(unlimited), null);
  assert.equal(isHot(unlimited, S), false);
});

test('a bandwidth limit holds a VM too, even at fewer IOPS than hotIops', () => {
  // 1 MiB requests at 78 of an 80 MiB/s limit: 78 IOPS, below hotIops, above coolIops.
  const d: Demand = {
    iops: 78,
    latencyMs: 12,
    throttled: [onLocal(78, { bytesPerSecond: 78 * MiB, limits: { iops: null, bytesPerSecond: 80 * MiB } })],
  };
  assert.deepEqual(heldAtLimit(d), {
    datastore: 'local',
    metric: 'bandwidth',
    value: 78 * MiB,
    limit: 80 * MiB,
  });
  const [m] = plan(input([hot({ demand: d })])).moves;
  assert.equal(m?.reason.metric, 'bandwidth-limit');
  assert.equal(m?.reason.threshold, 80 * MiB * HELD_AT_LIMIT_SHARE);
  assert.match(
    m?.reason.text ?? '',
    /^held at its datastore's 80-MiB\/s limit: 78 MiB\/s, at least 90 % of it/,
  );
});

test('each datastore is its own throttle: two disks half way to their limits are not held', () => {
  const twoStores: Demand = {
    iops: 500,
    latencyMs: 3,
    throttled: [onLocal(250), onLocal(250, { datastore: 'second' })],
  };
  assert.equal(heldAtLimit(twoStores), null);
  // The one nearest its limit is the one named.
  const one = { ...twoStores, throttled: [onLocal(250), onLocal(390, { datastore: 'second' })] };
  assert.equal(heldAtLimit(one)?.datastore, 'second');
});

test('a VM below the cool threshold is never hot, even at a limit set that low', () => {
  const d: Demand = {
    iops: 30,
    latencyMs: 2,
    throttled: [onLocal(30, { limits: { iops: 30, bytesPerSecond: null } })],
  };
  assert.equal(isCool(d, S), true);
  assert.equal(isHot(d, S), false);
  assert.equal(demandReason(d, S), `IOPS 30 below ${S.coolIops}`);
});

test('on unthrottled storage hotLatencyMs still decides', () => {
  const fast = (latencyMs: number): Demand => ({
    iops: 400,
    latencyMs,
    throttled: [onLocal(400, { limits: { iops: null, bytesPerSecond: null } })],
  });
  assert.equal(isHot(fast(40), S), true);
  assert.equal(demandReason(fast(40), S), 'IOPS 400 ≥ 200, p90 latency 40 ms ≥ 15 ms');
  assert.equal(isHot(fast(14), S), false);
  const [m] = plan(input([hot({ demand: fast(40) })])).moves;
  assert.equal(m?.reason.metric, 'iops');
  assert.equal(m?.reason.text, 'IOPS 400 ≥ 200, p90 latency 40 ms ≥ 15 ms for 360 s (hold 300 s)');
});

test('pinned, excluded, moving, over budget, within the minimum stay, stopped: no move', () => {
  for (const over of [
    { pinned: true },
    { excluded: true },
    { moving: true },
    { movesToday: S.movesPerDay },
    { lastMoveAt: NOW - 10 * MIN },
    { running: false },
  ] satisfies Partial<VmFacts>[]) {
    assert.equal(plan(input([hot(over)])).moves.length, 0, JSON.stringify(over));
  }
});

test('a VM leaves for the fast class only with a move of its budget left to come back', () => {
  assert.equal(plan(input([hot({ movesToday: S.movesPerDay - 2 })])).moves.length, 1);
  // One move left: going out would strand it on the fast class for the rest of the day.
  assert.equal(plan(input([hot({ movesToday: S.movesPerDay - 1 })])).moves.length, 0);
  // A VM out there still comes home with its last move.
  const out = vm('out', {
    at: { host: 'host3', datastore: 'local' },
    cls: 'fast',
    home: { host: 'host1', datastore: 'local' },
    placedFor: 'demand',
    demand: { iops: 1, latencyMs: 0.2 },
    coolSince: NOW - 31 * MIN,
    lastMoveAt: NOW - 60 * MIN,
    movesToday: S.movesPerDay - 1,
  });
  assert.deepEqual(
    plan(input([out])).moves.map((m) => m.kind),
    ['go-home'],
  );
  assert.equal(placementSettingsProblem({ ...S, movesPerDay: 1 })?.field, 'movesPerDay');
  assert.equal(placementSettingsProblem({ ...S, movesPerDay: 0 }), undefined);
});

test('the concurrent move cap counts moves in flight', () => {
  assert.equal(plan(input([hot()], { movesInFlight: 1 })).moves.length, 0);
  const two = [hot(), hot({ id: 'id-b2', name: 'busy2' })];
  assert.equal(plan(input(two)).moves.length, 1);
  assert.equal(plan(input(two, { settings: { ...S, maxConcurrentMoves: 2 } })).moves.length, 2);
});

test('a VM on the fast class goes home after the longer cool hold and the minimum stay', () => {
  const onFast = (over: Partial<VmFacts>) =>
    vm('cooled', {
      at: { host: 'host3', datastore: 'local' },
      cls: 'fast',
      home: { host: 'host2', datastore: 'local' },
      placedFor: 'demand',
      lastMoveAt: NOW - 60 * MIN,
      demand: { iops: 3, latencyMs: 0.2 },
      coolSince: NOW - 31 * MIN,
      ...over,
    });
  const { moves } = plan(input([onFast({})]));
  assert.equal(moves[0]?.kind, 'go-home');
  assert.deepEqual(moves[0]?.to, { host: 'host2', datastore: 'local', cls: 'standard' });
  assert.equal(plan(input([onFast({ coolSince: NOW - 20 * MIN })])).moves.length, 0);
  assert.equal(plan(input([onFast({ lastMoveAt: NOW - 10 * MIN })])).moves.length, 0);
  // Between the thresholds: neither hot nor cool, it stays.
  const between = plan(input([onFast({ demand: { iops: 100, latencyMs: 0.2 } })]));
  assert.equal(between.moves.length, 0);
  assert.equal(between.streaks.get('id-cooled')?.coolSince, null);
  // Home full: another standard datastore with room.
  const full = TARGETS.map((t) => (t.host === 'host2' ? { ...t, freeBytes: 16 * GiB } : t));
  assert.deepEqual(plan(input([onFast({})], { targets: full })).moves[0]?.to.host, 'host1');
});

test('never overfills: memory, space and the IOPS budget of the fast target', () => {
  const small = (over: Partial<Target>) => [TARGETS[0] as Target, target('host3', 'fast', over)];
  assert.equal(plan(input([hot()], { targets: small({ memoryFreeBytes: 1.5 * GiB }) })).moves.length, 0);
  assert.equal(plan(input([hot()], { targets: small({ freeBytes: 18 * GiB }) })).moves.length, 0);
  assert.equal(plan(input([hot()], { targets: small({ iopsBudget: 450 }) })).moves.length, 0);
  assert.equal(plan(input([hot()], { targets: small({ connected: false }) })).moves.length, 0);
  assert.equal(plan(input([hot()], { targets: small({ iopsBudget: 600 }) })).moves.length, 1);
});

test("a fast shared storage seen by two hosts is one room: its free space is booked once, whichever host's datastore a VM is sent to", () => {
  const STORE = '6f1c2e0a-8d4b-4c3f-9e2a-1b7d5c3e8f90';
  // Room for one 4-GiB disk above minFreeSpacePercent (22 - 4 = 18 GiB left; a second would leave 14).
  const fast = (host: string, storageId: string | null) =>
    target(host, 'fast', { datastore: 'san', storageId, freeBytes: 22 * GiB });
  const vms = [hot(), vm('busy2', { demand: { iops: 400, latencyMs: 40 }, hotSince: NOW - 6 * MIN })];
  const settings = { ...S, maxConcurrentMoves: 4 };
  const twoLocal = plan(
    input(vms, { settings, targets: [TARGETS[0] as Target, fast('host2', null), fast('host3', null)] }),
  );
  assert.equal(twoLocal.moves.length, 2, 'two local stores: one VM on each');
  const shared = plan(
    input(vms, { settings, targets: [TARGETS[0] as Target, fast('host2', STORE), fast('host3', STORE)] }),
  );
  assert.equal(
    shared.moves.length,
    1,
    `one storage: room for one VM (${JSON.stringify(shared.moves.map((m) => m.to))})`,
  );
});

test('a VM hot past its hold and not moved says why: room, budget, slot, pin, the room kept for a warmer VM', () => {
  const why = (vms: VmFacts[], over: Partial<PlanInput> = {}) =>
    plan(input(vms, over)).waiting.get('id-busy');
  const beast = (over: Partial<Target>) => [TARGETS[0] as Target, target('host3', 'fast', over)];
  // Moved: nothing to explain; idle or only warming: asks for nothing.
  assert.equal(why([hot()]), undefined);
  assert.equal(why([hot({ hotSince: NOW - 1000 })]), undefined);
  assert.equal(plan(input([vm('idle')])).waiting.size, 0);
  assert.equal(
    why([hot()], { targets: beast({ iopsBudget: 450 }) }),
    'no datastore of class fast has room: host3/local would serve 400 IOPS, above 80 % of its budget 450',
  );
  assert.match(
    why([hot()], { targets: [TARGETS[0] as Target] }) ?? '',
    /^no datastore of class fast to go to$/,
  );
  assert.equal(why([hot({ pinned: true })]), 'it is pinned');
  assert.equal(why([hot({ moving: true })]), 'a move of it is in flight');
  assert.equal(
    why([hot({ movesToday: S.movesPerDay - 1 })]),
    `its day's budget: ${S.movesPerDay - 1} of ${S.movesPerDay} moves made, and the way back needs one`,
  );
  assert.match(why([hot()], { movesInFlight: S.maxConcurrentMoves }) ?? '', /^no move slot free: /);
  assert.match(
    why([hot({ lastMoveAt: NOW - MIN })]) ?? '',
    /^its minimum stay of \d+ s since its last move$/,
  );
  // The lower-priority VM waits for the room a higher-priority warming VM will need.
  const warming = hot({ id: 'id-high', name: 'high', priority: 75, hotSince: NOW - 1000 });
  assert.equal(
    why([hot({ priority: 25 }), warming], { targets: beast({ memoryFreeBytes: 2.5 * GiB }) }),
    'the room on host3/local is for high (priority 75), hot too',
  );
});

test('a host in maintenance (entering or in) is never a target', () => {
  const small = (over: Partial<Target>) => [TARGETS[0] as Target, target('host3', 'fast', over)];
  for (const maintenance of ['entering', 'in'] as const)
    assert.equal(plan(input([hot()], { targets: small({ maintenance }) })).moves.length, 0, maintenance);
  assert.equal(plan(input([hot()], { targets: small({ maintenance: 'none' }) })).moves.length, 1);
});

test('competing demand: the higher priority wins the one free slot, then demand decides', () => {
  const targets = [TARGETS[0] as Target, target('host3', 'fast', { memoryFreeBytes: 2.5 * GiB })];
  const a = hot({ id: 'id-a', name: 'a', priority: 50, demand: { iops: 900, latencyMs: 40 } });
  const b = hot({ id: 'id-b', name: 'b', priority: 75, demand: { iops: 300, latencyMs: 40 } });
  const s = { ...S, maxConcurrentMoves: 2 };
  assert.deepEqual(
    plan(input([a, b], { targets, settings: s })).moves.map((m) => m.vm),
    ['b'],
  );
  const c = hot({ id: 'id-c', name: 'c', priority: 75, demand: { iops: 500, latencyMs: 40 } });
  assert.deepEqual(
    plan(input([b, c], { targets, settings: s })).moves.map((m) => m.vm),
    ['c'],
  );
});

test('a lower priority VM waits while a higher one warms up for the only room (no move in only to be displaced)', () => {
  const targets = [TARGETS[0] as Target, target('host3', 'fast', { memoryFreeBytes: 2.5 * GiB })];
  const low = hot({ id: 'id-low', name: 'low', priority: 25 });
  const warm = (since: number) =>
    hot({ id: 'id-high', name: 'high', priority: 75, hotSince: since, demand: { iops: 300, latencyMs: 40 } });
  const s = { ...S, maxConcurrentMoves: 2 };
  // The high-priority VM has been hot for 1 minute of the hold: the low one waits for it.
  assert.deepEqual(plan(input([low, warm(NOW - MIN)], { targets, settings: s })).moves, []);
  // Once its hold has passed, it goes in, alone.
  assert.deepEqual(
    plan(input([low, warm(NOW - S.holdSeconds * 1000)], { targets, settings: s })).moves.map((m) => m.vm),
    ['high'],
  );
  // Room for both, or the warming one not hot any more: the low one is not held back.
  const roomy = [TARGETS[0] as Target, target('host3', 'fast')];
  assert.deepEqual(
    plan(input([low, warm(NOW - MIN)], { targets: roomy, settings: s })).moves.map((m) => m.vm),
    ['low'],
  );
  const cooled = { ...warm(NOW - MIN), hotSince: null, demand: { iops: 5, latencyMs: 1 } };
  assert.deepEqual(
    plan(input([low, cooled], { targets, settings: s })).moves.map((m) => m.vm),
    ['low'],
  );
  // A warming VM of the same or lower priority does not hold anyone back.
  assert.deepEqual(
    plan(input([low, { ...warm(NOW - MIN), priority: 25 }], { targets, settings: s })).moves.map((m) => m.vm),
    ['low'],
  );
});

test('a VM that just arrived on the fast class counts for what it was moved in for until its window covers it', () => {
  const targets = [TARGETS[0] as Target, target('host3', 'fast', { iopsBudget: 500 })];
  const s = { ...S, maxIopsUtilisation: 0.9, maxConcurrentMoves: 2 };
  const arrived = vm('gold', {
    at: { host: 'host3', datastore: 'local' },
    cls: 'fast',
    home: { host: 'host1', datastore: 'local' },
    placedFor: 'demand',
    lastMoveAt: NOW - 20_000,
    priority: 75,
    // Its window holds 20 s of its demand here: 400 IOPS show as 130.
    demand: { iops: 130, latencyMs: 0.3 },
    arrivalIops: 400,
  });
  const other = hot({ id: 'id-bronze', name: 'bronze', demand: { iops: 300, latencyMs: 40 } });
  assert.deepEqual(plan(input([arrived, other], { targets, settings: s })).moves, []);
  // Without the booking the Beast would look like it had room for both.
  assert.deepEqual(
    plan(input([{ ...arrived, arrivalIops: null }, other], { targets, settings: s })).moves.map((m) => m.vm),
    ['bronze'],
  );
});

test('a higher priority VM displaces a lower one, which goes home first; the newcomer waits', () => {
  const targets = [
    TARGETS[0] as Target,
    TARGETS[1] as Target,
    target('host3', 'fast', { memoryFreeBytes: 1.8 * GiB }),
  ];
  const low = vm('low', {
    at: { host: 'host3', datastore: 'local' },
    cls: 'fast',
    home: { host: 'host2', datastore: 'local' },
    placedFor: 'demand',
    priority: 25,
    lastMoveAt: NOW - 60 * MIN,
    demand: { iops: 300, latencyMs: 0.3 },
  });
  const high = hot({ priority: 75 });
  const { moves } = plan(input([low, high], { targets, settings: { ...S, maxConcurrentMoves: 2 } }));
  assert.deepEqual(
    moves.map((m) => [m.kind, m.vm, m.to.host]),
    [['displace', 'low', 'host2']],
  );
  assert.equal(moves[0]?.reason.metric, 'priority');
  // Busier on the Beast than its home's budget allows: its home still takes it back.
  const busyLow = { ...low, demand: { iops: 900, latencyMs: 0.3 } };
  assert.deepEqual(
    plan(input([busyLow, high], { targets, settings: { ...S, maxConcurrentMoves: 2 } })).moves.map((m) => [
      m.kind,
      m.vm,
      m.to.host,
    ]),
    [['displace', 'low', 'host2']],
  );
  // Same priority: no displacement.
  assert.equal(plan(input([{ ...low, priority: 75 }, high], { targets })).moves.length, 0);
});

test('a schedule moves the VM in ahead of its window (the estimated move time) and back after it', () => {
  const lead = estimatedMoveSeconds(vm('s'), S) * 1000;
  const window = { vmId: 'id-s', cls: 'fast', start: NOW + lead - 1000, end: NOW + lead + 4 * 3600_000 };
  const inWin = plan(input([vm('s')], { windows: [window] }));
  assert.deepEqual(
    inWin.moves.map((m) => [m.kind, m.to.host]),
    [['schedule-in', 'host3']],
  );
  // Too early for the lead time: nothing yet.
  const early = { ...window, start: NOW + lead + 60_000 };
  assert.equal(plan(input([vm('s')], { windows: [early] })).moves.length, 0);
  // After the window: back home, whatever its cool streak.
  const placed = vm('s', {
    at: { host: 'host3', datastore: 'local' },
    cls: 'fast',
    home: { host: 'host1', datastore: 'local' },
    placedFor: 'schedule',
    lastMoveAt: NOW - 3600_000,
    demand: { iops: 100, latencyMs: 0.3 },
  });
  const after = { ...window, start: NOW + 20 * 3600_000, end: NOW + 24 * 3600_000 };
  assert.deepEqual(
    plan(input([placed], { windows: [after] })).moves.map((m) => [m.kind, m.to.host]),
    [['schedule-out', 'host1']],
  );
});

// ---------------------------------------------------------------------------------------------
// Properties over random fleets.

const arbVm = fc.record({
  name: fc.stringMatching(/^[a-z]{1,6}$/),
  host: fc.constantFrom('host1', 'host2', 'host3'),
  memoryGiB: fc.integer({ min: 1, max: 8 }),
  diskGiB: fc.integer({ min: 1, max: 40 }),
  iops: fc.option(fc.integer({ min: 0, max: 5000 }), { nil: null }),
  latencyMs: fc.option(fc.double({ min: 0, max: 200, noNaN: true }), { nil: null }),
  hotMin: fc.option(fc.integer({ min: 0, max: 60 }), { nil: null }),
  coolMin: fc.option(fc.integer({ min: 0, max: 120 }), { nil: null }),
  lastMoveMin: fc.option(fc.integer({ min: 0, max: 600 }), { nil: null }),
  movesToday: fc.integer({ min: 0, max: 6 }),
  priority: fc.integer({ min: 0, max: 100 }),
  pinned: fc.boolean(),
  moving: fc.boolean(),
});
const arbTarget = (host: string) =>
  fc
    .record({
      memGiB: fc.integer({ min: 0, max: 32 }),
      freeGiB: fc.integer({ min: 0, max: 100 }),
      budget: fc.option(fc.integer({ min: 100, max: 100_000 }), { nil: null }),
    })
    .map((t): Target =>
      target(host, host === 'host3' ? 'fast' : 'standard', {
        memoryFreeBytes: t.memGiB * GiB,
        freeBytes: t.freeGiB * GiB,
        iopsBudget: t.budget,
      }),
    );
const arbInput = fc
  .record({
    vms: fc.uniqueArray(arbVm, { selector: (v) => v.name, maxLength: 12 }),
    targets: fc.tuple(arbTarget('host1'), arbTarget('host2'), arbTarget('host3')),
    inFlight: fc.integer({ min: 0, max: 3 }),
    cap: fc.integer({ min: 0, max: 4 }),
  })
  .map(({ vms, targets, inFlight, cap }): PlanInput =>
    input(
      vms.map((v) =>
        vm(v.name, {
          at: { host: v.host, datastore: 'local' },
          cls: v.host === 'host3' ? 'fast' : 'standard',
          home: v.host === 'host3' ? { host: 'host1', datastore: 'local' } : null,
          placedFor: v.host === 'host3' ? 'demand' : null,
          memoryBytes: v.memoryGiB * GiB,
          diskBytes: v.diskGiB * GiB,
          demand: { iops: v.iops, latencyMs: v.latencyMs },
          hotSince: v.hotMin === null ? null : NOW - v.hotMin * MIN,
          coolSince: v.coolMin === null ? null : NOW - v.coolMin * MIN,
          lastMoveAt: v.lastMoveMin === null ? null : NOW - v.lastMoveMin * MIN,
          movesToday: v.movesToday,
          priority: v.priority,
          pinned: v.pinned,
          moving: v.moving,
        }),
      ),
      { targets, movesInFlight: inFlight, settings: { ...S, maxConcurrentMoves: cap } },
    ),
  );

test('property: no target is overfilled by the moves of a round, whatever the fleet', () => {
  fc.assert(
    fc.property(arbInput, (inp) => {
      const { moves } = plan(inp);
      for (const t of inp.targets) {
        const here = (p: { host: string; datastore: string }) =>
          p.host === t.host && p.datastore === t.datastore;
        const vmOf = (id: string) => inp.vms.find((v) => v.id === id) as VmFacts;
        const arriving = moves.filter((m) => here(m.to)).map((m) => vmOf(m.vmId));
        const leaving = moves.filter((m) => here(m.from)).map((m) => vmOf(m.vmId));
        if (arriving.length === 0) continue;
        const sum = (vs: VmFacts[], f: (v: VmFacts) => number) => vs.reduce((a, v) => a + f(v), 0);
        const mem =
          t.memoryFreeBytes - sum(arriving, (v) => v.memoryBytes) + sum(leaving, (v) => v.memoryBytes);
        assert.ok(mem >= S.minFreeMemoryBytes, `memory of ${t.host}: ${mem}`);
        const free = t.freeBytes - sum(arriving, (v) => v.diskBytes) + sum(leaving, (v) => v.diskBytes);
        assert.ok(free >= (t.capacityBytes * S.minFreeSpacePercent) / 100, `space of ${t.host}`);
        if (t.iopsBudget !== null) {
          const stay = inp.vms.filter((v) => here(v.at) && !leaving.includes(v));
          const iops = sum([...stay, ...arriving], (v) => v.demand?.iops ?? 0);
          assert.ok(iops <= t.iopsBudget * S.maxIopsUtilisation + 1e-9, `iops of ${t.host}: ${iops}`);
        }
      }
    }),
    { numRuns: 300 },
  );
});

test('property: the cap, the budget, pins, moves in flight and the minimum stay always hold', () => {
  fc.assert(
    fc.property(arbInput, (inp) => {
      const { moves } = plan(inp);
      assert.ok(moves.length <= Math.max(0, inp.settings.maxConcurrentMoves - inp.movesInFlight));
      assert.equal(new Set(moves.map((m) => m.vmId)).size, moves.length, 'one move per VM');
      for (const m of moves) {
        const v = inp.vms.find((x) => x.id === m.vmId) as VmFacts;
        assert.ok(!v.pinned && !v.moving && v.running, m.vm);
        assert.ok(v.movesToday < inp.settings.movesPerDay, `${m.vm} over budget`);
        if (m.kind === 'to-fast' || m.kind === 'schedule-in')
          assert.ok(v.movesToday + 2 <= inp.settings.movesPerDay, `${m.vm} could not come back`);
        if (m.kind !== 'schedule-in' && m.kind !== 'schedule-out')
          assert.ok(v.lastMoveAt === null || inp.now - v.lastMoveAt >= inp.settings.minStaySeconds * 1000);
        assert.ok(m.from.host !== m.to.host || m.from.datastore !== m.to.datastore, 'a move goes somewhere');
        if (m.kind === 'to-fast') assert.equal(m.to.cls, inp.settings.fastClass);
      }
    }),
    { numRuns: 300 },
  );
});

test('property: hysteresis — a demand between the thresholds starts neither streak', () => {
  fc.assert(
    fc.property(fc.double({ min: S.coolIops, max: S.hotIops - 0.001, noNaN: true }), (iops) => {
      const { streaks } = plan(input([vm('x', { demand: { iops, latencyMs: 100 } })]));
      assert.deepEqual(streaks.get('id-x'), { hotSince: null, coolSince: null });
    }),
  );
});

test('property: never hot and cool at once; held at a limit and not cool is hot, whatever the latency', () => {
  fc.assert(
    fc.property(
      fc.double({ min: 0, max: 5000, noNaN: true }),
      fc.option(fc.double({ min: 0, max: 200, noNaN: true }), { nil: null }),
      fc.option(fc.integer({ min: 1, max: 5000 }), { nil: null }),
      (iops, latencyMs, limit) => {
        const d: Demand = {
          iops,
          latencyMs,
          throttled: [onLocal(iops, { limits: { iops: limit, bytesPerSecond: null } })],
        };
        assert.ok(!(isHot(d, S) && isCool(d, S)));
        const atLimit = limit !== null && iops >= limit * HELD_AT_LIMIT_SHARE;
        if (atLimit && !isCool(d, S)) assert.ok(isHot(d, S));
        // Not held: the thresholds alone decide, as without any limit.
        if (!atLimit)
          assert.equal(isHot(d, S), iops >= S.hotIops && latencyMs !== null && latencyMs >= S.hotLatencyMs);
      },
    ),
  );
});

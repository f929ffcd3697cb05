import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MigrationStrategy } from '../../api/index.js';
import {
  baselineAutoConverge,
  baselinePlan,
  decideBaseline,
  initialBaselineState,
  proxmoxXbzrleCache,
  QEMU_DEFAULT_MAX_BANDWIDTH,
  QEMU_DEFAULT_MULTIFD_CHANNELS,
  QEMU_DEFAULT_MULTIFD_ZSTD_LEVEL,
  type BaselineConfig,
  type BaselineState,
  type BaselineStrategy,
} from './baselines.js';
import { compressionParameters } from './compression.js';
import { throttleSummary } from './throttle-tally.js';
import type { ConvergenceAction, MigrationSample } from './convergence.js';

const MiB = 1024 * 1024;

function sample(
  atMs: number,
  transferredBytes: number,
  remainingBytes: number,
  throttle = 0,
): MigrationSample {
  return {
    atMs,
    status: 'active',
    transferredBytes,
    remainingBytes,
    totalBytes: 1024 * MiB,
    dirtyPagesRate: 0,
    pageSize: 4096,
    mbps: 1000,
    dirtySyncCount: 3,
    cpuThrottlePercentage: throttle,
  };
}

function feed(
  config: BaselineConfig,
  samples: MigrationSample[],
): { state: BaselineState; actions: ConvergenceAction[] } {
  let state = initialBaselineState(baselinePlan(config.strategy, 1024 * MiB));
  const actions: ConvergenceAction[] = [];
  for (const s of samples) {
    const step = decideBaseline(state, s, config);
    state = step.state;
    actions.push(...step.actions);
  }
  return { state, actions };
}

test('xbzrle cache is 10 % of RAM rounded up to a power of two', () => {
  assert.equal(proxmoxXbzrleCache(1024 * MiB), 128 * MiB);
  assert.equal(proxmoxXbzrleCache(4096 * MiB), 512 * MiB);
  assert.equal(proxmoxXbzrleCache(640 * MiB), 64 * MiB);
});

test('plans: QEMU defaults, libvirt unlimited at 300 ms, Proxmox 16 GiB/s at 100 ms with xbzrle', () => {
  const qemu = baselinePlan('qemu-defaults', 1024 * MiB);
  assert.equal(qemu.maxBandwidthBytesPerSecond, QEMU_DEFAULT_MAX_BANDWIDTH);
  assert.equal(qemu.targetDowntimeMs, 300);
  assert.equal(qemu.xbzrleCacheBytes, undefined);
  const libvirt = baselinePlan('libvirt-like', 1024 * MiB);
  assert.ok(libvirt.maxBandwidthBytesPerSecond >= 16 * 1024 * MiB);
  assert.equal(libvirt.targetDowntimeMs, 300);
  const proxmox = baselinePlan('proxmox-like', 1024 * MiB);
  assert.equal(proxmox.maxBandwidthBytesPerSecond, 16 * 1024 * MiB);
  assert.equal(proxmox.targetDowntimeMs, 100);
  assert.equal(proxmox.xbzrleCacheBytes, 128 * MiB);
  for (const plan of [qemu, libvirt, proxmox]) {
    assert.equal(plan.multifdChannels, 0);
    assert.equal(plan.postcopy, false);
  }
});

test('libvirt --parallel --compressed zstd: unlimited, 300 ms, 2 multifd channels with zstd at level 1', () => {
  const plan = baselinePlan('libvirt-multifd-zstd', 1024 * MiB);
  assert.equal(
    plan.maxBandwidthBytesPerSecond,
    baselinePlan('libvirt-like', 1024 * MiB).maxBandwidthBytesPerSecond,
  );
  assert.equal(plan.targetDowntimeMs, 300);
  assert.equal(plan.maxDowntimeMs, 300);
  // libvirt leaves the channel count and the level to QEMU unless told: QEMU's defaults.
  assert.equal(QEMU_DEFAULT_MULTIFD_CHANNELS, 2);
  assert.equal(plan.multifdChannels, 2);
  assert.equal(plan.compression?.mode, 'multifd-zstd');
  assert.equal(plan.xbzrleCacheBytes, undefined);
  assert.equal(plan.postcopy, false);
  assert.equal(baselineAutoConverge('libvirt-multifd-zstd'), false);
  // What both agents set on QEMU for it: zstd at QEMU's default level, whatever Silobreak's own
  // choice of level becomes (the engine takes the level from compression.ts).
  assert.equal(QEMU_DEFAULT_MULTIFD_ZSTD_LEVEL, 1);
  assert.deepEqual(compressionParameters(plan.compression), {
    'multifd-compression': 'zstd',
    'multifd-zstd-level': QEMU_DEFAULT_MULTIFD_ZSTD_LEVEL,
  });
});

test('every baseline strategy has a plan; only Proxmox-like and libvirt-multifd-zstd compress', () => {
  const baselines = MigrationStrategy.options.filter((s): s is BaselineStrategy => s !== 'silobreak');
  assert.deepEqual(baselines, ['qemu-defaults', 'libvirt-like', 'libvirt-multifd-zstd', 'proxmox-like']);
  const modes = Object.fromEntries(baselines.map((s) => [s, baselinePlan(s, 1024 * MiB).compression?.mode]));
  assert.deepEqual(modes, {
    'qemu-defaults': 'plain',
    'libvirt-like': 'plain',
    'libvirt-multifd-zstd': 'multifd-zstd',
    'proxmox-like': 'xbzrle',
  });
});

test('libvirt-multifd-zstd runs no convergence lever: only the time limit cancels it', () => {
  const samples = Array.from({ length: 200 }, (_, i) => sample(i * 500, (i + 1) * MiB, 300 * MiB));
  assert.deepEqual(feed({ strategy: 'libvirt-multifd-zstd' }, samples).actions, []);
  const limited = feed({ strategy: 'libvirt-multifd-zstd', timeLimitMs: 60_000 }, samples);
  assert.deepEqual(
    limited.actions.map((a) => a.kind),
    ['cancel-stalled'],
  );
});

test('time limit cancels as "not converged"; no limit never cancels', () => {
  const samples = Array.from({ length: 200 }, (_, i) => sample(i * 500, (i + 1) * MiB, 300 * MiB));
  const limited = feed({ strategy: 'qemu-defaults', timeLimitMs: 60_000 }, samples);
  assert.equal(limited.actions.length, 1);
  assert.equal(limited.actions[0]?.kind, 'cancel-stalled');
  assert.match(limited.actions[0]?.reason ?? '', /not converged: time limit 60 s/);
  assert.deepEqual(feed({ strategy: 'qemu-defaults' }, samples).actions, []);
  assert.deepEqual(feed({ strategy: 'libvirt-like' }, samples).actions, []);
});

test('Proxmox doubles the downtime after more than 5 polls with growing remaining RAM, then counts again', () => {
  // One poll per second; remaining RAM grows on every poll after the first.
  const samples = Array.from({ length: 13 }, (_, i) =>
    sample(i * 1000, (i + 1) * 100 * MiB, (100 + i) * MiB),
  );
  const { actions, state } = feed({ strategy: 'proxmox-like' }, samples);
  assert.deepEqual(
    actions.map((a) => (a.kind === 'set-downtime-limit' ? a.ms : a.kind)),
    [200, 400],
  );
  assert.equal(state.downtimeLimitMs, 400);
});

test('Proxmox polls once a second: faster samples do not count twice', () => {
  const samples = Array.from({ length: 60 }, (_, i) => sample(i * 100, (i + 1) * 10 * MiB, (100 + i) * MiB));
  // 6 s of samples at 100 ms = 6 polls, 5 of them counted: not more than 5 yet.
  assert.deepEqual(feed({ strategy: 'proxmox-like' }, samples).actions, []);
});

test('Proxmox ignores polls where nothing was transferred and does not count a shrinking residual', () => {
  const stuck = Array.from({ length: 20 }, (_, i) => sample(i * 1000, 50 * MiB, (100 + i) * MiB));
  assert.deepEqual(feed({ strategy: 'proxmox-like' }, stuck).actions, []);
  const shrinking = Array.from({ length: 20 }, (_, i) =>
    sample(i * 1000, (i + 1) * 100 * MiB, (300 - i) * MiB),
  );
  assert.deepEqual(feed({ strategy: 'proxmox-like' }, shrinking).actions, []);
});

test('throttle peak and seconds are measured from QEMU-reported throttle', () => {
  const samples = [
    sample(0, MiB, MiB, 0),
    sample(1000, 2 * MiB, MiB, 20),
    sample(2000, 3 * MiB, MiB, 30),
    sample(3500, 4 * MiB, MiB, 0),
  ];
  const { state } = feed({ strategy: 'proxmox-like' }, samples);
  assert.deepEqual(throttleSummary(state.throttle), { peakPercent: 30, seconds: 2.5 });
});

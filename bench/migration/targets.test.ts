import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MoveRun, Policy, Row } from './model.js';
import { renderTable, renderTlsCost, streamCell, targetTally } from './table.js';
import { checkProductPath, checkTargets, checkTlsCost } from './targets.js';

function run(policy: Policy, over: Partial<MoveRun> = {}): MoveRun {
  return {
    policy,
    run: 1,
    from: 'host1',
    to: 'host2',
    outcome: 'completed',
    totalMs: 10_000,
    mirrorMs: 4000,
    diskDataBytes: 1000e6,
    memoryMs: 2000,
    memoryBytes: 500e6,
    iterations: 4,
    downtimeMs: 40,
    pingDowntimeMs: 100,
    throttlePeakPercent: 0,
    throttleSeconds: 0,
    ...over,
  };
}

const facts = { linkBitsPerSecond: 10e9, fsyncBytesPerSecond: 300e6 };
const byName = (row: Row) => Object.fromEntries(checkTargets(row).map((c) => [c.name, c]));

test('Silobreak meeting every target against the best converged baseline', () => {
  const row: Row = {
    key: { vm: '1 GiB / 2 GiB', workload: 'dirty', link: '1gbit' },
    facts,
    runs: [
      run('silobreak', {
        downtimeMs: 25,
        pingDowntimeMs: 80,
        totalMs: 7000,
        memoryBytes: 600e6,
        throttlePeakPercent: 10,
        throttleSeconds: 1,
      }),
      run('qemu-defaults', { outcome: 'not-converged', downtimeMs: undefined, totalMs: undefined }),
      run('libvirt-like', { downtimeMs: 60 }),
      run('proxmox-like', { downtimeMs: 35, throttlePeakPercent: 60, throttleSeconds: 8 }),
    ],
  };
  const c = byName(row);
  assert.equal(c.converges?.status, 'met');
  assert.equal(c.downtime?.status, 'met'); // 25 <= 0.8 x 35
  assert.ok(Math.abs((c.downtime?.ratio ?? 0) - 25 / 35) < 1e-9);
  assert.match(c.downtime?.detail ?? '', /proxmox-like/);
  assert.equal(c.ping?.status, 'met'); // 80 <= 0.8 x 100
  assert.equal(c.total?.status, 'met'); // 7 s <= 0.7 x 10 s on a 1 Gbit/s dirtying row
  assert.equal(c.throttle?.status, 'met'); // 1 s <= 0.5 x 8 s
  // 1000 MB in 4 s = 250 MB/s vs 0.8 x min(125 MB/s link, 300 MB/s fsync) = 100 MB/s.
  assert.equal(c.mirror?.status, 'met');
  assert.equal(c.memory?.status, 'met'); // 300 MB/s vs 250 MB/s
});

test('misses: downtime above 0.8 x best, slower, throttled longer than Proxmox, mirror below the bound', () => {
  const row: Row = {
    key: { vm: '1 GiB / 2 GiB', workload: 'dirty', link: '1gbit' },
    facts: { linkBitsPerSecond: 10e9, fsyncBytesPerSecond: 1000e6 },
    runs: [
      run('silobreak', { downtimeMs: 30, totalMs: 12_000, throttlePeakPercent: 20, throttleSeconds: 9 }),
      run('silobreak', { outcome: 'failed', error: 'stalled' }),
      run('proxmox-like', { downtimeMs: 35, throttlePeakPercent: 60, throttleSeconds: 8 }),
    ],
  };
  const c = byName(row);
  assert.equal(c.converges?.status, 'missed');
  assert.equal(c.converges?.detail, '1/2');
  assert.equal(c.downtime?.status, 'missed'); // 30 > 28
  assert.equal(c.total?.status, 'missed');
  assert.equal(c.throttle?.status, 'missed'); // 9 s > 0.5 x 8 s
  assert.equal(c.mirror?.status, 'missed'); // 250 MB/s < 0.8 x 1250 MB/s
});

test('the 1 Gbit/s dirtying rows ask for 0.7 x the total and half the throttling; other rows 1.0 x and none', () => {
  const runs = (sb: Partial<MoveRun>, px: Partial<MoveRun>) => [
    run('silobreak', sb),
    run('proxmox-like', px),
  ];
  const slowDirty: Row['key'] = { vm: '1 GiB / 2 GiB', workload: 'dirty', link: '1gbit' };
  const slowIdle: Row['key'] = { ...slowDirty, workload: 'idle' };
  const at = (key: Row['key'], sb: Partial<MoveRun>, px: Partial<MoveRun> = {}) =>
    byName({ key, facts, runs: runs(sb, px) });
  assert.equal(at(slowDirty, { totalMs: 8000 }).total?.status, 'missed'); // 0.8 x: above 0.7 x
  assert.equal(at(slowIdle, { totalMs: 8000 }).total?.status, 'met');
  assert.equal(at(slowIdle, { throttleSeconds: 5 }).throttle?.status, 'n/a');
  assert.equal(at(slowDirty, { throttleSeconds: 4 }, { throttleSeconds: 8 }).throttle?.status, 'met');
  assert.equal(at(slowDirty, { throttleSeconds: 1 }, { throttleSeconds: 0 }).throttle?.status, 'missed');
  assert.equal(at(slowDirty, { pingDowntimeMs: 90 }).ping?.status, 'missed'); // 0.9 x
});

test('throttle is only judged on the 1 Gbit/s link; no converged baseline: only Silobreak, not a won target', () => {
  const row: Row = {
    key: { vm: '1 GiB / 2 GiB', workload: 'idle', link: 'full' },
    facts,
    runs: [run('silobreak'), run('qemu-defaults', { outcome: 'not-converged' })],
  };
  const c = byName(row);
  assert.equal(c.throttle?.status, 'n/a');
  assert.equal(c.downtime?.status, 'only-silobreak');
  assert.match(c.downtime?.detail ?? '', /^no baseline converged; Silobreak \d+/);
});

test('the table has one line per policy run in a row and the target ratios on the Silobreak line', () => {
  const row: Row = {
    key: { vm: '1 GiB / 2 GiB', workload: 'dirty', link: 'full' },
    facts,
    runs: [
      run('silobreak', { downtimeMs: 20 }),
      run('silobreak', { run: 2, downtimeMs: 30 }),
      run('silobreak', { run: 3, downtimeMs: 24 }),
      run('libvirt-like', { downtimeMs: 60 }),
      run('qemu-defaults', { outcome: 'not-converged' }),
    ],
  };
  const lines = renderTable([row]).split('\n');
  assert.equal(lines.length, 2 + 3);
  const sb = lines[2] ?? '';
  assert.match(sb, /\| silobreak \(vm move, no policy\) \| 3\/3 \|/);
  assert.match(sb, /\| 24 \(20–30\) \|/);
  assert.match(sb, /downtime 0\.40 met/);
  assert.match(lines[3] ?? '', /qemu-defaults \| 0\/1 not converged/);
  assert.match(targetTally([row]), /downtime: met in 1\/1 rows/);
});

test('a figure Silobreak did not measure is missed, not left out', () => {
  const row: Row = {
    key: { vm: '1 GiB / 2 GiB', workload: 'idle', link: 'full' },
    facts,
    runs: [run('silobreak', { pingDowntimeMs: undefined }), run('proxmox-like')],
  };
  const c = byName(row);
  assert.deepEqual([c.ping?.status, c.ping?.detail], ['missed', 'not measured']);
});

test("the stream column: the policy's encoding, or each with its count when its runs differ", () => {
  assert.equal(streamCell([]), '—');
  assert.equal(streamCell([run('silobreak')]), '—', 'older results did not record it');
  const zstd = run('silobreak', { compression: 'multifd-zstd' });
  assert.equal(streamCell([zstd, { ...zstd, run: 2 }]), 'multifd-zstd');
  assert.equal(
    streamCell([zstd, { ...zstd, run: 2, compression: 'plain' }, { ...zstd, run: 3 }]),
    'multifd-zstd ×2, plain ×1',
  );
  const row: Row = {
    key: { vm: '1 GiB / 2 GiB', workload: 'dirty', link: '1gbit' },
    facts,
    runs: [zstd, run('proxmox-like', { compression: 'xbzrle' })],
  };
  const lines = renderTable([row]).split('\n');
  assert.match(lines[0] ?? '', /\| converged \| stream \| total s \|/);
  assert.match(lines[2] ?? '', /\| silobreak \(vm move, no policy\) \| 1\/1 \| multifd-zstd \|/);
  assert.match(lines[3] ?? '', /\| proxmox-like \| 1\/1 \| xbzrle \|/);
});

test('libvirt-multifd-zstd is a baseline: the best per target may be it', () => {
  const row: Row = {
    key: { vm: '1 GiB / 2 GiB', workload: 'dirty', link: '1gbit' },
    facts,
    runs: [
      run('silobreak', { totalMs: 20_000, downtimeMs: 100 }),
      // "link given" is no baseline: its better figures are never the reference.
      run('silobreak-link-given', { totalMs: 5_000, downtimeMs: 10 }),
      run('libvirt-like', { outcome: 'not-converged' }),
      run('libvirt-multifd-zstd', { totalMs: 25_000, downtimeMs: 150 }),
      run('proxmox-like', { totalMs: 40_000, downtimeMs: 300, throttleSeconds: 20, throttlePeakPercent: 90 }),
    ],
  };
  const c = byName(row);
  assert.equal(c.total?.reference, 'libvirt-multifd-zstd');
  assert.equal(c.total?.status, 'missed'); // 20 s > 0.7 x 25 s
  assert.equal(c.downtime?.reference, 'libvirt-multifd-zstd');
  assert.equal(c.downtime?.status, 'met'); // 100 <= 0.8 x 150
  assert.equal(c.throttle?.reference, 'proxmox-like');
});

const dirtySlow = (runs: MoveRun[]): Row => ({
  key: { vm: '1 GiB / 2 GiB', workload: 'dirty', link: '1gbit' },
  facts,
  runs,
});

test('product path vs "link given": within 1.1 x the total and throttled no more is met', () => {
  const check = checkProductPath(
    dirtySlow([
      run('silobreak', { totalMs: 20_000 }),
      run('silobreak', { run: 2, totalMs: 21_000 }),
      run('silobreak-link-given', { totalMs: 19_000 }),
      run('silobreak-link-given', { run: 2, totalMs: 19_400 }),
    ]),
  );
  assert.equal(check.status, 'met');
  assert.ok(Math.abs((check.totalRatio ?? 0) - 20_500 / 19_200) < 1e-9);
  assert.match(check.detail, /total 20\.5 s vs 19\.2 s = 1\.07 x/);
});

test('product path vs "link given": slower than 1.1 x, or throttled longer or harder, is missed', () => {
  const slow = checkProductPath(
    dirtySlow([run('silobreak', { totalMs: 25_600 }), run('silobreak-link-given', { totalMs: 18_700 })]),
  );
  assert.equal(slow.status, 'missed');
  assert.equal(slow.totalMet, false);
  assert.equal(slow.throttleMet, true);
  // The issue's own figures: 25.6 s throttled 90 % for 17 s against 18.7 s never throttled.
  const throttled = checkProductPath(
    dirtySlow([
      run('silobreak', { totalMs: 19_000, throttlePeakPercent: 90, throttleSeconds: 17 }),
      run('silobreak-link-given', { totalMs: 18_700 }),
    ]),
  );
  assert.equal(throttled.status, 'missed');
  assert.equal(throttled.totalMet, true);
  assert.equal(throttled.throttleMet, false);
  const harder = checkProductPath(
    dirtySlow([
      run('silobreak', { throttlePeakPercent: 50, throttleSeconds: 2 }),
      run('silobreak-link-given', { throttlePeakPercent: 30, throttleSeconds: 2 }),
    ]),
  );
  assert.equal(harder.throttleMet, false);
});

test('product path vs "link given": a product move that did not converge misses; no link-given figure is n/a', () => {
  const failed = checkProductPath(
    dirtySlow([
      run('silobreak'),
      run('silobreak', { run: 2, outcome: 'not-converged', totalMs: undefined }),
      run('silobreak-link-given'),
    ]),
  );
  assert.deepEqual([failed.status, failed.detail], ['missed', 'product path converged 1/2']);
  assert.equal(checkProductPath(dirtySlow([run('silobreak')])).status, 'n/a');
  assert.equal(
    checkProductPath(dirtySlow([run('silobreak'), run('silobreak-link-given', { outcome: 'failed' })]))
      .status,
    'n/a',
  );
});

test('issue 28: the TLS move within 1.1 x the --no-secure total, per row that has both', () => {
  const row = (tls: number[], plain: number[], extra: MoveRun[] = []): Row => ({
    key: { vm: '1 GiB / 2 GiB', workload: 'idle', link: 'full' },
    facts,
    runs: [
      ...tls.map((totalMs, i) => run('silobreak', { run: i + 1, totalMs })),
      ...plain.map((totalMs, i) => run('silobreak-plain', { run: i + 1, totalMs })),
      ...extra,
    ],
  });
  const met = checkTlsCost(row([5400, 5600], [5000, 5200]));
  assert.equal(met.status, 'met');
  assert.match(met.detail, /total 5\.5 s vs 5\.1 s = 1\.08 x/);
  assert.equal(checkTlsCost(row([5800, 5900], [5000, 5200])).status, 'missed');
  // A TLS move that did not complete misses, whatever the others did.
  const failed = run('silobreak', { run: 3, outcome: 'failed', totalMs: undefined });
  assert.equal(checkTlsCost(row([5000], [5000], [failed])).status, 'missed');
  assert.equal(checkTlsCost(row([5000], [])).status, 'n/a');
  const table = renderTlsCost([row([5400, 5600], [5000, 5200])]);
  assert.match(table, /\| 1 GiB \/ 2 GiB idle full \| 5\.5 \(5\.4–5\.6\) \| 5\.1 \(5\.0–5\.2\) \| 1\.08 \|/);
  assert.match(table, /\| met \|$/m);
  assert.equal(renderTlsCost([row([5000], [])]), '', 'no --no-secure runs: no section');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BenchResult, combineResults, renderReport } from './report.js';

const saved = {
  createdAt: '2026-11-25T15:00:00.000Z',
  quick: true,
  runs: 1,
  bigRuns: 1,
  timeLimitSeconds: 60,
  dirtyRateMiB: 150,
  diskWriteKiB: 4096,
  rows: [
    {
      key: { vm: '1 GiB / 2 GiB', workload: 'idle', link: 'full' },
      facts: { linkBitsPerSecond: 3e9, fsyncBytesPerSecond: 100e6, loadAverage: 12.5 },
      runs: [
        {
          policy: 'silobreak',
          run: 1,
          from: 'host1',
          to: 'host2',
          outcome: 'completed',
          totalMs: 30_000,
          downtimeMs: 0,
        },
        {
          policy: 'libvirt-like',
          run: 1,
          from: 'host2',
          to: 'host1',
          outcome: 'completed',
          totalMs: 31_000,
          downtimeMs: 90,
        },
      ],
    },
  ],
  guestChecks: ['1 GiB / 2 GiB full: ok: verified 10 records'],
};

test('a saved run validates and renders header, table, load, tally and guest checks', () => {
  const text = renderReport(BenchResult.parse(saved));
  assert.match(text, /^# bench\/migration 2026-11-25T15:00:00.000Z \(--quick\)/);
  assert.match(text, /sb-dirty 150 MiB\/s/);
  // A result from before issue 27: its Silobreak runs were told the link rate.
  assert.match(text, /\| silobreak \(link given\) \| 1\/1 \| — \| 30\.0 \|/);
  assert.doesNotMatch(text, /vm move, no policy|Done when/);
  // QEMU's downtime 0 is no measurement: the Silobreak line shows none, and that target is missed
  // (an unmeasured figure is never left out of the tally).
  const sbLine = text.split('\n').find((l) => l.includes('| silobreak (link given) |')) ?? '';
  assert.match(sbLine, /downtime missed/);
  assert.match(text, /load average \(1 min\) at row start: 12\.5–12\.5/);
  assert.match(text, /total: met in 1\/1 rows/);
  assert.match(text, /verified 10 records/);
});

test('a file that is not a benchmark result is refused naming the field', () => {
  const bad = { ...saved, rows: [{ ...saved.rows[0], runs: [{ policy: 'vmware', run: 1 }] }] };
  const result = BenchResult.safeParse(bad);
  assert.equal(result.success, false);
  assert.deepEqual(result.error?.issues[0]?.path.slice(0, 4), ['rows', 0, 'runs', 0]);
});

test('stalls away from the switchover are summed up apart from the downtime', () => {
  const withStalls = structuredClone(saved);
  Object.assign(withStalls.rows[0]!.runs[0]!, { pingDowntimeMs: 80, pingOtherGapMs: 512, stealMs: 340 });
  Object.assign(withStalls.rows[0]!.runs[1]!, { pingDowntimeMs: 120, pingOtherGapMs: 90, stealMs: 20 });
  const text = renderReport(BenchResult.parse(withStalls));
  assert.match(
    text,
    /ping gaps away from the switchover \(not downtime\): longest 512 ms, >= 200 ms in 1 of 2 moves \(policies: silobreak\); .* up to 340 ms/,
  );
  assert.doesNotMatch(renderReport(BenchResult.parse(saved)), /away from the switchover/);
});

test('a matrix measured in parts combines into one report; a row measured again takes the later file', () => {
  const fair = BenchResult.parse({ ...saved, quick: false, runs: 4, bigRuns: 4, fair: true });
  const row = fair.rows[0]!;
  const oneGbit = { ...row, key: { ...row.key, link: '1gbit' as const } };
  const again = { ...row, facts: { ...row.facts, loadAverage: 1.5 } };
  const combined = combineResults([
    { file: 'a.json', result: { ...fair, rows: [oneGbit, row] } },
    { file: 'b.json', result: { ...fair, createdAt: '2026-12-02T04:00:00.000Z', rows: [again] } },
  ]);
  assert.deepEqual(
    combined.rows.map((r) => [r.key.link, r.facts.loadAverage]),
    [
      ['full', 1.5],
      ['1gbit', 12.5],
    ],
  );
  assert.equal(combined.createdAt, '2026-12-02T04:00:00.000Z');
  assert.deepEqual(combined.combinedFrom, ['a.json', 'b.json']);
  assert.equal(combined.guestChecks.length, 2);
  assert.match(renderReport(combined), /rows combined from a\.json, b\.json \(same set-up\)/);
});

test('parts with another set-up, or not the fair one, are refused naming the file and the field', () => {
  const fair = BenchResult.parse({ ...saved, quick: false, runs: 4, bigRuns: 4, fair: true });
  assert.throws(
    () =>
      combineResults([
        { file: 'a.json', result: fair },
        { file: 'b.json', result: { ...fair, timeLimitSeconds: 90 } },
      ]),
    /b\.json: timeLimitSeconds: 90 differs from a\.json's 60/,
  );
  assert.throws(
    () => combineResults([{ file: 'old.json', result: { ...fair, fair: undefined } }]),
    /old\.json: fair: only runs with the fair set-up combine/,
  );
  assert.throws(() => combineResults([]), /no result files/);
  // Runs through the manager with the product path do not mix with the earlier agent-driven ones.
  assert.throws(
    () =>
      combineResults([
        { file: 'new.json', result: { ...fair, productPath: true } },
        { file: 'old.json', result: fair },
      ]),
    /old\.json: productPath: undefined differs from new\.json's true/,
  );
});

const move = (policy: string, run: number, over: Record<string, unknown> = {}) => ({
  policy,
  run,
  from: run % 2 ? 'host1' : 'host2',
  to: run % 2 ? 'host2' : 'host1',
  outcome: 'completed',
  totalMs: 20_000,
  mirrorMs: 9000,
  diskDataBytes: 1e9,
  memoryMs: 8000,
  memoryBytes: 1e9,
  downtimeMs: 100,
  pingDowntimeMs: 170,
  throttlePeakPercent: 0,
  throttleSeconds: 0,
  ...over,
});

test('a product-path run: the target rows against the strongest baseline, "link given" beside, the Done-when', () => {
  const result = BenchResult.parse({
    ...saved,
    quick: false,
    fair: true,
    productPath: true,
    rows: [
      {
        key: { vm: '1 GiB / 2 GiB', workload: 'dirty', link: '1gbit' },
        facts: { linkBitsPerSecond: 0.95e9, fsyncBytesPerSecond: 500e6 },
        runs: [
          move('silobreak', 1, {
            totalMs: 25_600,
            downtimeMs: 60,
            throttlePeakPercent: 90,
            throttleSeconds: 17,
            compression: 'plain',
            policyLog: ['stream: plain: link rate unknown: plain (a LAN is assumed)'],
          }),
          move('silobreak-link-given', 1, { totalMs: 18_700, compression: 'multifd-zstd' }),
          move('libvirt-multifd-zstd', 1, { totalMs: 30_000, downtimeMs: 250 }),
          move('qemu-defaults', 1, { outcome: 'not-converged', totalMs: undefined }),
          move('proxmox-like', 1, { totalMs: 46_000, throttlePeakPercent: 90, throttleSeconds: 23 }),
        ],
      },
    ],
  });
  const text = renderReport(result);
  assert.match(text, /as `silobreak vm move` does/);
  assert.match(text, /the bench cancels the job through the manager/);
  assert.match(text, /\| silobreak \(vm move, no policy\) \| 1\/1 \| plain \|/);
  assert.match(text, /\| silobreak, link given \| 1\/1 \| multifd-zstd \|/);
  // The target row names the strongest baseline per target.
  const targetRow = text.split('\n').find((l) => l.startsWith('| 1 GiB / 2 GiB dirty 1gbit |')) ?? '';
  assert.match(targetRow, /\| 1\/1 met \| 0\.60 x proxmox-like met \|/);
  assert.match(targetRow, /\| 0\.85 x libvirt-multifd-zstd missed \|/); // 25.6 s > 0.7 x 30 s
  assert.match(targetRow, /\| 0\.74 x proxmox-like missed \|/); // throttled 17 s > 0.5 x 23 s
  assert.match(text, /- 1 GiB \/ 2 GiB dirty 1gbit: missed: total 25\.6 s vs 18\.7 s = 1\.37 x/);
  assert.match(text, /Done when \(issue 27, 1 GiB \/ 2 GiB dirty 1gbit\): missed \(total 25\.6 s/);
  assert.match(text, /link rate unknown: plain \(a LAN is assumed\)/);
});

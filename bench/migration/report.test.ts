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
  assert.match(text, /\| silobreak \| 1\/1 \| — \| 30\.0 \|/);
  // QEMU's downtime 0 is no measurement: the Silobreak line shows none, and that target is missed
  // (an unmeasured figure is never left out of the tally).
  const sbLine = text.split('\n').find((l) => l.includes('| silobreak |')) ?? '';
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
});

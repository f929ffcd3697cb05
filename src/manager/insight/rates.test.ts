import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { LATENCY_BOUNDS_NS, type BlockCounters } from '../../api/index.js';
import {
  addSums,
  BIN_COUNT,
  daysUntilFull,
  diskInterval,
  emptySums,
  histogramDelta,
  ioFigures,
  percentileMs,
  rebin,
  roundCounts,
  worstAvgLatencyMs,
  type CounterSample,
} from './rates.js';

const counters = (n: number, latencyNs = 1_000_000): BlockCounters => ({
  readOps: n,
  writeOps: 2 * n,
  flushOps: 0,
  readBytes: 4096 * n,
  writeBytes: 8192 * n,
  readTotalNs: n * latencyNs,
  writeTotalNs: 2 * n * 3 * latencyNs,
  flushTotalNs: 0,
});
const sample = (at: number, c: BlockCounters | null, epoch: string | null = 'e1'): CounterSample => ({
  at,
  epoch,
  counters: c,
  histograms: null,
});

test('an interval is the difference of two samples: rates and Δtime ÷ Δops, not since boot', () => {
  // 1000 ops before at 10 ms each, then 100 more at 1 ms: the interval says 1 ms.
  const prev = sample(0, { ...counters(1000, 10_000_000) });
  const c = counters(1100, 10_000_000);
  const cur = sample(10_000, {
    ...c,
    readTotalNs: 1000 * 10_000_000 + 100 * 1_000_000,
    writeTotalNs: prev.counters!.writeTotalNs + 200 * 2_000_000,
  });
  const i = diskInterval(prev, cur);
  assert.ok(i);
  const f = ioFigures(i);
  assert.equal(f.read.iops, 10);
  assert.equal(f.write.iops, 20);
  assert.equal(f.read.avgLatencyMs, 1);
  assert.equal(f.write.avgLatencyMs, 2);
  assert.equal(f.read.bytesPerSecond, 4096 * 10);
  assert.equal(worstAvgLatencyMs(i), 2);
});

test('no interval across a reset, another epoch, missing counters or time standing still', () => {
  const prev = sample(0, counters(1000));
  assert.equal(diskInterval(prev, sample(10_000, counters(10))), undefined, 'counter went down');
  assert.equal(diskInterval(prev, sample(10_000, counters(2000), 'e2')), undefined, 'another QEMU process');
  assert.equal(diskInterval(prev, sample(10_000, null)), undefined);
  assert.equal(diskInterval(sample(0, null), sample(10_000, counters(1))), undefined);
  assert.equal(diskInterval(prev, sample(0, counters(2000))), undefined);
});

test('property: any two samples give no interval or one with every figure non-negative', () => {
  const c = fc.record({
    readOps: fc.nat(),
    writeOps: fc.nat(),
    flushOps: fc.nat(),
    readBytes: fc.nat(),
    writeBytes: fc.nat(),
    readTotalNs: fc.nat(),
    writeTotalNs: fc.nat(),
    flushTotalNs: fc.nat(),
  });
  fc.assert(
    fc.property(c, c, fc.integer({ min: -5000, max: 60_000 }), fc.boolean(), (a, b, dt, sameEpoch) => {
      const i = diskInterval(sample(1_000_000, a), sample(1_000_000 + dt, b, sameEpoch ? 'e1' : 'e2'));
      if (!i) return;
      const f = ioFigures(i);
      for (const v of [
        f.iops,
        f.throughputBytesPerSecond,
        f.read.iops,
        f.write.avgLatencyMs,
        f.read.avgLatencyMs,
      ])
        assert.ok(v === null || v >= 0, `negative figure ${v}`);
      assert.ok(i.seconds > 0);
    }),
  );
});

test('percentiles interpolate linearly within the bin', () => {
  const bins = new Array<number>(BIN_COUNT).fill(0);
  const i10 = LATENCY_BOUNDS_NS.indexOf(10_000_000); // bin [5 ms, 10 ms)
  bins[i10] = 100;
  assert.equal(percentileMs(bins, 0.5), 7.5);
  assert.equal(percentileMs(bins, 0.9), 9.5);
  // Half the operations in the first bin [0, 0.05 ms), half in [5, 10): p90 is in the second.
  bins[0] = 100;
  assert.ok(Math.abs((percentileMs(bins, 0.9) ?? 0) - 9) < 1e-9);
  assert.ok(Math.abs((percentileMs(bins, 0.25) ?? 0) - 0.025) < 1e-9);
  assert.equal(percentileMs(new Array<number>(BIN_COUNT).fill(0), 0.9), null);
  const open = new Array<number>(BIN_COUNT).fill(0);
  open[BIN_COUNT - 1] = 5;
  assert.equal(percentileMs(open, 0.99), 1000, 'the open bin answers its lower bound');
});

test('property: percentiles are monotonic in p and lie within the bins that hold operations', () => {
  fc.assert(
    fc.property(fc.array(fc.nat({ max: 1000 }), { minLength: BIN_COUNT, maxLength: BIN_COUNT }), (bins) => {
      fc.pre(bins.some((b) => b > 0));
      const p50 = percentileMs(bins, 0.5) ?? -1;
      const p90 = percentileMs(bins, 0.9) ?? -1;
      const p99 = percentileMs(bins, 0.99) ?? -1;
      assert.ok(p50 <= p90 && p90 <= p99, `${p50} ${p90} ${p99}`);
      const lastUsed = bins.findLastIndex((b) => b > 0);
      const ceiling = (LATENCY_BOUNDS_NS[lastUsed] ?? LATENCY_BOUNDS_NS[LATENCY_BOUNDS_NS.length - 1]!) / 1e6;
      assert.ok(p99 <= ceiling + 1e-9);
    }),
  );
});

test('property: re-binning other bounds keeps the total count', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.integer({ min: 1, max: 2e9 }), { minLength: 1, maxLength: 20 }),
      fc.array(fc.nat({ max: 10_000 }), { minLength: 21, maxLength: 21 }),
      (raw, countsAll) => {
        const bounds = [...raw].sort((a, b) => a - b);
        const counts = countsAll.slice(0, bounds.length + 1);
        const out = rebin(bounds, counts);
        assert.equal(out.length, BIN_COUNT);
        const total = counts.reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(out.reduce((a, b) => a + b, 0) - total) < 1e-6 * Math.max(1, total));
      },
    ),
  );
  // Same bounds: unchanged. A bin [0, 2 ms) splits over the manager's bins below 2 ms by width.
  const same = Array.from({ length: BIN_COUNT }, (_, i) => i);
  assert.deepEqual(rebin(LATENCY_BOUNDS_NS, same), same);
  const split = rebin([2_000_000], [200, 0]);
  assert.ok(
    Math.abs((split[LATENCY_BOUNDS_NS.indexOf(2_000_000)] ?? 0) - 100) < 1e-9,
    '[1, 2) ms holds half',
  );
});

test('histogram deltas: per bin, none across a reset or a change of bounds', () => {
  const b = [...LATENCY_BOUNDS_NS];
  const h = (n: number) => ({
    boundariesNs: b,
    read: new Array<number>(BIN_COUNT).fill(n),
    write: new Array<number>(BIN_COUNT).fill(0),
    flush: new Array<number>(BIN_COUNT).fill(0),
  });
  assert.deepEqual(histogramDelta(h(1), h(3))?.read, new Array<number>(BIN_COUNT).fill(2));
  assert.equal(histogramDelta(h(3), h(1)), undefined);
  assert.equal(histogramDelta(h(1), { ...h(3), boundariesNs: b.slice(1) }), undefined);
  assert.equal(histogramDelta(null, h(3)), undefined);
});

test('property: sums of intervals give the same rates as one interval over the whole time', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 1, max: 600 }), fc.nat({ max: 100_000 })), {
        minLength: 1,
        maxLength: 30,
      }),
      (steps) => {
        let at = 0;
        let ops = 0;
        let total = emptySums();
        let prev = sample(0, counters(0));
        for (const [dt, dops] of steps) {
          at += dt * 1000;
          ops += dops;
          const cur = sample(at, counters(ops));
          total = addSums(total, diskInterval(prev, cur)!);
          prev = cur;
        }
        const whole = diskInterval(sample(0, counters(0)), prev)!;
        assert.ok(Math.abs((ioFigures(total).iops ?? 0) - (ioFigures(whole).iops ?? 0)) < 1e-6);
        assert.equal(total.readNs, whole.readNs);
      },
    ),
  );
});

test('days until full: a steady decline gives the truth; growth or a flat line none', () => {
  const points = Array.from({ length: 50 }, (_, i) => ({ t: i * 3600, free: 1000 - 10 * i }));
  // 510 left at 10 per hour: 51 hours.
  assert.ok(Math.abs((daysUntilFull(points) ?? 0) - 51 / 24) < 1e-9);
  assert.equal(daysUntilFull(points.map((p) => ({ ...p, free: 1000 }))), null);
  assert.equal(daysUntilFull(points.map((p, i) => ({ ...p, free: 100 + i }))), null);
  assert.equal(daysUntilFull(points.slice(0, 1)), null);
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1e6 }),
      fc.integer({ min: 1e6, max: 1e12 }),
      fc.array(fc.double({ min: -0.05, max: 0.05, noNaN: true }), { minLength: 20, maxLength: 20 }),
      (rate, start, noise) => {
        // Noise of at most 5 % of one step's decline per point keeps the estimate within 20 %.
        const pts = noise.map((n, i) => ({ t: i * 60, free: start - rate * 60 * i + n * rate * 60 }));
        const last = start - rate * 60 * 19;
        fc.pre(last > 0);
        const truth = last / rate / 86_400;
        const got = daysUntilFull(pts) ?? 0;
        assert.ok(Math.abs(got - truth) <= 0.2 * truth + 1e-9, `${got} vs ${truth}`);
      },
    ),
  );
});

test('property: whole counts keep the rounded total, each within one of its value', () => {
  fc.assert(
    fc.property(fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), { maxLength: 20 }), (values) => {
      const out = roundCounts(values);
      assert.equal(
        out.reduce((a, b) => a + b, 0),
        Math.round(values.reduce((a, b) => a + b, 0)),
      );
      out.forEach((v, i) => {
        assert.ok(Number.isInteger(v));
        assert.ok(Math.abs(v - (values[i] ?? 0)) < 1 + 1e-9);
      });
    }),
  );
});

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parseFioJson } from './fio.js';

const sample = (name: string) => readFileSync(path.join(import.meta.dirname, 'testdata', name), 'utf8');

test('fio 3.33 randrw report (run on this host): IOPS, bandwidth and percentiles per direction', () => {
  const r = parseFioJson(sample('fio-randrw.json'));
  assert.equal(r.version, 'fio-3.33');
  assert.equal(r.jobs.length, 1);
  const job = r.jobs[0];
  assert.ok(job);
  assert.equal(job.name, 'randrw');
  assert.equal(job.error, 0);
  assert.equal(job.read.ios, 5717);
  assert.equal(job.read.iops, 2857.071464);
  assert.equal(job.read.bytesPerSecond, 11702564);
  assert.equal(job.read.latency.p50Ns, 132096);
  assert.equal(job.read.latency.p99Ns, 856064);
  assert.equal(job.read.latency.p999Ns, 12255232);
  assert.ok(Math.abs(r.total.iops - (job.read.iops + job.write.iops)) < 1e-9);
  assert.equal(r.total.p99Ns, Math.max(job.read.latency.p99Ns ?? 0, job.write.latency.p99Ns ?? 0));
});

test('sb-iobench writes the same shape, so the same parser reads it', () => {
  const r = parseFioJson(sample('sb-iobench-randrw.json'));
  assert.equal(r.version, 'sb-iobench-1');
  const job = r.jobs[0];
  assert.ok(job && job.read.ios > 0 && job.write.ios > 0);
  assert.ok(job.read.latency.p99Ns !== null && job.read.latency.p50Ns !== null);
  assert.ok(job.read.latency.p99Ns >= job.read.latency.p50Ns);
});

test('a direction without I/O has no percentiles and does not count in the p99', () => {
  const report = JSON.parse(sample('fio-randrw.json')) as { jobs: { write: Record<string, unknown> }[] };
  const write = report.jobs[0]?.write;
  assert.ok(write);
  Object.assign(write, { total_ios: 0, iops: 0, bw_bytes: 0, clat_ns: { min: 0, max: 0, mean: 0, N: 0 } });
  const r = parseFioJson(JSON.stringify(report));
  assert.equal(r.jobs[0]?.write.latency.p99Ns, null);
  assert.equal(r.total.p99Ns, r.jobs[0]?.read.latency.p99Ns);
});

test('notes fio prints before its JSON are skipped; anything else is refused', () => {
  const r = parseFioJson(`fio: laying out IO file (1 file / 32MiB)\n${sample('fio-randrw.json')}`);
  assert.equal(r.jobs.length, 1);
  assert.throws(() => parseFioJson('{"jobs": []}'));
  assert.throws(() => parseFioJson('not json'));
});

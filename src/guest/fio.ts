import { z } from 'zod';

/*
 * fio's JSON report (`fio --output-format=json`), reduced to what a test or a benchmark compares:
 * per job and direction the operations, IOPS, bandwidth and completion-latency percentiles.
 * `sb-iobench` in the guest (workloads/sb-iobench.c) writes the same shape, so one parser reads
 * both. Loose objects: fio's report has dozens of fields we do not read, and more per version.
 */

const Stat = z.looseObject({
  min: z.number(),
  max: z.number(),
  mean: z.number(),
  N: z.number().int().min(0),
  /** Absent when the direction did no I/O (or percentiles were switched off). */
  percentile: z.record(z.string(), z.number()).optional(),
});

const Direction = z.looseObject({
  io_bytes: z.number().int().min(0),
  bw_bytes: z.number().min(0),
  iops: z.number().min(0),
  runtime: z.number().min(0),
  total_ios: z.number().int().min(0),
  clat_ns: Stat,
});

const Job = z.looseObject({
  jobname: z.string(),
  error: z.number().int(),
  read: Direction,
  write: Direction,
});

export const FioReport = z.looseObject({
  'fio version': z.string(),
  jobs: z.array(Job).min(1),
});

export interface FioLatency {
  meanNs: number;
  maxNs: number;
  p50Ns: number | null;
  p90Ns: number | null;
  p99Ns: number | null;
  p999Ns: number | null;
}

export interface FioDirection {
  ios: number;
  iops: number;
  bytesPerSecond: number;
  /** Completion latency (submission to completion), as fio's clat_ns. */
  latency: FioLatency;
}

export interface FioJob {
  name: string;
  /** fio's error number for the job; 0 when it ran. */
  error: number;
  read: FioDirection;
  write: FioDirection;
}

export interface FioResult {
  version: string;
  jobs: FioJob[];
  /** Reads and writes of every job together; latency percentiles are the worst job's. */
  total: { iops: number; bytesPerSecond: number; p99Ns: number | null };
}

/** fio names percentiles "99.000000"; the keys are compared by value, not by spelling. */
function percentile(table: Record<string, number> | undefined, p: number): number | null {
  if (!table) return null;
  for (const [key, value] of Object.entries(table)) if (Math.abs(Number(key) - p) < 1e-9) return value;
  return null;
}

function direction(d: z.infer<typeof Direction>): FioDirection {
  const t = d.clat_ns.percentile;
  return {
    ios: d.total_ios,
    iops: d.iops,
    bytesPerSecond: d.bw_bytes,
    latency: {
      meanNs: d.clat_ns.mean,
      maxNs: d.clat_ns.max,
      p50Ns: percentile(t, 50),
      p90Ns: percentile(t, 90),
      p99Ns: percentile(t, 99),
      p999Ns: percentile(t, 99.9),
    },
  };
}

const maxOrNull = (values: (number | null)[]): number | null => {
  const known = values.filter((v): v is number => v !== null);
  return known.length ? Math.max(...known) : null;
};

/** Parses fio's JSON output (text as printed); throws a ZodError or SyntaxError on anything else. */
export function parseFioJson(text: string): FioResult {
  // fio may print notes ("fio: ...") before the JSON document when a file had to be laid out.
  const start = text.indexOf('{');
  const report = FioReport.parse(JSON.parse(start > 0 ? text.slice(start) : text));
  const jobs = report.jobs.map((j) => ({
    name: j.jobname,
    error: j.error,
    read: direction(j.read),
    write: direction(j.write),
  }));
  return {
    version: report['fio version'],
    jobs,
    total: {
      iops: jobs.reduce((s, j) => s + j.read.iops + j.write.iops, 0),
      bytesPerSecond: jobs.reduce((s, j) => s + j.read.bytesPerSecond + j.write.bytesPerSecond, 0),
      p99Ns: maxOrNull(
        jobs.flatMap((j) => [
          j.read.ios ? j.read.latency.p99Ns : null,
          j.write.ios ? j.write.latency.p99Ns : null,
        ]),
      ),
    },
  };
}

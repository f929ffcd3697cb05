// The metrics store's collection round on both databases (issue 31): `--hosts` x `--disks` disks
// (default 40 x 50 = 2,000), each host's sample stored through ingestHostStats as the collector
// does, one host after the other, `--rounds` rounds 10 s of sample time apart (the first one
// creates the rows, the others add intervals to every tier and window, as in production).
// SQLite in a temp dir; PostgreSQL a database of a throwaway cluster (test-postgres.ts: unix
// socket, fsync off) or `--database postgres://...`.
//
//   node --import tsx bench/insight/ingest.ts [-- --hosts 40 --disks 50 --rounds 6 --only sqlite]
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { HostStats } from '../../src/api/index.js';
import { createTestDatabase, insight, openDatabase } from '../../src/manager/index.js';

const { values: args } = parseArgs({
  options: {
    hosts: { type: 'string', default: '40' },
    disks: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '6' },
    database: { type: 'string' },
    only: { type: 'string' },
  },
});
const HOSTS = Number(args.hosts);
const DISKS = Number(args.disks);
const ROUNDS = Number(args.rounds);
const BOUNDS = [100, 500, 1_000, 2_000, 5_000, 10_000, 50_000, 100_000].map((us) => us * 1000);
const vmIds = Array.from({ length: HOSTS * DISKS }, () => randomUUID());

function sample(host: number, atS: number): HostStats {
  const disks = Array.from({ length: DISKS }, (_, i) => {
    const n = host * DISKS + i;
    const ops = Math.round((atS % 100_000) * (1 + (n % 7)));
    const bins = (o: number) =>
      [0.1, 0.2, 0.3, 0.2, 0.1, 0.05, 0.03, 0.01, 0.01].map((f) => Math.round(f * o));
    return {
      vm: `vm${n}`,
      vmId: vmIds[n]!,
      disk: 'root',
      datastore: i % 2 ? 'fast' : 'local',
      format: 'qcow2' as const,
      formatVersion: '1.1',
      virtualSizeBytes: 100 << 30,
      allocatedBytes: 20 << 30,
      counterEpoch: `${vmIds[n]}-1`,
      counters: {
        readOps: ops,
        writeOps: ops,
        flushOps: ops >> 3,
        readBytes: ops * 16_384,
        writeBytes: ops * 32_768,
        readTotalNs: ops * 1_200_000,
        writeTotalNs: ops * 2_500_000,
        flushTotalNs: ops * 100_000,
      },
      histograms: { boundariesNs: BOUNDS, read: bins(ops), write: bins(ops), flush: bins(0) },
    };
  });
  return {
    host: `host${host}`,
    sampledAt: new Date(atS * 1000).toISOString(),
    datastores: ['local', 'fast'].map((name) => ({
      name,
      fsType: 'ext4',
      capacityBytes: 2048 << 30,
      freeBytes: 1024 << 30,
      provisionedBytes: 512 << 30,
      allocatedBytes: 256 << 30,
    })),
    disks,
    guests: disks.map((d) => ({
      vm: d.vm,
      vmId: d.vmId,
      agentVersion: '7.2.0',
      filesystems: [{ mountpoint: '/', type: 'ext4', usedBytes: 1 << 30, totalBytes: 4 << 30 }],
    })),
  };
}

async function run(kind: 'sqlite' | 'postgres'): Promise<number[]> {
  const dir = await mkdtemp(path.join(tmpdir(), 'sb-bench-ingest-'));
  const target = kind === 'sqlite' ? dir : (args.database ?? (await createTestDatabase()));
  const db = await openDatabase(target);
  const seconds: number[] = [];
  try {
    const start = Math.floor(Date.now() / 1000) - ROUNDS * 10;
    for (let r = 0; r < ROUNDS; r++) {
      const at = start + r * 10;
      const t0 = performance.now();
      for (let h = 0; h < HOSTS; h++) await insight.ingestHostStats(db, sample(h, at));
      seconds.push((performance.now() - t0) / 1000);
    }
  } finally {
    await db.destroy();
    await rm(dir, { recursive: true, force: true });
  }
  return seconds;
}

const load = os.loadavg()[0]!.toFixed(1);
console.log(`ingest of ${HOSTS} hosts x ${DISKS} disks, ${ROUNDS} rounds, load average ${load}`);
console.log('| database   | first round s | later rounds p50 s | later rounds max s |');
console.log('|------------|--------------:|-------------------:|-------------------:|');
for (const kind of ['sqlite', 'postgres'] as const) {
  if (args.only && args.only !== kind) continue;
  const s = await run(kind);
  const later = s.slice(1).sort((a, b) => a - b);
  const p50 = later[Math.floor((later.length - 1) / 2)] ?? NaN;
  console.log(
    `| ${kind.padEnd(10)} | ${s[0]!.toFixed(2).padStart(13)} | ${p50.toFixed(2).padStart(18)} | ${later.at(-1)!.toFixed(2).padStart(18)} |`,
  );
}
process.exit(0);

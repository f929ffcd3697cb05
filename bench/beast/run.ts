// "The Beast" (issue 18): demand-driven placement episodes on real parts. Three lab agents (host3
// the Beast: class fast, no limit; host1 and host2 limited like a SAN tier, the lab's
// STANDARD_TIER_LIMITS), a manager in automatic placement mode, four TCG guests (two per standard
// host). Episode 1: one VM runs heavy random I/O (sb-iobench, 4 KiB, O_DIRECT) for the episode's
// length, then stops. Measured: onset to running on the Beast, the guest's IOPS and p99 before, on
// the Beast and after going home, bytes moved each way, number of placement moves (goal: 2).
// Episode 2: two VMs of different priority go hot at once while the Beast has room for one (its
// IOPS budget capped): the higher priority one should get it.
//
//   npm run bench:beast [-- --episode-seconds 600]
//
// Results: bench/beast/results/<time>.{md,json}.
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { ManagerClient, MoveResult } from '../../src/api/index.js';
import { startLabAgent, waitForGuestAgent, type LabAgent } from '../../src/agent/index.js';
import { GUEST_WORKLOADS, parseFioJson } from '../../src/guest/index.js';
import { STANDARD_TIER_LIMITS } from '../../src/lab/index.js';
import { startManager } from '../../src/manager/index.js';
import { writeResults } from '../lab-link.js';

const MiB = 2 ** 20;
const TOKEN = 'beast-bench-token-0123456789abc';
const RESULTS = path.join(import.meta.dirname, 'results');
const { values: args } = parseArgs({ options: { 'episode-seconds': { type: 'string', default: '600' } } });
const EPISODE_S = Number(args['episode-seconds']);
const MEASURE_S = 15;
const IOBENCH = [GUEST_WORKLOADS.ioBench, '--file', '/data/iobench', '--rw', 'randrw', '--size-mib', '32'];
/**
 * Short holds so an episode's moves happen within it; the rest are the defaults. The hot hold
 * outlasts the demand window and its 30-s bucket, as the defaults' do (300 s each), so the Beast's
 * predicted load sees each VM's full demand when it qualifies.
 */
const SETTINGS = {
  evaluationIntervalSeconds: 5,
  demandWindowSeconds: 60,
  hotIops: 150,
  hotLatencyMs: 0,
  holdSeconds: 90,
  coolIops: 30,
  coolHoldSeconds: 90,
  minStaySeconds: 60,
  maxConcurrentMoves: 1,
};
const log = (msg: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

const agents = new Map<string, LabAgent>();
let api: ManagerClient;

async function hostOf(vm: string): Promise<string> {
  return (await api.getVm(vm)).host;
}

/** One sb-iobench run in the guest wherever it is now (retried across a move). */
async function iobench(vm: string, seconds: number): Promise<{ host: string; iops: number; p99Ms: number }> {
  for (let attempt = 1; ; attempt++) {
    const host = await hostOf(vm);
    try {
      const out = await (agents.get(host) as LabAgent).client.guestExec(
        vm,
        [...IOBENCH, '--seconds', String(seconds)],
        seconds + 120,
      );
      if (out.exitCode !== 0) throw new Error(out.stderr ?? 'sb-iobench failed');
      const r = parseFioJson(out.stdout ?? '');
      return { host, iops: r.total.iops, p99Ms: (r.total.p99Ns ?? 0) / 1e6 };
    } catch (error) {
      if (attempt >= 20) throw error;
      await sleep(3000);
    }
  }
}

interface EpisodeResult {
  vm: string;
  onsetToBeastS: number | null;
  before: { iops: number; p99Ms: number };
  onBeast: { iops: number; p99Ms: number } | null;
  after: { iops: number; p99Ms: number } | null;
  homeAfterStopS: number | null;
  moves: {
    kind: string;
    from: string;
    to: string;
    totalS: number;
    diskMiB: number;
    deltaMiB: number | null;
    memoryMiB: number;
  }[];
}

async function placementMovesOf(vm: string, since: number) {
  const changes = (await api.listChanges({ actor: 'placement', limit: 200 })).items.filter(
    (c) =>
      c.object.name === vm && Date.parse(c.at) >= since && c.changes.some((f) => f.field === 'placement'),
  );
  const moves: EpisodeResult['moves'] = [];
  for (const c of changes) {
    if (!c.jobId) continue;
    const job = await api.waitForJob(c.jobId, 600_000);
    const r = MoveResult.safeParse(job.result);
    if (!r.success) continue;
    moves.push({
      kind: String(c.changes.find((f) => f.field === 'placement')?.after ?? ''),
      from: r.data.from,
      to: r.data.to,
      totalS: r.data.totalTimeMs / 1000,
      diskMiB: (r.data.stats.diskBytes ?? 0) / MiB,
      deltaMiB: r.data.stats.deltaBytes === undefined ? null : r.data.stats.deltaBytes / MiB,
      memoryMiB: (r.data.stats.memoryBytes ?? 0) / MiB,
    });
  }
  return moves;
}

/** Heavy I/O in `vms` for EPISODE_S (back-to-back measured runs), then idle until each is home. */
async function episode(vms: string[]): Promise<EpisodeResult[]> {
  const since = Date.now();
  const homes = new Map<string, string>();
  const results = new Map<string, EpisodeResult>();
  for (const vm of vms) {
    homes.set(vm, await hostOf(vm));
    results.set(vm, {
      vm,
      onsetToBeastS: null,
      before: await iobench(vm, MEASURE_S),
      onBeast: null,
      after: null,
      homeAfterStopS: null,
      moves: [],
    });
  }
  const onset = Date.now();
  await Promise.all(
    vms.map(async (vm) => {
      const r = results.get(vm) as EpisodeResult;
      while (Date.now() - onset < EPISODE_S * 1000) {
        const run = await iobench(vm, MEASURE_S);
        if (run.host === 'host3') {
          r.onsetToBeastS ??= (Date.now() - onset) / 1000;
          r.onBeast = { iops: run.iops, p99Ms: run.p99Ms };
        }
        log(`${vm} on ${run.host}: ${run.iops.toFixed(0)} IOPS, p99 ${run.p99Ms.toFixed(1)} ms`);
      }
    }),
  );
  const stopped = Date.now();
  for (const vm of vms) {
    const r = results.get(vm) as EpisodeResult;
    for (;;) {
      if ((await hostOf(vm)) === homes.get(vm) && r.onBeast) {
        r.homeAfterStopS = (Date.now() - stopped) / 1000;
        break;
      }
      if (!r.onBeast || Date.now() - stopped > 15 * 60_000) break;
      await sleep(2000);
    }
    if (r.homeAfterStopS !== null) {
      const after = await iobench(vm, MEASURE_S);
      r.after = { iops: after.iops, p99Ms: after.p99Ms };
    }
    r.moves = await placementMovesOf(vm, since);
  }
  return [...results.values()];
}

async function main(): Promise<void> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'sb-beast-bench-'));
  const manager = await startManager({
    dataDir,
    statsIntervalSeconds: 5,
    reconcileIntervalSeconds: 5,
    log: () => {},
  });
  try {
    api = new ManagerClient(manager.url, manager.adminToken ?? '', 600_000);
    for (const name of ['host1', 'host2', 'host3']) {
      const agent = await startLabAgent({ prefix: `sb-beast-${name}-`, hostName: name, token: TOKEN });
      agents.set(name, agent);
      await api.addHost({ address: `127.0.0.1:${new URL(agent.client.http.baseUrl).port}`, token: TOKEN });
    }
    await api.updateDatastore('host3', 'ds1', { class: 'fast' });
    for (const host of ['host1', 'host2'])
      await api.updateDatastore(host, 'ds1', { limits: STANDARD_TIER_LIMITS });
    const vms = ['vm1', 'vm2', 'vm3', 'vm4'];
    for (const [i, vm] of vms.entries()) {
      const host = i < 2 ? 'host1' : 'host2';
      const created = await api.createVm({
        host,
        spec: { name: vm, vcpus: 1, memoryMiB: 256, disks: [{ sizeBytes: 512 * MiB }], start: true },
      });
      await api.waitForJob(created.job.id, 300_000);
      await waitForGuestAgent((agents.get(host) as LabAgent).client, vm);
    }
    await api.setPlacementSettings(SETTINGS);
    await api.setPlacementMode('automatic');
    log('episode 1: vm1 goes hot');
    const single = await episode(['vm1']);
    // Episode 2: room for one on the Beast (its IOPS budget capped), vm2 high priority, vm3 normal.
    await api.updateDatastore('host3', 'ds1', { limits: { iops: 600 } });
    await api.patchVmPlacement('vm2', { priority: 'high' });
    log('episode 2: vm2 (high) and vm3 (normal) go hot at once');
    const competing = await episode(['vm2', 'vm3']);
    await report(single, competing);
  } finally {
    await manager.close();
    for (const agent of agents.values()) await agent.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

const f = (x: { iops: number; p99Ms: number } | null) =>
  x ? `${x.iops.toFixed(0)} IOPS, p99 ${x.p99Ms.toFixed(1)} ms` : '-';

async function report(single: EpisodeResult[], competing: EpisodeResult[]): Promise<void> {
  const row = (e: EpisodeResult, label: string) =>
    `| ${label} | ${e.vm} | ${e.onsetToBeastS === null ? 'never' : `${e.onsetToBeastS.toFixed(0)} s`} | ${f(e.before)} | ${f(e.onBeast)} | ${f(e.after)} | ${e.homeAfterStopS === null ? '-' : `${e.homeAfterStopS.toFixed(0)} s`} | ${e.moves.length} | ${e.moves.map((m) => `${m.from}->${m.to} ${m.totalS.toFixed(1)} s, disk ${m.diskMiB.toFixed(0)} MiB${m.deltaMiB === null ? '' : ' (delta)'}, memory ${m.memoryMiB.toFixed(0)} MiB`).join('; ')} |`;
  const text = [
    `# The Beast (bench/beast), ${new Date().toISOString()}`,
    '',
    `Episodes of ${EPISODE_S} s of heavy random 4 KiB I/O (sb-iobench, O_DIRECT, QD1) in TCG guests; host1/host2 limited to ${STANDARD_TIER_LIMITS.iops} IOPS; placement automatic with holds ${SETTINGS.holdSeconds} s hot, ${SETTINGS.coolHoldSeconds} s cool, evaluation every ${SETTINGS.evaluationIntervalSeconds} s, demand over ${SETTINGS.demandWindowSeconds} s. ${cpus().length} cores, load ${loadavg()[0]?.toFixed(1)} at the end.`,
    '',
    '| episode | VM | onset to on the Beast | before | on the Beast | after going home | home after the load stopped | moves | moves (each way) |',
    '|---|---|---:|---|---|---|---:|---:|---|',
    ...single.map((e) => row(e, 'one hot VM')),
    ...competing.map((e) => row(e, 'two hot VMs, room for one')),
    '',
  ].join('\n');
  console.log(text);
  await writeResults(RESULTS, text, { single, competing });
}

await main();

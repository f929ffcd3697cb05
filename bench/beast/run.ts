// "The Beast" (issues 18 and 27): demand-driven placement episodes on real parts, with the
// default placement thresholds. Three lab agents (host3 the Beast: class fast, no limit; host1
// and host2 limited like a SAN tier, the lab's STANDARD_TIER_LIMITS), a manager in automatic
// placement mode, four TCG guests (two per standard host). Only durations are shortened
// (LAB_PLACEMENT_SETTINGS, printed with the results): every threshold, the budget and the move
// cap are the defaults, so a VM's random I/O held at its datastore's 400-IOPS limit must be seen
// as suffering by the product's own rule.
//
// Episode 1: one VM runs heavy random I/O (sb-iobench, 4 KiB, O_DIRECT, QD1) in back-to-back
// measured runs for the episode's length, then stops. Measured: onset to hot, hot to running on
// the Beast, the guest's IOPS and p99 (medians of the runs) held at home, on the Beast and after
// going home, how long home took after the load stopped, bytes moved each way, placement moves
// (goal: 2). Episode 2: two VMs of different priority go hot at once while the Beast has room
// for one (its IOPS limit capped at 600: a budget of 480 at the default 80 %): the higher
// priority one should get it and the other make no move.
//
//   npm run bench:beast [-- --episode-seconds 300]
//
// Results: bench/beast/results/<time>.{md,json} (committed: the table and every run).
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import {
  DEFAULT_PLACEMENT_SETTINGS,
  HELD_AT_LIMIT_SHARE,
  MoveResult,
  type ManagerClient,
} from '../../src/api/index.js';
import { waitForGuestAgent } from '../../src/agent/index.js';
import {
  hostOf,
  inGuestOf,
  placementMovesOf,
  startBeastFabric,
  type BeastFabric,
  type BeastFabricHost,
} from '../../src/beast-fabric.js';
import { GUEST_WORKLOADS, parseFioJson } from '../../src/guest/index.js';
import { LAB_PLACEMENT_SETTINGS, STANDARD_TIER_LIMITS } from '../../src/lab/index.js';
import { writeResults } from '../lab-link.js';

const MiB = 2 ** 20;
const TOKEN = 'beast-bench-token-0123456789abc';
const RESULTS = path.join(import.meta.dirname, 'results');
const { values: args } = parseArgs({ options: { 'episode-seconds': { type: 'string', default: '300' } } });
const EPISODE_S = Number(args['episode-seconds']);
const MEASURE_S = 15;
/** The Beast's IOPS limit in episode 2: room (80 % of it) for one VM held at 400, not two. */
const COMPETING_BEAST_IOPS = 600;
const IOBENCH = [GUEST_WORKLOADS.ioBench, '--file', '/data/iobench', '--rw', 'randrw', '--size-mib', '32'];
const SETTINGS = LAB_PLACEMENT_SETTINGS;
const S = { ...DEFAULT_PLACEMENT_SETTINGS, ...SETTINGS };
const log = (msg: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

let fabric: BeastFabric;
let api: ManagerClient;

interface Run {
  /** Seconds after the episode's onset the run ended. */
  t: number;
  host: string;
  phase: 'before' | 'held' | 'beast' | 'after';
  iops: number;
  p99Ms: number;
}

/** One sb-iobench run in the guest wherever it is now (asked again across a move). */
async function iobench(vm: string, seconds: number): Promise<{ host: string; iops: number; p99Ms: number }> {
  for (let attempt = 1; ; attempt++) {
    try {
      const host = await hostOf(fabric, vm);
      const out = await inGuestOf(fabric, vm, [...IOBENCH, '--seconds', String(seconds)], seconds + 120);
      if (out.exitCode !== 0) throw new Error(out.stderr ?? 'sb-iobench failed');
      const r = parseFioJson(out.stdout ?? '');
      return { host, iops: r.total.iops, p99Ms: (r.total.p99Ns ?? 0) / 1e6 };
    } catch (error) {
      if (attempt >= 20) throw error;
      await sleep(3000);
    }
  }
}

interface Move {
  kind: string;
  from: string;
  to: string;
  totalS: number;
  diskMiB: number;
  delta: boolean;
  memoryMiB: number;
}

interface EpisodeResult {
  vm: string;
  priority: string;
  onsetToHotS: number | null;
  hotToBeastS: number | null;
  homeAfterStopS: number | null;
  runs: Run[];
  moves: Move[];
}

async function movesOf(vm: string, since: number): Promise<Move[]> {
  const moves: Move[] = [];
  for (const m of await placementMovesOf(fabric, vm)) {
    if (!m.jobId || Date.parse(m.at) < since) continue;
    const r = MoveResult.safeParse((await api.waitForJob(m.jobId, 600_000)).result);
    if (!r.success) continue;
    moves.push({
      kind: m.kind,
      from: r.data.from,
      to: r.data.to,
      totalS: r.data.totalTimeMs / 1000,
      diskMiB: (r.data.stats.diskBytes ?? 0) / MiB,
      delta: r.data.stats.deltaBytes !== undefined,
      memoryMiB: (r.data.stats.memoryBytes ?? 0) / MiB,
    });
  }
  return moves.reverse();
}

/** Heavy I/O in `vms` for EPISODE_S (back-to-back measured runs), then idle until each is home. */
async function episode(vms: { vm: string; priority: string }[]): Promise<EpisodeResult[]> {
  const since = Date.now();
  const homes = new Map<string, BeastFabricHost>();
  const results = new Map<string, EpisodeResult>();
  for (const { vm, priority } of vms) {
    homes.set(vm, await hostOf(fabric, vm));
    const before = await iobench(vm, MEASURE_S);
    results.set(vm, {
      vm,
      priority,
      onsetToHotS: null,
      hotToBeastS: null,
      homeAfterStopS: null,
      runs: [{ t: 0, phase: 'before', ...before }],
      moves: [],
    });
  }
  const onset = Date.now();
  const elapsed = () => (Date.now() - onset) / 1000;
  // The manager's view, every second: when each VM went hot (its streak is cleared when its move
  // starts) and when it first ran on the Beast.
  const watching = { on: true };
  const watch = Promise.all(
    vms.map(async ({ vm }) => {
      const r = results.get(vm) as EpisodeResult;
      let hotAt: number | null = null;
      for (; watching.on && r.hotToBeastS === null; await sleep(1000)) {
        const hotSince = (await api.vmPlacement(vm)).hotSince;
        if (hotAt === null && hotSince !== null) {
          hotAt = Date.parse(hotSince);
          r.onsetToHotS = (hotAt - onset) / 1000;
        }
        if (hotAt !== null && (await hostOf(fabric, vm)) === 'host3')
          r.hotToBeastS = (Date.now() - hotAt) / 1000;
      }
    }),
  );
  await Promise.all(
    vms.map(async ({ vm }) => {
      const r = results.get(vm) as EpisodeResult;
      while (elapsed() < EPISODE_S) {
        const run = await iobench(vm, MEASURE_S);
        r.runs.push({ t: elapsed(), phase: run.host === 'host3' ? 'beast' : 'held', ...run });
        log(`${vm} on ${run.host}: ${run.iops.toFixed(0)} IOPS, p99 ${run.p99Ms.toFixed(1)} ms`);
      }
    }),
  );
  watching.on = false;
  await watch;
  const stopped = Date.now();
  for (const { vm } of vms) {
    const r = results.get(vm) as EpisodeResult;
    const wentOut = r.runs.some((x) => x.phase === 'beast');
    for (; wentOut; await sleep(1000)) {
      if ((await hostOf(fabric, vm)) === homes.get(vm)) {
        r.homeAfterStopS = (Date.now() - stopped) / 1000;
        break;
      }
      if (Date.now() - stopped > 15 * 60_000) break;
    }
    if (r.homeAfterStopS !== null) {
      const after = await iobench(vm, MEASURE_S);
      r.runs.push({ t: elapsed(), phase: 'after', ...after });
    }
    r.moves = await movesOf(vm, since);
  }
  return [...results.values()];
}

async function main(): Promise<void> {
  fabric = await startBeastFabric('sb-beast-bench-', TOKEN);
  api = fabric.api;
  const vms = ['vm1', 'vm2', 'vm3', 'vm4'];
  try {
    for (const [i, vm] of vms.entries()) {
      const host = i < 2 ? 'host1' : 'host2';
      const created = await api.createVm({
        host,
        spec: { name: vm, vcpus: 1, memoryMiB: 256, disks: [{ sizeBytes: 512 * MiB }], start: true },
      });
      await api.waitForJob(created.job.id, 300_000);
      await waitForGuestAgent(fabric.agents.get(host)?.client ?? assertNever(host), vm);
    }
    await api.setPlacementSettings(SETTINGS);
    await api.setPlacementMode('automatic');
    log('episode 1: vm1 goes hot');
    const single = await episode([{ vm: 'vm1', priority: 'normal' }]);
    // Episode 2: room for one on the Beast (its IOPS budget capped), vm2 high priority, vm3 normal.
    await api.updateDatastore('host3', 'ds1', { limits: { iops: COMPETING_BEAST_IOPS } });
    await api.patchVmPlacement('vm2', { priority: 'high' });
    log('episode 2: vm2 (high) and vm3 (normal) go hot at once');
    const competing = await episode([
      { vm: 'vm2', priority: 'high' },
      { vm: 'vm3', priority: 'normal' },
    ]);
    await report(single, competing);
  } finally {
    await fabric.close(vms);
  }
}

function assertNever(host: string): never {
  throw new Error(`no lab agent for ${host}`);
}

const median = (xs: number[]) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

/** The median IOPS and p99 of an episode's runs in the given phases, and how many runs. */
function medians(e: EpisodeResult, phases: Run['phase'][]) {
  const runs = e.runs.filter((r) => phases.includes(r.phase));
  const iops = median(runs.map((r) => r.iops));
  const p99Ms = median(runs.map((r) => r.p99Ms));
  return iops === null || p99Ms === null ? null : { iops, p99Ms, runs: runs.length };
}

async function report(single: EpisodeResult[], competing: EpisodeResult[]): Promise<void> {
  const f = (x: ReturnType<typeof medians>) =>
    x ? `${x.iops.toFixed(0)} IOPS, p99 ${x.p99Ms.toFixed(1)} ms (${x.runs})` : '-';
  const s = (v: number | null) => (v === null ? '-' : `${v.toFixed(0)} s`);
  const row = (e: EpisodeResult, label: string) =>
    `| ${label} | ${e.vm} (${e.priority}) | ${s(e.onsetToHotS)} | ${s(e.hotToBeastS)} | ${f(medians(e, ['before', 'held']))} | ${f(medians(e, ['beast']))} | ${f(medians(e, ['after']))} | ${s(e.homeAfterStopS)} | ${e.moves.length} | ${e.moves.map((m) => `${m.kind} ${m.from}->${m.to} ${m.totalS.toFixed(1)} s, disk ${m.diskMiB.toFixed(0)} MiB${m.delta ? ' (delta)' : ''}, memory ${m.memoryMiB.toFixed(0)} MiB`).join('; ') || '-'} |`;
  const durations = Object.entries(SETTINGS)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const text = [
    `# The Beast (bench/beast), ${new Date().toISOString()}`,
    '',
    `Episodes of ${EPISODE_S} s of random 4 KiB I/O (sb-iobench, O_DIRECT, QD1) in TCG guests, measured in back-to-back ${MEASURE_S}-s runs; host1/host2 limited to ${STANDARD_TIER_LIMITS.iops} IOPS, the Beast unlimited (episode 2: ${COMPETING_BEAST_IOPS} IOPS). Placement automatic with the **default thresholds** (hot: ≥ ${S.hotIops} IOPS and ${S.hotLatencyPercentile} ≥ ${S.hotLatencyMs} ms, or held at ≥ ${Math.round(HELD_AT_LIMIT_SHARE * 100)} % of a limit; cool: < ${S.coolIops} IOPS; ${S.movesPerDay} moves a day; ${S.maxConcurrentMoves} at a time; ${S.maxIopsUtilisation * 100} % of a budget); **durations shortened**: ${durations}. ${cpus().length} cores, load ${loadavg()[0]?.toFixed(1)} at the end.`,
    '',
    'Medians of the runs in each phase (the number of runs in brackets): held at home (before and during the load until the move), on the Beast, after going home.',
    '',
    '| episode | VM | onset to hot | hot to on the Beast | held at home | on the Beast | after going home | home after the load stopped | moves | moves (in order) |',
    '|---|---|---:|---:|---|---|---|---:|---:|---|',
    ...single.map((e) => row(e, 'one hot VM')),
    ...competing.map((e) => row(e, 'two hot VMs, room for one')),
    '',
  ].join('\n');
  console.log(text);
  await writeResults(RESULTS, text, { settings: S, episodeSeconds: EPISODE_S, single, competing });
}

await main();

// Clusters on shared storage (issue 30), measured as a user runs them: a 3-host TCG lab whose hosts
// mount the lab's storage server as their `shared` datastore and run sanlock, one cluster made and
// joined with the CLI, every setting the product's default. Three parts, each beside its baseline:
//
// moves  a memory-only move of a busy guest (256 MiB, 1 GiB of random data on its 2 GiB shared
//        disk, writing records with fsync and dirtying 64 MiB/s) against a shared-nothing move of
//        the same guest (`vm move --datastore local`: its disk copied to the target's local
//        datastore); time, downtime, the job's disk and memory bytes and the kernel's counters of
//        the source's, the target's and the storage server's fabric links. One unmeasured
//        memory-only move first warms the path up.
// drain  `silobreak host drain host1` with N idle 256-MiB guests on the shared datastore (memory-
//        only moves to its peers) against `silobreak vm move` of the same VMs one by one to the
//        same hosts; wall time of each. A first, unmeasured drain warms up every VM's path and sets
//        the targets; then each round runs both, in alternating order, the VMs moved home between.
// ha     HA restart: a host with two HA-protected busy guests loses its power (its link cut, its
//        agent, QEMUs, sanlock and storage client killed at once), then another host with one is
//        cut off with its QEMU alive (split brain, as src/cluster.lab.test.ts). From the strike
//        to each guest answering ping on its new host, in parts: detection (the manager's restart
//        job), the lease (sanlock lets another host take it only when the dead host's lease
//        expired), start, boot to ping; against the issue's goal of 30 s. Every record the guest
//        wrote before the strike is verified afterwards.
//
//   flock /tmp/silobreak-lab.lock npm run bench:ha [-- --parts moves,drain,ha --drain-vms 4 --drain-rounds 2 --move-rounds 2 --data-mib 1024]
//
// Results: bench/ha/results/<time>.{md,json}.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, promisify } from 'node:util';
import { z } from 'zod';
import { DrainResult, ManagerClient, MoveResult, type Job } from '../../src/api/index.js';
import { DEFAULT_HA_DEAD_AFTER_SECONDS } from '../../src/manager/index.js';
import {
  fabricLink,
  guestRecordCount,
  inGuest,
  labAgent,
  labCli,
  labDown,
  labUp,
  startGuestWorkloads,
  until,
  verifyGuestRecords,
  waitForPing,
  type Lab,
  type LabHost,
} from '../../src/lab/index.js';
import { writeResults } from '../lab-link.js';
import {
  busyPercent,
  haVerdict,
  leaseHeld,
  monoToWallMs,
  parseHostStatus,
  parseProcStat,
  renderDrainTable,
  renderHaTable,
  renderMoveTable,
  sanlockHostDeadSeconds,
  type DrainRun,
  type HaSample,
  type MoveSample,
} from './report.js';

const LAB = 'habench';
const CLUSTER = 'rack1';
const RESULTS = path.join(import.meta.dirname, 'results');
const MiB = 1024 * 1024;
const RECORDS = '/data/records';
const execFileAsync = promisify(execFile);

const { values: args } = parseArgs({
  options: {
    parts: { type: 'string', default: 'moves,drain,ha' },
    'drain-vms': { type: 'string', default: '4' },
    'drain-rounds': { type: 'string', default: '2' },
    'move-rounds': { type: 'string', default: '2' },
    'data-mib': { type: 'string', default: '1024' },
  },
});
const parts = new Set((args.parts ?? '').split(',').filter(Boolean));
for (const p of parts)
  if (!['moves', 'drain', 'ha'].includes(p)) throw new Error(`--parts: unknown part ${p}`);
const DRAIN_VMS = Number(args['drain-vms']);
const DRAIN_ROUNDS = Number(args['drain-rounds']);
const DATA_MIB = Number(args['data-mib']);
const MOVE_ROUNDS = Number(args['move-rounds']);

const log = (msg: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

let lab: Lab;
let api: ManagerClient;
const host = (name: string) => {
  const h = lab.hosts.find((x) => x.name === name);
  if (!h) throw new Error(`no lab host ${name}`);
  return h;
};

/** `silobreak ...args` as a user runs it; fails the run with its output when it fails. */
async function cli(command: string[]): Promise<string> {
  const r = await labCli(lab, command, 1_800_000);
  if (r.code !== 0)
    throw new Error(`silobreak ${command.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** The same, timed: from its start to its exit. */
async function timedCli(command: string[]): Promise<{ ms: number; stdout: string }> {
  const started = Date.now();
  const stdout = await cli(command);
  return { ms: Date.now() - started, stdout };
}

const cpuNow = () => parseProcStat(readFileSync('/proc/stat', 'utf8'));

/** The machine while a part ran: its load average at the end and the CPU busy over the part. */
interface PartLoad {
  part: string;
  seconds: number;
  busyPercent: number | undefined;
  loadavgEnd: number[];
}
const loads: PartLoad[] = [];

async function measuredPart<T>(part: string, body: () => Promise<T>): Promise<T> {
  const started = Date.now();
  const cpu = cpuNow();
  try {
    return await body();
  } finally {
    loads.push({
      part,
      seconds: Math.round((Date.now() - started) / 1000),
      busyPercent: busyPercent(cpu, cpuNow()),
      loadavgEnd: loadavg(),
    });
  }
}

/** `vm create` with the CLI on `on`, 256 MiB, one disk, the lab's n-th VM address, started and answering ping. */
async function createVm(vm: string, on: string, n: number, disk: string): Promise<void> {
  const address = lab.vmAddress(n);
  await cli([
    'vm',
    'create',
    vm,
    '--host',
    on,
    '--memory',
    '256M',
    '--disk',
    disk,
    '--nic',
    'vmsw0',
    '--ip',
    address.cidr,
    '--start',
  ]);
  await waitForPing(lab, address.ip);
}

async function deleteVm(vm: string): Promise<void> {
  await cli(['vm', 'stop', vm]);
  await cli(['vm', 'delete', vm]);
}

/** The VM's jobs of `kind`, oldest first. */
async function jobsOf(vm: string, kind: string): Promise<Job[]> {
  const id = (await api.getVm(vm)).id;
  const jobs = await api.listJobs({ kind, targetId: id, limit: 100 });
  return jobs.items.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

const ms = (iso: string | undefined) => {
  if (iso === undefined) throw new Error('a job without its start or end time');
  return Date.parse(iso);
};

// ---------------------------------------------------------------------------------------------
// Part 3: a memory-only move against a shared-nothing move of the same guest

/** The kernel's counters of a lab namespace's fabric link (hosts' and the storage server's alike). */
function linkBytes(namespace: string): { tx: number; rx: number } {
  const read = (counter: string) =>
    Number(
      execFileSync(
        'ip',
        ['netns', 'exec', namespace, 'cat', `/sys/class/net/fabric0/statistics/${counter}`],
        {
          encoding: 'utf8',
        },
      ).trim(),
    );
  return { tx: read('tx_bytes'), rx: read('rx_bytes') };
}

async function measuredMove(
  round: number,
  vm: string,
  kind: MoveSample['kind'],
  to: string,
  flags: string[],
): Promise<MoveSample> {
  const vmId = (await api.getVm(vm)).id;
  const from = host((await api.getVm(vm)).host);
  const target = host(to);
  const storageNs = lab.storage!.namespace;
  const before = {
    source: linkBytes(from.namespace),
    target: linkBytes(target.namespace),
    storage: linkBytes(storageNs),
  };
  const started = Date.now();
  const moving = cli(['vm', 'move', vm, '--to', to, ...flags]).then(() => Date.now());
  // The source's counter when the move is seen in prepare-target, right after its validation
  // (whose link probe fills the link for a moment whatever the disks): what follows is the copy
  // itself. A move first seen in a later phase leaves it unknown.
  let afterValidate: number | undefined;
  let ended: number | undefined;
  void moving.then((t) => (ended = t));
  for (let phase = ''; ended === undefined && (phase === '' || phase === 'validate'); await sleep(50)) {
    const job = (await api.listJobs({ kind: 'vm-move', targetId: vmId, state: 'running', limit: 5 }))
      .items[0];
    phase = job?.progress.phase ?? '';
    if (phase === 'prepare-target') afterValidate = linkBytes(from.namespace).tx;
  }
  const finished = await moving;
  const after = {
    source: linkBytes(from.namespace),
    target: linkBytes(target.namespace),
    storage: linkBytes(storageNs),
  };
  const job = (await jobsOf(vm, 'vm-move')).at(-1);
  if (job?.state !== 'succeeded')
    throw new Error(`the move of ${vm} to ${to}: ${JSON.stringify(job?.error)}`);
  const r = MoveResult.parse(job.result);
  const sample: MoveSample = {
    round,
    kind,
    from: from.name,
    to,
    wallMs: finished - started,
    totalTimeMs: r.totalTimeMs,
    downtimeMs: r.downtimeMs,
    guestDowntimeMs: r.guestDowntimeMs,
    diskBytes: r.diskBytes ?? r.stats.diskBytes ?? 0,
    memoryBytes: r.memoryBytes ?? r.stats.memoryBytes ?? 0,
    sourceTxBytes: after.source.tx - before.source.tx,
    targetRxBytes: after.target.rx - before.target.rx,
    storageBytes: after.storage.tx - before.storage.tx + (after.storage.rx - before.storage.rx),
    sourceTxAfterValidateBytes: afterValidate === undefined ? undefined : after.source.tx - afterValidate,
  };
  log(
    `${kind} ${from.name} -> ${to}: ${(sample.wallMs / 1000).toFixed(1)} s, disk ${(sample.diskBytes / MiB).toFixed(0)} MiB`,
  );
  return sample;
}

async function movesPart(): Promise<{ samples: MoveSample[]; records: string }> {
  const VM = 'mover';
  await createVm(VM, 'host1', 1, '2G@shared');
  log(`writing ${DATA_MIB} MiB of random data in ${VM}`);
  const fill = await inGuest(
    host('host1'),
    VM,
    ['/bin/dd', 'if=/dev/urandom', 'of=/data/fill', 'bs=1M', `count=${DATA_MIB}`, 'conv=fsync'],
    { timeoutSeconds: 1800 },
  );
  if (fill.exitCode !== 0) throw new Error(`fill: ${fill.stderr ?? ''}`);
  await startGuestWorkloads(host('host1'), VM, RECORDS);
  // Warm-up (not measured): the first move of a VM pays for what later ones find ready.
  await cli(['vm', 'move', VM, '--to', 'host2']);
  const atLeast = await guestRecordCount(host('host2'), VM, RECORDS);
  const samples: MoveSample[] = [];
  const next = async () => {
    const here = Number((await api.getVm(VM)).host.slice('host'.length));
    return `host${(here % 3) + 1}`;
  };
  const memoryOnly = async (round: number) =>
    samples.push(await measuredMove(round, VM, 'memory only', await next(), []));
  // The disk goes to the target's local datastore; it is mirrored back onto the shared datastore
  // afterwards (not measured), so every round starts from the same place.
  const sharedNothing = async (round: number) => {
    samples.push(await measuredMove(round, VM, 'shared nothing', await next(), ['--datastore', 'local']));
    await cli(['vm', 'move', VM, '--to', await next(), '--datastore', 'shared']);
  };
  // Each round makes both moves, the first round memory-only first, the next the other way round.
  for (let round = 1; round <= MOVE_ROUNDS; round++) {
    if (round % 2 === 1) {
      await memoryOnly(round);
      await sharedNothing(round);
    } else {
      await sharedNothing(round);
      await memoryOnly(round);
    }
  }
  const verified = await verifyGuestRecords(host((await api.getVm(VM)).host), VM, [
    { file: RECORDS, atLeast },
  ]);
  await deleteVm(VM);
  return { samples, records: verified.summary };
}

// ---------------------------------------------------------------------------------------------
// Part 2: host drain against vm move one by one

const drainVms = () => Array.from({ length: DRAIN_VMS }, (_, i) => `d${i + 1}`);

/** The vm-move jobs of the drain VMs that started within [from, to]. */
async function movesWithin(from: number, to: number): Promise<DrainRun['moves']> {
  const jobs = (await api.listJobs({ kind: 'vm-move', limit: 200 })).items;
  return jobs
    .filter((j) => drainVms().includes(j.target.name) && ms(j.startedAt) >= from && ms(j.startedAt) <= to)
    .map((j) => {
      if (j.state !== 'succeeded') throw new Error(`move of ${j.target.name}: ${JSON.stringify(j.error)}`);
      const r = MoveResult.parse(j.result);
      return {
        vm: j.target.name,
        to: r.to,
        startedAt: ms(j.startedAt),
        finishedAt: ms(j.finishedAt),
        diskBytes: r.diskBytes ?? r.stats.diskBytes ?? 0,
      };
    })
    .sort((a, b) => a.startedAt - b.startedAt);
}

async function drainOnce(round: number, position: DrainRun['position']): Promise<DrainRun> {
  const started = Date.now();
  const out = await timedCli(['host', 'drain', 'host1']);
  const moves = await movesWithin(started, Date.now());
  const drainJob = (await api.listJobs({ kind: 'host-drain', limit: 100 })).items
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
    .at(-1);
  const result = DrainResult.parse(drainJob?.result);
  if (result.stayed.length > 0 || result.moved.length !== DRAIN_VMS)
    throw new Error(`the drain left VMs on host1: ${JSON.stringify(result)}`);
  await cli(['host', 'resume', 'host1']);
  log(`drain (${position}): ${(out.ms / 1000).toFixed(1)} s`);
  return { round, method: 'drain', position, wallMs: out.ms, moves };
}

async function oneByOne(
  round: number,
  position: DrainRun['position'],
  targets: Map<string, string>,
): Promise<DrainRun> {
  const started = Date.now();
  for (const [vm, to] of targets) await cli(['vm', 'move', vm, '--to', to]);
  const wallMs = Date.now() - started;
  log(`one by one (${position}): ${(wallMs / 1000).toFixed(1)} s`);
  return { round, method: 'one by one', position, wallMs, moves: await movesWithin(started, Date.now()) };
}

/** Every drain VM back on host1 (not measured). */
async function home(): Promise<void> {
  for (const vm of drainVms())
    if ((await api.getVm(vm)).host !== 'host1') await cli(['vm', 'move', vm, '--to', 'host1']);
}

async function drainPart(): Promise<DrainRun[]> {
  for (const [i, vm] of drainVms().entries()) await createVm(vm, 'host1', i + 2, '1G@shared');
  const runs: DrainRun[] = [];
  // Warm-up: a first drain (every VM's first move, not compared) sets where each VM goes; the
  // one-by-one moves go to the same hosts, in the order the drain started them.
  const warm = await drainOnce(0, 'warm-up');
  runs.push(warm);
  const targets = new Map(warm.moves.map((m) => [m.vm, m.to]));
  await home();
  for (let round = 1; round <= DRAIN_ROUNDS; round++) {
    const drainFirst = round % 2 === 0;
    if (drainFirst) {
      runs.push(await drainOnce(round, 'first'));
      await home();
      runs.push(await oneByOne(round, 'second', targets));
    } else {
      runs.push(await oneByOne(round, 'first', targets));
      await home();
      runs.push(await drainOnce(round, 'second'));
    }
    await home();
  }
  for (const vm of drainVms()) await deleteVm(vm);
  return runs;
}

// ---------------------------------------------------------------------------------------------
// Part 1: HA restart after a host's death

const HaRestartResult = z
  .object({ vm: z.string(), from: z.string(), to: z.string(), leaseWaits: z.number() })
  .loose();

/** sanlock's view on a host: `client status` (leases held) or `client host_status` (other hosts' delta leases). */
async function sanlock(h: LabHost, command: string[]): Promise<string> {
  const { stdout } = await execFileAsync('sanlock', ['client', ...command], {
    env: { ...process.env, SANLOCK_RUN_DIR: h.shared!.sanlockRunDir },
    timeout: 10_000,
  });
  return stdout;
}

/**
 * Watches the survivors' sanlock every 250 ms for when each VM's lease is first held there (a
 * resource line no longer marked ADD: sanlock lists a lease while it waits to acquire it). The
 * lease was taken after the start of the last poll that did not see it (`after`) and before the
 * end of the first that did (`by`).
 */
function watchLeases(survivors: LabHost[], vmIds: Map<string, string>) {
  const seen = new Map<string, { host: string; after: number; by: number }>();
  const lastPoll = new Map<string, number>();
  let stop = false;
  const done = (async () => {
    while (!stop) {
      await Promise.all(
        survivors.map(async (h) => {
          const started = Date.now();
          const status = await sanlock(h, ['status']).catch(() => undefined);
          if (status === undefined) return;
          const after = lastPoll.get(h.name) ?? started;
          for (const [vm, id] of vmIds)
            if (!seen.has(vm) && leaseHeld(status, id)) seen.set(vm, { host: h.name, after, by: Date.now() });
          lastPoll.set(h.name, started);
        }),
      );
      await sleep(250);
    }
  })();
  return {
    seen,
    stop: async () => {
      stop = true;
      await done;
    },
  };
}

/** The first ping answer of `ip` from the lab's client namespace (ping -D every 200 ms: its own timestamps). */
function firstPingReply(ip: string, timeoutMs = 300_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', lab.client.namespace, 'ping', '-D', '-n', '-i', '0.2', ip], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`no ping answer from ${ip} within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    let buffered = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const reply = /^\[(\d+\.\d+)\] \d+ bytes from/m.exec(buffered);
      if (!reply) return;
      clearTimeout(timer);
      child.kill();
      resolve(Math.round(Number(reply[1]) * 1000));
    });
  });
}

/** The processes of a lab host's namespace (agent, QEMUs, sanlock, storage client). */
async function namespacePids(h: LabHost): Promise<number[]> {
  const { stdout } = await execFileAsync('ip', ['netns', 'pids', h.namespace]);
  return stdout.split('\n').filter(Boolean).map(Number);
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * Waits for each VM's HA restart after the strike at `deathAt`: its job done, the guest answering
 * ping, and reads when sanlock allowed the lease to be taken.
 */
async function observeRestarts(
  kind: HaSample['case'],
  dead: LabHost,
  vms: { name: string; priority: number; n: number; atLeast: number }[],
  deathAt: number,
  leases: ReturnType<typeof watchLeases>,
  fencedAt: () => number | undefined,
): Promise<HaSample[]> {
  const samples = await Promise.all(
    vms.map(async (vm) => {
      const job = await until(
        `the HA restart of ${vm.name}`,
        async () => {
          const done = (await jobsOf(vm.name, 'ha-restart')).filter((j) => ms(j.createdAt) >= deathAt).at(-1);
          if (done && ['failed', 'cancelled'].includes(done.state))
            throw new Error(`ha-restart of ${vm.name}: ${done.state} ${JSON.stringify(done.error)}`);
          return done?.state === 'succeeded' ? done : undefined;
        },
        600_000,
      );
      const pingAt = await firstPingReply(lab.vmAddress(vm.n).ip);
      const result = HaRestartResult.parse(job.result);
      return { vm, job, pingAt, result };
    }),
  );
  await leases.stop();
  const deadId = (await api.getHost(dead.name)).leaseHostId;
  const out: HaSample[] = [];
  for (const { vm, job, pingAt, result } of samples) {
    const target = host(result.to);
    // When the target's sanlock last saw the dead host renew, and so when it let the lease go.
    const lockspace = (await labAgent(target).host()).lockspace;
    if (!lockspace) throw new Error(`${target.name} is in no lockspace`);
    const status = await sanlock(target, ['host_status', '-s', lockspace.name, '-D']);
    const now = { monoMs: Number(process.hrtime.bigint() / 1_000_000n), wallMs: Date.now() };
    const seen = parseHostStatus(status).find((s) => s.hostId === deadId);
    const leaseFreeAt =
      seen?.lastLive === undefined
        ? undefined
        : monoToWallMs(seen.lastLive, now) + sanlockHostDeadSeconds(lockspace.ioTimeoutSeconds) * 1000;
    const verified = await verifyGuestRecords(target, vm.name, [{ file: RECORDS, atLeast: vm.atLeast }]);
    out.push({
      case: kind,
      vm: vm.name,
      priority: vm.priority,
      from: dead.name,
      to: result.to,
      deathAt,
      detectedAt: ms(job.createdAt),
      leaseAcquiredAt: leases.seen.get(vm.name)?.after,
      leaseSeenAt: leases.seen.get(vm.name)?.by,
      runningAt: ms(job.finishedAt),
      pingAt,
      leaseFreeAt,
      ...(kind === 'split brain' ? { fencedAt: fencedAt() } : {}),
      leaseWaits: result.leaseWaits,
      records: verified.summary.replace(`${RECORDS}: `, ''),
    });
    log(
      `${kind}: ${vm.name} answered ping on ${result.to} ${((pingAt - deathAt) / 1000).toFixed(1)} s after the strike`,
    );
  }
  return out;
}

async function haPart(): Promise<{ samples: HaSample[]; ioTimeoutSeconds: number }> {
  // host3 has two protected guests (priorities 900 and 500) and loses its power; host2 has one and
  // is cut off. Each prefers host1, so the host cut off second runs only its own guest.
  const onHost3 = [
    { name: 'ha1', priority: 900, n: 1 },
    { name: 'ha2', priority: 500, n: 2 },
  ];
  const onHost2 = [{ name: 'ha3', priority: 500, n: 3 }];
  for (const [vms, on] of [
    [onHost3, 'host3'],
    [onHost2, 'host2'],
  ] as const) {
    for (const vm of vms) {
      await createVm(vm.name, on, vm.n, '1G@shared');
      await cli(['vm', 'ha', vm.name, '--protect', '--priority', String(vm.priority), '--prefer', 'host1']);
      await startGuestWorkloads(host(on), vm.name, RECORDS);
    }
  }
  const ioTimeoutSeconds = (await labAgent(host('host1')).host()).lockspace?.ioTimeoutSeconds;
  if (ioTimeoutSeconds === undefined) throw new Error('host1 is in no lockspace');
  const idsOf = async (vms: { name: string }[]) =>
    new Map(
      await Promise.all(vms.map(async (v) => [v.name, (await api.getVm(v.name)).id] as [string, string])),
    );
  const samples: HaSample[] = [];

  // Power loss of host3: link down and every process of the host killed at once.
  {
    const h3 = host('host3');
    const vms = await Promise.all(
      onHost3.map(async (v) => ({ ...v, atLeast: await guestRecordCount(h3, v.name, RECORDS) })),
    );
    const leases = watchLeases([host('host1'), host('host2')], await idsOf(vms));
    const pids = await namespacePids(h3);
    const names = pids.map((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      } catch {
        return String(pid);
      }
    });
    const deathAt = Date.now();
    fabricLink(h3, 'down');
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    log(`host3 lost its power: link down, killed ${names.join(', ')}`);
    samples.push(...(await observeRestarts('power loss', h3, vms, deathAt, leases, () => undefined)));
  }

  // Split brain: host2's link cut, its QEMU left running (its own sanlock must fence it).
  {
    const h2 = host('host2');
    const vms = await Promise.all(
      onHost2.map(async (v) => ({ ...v, atLeast: await guestRecordCount(h2, v.name, RECORDS) })),
    );
    const oldPid = (await labAgent(h2).getVm('ha3')).pid;
    if (oldPid === undefined) throw new Error('ha3 has no QEMU on host2');
    const leases = watchLeases([host('host1')], await idsOf(vms));
    let fencedAt: number | undefined;
    const watch = setInterval(() => {
      if (fencedAt === undefined && !alive(oldPid)) fencedAt = Date.now();
    }, 100);
    const deathAt = Date.now();
    fabricLink(h2, 'down');
    log('host2 cut off (its QEMU alive)');
    try {
      samples.push(...(await observeRestarts('split brain', h2, vms, deathAt, leases, () => fencedAt)));
    } finally {
      clearInterval(watch);
      fabricLink(h2, 'up');
    }
  }
  return { samples, ioTimeoutSeconds };
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const startedAt = new Date().toISOString();
  const loadStart = loadavg();
  lab = await labUp({
    name: LAB,
    hosts: 3,
    demo: false,
    accelerator: 'tcg',
    sharedStorage: true,
    sharedStorageHosts: 3,
    log,
  });
  try {
    if (!lab.manager) throw new Error('the lab started no manager');
    api = new ManagerClient(lab.manager.url, lab.manager.token, 600_000);
    await cli(['cluster', 'create', CLUSTER]);
    for (const h of lab.hosts) await cli(['cluster', 'join', CLUSTER, h.name]);
    for (const h of lab.hosts)
      await until(
        `${h.name} in the lockspace`,
        async () => ((await labAgent(h).host()).lockspace?.state === 'joined' ? true : undefined),
        180_000,
      );
    log('the cluster is up: 3 hosts in its lockspace');

    const moves = parts.has('moves') ? await measuredPart('moves', movesPart) : undefined;
    const drain = parts.has('drain') ? await measuredPart('drain', drainPart) : undefined;
    const ha = parts.has('ha') ? await measuredPart('ha', haPart) : undefined;

    const text = [
      `# Clusters on shared storage (bench/ha), ${startedAt}`,
      '',
      `3-host TCG lab, each host mounting the lab's storage server (sftp over its fabric link) as datastore \`shared\` and running sanlock; cluster ${CLUSTER} of the three; product defaults (HA: dead after ${DEFAULT_HA_DEAD_AFTER_SECONDS} s, lease I/O timeout ${ha?.ioTimeoutSeconds ?? '-'} s). Machine: ${cpus().length} cores, load average ${loadStart.map((l) => l.toFixed(1)).join(' ')} at the start.`,
      ...loads.map(
        (l) =>
          `- part ${l.part}: ${l.seconds} s, CPU busy ${l.busyPercent === undefined ? '-' : `${Math.round(l.busyPercent)} %`}, load average ${l.loadavgEnd.map((x) => x.toFixed(1)).join(' ')} at its end`,
      ),
      ...(ha
        ? [
            '',
            '## HA restart: host death to the guest answering ping (goal: under 30 s)',
            '',
            renderHaTable(ha.samples),
            '',
            haVerdict(ha.samples, ha.ioTimeoutSeconds, DEFAULT_HA_DEAD_AFTER_SECONDS),
          ]
        : []),
      ...(drain
        ? [
            '',
            `## Drain of ${DRAIN_VMS} idle 256-MiB guests on the shared datastore (host1 -> its peers) against vm move one by one`,
            '',
            renderDrainTable(drain),
          ]
        : []),
      ...(moves
        ? [
            '',
            `## Memory-only move against shared-nothing move of the same busy guest (256 MiB, ${DATA_MIB} MiB of data on its 2 GiB disk)`,
            '',
            renderMoveTable(moves.samples),
            '',
            `Records after both moves: ${moves.records}`,
          ]
        : []),
      '',
    ].join('\n');
    console.log(text);
    await writeResults(RESULTS, text, {
      startedAt,
      cores: cpus().length,
      loadavgStart: loadStart,
      loads,
      settings: {
        deadAfterSeconds: DEFAULT_HA_DEAD_AFTER_SECONDS,
        ioTimeoutSeconds: ha?.ioTimeoutSeconds,
        drainVms: DRAIN_VMS,
        drainRounds: DRAIN_ROUNDS,
        dataMiB: DATA_MIB,
      },
      ha: ha?.samples,
      drain,
      moves,
    });
  } finally {
    if (!process.env.SB_KEEP_LAB) await labDown({ name: LAB });
  }
}

await main();

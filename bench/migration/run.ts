// Live-migration benchmark (issues 9, 27): Silobreak beside QEMU defaults, libvirt-like (plain and
// with multifd + zstd) and Proxmox-like policies, every move made through the manager's REST API as
// `silobreak vm move` makes it (a job per move), on a 2-host TCG lab of its own, full-speed link and
// 1 Gbit/s (tc tbf in both host namespaces). The Silobreak row is the product path: the move
// request carries no policy (and, since issue 28, runs over TLS, the default); `--no-secure`
// (plain) is its twin in clear. Beside it, "link given" is told the iperf3-measured link rate; the
// baselines send `policy.strategy` (src/agent/migration/baselines.ts). Per row it measures the
// link (iperf3) and the target datastore's fsync write rate, then moves one VM back and forth
// between the hosts, interleaving the contenders run by run.
//
//   npm run bench:migration -- [--quick] [--runs N] [--big-runs N] [--time-limit S]
//                              [--vms 1g,4g] [--links full,1gbit] [--workloads idle,dirty,dirty+disk]
//                              [--policies silobreak,silobreak-plain,...]
//
// Prints one markdown table and writes it with the rows as JSON to bench/migration/results/.
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import {
  AgentClient,
  AgentMigrationClient,
  ManagerClient,
  MoveResult,
  type Job,
  type MigrationStatus,
} from '../../src/api/index.js';
import { GUEST_WORKLOADS } from '../../src/guest/index.js';
import { labAgent, labDown, labUp, waitForPing, type Lab, type LabHost } from '../../src/lab/index.js';
import { CopyLimit } from './limit.js';
import {
  movePolicy,
  moveSecure,
  POLICIES,
  type LinkKind,
  type MoveRun,
  type Policy,
  type Row,
  type RowFacts,
  type Workload,
} from './model.js';
import { renderReport, type BenchResult } from './report.js';
import { pingGaps } from './pings.js';
import { nextPolicy } from './schedule.js';
import { inNs, limitLink, measureLink, run } from '../lab-link.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** Pause before each move (after a `sync`), see settle(). */
const SETTLE_MS = 3000;
const LAB = 'mbench';
/** The vswitch every lab agent has (src/lab plan: HOST_VSWITCH). */
const VSWITCH = 'vmsw0';
const RESULTS = path.join(import.meta.dirname, 'results');

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    'big-runs': { type: 'string' },
    'time-limit': { type: 'string', default: '60' },
    vms: { type: 'string' },
    links: { type: 'string' },
    workloads: { type: 'string' },
    policies: { type: 'string' },
  },
});

interface VmSize {
  key: '1g' | '4g';
  label: string;
  memoryMiB: number;
  diskBytes: number;
  /** sb-dirty working set. */
  dirtyMiB: number;
  runs: number;
}

function listArg<T extends string>(value: string | undefined, allowed: readonly T[], fallback: T[]): T[] {
  if (value === undefined) return fallback;
  const items = value.split(',').map((s) => s.trim());
  for (const item of items) {
    if (!(allowed as readonly string[]).includes(item)) {
      throw new Error(`--${String(value)}: "${item}" is not one of ${allowed.join(', ')}`);
    }
  }
  return items as T[];
}

function intArg(name: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be a whole number >= ${min}`);
  return n;
}

const quick = args.quick ?? false;
// Four runs by default: two each way per policy (schedule.ts), and the three at least.
const runs = intArg('runs', args.runs, quick ? 1 : 4, 1);
const bigRuns = intArg('big-runs', args['big-runs'], quick ? 1 : 4, 1);
const timeLimitSeconds = intArg('time-limit', args['time-limit'], 60, 5);
const SIZES: VmSize[] = [
  { key: '1g', label: '1 GiB / 2 GiB', memoryMiB: 1024, diskBytes: 2 * GiB, dirtyMiB: 256, runs },
  { key: '4g', label: '4 GiB / 8 GiB', memoryMiB: 4096, diskBytes: 8 * GiB, dirtyMiB: 1024, runs: bigRuns },
];
const vmKeys = listArg(args.vms, ['1g', '4g'] as const, quick ? ['1g'] : ['1g', '4g']);
const links = listArg<LinkKind>(args.links, ['full', '1gbit'], ['full', '1gbit']);
const workloads = listArg<Workload>(
  args.workloads,
  ['idle', 'dirty', 'dirty+disk'],
  quick ? ['idle', 'dirty'] : ['idle', 'dirty', 'dirty+disk'],
);
/** The contenders to run (default: all), e.g. `--policies silobreak,silobreak-plain` for TLS's cost. */
const policies = listArg<Policy>(args.policies, POLICIES, [...POLICIES]);
/** The guest's dirtying rate: above a 1 Gbit/s link (~119 MB/s), below the full-speed stream. */
const DIRTY_RATE_MIB = 150;
/** sb-diskwriter's rate in the dirty+disk case (4 KiB records, fsync'd one by one). */
const DISK_WRITE_KIB = 4096;

const log = (msg: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

/** Write rate with a sync after every 1 MiB block, in the target datastore's directory (bytes/s). */
async function measureFsync(dir: string): Promise<number> {
  const file = path.join(dir, `.fsync-probe-${process.pid}`);
  try {
    const r = await run(['dd', 'if=/dev/zero', `of=${file}`, 'bs=1M', 'count=256', 'oflag=dsync']);
    const m = /^(\d+) bytes .* copied, ([\d.]+) s/m.exec(r.stderr);
    if (r.code !== 0 || !m) throw new Error(`dd failed: ${r.stderr.trim()}`);
    return Number(m[1]) / Number(m[2]);
  } finally {
    await rm(file, { force: true });
  }
}

/** Pings `ip` every 10 ms from the lab client; stop() gives the times of the replies (ms). */
function startPing(lab: Lab, ip: string): { stop: () => Promise<number[]> } {
  const child = spawn(
    'ip',
    inNs(lab.client.namespace, ['ping', '-D', '-n', '-i', '0.01', '-W', '1', ip]).slice(1),
    {
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  let buffer = '';
  const replies: number[] = [];
  child.stdout.on('data', (d: Buffer) => {
    buffer += d.toString();
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      const m = /^\[(\d+\.\d+)\] .*bytes from/.exec(line);
      if (m) replies.push(Number(m[1]) * 1000);
    }
  });
  return {
    stop: async () => {
      child.kill('SIGINT');
      await new Promise((resolve) => child.once('close', resolve));
      return replies;
    },
  };
}

function pingFigures(replies: number[], started: number, switchoverAt: string | undefined): Partial<MoveRun> {
  const gaps = pingGaps(replies, started, switchoverAt === undefined ? undefined : Date.parse(switchoverAt));
  return {
    pingDowntimeMs: gaps.switchoverGapMs,
    pingOtherGapMs: gaps.otherGapMs,
    pingOtherGapAtMs: gaps.otherGapAtMs,
  };
}

/**
 * Between moves: the previous move's writes go to disk and its freed memory back to the machine's
 * host first, so the next move does not pay for them (whichever policy comes next).
 */
async function settle(): Promise<void> {
  await run(['sync']);
  await sleep(SETTLE_MS);
}

/** CPU time the machine's own host took from it (steal, all CPUs), ms: stalls every policy alike. */
async function stealMs(): Promise<number> {
  const cpu = (await readFile('/proc/stat', 'utf8')).split('\n')[0]?.trim().split(/\s+/) ?? [];
  return Number(cpu[8] ?? 0) * 10; // USER_HZ = 100
}

// ---- agents and guest ----
// The moves go through the manager; the agents are used only to run commands in the guest and to
// read a move's record on its source (the policy log, a failed move's figures).

interface Host {
  lab: LabHost;
  agent: AgentClient;
  moves: AgentMigrationClient;
}

function hostOf(lab: LabHost): Host {
  const agent = labAgent(lab, 120_000);
  return { lab, agent, moves: new AgentMigrationClient(agent.http) };
}

/** Runs a command in the guest, retrying while qemu-ga is not (yet) answering after a move. */
async function guest(host: Host, vm: string, command: string[], detach = false, timeoutSeconds = 600) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await host.agent.guestExec(vm, command, timeoutSeconds, detach);
    } catch (error) {
      if (attempt >= 20) throw error;
      await sleep(3000);
    }
  }
}

/** The target removes a failed incoming VM by itself; wait until it has, before the next try. */
async function waitGone(host: Host, vm: string): Promise<void> {
  for (let i = 0; i < 240; i++) {
    if (!(await host.agent.listVms()).some((v) => v.name === vm)) return;
    await sleep(500);
  }
  throw new Error(`${vm} still defined on ${host.lab.name} after an aborted move`);
}

async function alive(lab: Lab, ip: string): Promise<boolean> {
  try {
    await waitForPing(lab, ip, 30_000);
    return true;
  } catch {
    return false;
  }
}

/** Last kernel messages of a VM (the agent keeps the serial console in its state dir). */
async function consoleTail(host: Host, vm: string): Promise<string> {
  const text = await readFile(path.join(host.lab.stateDir, `${vm}.console.log`), 'utf8').catch(() => '');
  return text.trim().split('\n').slice(-3).join(' / ').slice(0, 400);
}

/** Waits for a job the bench started (not a move) and fails naming it unless it succeeded. */
async function jobDone(api: ManagerClient, accepted: { job: Job }, what: string): Promise<Job> {
  const job = await api.waitForJob(accepted.job.id, 3_600_000);
  if (job.state !== 'succeeded')
    throw new Error(`${what}: job ${job.id} ${job.state}: ${job.error ? job.error.detail : ''}`);
  return job;
}

/** The agents' migration id of a move job, from its progress details (set once the copy runs). */
function migrationIdOf(job: Job): string | undefined {
  const id = job.progress.details.migrationId;
  return typeof id === 'string' ? id : undefined;
}

/** The source agent's record of the move (its stats and policy log), when it still has it. */
async function sourceStatus(
  from: Host,
  migrationId: string | undefined,
): Promise<MigrationStatus | undefined> {
  if (migrationId === undefined) return undefined;
  return from.moves.status(migrationId).catch(() => undefined);
}

/**
 * One move `from` -> `to`, made as `silobreak vm move <vm> --to <host>` makes it: a move request to
 * the manager (the CLI's body, plus the contender's policy when it has one), then the job followed
 * over its event stream as the CLI follows it. When its memory copy has run for the time limit the
 * bench cancels the job through the manager ("not converged"). The VM ends on `to` when
 * completed, else stays on `from`.
 */
async function move(
  lab: Lab,
  api: ManagerClient,
  vmName: string,
  ip: string,
  from: Host,
  to: Host,
  policy: Policy,
  runNo: number,
  facts: RowFacts,
): Promise<MoveRun> {
  const vm = await from.agent.getVm(vmName);
  const diskDataBytes = vm.disks.reduce((s, d) => s + d.allocatedBytes, 0);
  const requestPolicy = movePolicy(policy, facts.linkBitsPerSecond);
  const secure = moveSecure(policy);
  const base: MoveRun = { policy, run: runNo, from: from.lab.name, to: to.lab.name, outcome: 'failed' };
  await settle();
  const started = Date.now();
  const stealBefore = await stealMs();
  const ping = startPing(lab, ip);
  const limit = new CopyLimit(timeLimitSeconds * 1000);
  let jobId: string | undefined;
  let migrationId: string | undefined;
  let cancelError: string | undefined;
  const watchdog = setInterval(() => {
    if (jobId === undefined || !limit.due(Date.now())) return;
    log(`  ${policy}: memory copy ran ${timeLimitSeconds} s: cancelling job ${jobId}`);
    api.cancelJob(jobId).catch((error: unknown) => (cancelError = String(error)));
  }, 250);
  let job: Job;
  try {
    const accepted = await api.moveVm(vmName, {
      to: to.lab.name,
      ...(secure === undefined ? {} : { secure }),
      keepSource: false,
      retain: false,
      ...(requestPolicy ? { policy: requestPolicy } : {}),
    });
    jobId = accepted.job.id;
    job = await api.waitForJob(jobId, 30 * 60_000, (seen) => {
      limit.see({ phase: seen.progress.phase, state: seen.state }, Date.now());
      migrationId ??= migrationIdOf(seen);
    });
  } catch (error) {
    clearInterval(watchdog);
    await ping.stop();
    await waitGone(to, vmName).catch(() => undefined);
    return { ...base, jobId, migrationId, error: String(error) };
  } finally {
    clearInterval(watchdog);
  }
  const replies = await ping.stop();
  const steal = (await stealMs()) - stealBefore;
  const source = await sourceStatus(from, migrationId);
  let outcome: MoveRun['outcome'];
  let detail = job.error ? `${job.error.code}: ${job.error.detail}` : '';
  let stats: MigrationStatus['stats'] | undefined = source?.stats;
  if (job.state === 'succeeded') {
    outcome = 'completed';
    stats = MoveResult.parse(job.result).stats;
    if (limit.fired) detail = 'the cancel for the time limit came after the switchover: completed';
  } else {
    outcome =
      (limit.fired && job.state === 'cancelled') || /not converged/.test(detail) ? 'not-converged' : 'failed';
    if (limit.fired)
      detail = `not converged: memory copy ran ${timeLimitSeconds} s, job cancelled (${detail})`;
    if (cancelError) detail += `; the cancel failed: ${cancelError}`;
    // The manager's undo removes the incoming VM; the next move waits until it has.
    await waitGone(to, vmName);
  }
  if (outcome === 'completed' && !(await alive(lab, ip))) {
    outcome = 'guest-broken';
    detail = `the guest does not answer ping after the move; its console: ${await consoleTail(to, vmName)}`;
  }
  const totalMs =
    job.finishedAt === undefined
      ? Date.now() - started
      : Date.parse(job.finishedAt) - Date.parse(job.createdAt);
  const s = stats ?? {};
  return {
    ...base,
    jobId,
    migrationId,
    outcome,
    ...(detail ? { error: detail } : {}),
    ...(outcome === 'completed' ? { totalMs, ...pingFigures(replies, started, s.switchoverAt) } : {}),
    stealMs: steal,
    mirrorMs: s.mirrorTimeMs,
    diskDataBytes,
    memoryMs: s.memoryTimeMs,
    memoryBytes: s.memoryBytes,
    dirtyRateBytesPerSecond: s.dirtyRateBeforeBytesPerSecond,
    dirtyRatePeakBytesPerSecond: s.dirtyRatePeakBytesPerSecond,
    iterations: s.iterations,
    downtimeMs: s.downtimeMs,
    throttlePeakPercent: s.throttlePeakPercent,
    throttleSeconds: s.throttleSeconds,
    compression: s.compression?.mode,
    policyLog: [
      ...(s.compression ? [`stream: ${s.compression.mode}: ${s.compression.why}`] : []),
      ...(source?.policyLog ?? []).map((p) => `${p.action}: ${p.reason}`),
    ],
  };
}

async function startWorkload(host: Host, vm: string, size: VmSize, workload: Workload): Promise<void> {
  if (workload === 'idle') return;
  await guest(
    host,
    vm,
    // Mixed content (zero, compressible and random pages), never only a pattern that flatters
    // compression or one that no real guest has.
    [
      GUEST_WORKLOADS.dirty,
      '--rate-mib',
      String(DIRTY_RATE_MIB),
      '--size-mib',
      String(size.dirtyMiB),
      '--content',
      'mixed',
    ],
    true,
  );
  if (workload === 'dirty+disk') {
    await guest(
      host,
      vm,
      [GUEST_WORKLOADS.diskWriter, 'write', '--file', '/data/during', '--rate-kib', String(DISK_WRITE_KIB)],
      true,
    );
  }
  await sleep(3000);
}

async function stopWorkload(host: Host, vm: string, workload: Workload): Promise<string | undefined> {
  if (workload === 'idle') return undefined;
  await guest(host, vm, ['/usr/bin/killall', 'sb-dirty', 'sb-diskwriter']).catch(() => undefined);
  if (workload !== 'dirty+disk') return undefined;
  await sleep(1000);
  const r = await guest(host, vm, [GUEST_WORKLOADS.diskWriter, 'verify', '--file', '/data/during']);
  await guest(host, vm, ['/bin/rm', '-f', '/data/during']);
  return `${r.exitCode === 0 ? 'ok' : 'FAILED'}: ${(r.stdout ?? '').trim().replace(/\n/g, ', ')} ${(r.stderr ?? '').trim()}`;
}

/** Creates the VM on `host` through the manager, waits for its network and fills half its disk. */
async function provision(
  lab: Lab,
  api: ManagerClient,
  host: Host,
  vmName: string,
  address: { ip: string; cidr: string },
  size: VmSize,
): Promise<void> {
  log(`${vmName}: create (${size.memoryMiB} MiB RAM, ${size.diskBytes / GiB} GiB disk) on ${host.lab.name}`);
  const created = await api.createVm({
    host: host.lab.name,
    spec: {
      name: vmName,
      vcpus: 1,
      memoryMiB: size.memoryMiB,
      disks: [{ id: 'root', sizeBytes: size.diskBytes }],
      nics: [{ vswitch: VSWITCH }],
      guestIp: address.cidr,
      start: true,
    },
  });
  await jobDone(api, created, `create ${vmName}`);
  await waitForPing(lab, address.ip);
  const records = Math.floor(size.diskBytes / 2 / 4096);
  log(`${vmName}: writing ${size.diskBytes / 2 / GiB} GiB of data to /data`);
  const fillStart = Date.now();
  const fill = await guest(
    host,
    vmName,
    [
      GUEST_WORKLOADS.diskWriter,
      'write',
      '--file',
      '/data/fill',
      '--rate-kib',
      '0',
      '--count',
      String(records),
      '--batch',
      '256',
    ],
    false,
    3600,
  );
  if (fill.exitCode !== 0) throw new Error(`filling the disk failed: ${fill.stderr ?? ''}`);
  log(`${vmName}: filled in ${((Date.now() - fillStart) / 1000).toFixed(0)} s`);
}

/** Removes the VM through the manager, stopped first (a guest broken by a move still runs). */
async function removeVm(api: ManagerClient, vmName: string): Promise<void> {
  const stopped = await api.waitForJob((await api.stopVm(vmName)).job.id, 600_000);
  if (stopped.state !== 'succeeded') log(`stop ${vmName}: ${stopped.state} (${stopped.error?.detail ?? ''})`);
  await jobDone(api, await api.deleteVm(vmName, true), `delete ${vmName}`);
}

// ---- main ----

async function main(): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error('the benchmark builds a lab of network namespaces: run it as root');
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  await mkdir(RESULTS, { recursive: true });
  const jsonPath = path.join(RESULTS, `${stamp}.json`);
  const textPath = path.join(RESULTS, `${stamp}.txt`);
  const rows: Row[] = [];
  const guestChecks: string[] = [];
  const createdAt = new Date().toISOString();
  const save = async (): Promise<string> => {
    const result: BenchResult = {
      createdAt,
      quick,
      runs,
      bigRuns,
      timeLimitSeconds,
      fair: true,
      dirtyRateMiB: DIRTY_RATE_MIB,
      diskWriteKiB: DISK_WRITE_KIB,
      productPath: true,
      tlsDefault: true,
      rows,
      guestChecks,
    };
    const text = renderReport(result);
    await writeFile(jsonPath, JSON.stringify(result, null, 2) + '\n');
    await writeFile(textPath, text + '\n');
    return text;
  };

  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    log('interrupted: finishing the current move, then tearing the lab down');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  log(`lab ${LAB}: up (2 hosts, tcg, a manager)`);
  const lab = await labUp({ name: LAB, hosts: 2, demo: false, accelerator: 'tcg', log });
  try {
    if (!lab.manager) throw new Error('the lab started no manager');
    const api = new ManagerClient(lab.manager.url, lab.manager.token, 600_000);
    const hosts = lab.hosts.map(hostOf) as [Host, Host];
    for (const [n, size] of SIZES.filter((s) => vmKeys.includes(s.key)).entries()) {
      if (interrupted) break;
      const vmName = `bench-${size.key}`;
      const address = lab.vmAddress(n + 1);
      await provision(lab, api, hosts[0], vmName, address, size);
      let here = 0;

      for (const link of links) {
        if (interrupted) break;
        if (link === '1gbit') await limitLink(lab, true);
        try {
          for (const workload of workloads) {
            if (interrupted) break;
            const facts: RowFacts = {
              linkBitsPerSecond: await measureLink(lab),
              fsyncBytesPerSecond: await measureFsync(hosts[1].lab.datastorePath),
              loadAverage: loadavg()[0] ?? 0,
            };
            log(
              `row ${size.label} ${workload} ${link}: link ${(facts.linkBitsPerSecond / 1e9).toFixed(2)} Gbit/s, ` +
                `fsync ${(facts.fsyncBytesPerSecond / 1e6).toFixed(0)} MB/s`,
            );
            const row: Row = { key: { vm: size.label, workload, link }, facts, runs: [] };
            rows.push(row);
            await startWorkload(hosts[here] as Host, vmName, size, workload);
            /** One move from where the VM is; it follows the VM, or starts over if the guest broke. */
            const moveOnce = async (policy: Policy, runNo: number) => {
              const from = hosts[here] as Host;
              const to = hosts[1 - here] as Host;
              const result = await move(lab, api, vmName, address.ip, from, to, policy, runNo, facts);
              // Where the manager has it now (a move that failed past the switchover ends on `to`).
              const at = (await api.getVm(vmName)).host;
              here = hosts.findIndex((h) => h.lab.name === at);
              if (here < 0) throw new Error(`${vmName} is on ${at}, not a lab host`);
              if (result.outcome === 'guest-broken') {
                // The VM is on `to` but dead: start over with a fresh one (same size, refilled).
                await removeVm(api, vmName);
                await provision(lab, api, hosts[0], vmName, address, size);
                here = 0;
                await startWorkload(hosts[here] as Host, vmName, size, workload);
              }
              return { from, to, result };
            };
            // One uncounted warm-up move per row: the first move after a row's set-up paid for
            // cold caches (its mirror ran at half speed), and no policy may pay for that.
            const warm = await moveOnce(
              policies.includes('qemu-defaults') ? 'qemu-defaults' : (policies[0] as Policy),
              0,
            );
            log(`row ${size.label} ${workload} ${link}: warm-up move ${warm.result.outcome} (not counted)`);
            for (let r = 1; r <= size.runs && !interrupted; r++) {
              // The turn order rotates by one each run; within a run the next mover is the due
              // policy that has gone this way least often (schedule.ts): directions stay balanced.
              const order = policies.map((_, i) => policies[(i + r - 1) % policies.length] as Policy);
              const due = [...order];
              while (due.length && !interrupted) {
                const policy = nextPolicy(
                  due,
                  row.runs,
                  (hosts[here] as Host).lab.name,
                  (hosts[1 - here] as Host).lab.name,
                );
                due.splice(due.indexOf(policy), 1);
                // Every policy gets the same attempts: one that did not converge keeps its turns too.
                const { from, to, result } = await moveOnce(policy, r);
                row.runs.push(result);
                log(
                  `  ${policy} #${r} ${from.lab.name}->${to.lab.name}: ${result.outcome}` +
                    (result.outcome === 'completed'
                      ? ` total ${((result.totalMs ?? 0) / 1000).toFixed(1)} s, downtime ${result.downtimeMs} ms, ` +
                        `ping ${Math.round(result.pingDowntimeMs ?? 0)} ms, ${result.iterations} passes, ` +
                        `throttle ${result.throttlePeakPercent} % ${result.throttleSeconds} s, ${result.compression ?? '?'}`
                      : ` (${result.error ?? ''})`),
                );
                await save();
              }
            }
            const checked = await stopWorkload(hosts[here] as Host, vmName, workload);
            if (checked) guestChecks.push(`${size.label} ${link}: ${checked}`);
            await save();
          }
        } finally {
          if (link === '1gbit') await limitLink(lab, false);
        }
      }
      await removeVm(api, vmName).catch((error: unknown) => log(`removing ${vmName}: ${String(error)}`));
    }
  } finally {
    log(`lab ${LAB}: down`);
    await labDown({ name: LAB });
  }
  console.log(await save());
  log(`results: ${path.relative(process.cwd(), textPath)} and .json`);
}

main().catch(async (error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});

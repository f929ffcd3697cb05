// What lab tests do as a user would: run the `silobreak` CLI against the lab's manager, and run
// commands in a guest through the agent of the host it is on.
import { execFile, execFileSync } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AgentClient,
  AgentMigrationClient,
  ManagerClient,
  MigrationPhase,
  type GuestExecResult,
  type MigrationStatus,
} from '../api/index.js';
import { GUEST_WORKLOADS } from '../guest/index.js';
import { breakGlassClient, labUp, waitForPing, type Lab, type LabHost } from './lab.js';

const BIN = path.resolve(import.meta.dirname, '..', '..', 'bin', 'silobreak.js');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `silobreak ...args` as its own process with only PATH and `env` in its environment (no user
 * config unless `env` points at one); resolves with code and output.
 */
export function silobreakCli(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 600_000,
): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      {
        timeout: timeoutMs,
        maxBuffer: 16 * 1024 * 1024,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      },
      (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}

/** `silobreak ...args` against the lab's manager, with no user config; resolves with code and output. */
export function labCli(lab: Lab, args: string[], timeoutMs = 600_000): Promise<CliRun> {
  return silobreakCli(
    args,
    {
      HOME: lab.dir,
      NO_COLOR: '1',
      SILOBREAK_CONFIG: path.join(lab.dir, 'no-cli-config.json'),
      SILOBREAK_URL: lab.manager?.url ?? '',
      SILOBREAK_TOKEN: lab.manager?.token ?? '',
    },
    timeoutMs,
  );
}

/** The host's agent on its break-glass socket: tests look behind the manager's back with it. */
export const labAgent = (host: LabHost, timeoutMs = 180_000): AgentClient =>
  breakGlassClient(host, timeoutMs);

/** A command in the guest of `vm` on `host` (retried while its guest agent starts). */
export async function inGuest(
  host: LabHost,
  vm: string,
  command: string[],
  options: { detach?: boolean; timeoutSeconds?: number } = {},
): Promise<GuestExecResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await labAgent(host).guestExec(
        vm,
        command,
        options.timeoutSeconds ?? 300,
        options.detach ?? false,
      );
    } catch (error) {
      if (attempt >= 40) throw error;
      await sleep(3000);
    }
  }
}

/**
 * Waits until `check` passes (it throws until then), at most `ms`, trying every 250 ms; returns
 * how long it took.
 */
export async function within(ms: number, check: () => Promise<void>): Promise<number> {
  const started = Date.now();
  for (;;) {
    try {
      await check();
      return Date.now() - started;
    } catch (error) {
      if (Date.now() - started > ms) throw error;
      await sleep(250);
    }
  }
}

/** Polls `probe` every second until it returns a value, at most `ms`; fails naming `what`. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 300_000): Promise<T> {
  for (const deadline = Date.now() + ms; ; await sleep(1000)) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

/** A move's phase in which data is on its way: the disk mirror, or the memory copy. */
export type CopyPhase = 'mirror-disks' | 'copy-memory';

const phaseIndex = (phase: string) => MigrationPhase.options.indexOf(phase as MigrationPhase);

/** The source is in `phase` with its copy under way: disk bytes mirrored, not yet in sync; memory sent. */
function copyUnderWay(status: MigrationStatus, phase: CopyPhase): boolean {
  const p = status.progress;
  if (status.state !== 'running' || p.phase !== phase) return false;
  if (phase === 'copy-memory') return (p.memory?.bytesTransferred ?? 0) > 0;
  return p.disks.some((d) => d.bytesDone > 0) && !p.disks.every((d) => d.ready);
}

/**
 * Strikes `fault` in a verified phase of the move of job `jobId`: polls the job and the move's
 * source agent (the live view; the job follows it by polls) until both are in `phase` with that
 * phase's copy under way, strikes at once, and then, if the source still answers, checks that it
 * names the same phase (a fault that landed elsewhere fails here). Fails when the move ends or
 * passes the phase first. Returns the source's status as it stood right before the strike.
 */
export async function strikeInPhase(
  api: ManagerClient,
  source: LabHost,
  jobId: string,
  phase: CopyPhase,
  fault: () => unknown,
  timeoutMs = 300_000,
): Promise<MigrationStatus> {
  const agent = new AgentMigrationClient(labAgent(source, 10_000).http);
  const deadline = Date.now() + timeoutMs;
  for (; ; await sleep(100)) {
    if (Date.now() > deadline) throw new Error(`the move did not get to ${phase} within ${timeoutMs} ms`);
    const job = await api.getJob(jobId);
    if (!['queued', 'running'].includes(job.state))
      throw new Error(`the move ended (${job.state}: ${job.error?.detail ?? ''}) before ${phase}`);
    const migrationId = job.progress.details.migrationId;
    if (typeof migrationId !== 'string') continue;
    const status = await agent.status(migrationId).catch(() => undefined);
    if (status === undefined) continue;
    if (job.progress.phase === phase && copyUnderWay(status, phase)) {
      await fault();
      const after = await agent.status(migrationId).catch(() => undefined);
      if (after && after.progress.phase !== phase)
        throw new Error(`the fault struck in ${after.progress.phase} (${after.state}), not in ${phase}`);
      return status;
    }
    if (status.state !== 'running' || phaseIndex(status.progress.phase) > phaseIndex(phase))
      throw new Error(
        `the move got to ${status.state}/${status.progress.phase} before ${phase} was under way`,
      );
  }
}

/**
 * Bytes a lab host has sent (tx) and received (rx) on its fabric link so far: the kernel's
 * counters of its fabric0, whatever crossed it (moves, NBD, the manager's calls).
 */
export function fabricLinkBytes(host: LabHost): { tx: number; rx: number } {
  const out = execFileSync('ip', ['-n', host.namespace, '-s', '-j', 'link', 'show', 'fabric0'], {
    encoding: 'utf8',
  });
  const link = (JSON.parse(out) as { stats64?: { tx?: { bytes?: number }; rx?: { bytes?: number } } }[])[0];
  const tx = link?.stats64?.tx?.bytes;
  const rx = link?.stats64?.rx?.bytes;
  if (typeof tx !== 'number' || typeof rx !== 'number')
    throw new Error(`no byte counters for fabric0 in ${host.namespace}`);
  return { tx, rx };
}

/** Takes a lab host's fabric link down or up (a cut cable, as the fault tests strike it). */
export function fabricLink(host: LabHost, state: 'up' | 'down'): void {
  execFileSync('ip', ['-n', host.namespace, 'link', 'set', 'fabric0', state]);
}

/** The guest's uptime in seconds (a guest restarted from its disk starts again near 0). */
export async function guestUptime(host: LabHost, vm: string): Promise<number> {
  return Number((await inGuest(host, vm, ['/bin/cat', '/proc/uptime'])).stdout?.split(' ')[0]);
}

/** Which boot of the guest runs, and in which QEMU: what a fault must not change. */
export interface GuestLife {
  host: string;
  /** The guest kernel's boot id: a new one after any reboot or restart from the disk. */
  bootId: string;
  uptimeSeconds: number;
  /** The QEMU the agent runs the VM in (a QEMU started again has another pid). */
  qemuPid: number | undefined;
}

export async function guestLife(host: LabHost, vm: string): Promise<GuestLife> {
  const [read, agentVm] = await Promise.all([
    inGuest(host, vm, ['/bin/cat', '/proc/uptime', '/proc/sys/kernel/random/boot_id']),
    labAgent(host).getVm(vm),
  ]);
  const [uptime, bootId] = (read.stdout ?? '').trim().split('\n');
  if (read.exitCode !== 0 || !uptime || !bootId)
    throw new Error(`guest uptime/boot id: ${read.stderr ?? ''}`);
  return {
    host: host.name,
    bootId: bootId.trim(),
    uptimeSeconds: Number(uptime.split(' ')[0]),
    qemuPid: agentVm.pid,
  };
}

/**
 * The guest runs on as it did before the fault: the same boot (boot id), its uptime went on, and
 * on the same host the same QEMU process. A VM "started again from its disk" fails here.
 * `movedBack`: the VM went away and came back to this host since, in a new QEMU process of
 * course; the boot and uptime still say whether the guest ran on.
 */
export async function assertGuestKeptRunning(
  host: LabHost,
  vm: string,
  before: GuestLife,
  options: { movedBack?: boolean } = {},
): Promise<void> {
  const now = await guestLife(host, vm);
  const what = `${vm} on ${host.name}: boot ${now.bootId}, up ${now.uptimeSeconds} s, QEMU ${now.qemuPid}; before on ${before.host}: boot ${before.bootId}, up ${before.uptimeSeconds} s, QEMU ${before.qemuPid}`;
  if (now.bootId !== before.bootId) throw new Error(`the guest was restarted (another boot): ${what}`);
  if (!(now.uptimeSeconds > before.uptimeSeconds))
    throw new Error(`the guest's uptime did not go on: ${what}`);
  if (now.host === before.host && !options.movedBack && now.qemuPid !== before.qemuPid)
    throw new Error(`the VM runs in another QEMU process: ${what}`);
}

/**
 * A busy guest's workloads, as the fault tests run them while they strike: records with fsync at
 * 1 MiB/s into `file` (sb-diskwriter) and 64 MiB/s of memory dirtied (sb-dirty).
 */
export async function startGuestWorkloads(host: LabHost, vm: string, file: string): Promise<void> {
  await inGuest(host, vm, [GUEST_WORKLOADS.diskWriter, 'write', '--file', file, '--rate-kib', '1024'], {
    detach: true,
  });
  await inGuest(host, vm, [GUEST_WORKLOADS.dirty, '--rate-mib', '64', '--size-mib', '128'], { detach: true });
}

/** Stops the workloads and waits until the writer has exited (it writes its last record first). */
const STOP_WORKLOADS =
  'killall sb-diskwriter sb-dirty; while pidof sb-diskwriter >/dev/null; do sleep 0.05; done';

export async function stopGuestWorkloads(host: LabHost, vm: string): Promise<void> {
  await inGuest(host, vm, ['/bin/sh', '-c', STOP_WORKLOADS], { timeoutSeconds: 60 });
}

/** sb-diskwriter's record size (RECORD_SIZE in src/guest/workloads/sb-diskwriter.c; a unit test holds them equal). */
export const DISK_WRITER_RECORD_BYTES = 4096;

/** How many records the guest's writer has put into `file` so far (read it before a strike). */
export async function guestRecordCount(host: LabHost, vm: string, file: string): Promise<number> {
  const size = await inGuest(host, vm, ['/bin/stat', '-c', '%s', file]);
  if (size.exitCode !== 0) throw new Error(`stat ${file}: ${size.stderr ?? ''}`);
  return Math.floor(Number(size.stdout?.trim()) / DISK_WRITER_RECORD_BYTES);
}

/** A records file of sb-diskwriter and how many records it must hold at least. */
export interface RecordsFile {
  file: string;
  /** Records known written before the strike (guestRecordCount), or verified before. */
  atLeast: number;
}

export interface RecordsVerified {
  /** One line per file, for the test's log. */
  summary: string;
  /** Records verified per file: the `atLeast` of a later verification. */
  counts: Map<string, number>;
}

/** The shell's single-quoted form of `text` (test paths, but quoted all the same). */
const quoted = (text: string) => `'${text.replaceAll("'", `'\\''`)}'`;

/** Writes back and drops the guest's page cache (shell): what is read next comes from its disk. */
const DROP_CACHES = 'sync && echo 3 > /proc/sys/vm/drop_caches';

/**
 * Stops the workloads, drops the guest's caches (the records are read from its disk, not from
 * the page cache that moved with its memory) and verifies every record of each file: none bad,
 * more than none, and at least as many as were known written before. One command in the guest.
 */
export async function verifyGuestRecords(
  host: LabHost,
  vm: string,
  files: RecordsFile[],
): Promise<RecordsVerified> {
  if (files.length === 0) throw new Error('no records file to verify');
  const script = [
    STOP_WORKLOADS,
    `${DROP_CACHES} || exit 1`,
    ...files.map(
      ({ file }) =>
        `echo '@@'; ${GUEST_WORKLOADS.diskWriter} verify --file ${quoted(file)} 2>&1; echo "@@ $?"`,
    ),
  ].join('\n');
  const run = await inGuest(host, vm, ['/bin/sh', '-c', script], { timeoutSeconds: 600 });
  // One "@@\n<verify's output>@@ <exit code>" section per file, in order.
  const sections = [...(run.stdout ?? '').matchAll(/^@@\n([\s\S]*?)^@@ (\d+)$/gm)];
  if (run.exitCode !== 0 || sections.length !== files.length)
    throw new Error(`verifying records: exit ${run.exitCode}: ${run.stdout ?? ''} ${run.stderr ?? ''}`);
  const lines: string[] = [];
  const counts = new Map<string, number>();
  files.forEach(({ file, atLeast }, i) => {
    const said = sections[i]?.[1]?.trim() ?? '';
    if (sections[i]?.[2] !== '0') throw new Error(`${file}: ${said}`);
    const records = Number(/verified (\d+) records/.exec(said)?.[1] ?? NaN);
    if (!(records > 0)) throw new Error(`${file}: no records verified (${said})`);
    if (records < atLeast)
      throw new Error(`${file}: ${records} records verified, ${atLeast} were written before: records lost`);
    counts.set(file, records);
    lines.push(`${file}: ${records} records (>= ${atLeast}), ${said.split('\n')[1] ?? ''}`);
  });
  return { summary: lines.join(', '), counts };
}

/** Guest data a move must carry unchanged: a file, or a stretch of a raw disk (whole MiB). */
export type GuestData = { file: string } | { device: string; offsetMiB: number; mib: number };

export interface GuestDataChecksums {
  items: GuestData[];
  /** md5 of each item, as the guest read it from its disk. */
  md5: string[];
}

const describeData = (item: GuestData) =>
  'file' in item ? item.file : `${item.device} MiB ${item.offsetMiB}..${item.offsetMiB + item.mib}`;

/**
 * Checksums of guest data as read from the guest's disk: files after the guest's caches were
 * dropped, raw disk stretches with O_DIRECT. Take them before a move and compare after it with
 * assertGuestDataUnchanged: a return move that sends a wrong or incomplete delta fails there.
 */
export async function guestDataChecksums(
  host: LabHost,
  vm: string,
  items: GuestData[],
): Promise<GuestDataChecksums> {
  const reads = items.map((item) =>
    'file' in item
      ? `/usr/bin/md5sum ${quoted(item.file)}`
      : `/bin/dd if=${quoted(item.device)} iflag=direct bs=1M skip=${item.offsetMiB} count=${item.mib} 2>/dev/null | /usr/bin/md5sum`,
  );
  const script = [
    'set -o pipefail',
    ...(items.some((i) => 'file' in i) ? [`${DROP_CACHES} || exit 1`] : []),
    ...reads.map((read) => `${read} || exit 1`),
  ].join('\n');
  const out = await inGuest(host, vm, ['/bin/sh', '-c', script], { timeoutSeconds: 1800 });
  const md5 = [...(out.stdout ?? '').matchAll(/^([0-9a-f]{32})\b/gm)].map((m) => m[1] ?? '');
  if (out.exitCode !== 0 || md5.length !== items.length)
    throw new Error(`md5 of ${items.map(describeData).join(', ')}: ${out.stdout ?? ''} ${out.stderr ?? ''}`);
  return { items, md5 };
}

/** The data reads back from the guest's disk (on `host`, after the move) as it did before it. */
export async function assertGuestDataUnchanged(
  host: LabHost,
  vm: string,
  before: GuestDataChecksums,
): Promise<void> {
  const now = await guestDataChecksums(host, vm, before.items);
  const differ = before.items.filter((_, i) => now.md5[i] !== before.md5[i]).map(describeData);
  if (differ.length)
    throw new Error(`${vm} on ${host.name}: data differs from before the move: ${differ.join(', ')}`);
}

/**
 * `silobreak vm create <vm> --start` on `host` (384 MiB, a 2 GiB disk, the lab's first VM address)
 * as a user does it, then `fillMiB` of random data in /data for a move to carry.
 */
export async function createBusyVm(lab: Lab, host: LabHost, vm: string, fillMiB = 200): Promise<void> {
  const created = await labCli(lab, [
    'vm',
    'create',
    vm,
    '--host',
    host.name,
    '--memory',
    '384M',
    '--disk',
    '2G',
    '--nic',
    'vmsw0',
    '--ip',
    lab.vmAddress(1).cidr,
    '--start',
  ]);
  if (created.code !== 0) throw new Error(`vm create: ${created.stderr}`);
  await waitForPing(lab, lab.vmAddress(1).ip);
  const fill = await inGuest(host, vm, [
    '/bin/dd',
    'if=/dev/urandom',
    'of=/data/fill',
    'bs=1M',
    `count=${fillMiB}`,
  ]);
  if (fill.exitCode !== 0) throw new Error(`fill: ${fill.stderr ?? ''}`);
  await inGuest(host, vm, ['/bin/sync']);
}

/** A TCG lab of `hosts` hosts with its manager, and an admin client of that manager. */
export async function labWithManager(
  name: string,
  hosts = 2,
): Promise<{ lab: Lab; api: ManagerClient; hosts: LabHost[] }> {
  const lab = await labUp({ name, hosts, demo: false, accelerator: 'tcg' });
  if (!lab.manager) throw new Error('the lab started no manager');
  return { lab, api: new ManagerClient(lab.manager.url, lab.manager.token, 120_000), hosts: lab.hosts };
}

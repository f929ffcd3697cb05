/*
 * Cold moves of a stopped VM (the manager drives them; nothing runs in the guest): the source
 * exports each disk read-only over NBD (qemu-nbd on the fabric address; its shared read lock keeps
 * the VM from being started meanwhile), the target defines the VM with empty disks through the
 * usual VM API and copies every disk from those exports into its images in the background
 * (qemu-img convert, zero areas skipped, disks in parallel) while the manager follows it, then the
 * source closes its exports and the manager deletes the source VM. The exports use their own port
 * range, apart from the live moves' allocator.
 *
 * Only the move's target reads the exports, and the target reads only from them: the source makes
 * a one-time secret for the move (a PeerSecret, as a link probe's sender does) that the manager
 * hands to the target, and the exports require TLS with it as the pre-shared key (QEMU's
 * tls-creds-psk). Before it writes a byte, the target opens every export with the secret; an
 * export that does not answer so (another server, a wrong secret, a disk larger than the VM's)
 * refuses the copy with the field named and nothing of the peer's answer in it.
 *
 * Nothing of a cold move outlives it, as for live moves (service.ts): a copy that receives no byte
 * for the move's stall window stops (a cut link would otherwise hang a read for as long as TCP
 * retries, a quarter of an hour), a copy that fails or is stopped removes its half-made VM, a
 * running copy no manager asked about for the host's orphanMoveSeconds is stopped as an orphan,
 * and each side keeps a journal of its qemu-nbd / qemu-img processes so that a restarted agent
 * ends the ones its predecessor left (and removes the half-made VM of a copy it can no longer
 * finish).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';
import {
  nbdUriParts,
  type agentColdMoveRoutes,
  type ColdClosed,
  type ColdCopyRequest,
  type ColdCopyStatus,
  type ColdExport,
  type MigrationState,
  type RouteHandlers,
} from '../../api/index.js';
import type { AgentCore } from '../core.js';
import type { VmDefinition } from '../definitions.js';
import { HostCommandFailed, InvalidInput, VmStateConflict } from '../errors.js';
import { ColdSourceRefused, MigrationConflict, MigrationFailed, MigrationNotFound } from './errors.js';
import { newPeerSecret } from './link-probe.js';
import { PortAllocator, type PortLease } from './ports.js';
import type { AgentRoutePlugin } from '../server.js';

const run = promisify(execFile);
const READY_MS = 15_000;
/** How often a copy counts the bytes it received (against its stall window). */
const WATCH_MS = 1000;
/** How often running copies are checked for a manager that stopped asking (capped by the setting). */
const ORPHAN_SWEEP_MS = 30_000;
/** How long the target waits for an export to open with the move's secret before it refuses the copy. */
const SOURCE_CHECK_MS = 10_000;
/** The TLS pre-shared key's identity (the key itself is the move's secret) and QEMU object id. */
const PSK_USER = 'silobreak-cold';
const TLS_ID = 'cold-tls';
const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** A side's processes of one cold move, so a restarted agent can end them. */
const Journal = z.object({
  role: z.enum(['source', 'target']),
  vmName: z.string(),
  /** Target: the id of the VM the copy goes into (removed only while it is still that VM). */
  vmId: z.string().optional(),
  /** Each process with the image it works on (checked in /proc before it is killed). */
  processes: z.array(z.object({ pid: z.number().int(), image: z.string() })),
});
type Journal = z.infer<typeof Journal>;

interface Exported {
  vmName: string;
  processes: ChildProcess[];
  leases: PortLease[];
}

/** QEMU's tls-creds-psk object for one side of a cold move, its key in `dir` (keys.psk). */
export function pskObject(dir: string, endpoint: 'server' | 'client'): string {
  return `tls-creds-psk,id=${TLS_ID},endpoint=${endpoint},dir=${dir}${endpoint === 'client' ? `,username=${PSK_USER}` : ''}`;
}

/** The --image-opts of an export (a valid NbdUri) opened over TLS with the move's key. */
export function exportImageOpts(uri: string): string {
  const { host, port, exportName } = nbdUriParts(uri);
  return [
    'driver=raw',
    'file.driver=nbd',
    'file.server.type=inet',
    `file.server.host=${host}`,
    `file.server.port=${port}`,
    `file.export=${exportName}`,
    `file.tls-creds=${TLS_ID}`,
  ].join(',');
}

interface Copy {
  id: string;
  vmName: string;
  vmId: string;
  state: MigrationState;
  error?: { code: string; detail: string };
  startedAt: string;
  finishedAt?: string;
  children: ChildProcess[];
  /** Per disk: how far qemu-img got (its -p output) and the disk's size, for the percentage. */
  percents: number[];
  sizes: number[];
  /** `host:port` of each export, to count the bytes received from them. */
  endpoints: Set<string>;
  receivedBytes: number;
  /** The last count, and when it was taken. */
  counted: number;
  countedAt: number;
  lastMovedAt: number;
  lastContactAt: number;
  /** Why the copy was stopped before its processes ended by themselves. */
  stopped?: { state: 'failed' | 'cancelled'; error?: MigrationFailed };
  settled: Promise<void>;
}

async function answers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** `host:port` of a valid `nbd://host:port/name` URI (NbdUri). */
export function nbdEndpoint(uri: string): string {
  const { host, port } = nbdUriParts(uri);
  return `${host}:${port}`;
}

/**
 * The bytes received on the TCP connections to `endpoints`, from `ss -tinH` output (a socket's line
 * names its peer, the indented line after it carries `bytes_received:`). IPv4-mapped peers count
 * as their IPv4 address.
 */
export function bytesReceivedFrom(ssOutput: string, endpoints: ReadonlySet<string>): number {
  let total = 0;
  let counting = false;
  for (const line of ssOutput.split('\n')) {
    if (line.trim() === '') continue;
    if (!/^\s/.test(line)) {
      const peer = (line.trim().split(/\s+/)[4] ?? '').replace(/^\[(?:::ffff:)?([^\]]+)\]/, '$1');
      counting = endpoints.has(peer);
      continue;
    }
    const received = counting ? /\bbytes_received:(\d+)/.exec(line) : null;
    if (received) total += Number(received[1]);
  }
  return total;
}

/** The last percentage in qemu-img's `-p` output, e.g. `    (42.17/100%)\r`. */
export function lastPercent(output: string): number | undefined {
  const all = [...output.matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)];
  const last = all.at(-1)?.[1];
  return last === undefined ? undefined : Math.min(100, Number(last));
}

export class ColdMoves {
  readonly #exports = new Map<string, Exported>();
  readonly #copies = new Map<string, Copy>();
  /** Copies whose exports are being checked (move id -> VM), not started yet. */
  readonly #checking = new Map<string, string>();
  readonly #ports = new PortAllocator([50000, 50999]);
  #sweepTimer: NodeJS.Timeout | undefined;

  constructor(private readonly core: AgentCore) {}

  get #dir(): string {
    return path.join(this.core.config.stateDir, 'cold-moves');
  }

  /** `<id>.<role>.json`: both sides of a move between two datastores of one host can be here. */
  #journalFile(id: string, role: Journal['role']): string {
    return path.join(this.#dir, `${id}.${role}.json`);
  }

  async #writeJournal(id: string, journal: Journal): Promise<void> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    await writeFile(this.#journalFile(id, journal.role), JSON.stringify(journal));
  }

  async #dropJournal(id: string, role: Journal['role']): Promise<void> {
    await rm(this.#journalFile(id, role), { force: true });
  }

  /** `<id>.<role>.psk/keys.psk`: the move's secret as QEMU reads it (0700 / 0600). */
  #pskDir(id: string, role: Journal['role']): string {
    return path.join(this.#dir, `${id}.${role}.psk`);
  }

  async #writePsk(id: string, role: Journal['role'], secret: string): Promise<string> {
    const dir = this.#pskDir(id, role);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFile(path.join(dir, 'keys.psk'), `${PSK_USER}:${secret}\n`, { mode: 0o600 });
    return dir;
  }

  async #dropPsk(id: string, role: Journal['role']): Promise<void> {
    await rm(this.#pskDir(id, role), { recursive: true, force: true });
  }

  // ---- source ----

  /** Source: exports the stopped VM's disks read-only. */
  async export(vmName: string, migrationId: string): Promise<ColdExport> {
    if (this.#exports.has(migrationId))
      throw new MigrationConflict(`cold move ${migrationId} exists already`);
    const runtime = this.core.vms.runtime(vmName);
    if (runtime.active)
      throw new VmStateConflict(vmName, 'running', 'export the disks of (a cold move needs it stopped)');
    const address = this.core.config.fabricAddress;
    const entry: Exported = { vmName, processes: [], leases: [] };
    this.#exports.set(migrationId, entry);
    try {
      const secret = newPeerSecret().toString('hex');
      const pskDir = await this.#writePsk(migrationId, 'source', secret);
      const disks = [];
      const journal: Journal = { role: 'source', vmName, processes: [] };
      for (const disk of runtime.def.disks) {
        const lease = await this.#ports.allocate(address);
        entry.leases.push(lease);
        const child = spawn(
          'qemu-nbd',
          [
            '--object',
            pskObject(pskDir, 'server'),
            '--tls-creds',
            TLS_ID,
            '--read-only',
            '--persistent',
            '--shared=4',
            '-f',
            disk.format,
            '-b',
            address,
            '-p',
            String(lease.port),
            '-x',
            disk.id,
            disk.path,
          ],
          { stdio: 'ignore' },
        );
        entry.processes.push(child);
        if (child.pid !== undefined) journal.processes.push({ pid: child.pid, image: disk.path });
        await this.#writeJournal(migrationId, journal);
        const deadline = Date.now() + READY_MS;
        while (!(await answers(address, lease.port))) {
          if (child.exitCode !== null || Date.now() > deadline) {
            throw new HostCommandFailed('qemu-nbd', `export of disk ${disk.id} did not come up`);
          }
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        disks.push({ diskId: disk.id, uri: `nbd://${address}:${lease.port}/${disk.id}` });
      }
      return { migrationId, disks, secret };
    } catch (error) {
      await this.close(migrationId);
      throw error;
    }
  }

  // ---- target ----

  /**
   * Target: starts copying every disk of the (stopped, just defined) VM from the source's exports;
   * follow it with status(), stop it with close().
   */
  async copy(vmName: string, request: z.output<typeof ColdCopyRequest>): Promise<ColdCopyStatus> {
    const { migrationId, disks } = request;
    const runtime = this.core.vms.runtime(vmName);
    const free = () => {
      if (runtime.active) throw new VmStateConflict(vmName, 'running', 'copy disks into');
      // (Its exports may be on this host too: a move between two datastores of one host.)
      if (this.#copies.has(migrationId) || this.#checking.has(migrationId))
        throw new MigrationConflict(`cold move ${migrationId} exists already`);
      const busy = [...this.#copies.values()].find((c) => c.vmName === vmName && c.state === 'running');
      if (busy) throw new MigrationConflict(`VM "${vmName}" is already being copied (cold move ${busy.id})`);
      if ([...this.#checking.values()].includes(vmName))
        throw new MigrationConflict(`VM "${vmName}" is about to be copied by another cold move`);
    };
    free();
    const targets = coldCopyTargets(vmName, runtime.def.disks, disks);
    await this.#checkEmpty(vmName, targets);
    // Held from here until the copy is registered or refused: the key file is this request's.
    this.#checking.set(migrationId, vmName);
    try {
      const pskDir = await this.#writePsk(migrationId, 'target', request.secret);
      try {
        await this.#checkSources(targets, pskDir);
      } catch (error) {
        await this.#dropPsk(migrationId, 'target');
        throw error;
      }
    } finally {
      this.#checking.delete(migrationId);
    }
    const pskDir = this.#pskDir(migrationId, 'target');
    if (runtime.active) {
      await this.#dropPsk(migrationId, 'target');
      throw new VmStateConflict(vmName, 'running', 'copy disks into');
    }
    const now = Date.now();
    let settle: () => void = () => undefined;
    const copy: Copy = {
      id: migrationId,
      vmName,
      vmId: runtime.def.id,
      state: 'running',
      startedAt: new Date(now).toISOString(),
      children: [],
      percents: targets.map(() => 0),
      sizes: targets.map((t) => t.disk.sizeBytes),
      endpoints: new Set(targets.map((t) => nbdEndpoint(t.source.uri))),
      receivedBytes: 0,
      counted: 0,
      countedAt: 0,
      lastMovedAt: now,
      lastContactAt: now,
      settled: new Promise<void>((resolve) => (settle = resolve)),
    };
    this.#copies.set(migrationId, copy);
    const exits = targets.map(({ source, disk }, i) => {
      // -n: into the image the VM definition created; --target-is-zero: a fresh image reads as
      // zeroes, so zero areas of the source are skipped and the copy stays thin; -p: how far it is.
      const child = spawn(
        'qemu-img',
        [
          'convert',
          '-p',
          '-n',
          '--target-is-zero',
          '--object',
          pskObject(pskDir, 'client'),
          '--image-opts',
          exportImageOpts(source.uri),
          '-O',
          disk.format,
          disk.path,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      copy.children.push(child);
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => {
        const percent = lastPercent(chunk.toString());
        if (percent === undefined) return;
        copy.percents[i] = percent;
        // A count at each step too: a copy shorter than the watch's period is still counted.
        void this.#count(copy);
      });
      child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
      return new Promise<string | undefined>((resolve) => {
        child.once('error', (error) => resolve(`disk ${disk.id}: ${error.message}`));
        child.once('close', (code, signal) => {
          if (code === 0) resolve(undefined);
          else {
            // The peer's words and qemu-img's stay in this host's log, not in the answer.
            this.core.log.warn('cold copy: qemu-img failed', {
              migration: migrationId,
              disk: disk.id,
              exit: code ?? signal ?? 'unknown',
              error: stderr.trim().slice(-500),
            });
            resolve(`disk ${disk.id}: the copy from its export failed (exit ${code ?? signal ?? 'unknown'})`);
          }
          // One disk failed: the others cannot make a usable VM.
          if (code !== 0) this.#stop(copy, { state: 'failed' });
        });
      });
    });
    await this.#writeJournal(migrationId, {
      role: 'target',
      vmName,
      vmId: copy.vmId,
      processes: copy.children.flatMap((c, i) =>
        c.pid === undefined ? [] : [{ pid: c.pid, image: targets[i]?.disk.path ?? '' }],
      ),
    });
    const stallMs = request.stallWindowSeconds * 1000;
    const watch = setInterval(() => void this.#watch(copy, stallMs), WATCH_MS);
    void Promise.all(exits)
      .then((failures) => this.#settle(copy, failures))
      .catch((error: unknown) =>
        this.core.log.warn('cold copy: settling failed', { error: errorText(error) }),
      )
      .finally(() => {
        clearInterval(watch);
        settle();
      });
    this.core.log.info('cold copy started', { migration: migrationId, vm: vmName, disks: disks.length });
    return this.status(migrationId);
  }

  /**
   * Counts the bytes received on the connections to the exports (at most every 200 ms); a change
   * is progress. False when they could not be counted.
   */
  async #count(copy: Copy): Promise<boolean> {
    const now = Date.now();
    if (now - copy.countedAt < 200) return true;
    copy.countedAt = now;
    let received: number;
    try {
      received = bytesReceivedFrom((await run('ss', ['-tinH'], { timeout: 5000 })).stdout, copy.endpoints);
    } catch {
      return false;
    }
    if (received !== copy.counted) {
      copy.counted = received;
      copy.receivedBytes = Math.max(copy.receivedBytes, received);
      copy.lastMovedAt = Date.now();
    }
    return true;
  }

  /** No byte received for the stall window stops the copy. */
  async #watch(copy: Copy, stallMs: number): Promise<void> {
    if (copy.state !== 'running' || copy.stopped) return;
    // Not measurable this round: no verdict either way.
    if (!(await this.#count(copy))) return;
    const now = Date.now();
    if (now - copy.lastMovedAt >= stallMs) {
      const seconds = Math.round((now - copy.lastMovedAt) / 1000);
      this.core.log.warn('cold copy stalled: stopping it', { migration: copy.id, vm: copy.vmName, seconds });
      this.#stop(copy, {
        state: 'failed',
        error: new MigrationFailed(
          `stalled: no byte from the source's exports for ${seconds} s`,
          'copy',
          'migration-stalled',
        ),
      });
    }
  }

  #stop(copy: Copy, why: NonNullable<Copy['stopped']>): void {
    copy.stopped ??= why;
    for (const child of copy.children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }

  /** The copy's end: completed, or failed/cancelled with its half-made VM removed. */
  async #settle(copy: Copy, failures: (string | undefined)[]): Promise<void> {
    const failed = failures.filter((f): f is string => f !== undefined);
    if (!copy.stopped && failed.length === 0) {
      // The journal goes first: a restart after this must not take the finished copy for a half-made one.
      await this.#dropJournal(copy.id, 'target');
      await this.#dropPsk(copy.id, 'target');
      this.#finish(copy, 'completed');
      this.core.log.info('cold copy completed', { migration: copy.id, vm: copy.vmName });
      return;
    }
    const state = copy.stopped?.state ?? 'failed';
    const error =
      copy.stopped?.error ??
      (state === 'failed' ? new MigrationFailed(failed.join('; '), 'copy') : undefined);
    this.#finish(copy, state, error);
    this.core.log.warn('cold copy ended; removing the half-made VM', {
      migration: copy.id,
      vm: copy.vmName,
      state,
      ...(error ? { reason: error.message } : {}),
    });
    await this.#removeHalfMade(copy.vmName, copy.vmId);
    await this.#dropJournal(copy.id, 'target');
    await this.#dropPsk(copy.id, 'target');
  }

  /**
   * A copy fills only the empty disks of a VM defined for the move (prepare-target), never a VM
   * that holds data: whatever its exports, it would be overwritten.
   */
  async #checkEmpty(vmName: string, targets: CopyTarget[]): Promise<void> {
    for (const { disk } of targets) {
      const map = await run('qemu-img', ['map', '--output=json', '-f', disk.format, disk.path], {
        timeout: SOURCE_CHECK_MS,
      }).catch((error: unknown) => {
        throw new HostCommandFailed('qemu-img', `cannot read disk "${disk.id}": ${errorText(error)}`);
      });
      if (!holdsNoData(map.stdout))
        throw new VmStateConflict(
          vmName,
          `holding data (disk "${disk.id}"; a cold copy fills only the empty disks of a VM defined for the move)`,
          'copy disks into',
        );
    }
  }

  /**
   * Every export opens with the move's secret and is no larger than its disk; else the copy is
   * refused, naming the export's field (the peer's answer goes to the log only).
   */
  async #checkSources(targets: CopyTarget[], pskDir: string): Promise<void> {
    const checks = await Promise.allSettled(
      targets.map(({ source }) =>
        run(
          'qemu-img',
          [
            'info',
            '--output=json',
            '--object',
            pskObject(pskDir, 'client'),
            '--image-opts',
            exportImageOpts(source.uri),
          ],
          { timeout: SOURCE_CHECK_MS },
        ),
      ),
    );
    checks.forEach((check, i) => {
      const { source, disk } = targets[i] as CopyTarget;
      const field = `disks.${i}.uri`;
      if (check.status === 'rejected') {
        const peer = nbdEndpoint(source.uri);
        this.core.log.warn("cold copy refused: an export did not open with the move's secret", {
          peer,
          disk: disk.id,
          error: errorText(check.reason).slice(-500),
        });
        throw new ColdSourceRefused(
          field,
          `no export of this move answers at ${peer} with its secret (not its source, not reachable, or the secret refused); nothing was written`,
        );
      }
      const size = z
        .string()
        .transform((text, ctx) => {
          try {
            return JSON.parse(text) as unknown;
          } catch {
            ctx.addIssue({ code: 'custom', message: 'not JSON' });
            return z.NEVER;
          }
        })
        .pipe(z.object({ 'virtual-size': z.number() }))
        .safeParse(check.value.stdout);
      if (!size.success)
        throw new ColdSourceRefused(field, 'the export did not tell its size; nothing was written');
      if (size.data['virtual-size'] > disk.sizeBytes)
        throw new ColdSourceRefused(
          field,
          `the export holds ${size.data['virtual-size']} bytes, more than disk "${disk.id}" (${disk.sizeBytes}); nothing was written`,
        );
    });
  }

  #finish(copy: Copy, state: MigrationState, error?: MigrationFailed): void {
    copy.state = state;
    copy.finishedAt = new Date().toISOString();
    if (error) copy.error = { code: error.code, detail: error.message };
  }

  /** Deletes a stopped VM with its disks while it is still the copy's (same id). */
  async #removeHalfMade(vmName: string, vmId: string | undefined): Promise<void> {
    try {
      const runtime = this.core.vms.runtimes().find((r) => r.def.name === vmName);
      if (!runtime || (vmId !== undefined && runtime.def.id !== vmId) || runtime.active) return;
      await this.core.vms.delete(vmName, true);
    } catch (error) {
      this.core.log.warn('cannot remove the half-made VM of a cold copy', {
        vm: vmName,
        error: errorText(error),
      });
    }
  }

  /** Target: the copy's state and progress (asking is what keeps a copy from being an orphan). */
  status(migrationId: string): ColdCopyStatus {
    const copy = this.#copies.get(migrationId);
    if (!copy) throw new MigrationNotFound(migrationId);
    copy.lastContactAt = Date.now();
    const total = copy.sizes.reduce((a, b) => a + b, 0);
    const done = copy.percents.reduce((sum, p, i) => sum + p * (copy.sizes[i] ?? 0), 0);
    const percent = copy.state === 'completed' ? 100 : total > 0 ? Math.round((done / total) * 100) / 100 : 0;
    return {
      migrationId: copy.id,
      vmName: copy.vmName,
      state: copy.state,
      percent,
      receivedBytes: copy.receivedBytes,
      ...(copy.error ? { error: copy.error } : {}),
      startedAt: copy.startedAt,
      ...(copy.finishedAt ? { finishedAt: copy.finishedAt } : {}),
    };
  }

  // ---- both ----

  /**
   * Source: stops the exports; target: stops a running copy and waits until its half-made VM is
   * gone. Idempotent: `closed` says whether anything was still open.
   */
  async close(migrationId: string): Promise<ColdClosed> {
    let closed = false;
    const copy = this.#copies.get(migrationId);
    if (copy?.state === 'running') {
      this.#stop(copy, { state: 'cancelled' });
      await copy.settled;
      closed = true;
    }
    const entry = this.#exports.get(migrationId);
    if (entry) {
      for (const child of entry.processes) if (child.exitCode === null) child.kill('SIGTERM');
      for (const lease of entry.leases) lease.release();
      this.#exports.delete(migrationId);
      await this.#dropJournal(migrationId, 'source');
      await this.#dropPsk(migrationId, 'source');
      closed = true;
    }
    return { migrationId, closed };
  }

  // ---- housekeeping ----

  /**
   * At the agent's start: the processes a previous agent left for its cold moves end (their moves
   * cannot go on without it), and the half-made VM of a copy goes. Then, every sweep, a running
   * copy no manager asked about for `orphanAfterMs` is stopped as an orphan.
   */
  async startHousekeeping(orphanAfterMs: number): Promise<void> {
    await this.#endLostMoves();
    this.#sweepTimer = setInterval(
      () => this.#sweepOrphans(orphanAfterMs),
      Math.min(ORPHAN_SWEEP_MS, orphanAfterMs / 4),
    );
    this.#sweepTimer.unref();
  }

  #sweepOrphans(orphanAfterMs: number): void {
    const now = Date.now();
    for (const copy of this.#copies.values()) {
      if (copy.state !== 'running' || copy.stopped || now - copy.lastContactAt < orphanAfterMs) continue;
      const silent = Math.round((now - copy.lastContactAt) / 1000);
      this.core.log.warn('stopping an orphaned cold copy: no manager asked about it', {
        migration: copy.id,
        vm: copy.vmName,
        silentSeconds: silent,
      });
      this.#stop(copy, {
        state: 'failed',
        error: new MigrationFailed(
          `orphaned: no manager asked about this copy for ${silent} s`,
          'copy',
          'migration-orphaned',
        ),
      });
    }
  }

  async #endLostMoves(): Promise<void> {
    const entries = await readdir(this.#dir).catch(() => [] as string[]);
    // The keys of lost moves: their exports and copies end below.
    for (const dir of entries.filter((f) => f.endsWith('.psk')))
      await rm(path.join(this.#dir, dir), { recursive: true, force: true });
    const files = entries.filter((f) => f.endsWith('.json'));
    for (const file of files) {
      const id = file.split('.')[0] ?? file;
      try {
        const journal = Journal.parse(JSON.parse(await readFile(path.join(this.#dir, file), 'utf8')));
        const killed = [];
        for (const { pid, image } of journal.processes) {
          if (await isProcessOf(pid, journal.role === 'source' ? 'qemu-nbd' : 'qemu-img', image)) {
            process.kill(pid, 'SIGKILL');
            killed.push(pid);
          }
        }
        this.core.log.warn('ending a cold move this agent lost at its restart', {
          migration: id,
          vm: journal.vmName,
          role: journal.role,
          killed,
        });
        if (journal.role === 'target') await this.#removeHalfMade(journal.vmName, journal.vmId);
      } catch (error) {
        this.core.log.warn('cannot end a lost cold move', { migration: id, error: errorText(error) });
      }
      await rm(path.join(this.#dir, file), { force: true });
    }
  }

  async closeAll(): Promise<void> {
    clearInterval(this.#sweepTimer);
    for (const id of new Set([...this.#exports.keys(), ...this.#copies.keys()])) await this.close(id);
  }
}

type VmDisk = VmDefinition['disks'][number];
interface CopyTarget {
  source: ColdExport['disks'][number];
  disk: VmDisk;
}

/**
 * Which disk of the VM each export fills: every export names a disk of the VM, and every disk of
 * the VM is named (a disk left out would stay empty in a VM that looks moved).
 */
export function coldCopyTargets(
  vmName: string,
  vmDisks: readonly VmDisk[],
  exports: ColdExport['disks'],
): CopyTarget[] {
  const targets = exports.map((source, i) => {
    const disk = vmDisks.find((d) => d.id === source.diskId);
    if (!disk)
      throw new InvalidInput(
        `disks.${i}.diskId: VM "${vmName}" has no disk "${source.diskId}"`,
        `disks.${i}.diskId`,
      );
    return { source, disk };
  });
  const missing = vmDisks.find((d) => !exports.some((e) => e.diskId === d.id));
  if (missing)
    throw new InvalidInput(
      `disks: no export for disk "${missing.id}" of VM "${vmName}": a cold copy fills every disk`,
      'disks',
    );
  return targets;
}

/** Whether `qemu-img map --output=json` shows no data in the image (a freshly made disk). */
export function holdsNoData(mapJson: string): boolean {
  try {
    const extents = z.array(z.object({ data: z.boolean() })).parse(JSON.parse(mapJson));
    return extents.every((e) => !e.data);
  } catch {
    return false;
  }
}

/** Whether `pid` is still a `command` process working on `image` (not a reused pid). */
async function isProcessOf(pid: number, command: string, image: string): Promise<boolean> {
  try {
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    return path.basename(argv[0] ?? '') === command && argv.includes(image);
  } catch {
    return false;
  }
}

/** The cold-move routes (agentColdMoveRoutes in src/api/agent-routes.ts). */
export function coldMoveRoutes(): AgentRoutePlugin {
  return (app, core): RouteHandlers<typeof agentColdMoveRoutes> => {
    const cold = new ColdMoves(core);
    app.addHook('onReady', () => cold.startHousekeeping(core.config.orphanMoveSeconds * 1000));
    app.addHook('onClose', () => cold.closeAll());
    return {
      coldExport: ({ params, body }) => cold.export(params.name, body.migrationId),
      coldClose: ({ params }) => cold.close(params.id),
      coldCopy: ({ params, body }) => cold.copy(params.name, body),
      coldCopyStatus: ({ params }) => cold.status(params.id),
    };
  };
}

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, open, stat } from 'node:fs/promises';
import path from 'node:path';
import type { DatastoreConfig, LockspaceSpec, LockspaceStatus } from '../api/index.js';
import { LeaseHeld, LeasesUnavailable } from './errors.js';
import type { Logger } from './logger.js';

/*
 * VM leases with sanlock (issue 30): the fencing of a cluster. Every host of a cluster joins the
 * cluster's lockspace (a sanlock "delta lease" per host on the shared storage, renewed every 2 I/O
 * timeouts). A VM with a disk on a shared datastore runs only while its QEMU holds the VM's
 * resource lease (a disk-paxos lease in a file beside the lockspace), exactly as libvirt's sanlock
 * plugin does:
 * - QEMU is started through `sanlock client command -c qemu-system-x86_64 ...`, which registers the
 *   process with the host's sanlock and execs QEMU in place (same pid, the registration kept);
 * - before the vCPUs run, the agent acquires the VM's lease for that pid (`client acquire -p`); a
 *   lease another host holds refuses the start (LeaseHeld): two QEMUs never run one VM's disks;
 * - the lease goes with the process: released when QEMU exits, or given up at a move's switchover;
 * - a host that cannot renew its own lease (its storage link is cut) is fenced by its sanlock, which
 *   kills the QEMUs holding leases there (SIGTERM, then SIGKILL after its grace time); the others
 *   can acquire those leases only once the host's delta lease has expired (8 I/O timeouts + 60 s),
 *   which is what makes an HA restart safe without trusting the dead host.
 * The lease files: `<datastore>/.silobreak/lockspace-<name>` and `.silobreak/leases/<vm id>`, 1 MiB
 * each, made by whichever agent needs one first (an exclusive create, then sanlock's init).
 */

/** sanlock's lease area for 512-byte sectors: 1 MiB per lockspace or resource. */
const LEASE_FILE_BYTES = 1024 * 1024;
const LEASE_DIR = '.silobreak';
/** A resource lease acquired by another host: sanlock's SANLK_ACQUIRE_IDLIVE / OWNED codes. */
const HELD_ELSEWHERE = new Set([-243, -244, -16, -11]);

export interface SanlockResult {
  exitCode: number;
  output: string;
  /** The `... done <n>` result sanlock's client prints, when it printed one. */
  result: number | undefined;
}

/** `file` as an absolute path found on PATH (unchanged when it has a slash or is not found). */
function onPath(file: string): string {
  if (file.includes('/')) return file;
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const candidate = path.join(dir, file);
    if (existsSync(candidate)) return candidate;
  }
  return file;
}

export const lockspaceFile = (datastorePath: string, name: string) =>
  path.join(datastorePath, LEASE_DIR, `lockspace-${name}`);
export const vmLeaseFile = (datastorePath: string, vmId: string) =>
  path.join(datastorePath, LEASE_DIR, 'leases', vmId);

/** Parses `sanlock client status`: the lockspaces this daemon is in and the leases each pid holds. */
export function parseSanlockStatus(text: string): {
  lockspaces: { name: string; hostId: number; path: string; removing: boolean }[];
  resources: { lockspace: string; resource: string; pid: number }[];
} {
  const lockspaces: { name: string; hostId: number; path: string; removing: boolean }[] = [];
  const resources: { lockspace: string; resource: string; pid: number }[] = [];
  for (const line of text.split('\n')) {
    const s = /^s ([^:]+):(\d+):(.+):\d+( REM| ADD)?$/.exec(line.trim());
    if (s?.[1] && s[2] && s[3]) {
      lockspaces.push({ name: s[1], hostId: Number(s[2]), path: s[3], removing: s[4] === ' REM' });
      continue;
    }
    const r = /^r ([^:]+):([^:]+):.* p (\d+)/.exec(line.trim());
    if (r?.[1] && r[2] && r[3]) resources.push({ lockspace: r[1], resource: r[2], pid: Number(r[3]) });
  }
  return { lockspaces, resources };
}

export class HostLeases {
  #spec: LockspaceSpec | undefined;
  #state: LockspaceStatus['state'] = 'joining';
  #error: string | undefined;
  #joining: Promise<void> | undefined;

  constructor(
    readonly runDir: string,
    private readonly datastorePath: (name: string) => string,
    private readonly log: Logger,
  ) {}

  /** Runs the sanlock client against this host's daemon. */
  sanlock(args: string[], timeoutMs = 30_000): Promise<SanlockResult> {
    return new Promise((resolve, reject) => {
      const child = spawn('sanlock', args, {
        env: { ...process.env, SANLOCK_RUN_DIR: this.runDir },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (c: Buffer) => (output += c.toString()));
      child.stderr.on('data', (c: Buffer) => (output += c.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.once('close', (code) => {
        clearTimeout(timer);
        const done = [...output.matchAll(/ done (-?\d+)/g)].at(-1)?.[1];
        resolve({ exitCode: code ?? -1, output, result: done === undefined ? undefined : Number(done) });
      });
    });
  }

  /** The command line that starts `argv` as a process registered with this host's sanlock. */
  registeredCommand(
    file: string,
    argv: readonly string[],
  ): { file: string; args: string[]; env: NodeJS.ProcessEnv } {
    return {
      file: 'sanlock',
      // sanlock execs the path as given, without a PATH search.
      args: ['client', 'command', '-c', onPath(file), ...argv],
      env: { ...process.env, SANLOCK_RUN_DIR: this.runDir },
    };
  }

  /** The lockspace this host is in (or joining), as GET /v1/host reports it. */
  status(): LockspaceStatus | undefined {
    const spec = this.#spec;
    if (!spec) return undefined;
    return {
      name: spec.name,
      hostId: spec.hostId,
      datastore: spec.datastore,
      ioTimeoutSeconds: spec.ioTimeoutSeconds,
      state: this.#state,
      ...(this.#error === undefined ? {} : { error: this.#error }),
    };
  }

  /**
   * Reads sanlock's view: a lockspace it dropped (its renewals failed: the storage was lost, and
   * sanlock killed the leased QEMUs) is `lost` until the manager has the host join again.
   */
  async refresh(): Promise<void> {
    const spec = this.#spec;
    if (!spec || this.#state !== 'joined') return;
    const status = await this.sanlock(['client', 'status'], 5_000).catch(() => undefined);
    if (!status || status.exitCode !== 0) return;
    const there = parseSanlockStatus(status.output).lockspaces.find((l) => l.name === spec.name);
    if (!there || there.removing) {
      this.#state = 'lost';
      this.log.warn('sanlock dropped the lockspace: this host lost its lease', { lockspace: spec.name });
    }
  }

  /**
   * Joins the lockspace (idempotent). sanlock takes about 10 I/O timeouts to acquire the host's
   * delta lease; the join goes on in the background and GET /v1/host shows its state.
   */
  async join(spec: LockspaceSpec): Promise<LockspaceStatus> {
    const current = this.#spec;
    if (current && (current.name !== spec.name || current.hostId !== spec.hostId) && this.#state !== 'failed')
      throw new LeasesUnavailable(
        `this host is in lockspace ${current.name} as host ${current.hostId}; leave it first`,
      );
    if (current && this.#state !== 'failed' && this.#state !== 'lost') return this.status()!;
    this.#spec = spec;
    this.#state = 'joining';
    this.#error = undefined;
    this.#joining = this.#join(spec).catch((error: unknown) => {
      this.#state = 'failed';
      this.#error = error instanceof Error ? error.message : String(error);
      this.log.warn('could not join the lockspace', { lockspace: spec.name, error: this.#error });
    });
    return this.status()!;
  }

  async #join(spec: LockspaceSpec): Promise<void> {
    const file = lockspaceFile(this.datastorePath(spec.datastore), spec.name);
    await this.#ensureLeaseFile(file, ['-s', `${spec.name}:0:${file}:0`]);
    const { lockspaces } = parseSanlockStatus((await this.sanlock(['client', 'status'])).output);
    const there = lockspaces.find((l) => l.name === spec.name);
    if (there && !there.removing && there.hostId === spec.hostId) {
      this.#state = 'joined';
      return;
    }
    const added = await this.sanlock(
      [
        'client',
        'add_lockspace',
        '-s',
        `${spec.name}:${spec.hostId}:${file}:0`,
        '-o',
        String(spec.ioTimeoutSeconds),
      ],
      // sanlock waits about 10 I/O timeouts for the host's delta lease.
      (spec.ioTimeoutSeconds * 20 + 30) * 1000,
    );
    if (added.result !== 0 && added.result !== -17)
      throw new Error(`sanlock add_lockspace: ${added.output.trim()}`);
    this.#state = 'joined';
    this.log.info('joined the lockspace', { lockspace: spec.name, hostId: spec.hostId });
  }

  /** Waits for a join in progress (tests, start of a leased VM). */
  async joined(): Promise<void> {
    await this.#joining;
  }

  async leave(): Promise<void> {
    const spec = this.#spec;
    if (!spec) return;
    const { resources } = parseSanlockStatus((await this.sanlock(['client', 'status'])).output);
    const held = resources.filter((r) => r.lockspace === spec.name);
    if (held.length)
      throw new LeasesUnavailable(`VMs hold leases in lockspace ${spec.name}: stop or move them first`);
    const file = lockspaceFile(this.datastorePath(spec.datastore), spec.name);
    await this.sanlock(['client', 'rem_lockspace', '-s', `${spec.name}:${spec.hostId}:${file}:0`]);
    this.#spec = undefined;
    this.#joining = undefined;
  }

  /** Whether a VM with these disks runs leased here: the host is in a lockspace and a disk is on shared storage. */
  leased(disks: readonly { datastore: string }[], datastores: readonly DatastoreConfig[]): boolean {
    if (!this.#spec) return false;
    return disks.some((d) => datastores.find((s) => s.name === d.datastore)?.kind === 'shared');
  }

  #resource(vmId: string): string {
    const spec = this.#spec;
    if (!spec) throw new LeasesUnavailable('this host is in no lockspace');
    const file = vmLeaseFile(this.datastorePath(spec.datastore), vmId);
    return `${spec.name}:${vmId}:${file}:0`;
  }

  /** Acquires the VM's lease for its (registered) QEMU; LeaseHeld when another host holds it. */
  async acquire(vm: { name: string; id: string }, pid: number): Promise<void> {
    await this.joined();
    if (this.#state !== 'joined')
      throw new LeasesUnavailable(
        `this host's lockspace is ${this.#state}: ${this.#error ?? 'no lease can be taken'}`,
      );
    const spec = this.#spec!;
    const file = vmLeaseFile(this.datastorePath(spec.datastore), vm.id);
    await this.#ensureLeaseFile(file, ['-r', `${spec.name}:${vm.id}:${file}:0`]);
    // sanlock answers at once when the holder is alive; when the holder's host stopped renewing,
    // it waits until that host is dead (8 I/O timeouts + 60 s) and then takes the lease.
    const result = await this.sanlock(
      ['client', 'acquire', '-r', this.#resource(vm.id), '-p', String(pid)],
      (spec.ioTimeoutSeconds * 8 + 60 + 60) * 1000,
    );
    if (result.result === 0) return;
    if (result.result !== undefined && HELD_ELSEWHERE.has(result.result))
      throw new LeaseHeld(vm.name, `sanlock ${result.result}`);
    throw new LeasesUnavailable(`sanlock acquire for VM ${vm.name}: ${result.output.trim()}`);
  }

  /**
   * A move's target takes the lease its source gives up once the migration completed: the two
   * hosts see the completion a moment apart, so a held lease is retried for a while (the guest
   * stays paused meanwhile: the handover is part of the move's downtime).
   */
  async acquireHandedOver(vm: { name: string; id: string }, pid: number, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await this.acquire(vm, pid);
      } catch (error) {
        if (!(error instanceof LeaseHeld) || Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }

  /** Gives up the VM's lease while its QEMU lives on (a move's source after the switchover). */
  async release(vm: { name: string; id: string }, pid: number): Promise<void> {
    const result = await this.sanlock(['client', 'release', '-r', this.#resource(vm.id), '-p', String(pid)]);
    if (result.result !== 0)
      this.log.warn('could not release a VM lease', { vm: vm.name, output: result.output.trim() });
  }

  /** Makes a lease file once: an exclusive create (so one agent initialises it), then sanlock's init. */
  async #ensureLeaseFile(file: string, initArgs: string[]): Promise<void> {
    const exists = await stat(file).then(
      (s) => s.size >= LEASE_FILE_BYTES,
      () => false,
    );
    if (exists) return;
    await mkdir(path.dirname(file), { recursive: true });
    let handle;
    try {
      handle = await open(file, 'wx', 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // Another agent makes it: wait until its init has written the whole area.
      for (let i = 0; i < 100; i++) {
        if ((await stat(file)).size >= LEASE_FILE_BYTES) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`lease file ${file} was not initialised by the agent that made it`);
    }
    try {
      await handle.truncate(LEASE_FILE_BYTES - 512);
    } finally {
      await handle.close();
    }
    const init = await this.sanlock(['direct', 'init', ...initArgs]);
    if (init.result !== 0)
      throw new Error(`sanlock direct init ${initArgs.join(' ')}: ${init.output.trim()}`);
  }
}

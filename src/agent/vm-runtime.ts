import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { chmod, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Accelerator, DatastoreLimits, VmState } from '../api/index.js';
import { QmpClient } from '../qmp/index.js';
import type { VmDefinition } from './definitions.js';
import { writeFileAtomic } from './definitions.js';
import { QemuStartFailed, ToolsUnplugTimeout, VmStateConflict } from './errors.js';
import type { Logger } from './logger.js';
import { isAlive, readCmdline, runDaemonizing, signal, waitForExit } from './process.js';
import {
  buildQemuArgv,
  isQemuOfVm,
  TOOLS_DEVICE_ID,
  TOOLS_FILE_NODE,
  TOOLS_NODE,
  toolsBlockdevs,
  toolsDevice,
  vmPaths,
  type GuestBoot,
  type VmPaths,
} from './qemu-argv.js';
import type { HostLeases } from './leases.js';
import { SerialQueue } from './serial-queue.js';
import { createTap, deleteTap } from './vswitches.js';

/*
 * One VM's QEMU process: start (optionally as a paused migration target), graceful and forced
 * stop, and re-attachment after an agent restart. QEMU runs daemonized in its own session, so it
 * outlives the agent; the agent finds it again through the pidfile and holds its QMP connection.
 */

export interface RuntimeHost {
  stateDir: string;
  accelerator: Accelerator;
  /** Kernel, initrd and command line for this VM's guest. */
  boot(def: VmDefinition): Promise<GuestBoot>;
  bridgeOf(vswitch: string): string;
  /** The limits of a datastore of this host (its throttle group's), none when absent. */
  datastoreLimits?: (datastore: string) => DatastoreLimits | undefined;
  log: Logger;
  /** The guest tools ISO of this host, when it has one. */
  toolsIso?: () => Promise<string | undefined>;
  /** The host's leases when this VM must run holding its lease (a cluster host, a disk on shared storage). */
  leasesFor?: (def: VmDefinition) => HostLeases | undefined;
}

/** How long the guest has to release the tools disk on eject (PCIe hot-unplug waits ~5 s itself). */
const TOOLS_UNPLUG_TIMEOUT_MS = 15_000;

export interface StartOptions {
  /** Start as a migration target: `-incoming defer` (the URI is set with migrate-incoming). */
  incoming?: boolean;
  /** Do not run the vCPUs until `cont`. */
  paused?: boolean;
}

/** `file`, made when missing, readable and writable by its owner only. */
async function ownerOnlyFile(file: string): Promise<void> {
  const handle = await open(file, 'a', 0o600);
  try {
    await handle.chmod(0o600);
  } finally {
    await handle.close();
  }
}

/** Kept beside the pidfile: what the agent cannot read back from QEMU. */
const RunRecord = z.object({
  pid: z.number().int(),
  startedAt: z.iso.datetime(),
  accelerator: z.enum(['kvm', 'tcg']),
});
type RunRecord = z.infer<typeof RunRecord>;

const QueryStatus = z.looseObject({ status: z.string() });
const QueryMigrate = z.looseObject({ status: z.string().optional() });

const START_TIMEOUT_MS = 60_000;
const QMP_TIMEOUT_MS = 15_000;
const ACTIVE_MIGRATION = new Set([
  'setup',
  'active',
  'pre-switchover',
  'device',
  'postcopy-active',
  'wait-unplug',
]);

function stateOfStatus(status: string): VmState {
  switch (status) {
    case 'running':
    case 'colo':
      return 'running';
    case 'inmigrate':
      return 'incoming';
    case 'finish-migrate':
      return 'migrating';
    case 'shutdown':
      return 'shutting-down';
    case 'guest-panicked':
    case 'internal-error':
      return 'crashed';
    default:
      // prelaunch, paused, postmigrate, suspended, io-error, watchdog, debug, save-vm, restore-vm
      return 'paused';
  }
}

export class VmRuntime {
  #def: VmDefinition;
  readonly paths: VmPaths;
  #run: RunRecord | undefined;
  #qmp: QmpClient | undefined;
  #transition: 'starting' | 'shutting-down' | undefined;
  /** QEMU said SHUTDOWN (guest poweroff, quit) before going away: an exit, not a crash. */
  #shutdownSeen = false;
  /** QEMU went away unasked; reported until the VM is started or stopped again. */
  #crashed = false;
  readonly #lifecycle = new SerialQueue();
  /** The host's leases while this VM's QEMU runs holding (or waiting for) its lease. */
  #leases: HostLeases | undefined;

  constructor(
    def: VmDefinition,
    private readonly host: RuntimeHost,
  ) {
    this.#def = def;
    this.paths = vmPaths(host.stateDir, def.name);
  }

  get def(): VmDefinition {
    return this.#def;
  }
  get pid(): number | undefined {
    return this.#run?.pid;
  }
  get startedAt(): string | undefined {
    return this.#run?.startedAt;
  }
  /** The accelerator of the running QEMU (the host's choice when stopped). */
  get accelerator(): Accelerator {
    return this.#run?.accelerator ?? this.host.accelerator;
  }
  /** The host's leases when this VM runs leased (leases.ts): a move hands the lease over. */
  get leases(): HostLeases | undefined {
    return this.#run === undefined ? undefined : this.#leases;
  }

  /** True while a QEMU process belongs to this VM (whatever its guest is doing). */
  get active(): boolean {
    return this.#run !== undefined;
  }

  /** Runs `task` after every earlier task of this VM: one lifecycle change at a time. */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    return this.#lifecycle.run(task);
  }

  /** The VM's QMP connection; only while its QEMU runs. */
  qmp(): QmpClient {
    if (this.#qmp === undefined || this.#qmp.closed)
      throw new VmStateConflict(this.#def.name, 'stopped', 'talk to the QEMU of');
    return this.#qmp;
  }

  async state(): Promise<VmState> {
    if (this.#transition) return this.#transition;
    if (this.#run === undefined) return this.#crashed ? 'crashed' : 'stopped';
    if (!(await isAlive(this.#run.pid))) {
      void this.exclusive(() => this.#afterExit('QEMU exited'));
      return this.#shutdownSeen ? 'stopped' : 'crashed';
    }
    try {
      const qmp = this.#qmp?.closed === false ? this.#qmp : await this.#connect(Date.now() + 2_000);
      const { status } = await qmp.execute('query-status', undefined, {
        schema: QueryStatus,
        timeoutMs: QMP_TIMEOUT_MS,
      });
      const state = stateOfStatus(status);
      if (state !== 'running') return state;
      const migration = await qmp.execute('query-migrate', undefined, {
        schema: QueryMigrate,
        timeoutMs: QMP_TIMEOUT_MS,
      });
      return migration.status !== undefined && ACTIVE_MIGRATION.has(migration.status)
        ? 'migrating'
        : 'running';
    } catch (error) {
      this.host.log.warn('QEMU does not answer on QMP', { vm: this.#def.name, error: String(error) });
      return 'crashed';
    }
  }

  /** Starts QEMU. The caller holds exclusive(). */
  async start(options: StartOptions = {}): Promise<void> {
    if (this.#run !== undefined) throw new VmStateConflict(this.#def.name, await this.state(), 'start');
    this.#transition = 'starting';
    this.#crashed = false;
    try {
      await this.#removeRuntimeFiles();
      for (const nic of this.#def.nics) await createTap(nic.tap, this.host.bridgeOf(nic.vswitch));
      const leases = this.host.leasesFor?.(this.#def);
      this.#leases = leases;
      const argv = buildQemuArgv({
        def: this.#def,
        accelerator: this.host.accelerator,
        paths: this.paths,
        boot: await this.host.boot(this.#def),
        toolsIso: this.#def.toolsDisk ? await this.host.toolsIso?.() : undefined,
        ...(this.host.datastoreLimits ? { datastoreLimits: this.host.datastoreLimits } : {}),
        ...options,
        // A leased VM's vCPUs wait for its lease.
        ...(leases ? { daemonize: false, paused: true } : {}),
      });
      // QEMU sets umask 027 when it daemonizes: the logs it appends to are made here, owner-only,
      // and what it makes itself (pidfile, sockets) is corrected once it runs.
      for (const log of [this.paths.console, this.paths.qemuLog]) await ownerOnlyFile(log);
      let pid: number;
      if (leases) pid = await this.#startRegistered(leases, argv);
      else {
        try {
          await runDaemonizing('qemu-system-x86_64', argv, START_TIMEOUT_MS);
        } catch (error) {
          throw new QemuStartFailed(this.#def.name, (error as { stderr?: string }).stderr ?? String(error));
        }
        pid = Number((await readFile(this.paths.pidfile, 'utf8')).trim());
      }
      for (const made of [this.paths.pidfile, this.paths.qmp, this.paths.qga])
        await chmod(made, 0o600).catch(() => undefined);
      this.#run = { pid, startedAt: new Date().toISOString(), accelerator: this.host.accelerator };
      await writeFileAtomic(this.#runFile(), `${JSON.stringify(this.#run)}\n`);
      const qmp = await this.#connect(Date.now() + 10_000);
      if (leases && !options.incoming) {
        // A move's target takes the lease at the switchover instead (migration/incoming.ts).
        await leases.acquire(this.#def, pid);
        if (!options.paused) await qmp.execute('cont', undefined, { timeoutMs: QMP_TIMEOUT_MS });
      }
      this.host.log.info('VM started', { vm: this.#def.name, pid, leased: leases !== undefined, ...options });
    } catch (error) {
      if (this.#run) signal(this.#run.pid, 'SIGKILL');
      if (this.#run) await waitForExit(this.#run.pid, 10_000);
      await this.#cleanUp();
      throw error;
    } finally {
      this.#transition = undefined;
    }
  }

  /**
   * Starts QEMU in the foreground of its own session as a process registered with the host's
   * sanlock (leases.ts); resolves with its pid once it wrote its pidfile, or fails with its output.
   */
  async #startRegistered(leases: HostLeases, argv: string[]): Promise<number> {
    const command = leases.registeredCommand('qemu-system-x86_64', argv);
    const log = openSync(this.paths.qemuLog, 'a', 0o600);
    let exited = false;
    let pid: number | undefined;
    try {
      const child = spawn(command.file, command.args, {
        detached: true,
        stdio: ['ignore', log, log],
        env: command.env,
      });
      child.once('exit', () => (exited = true));
      child.once('error', () => (exited = true));
      child.unref();
      pid = child.pid;
    } finally {
      closeSync(log);
    }
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      const written = Number((await readFile(this.paths.pidfile, 'utf8').catch(() => '')).trim());
      if (pid !== undefined && written === pid) return pid;
      if (exited || pid === undefined || Date.now() > deadline) {
        if (pid !== undefined) signal(pid, 'SIGKILL');
        const output = await readFile(this.paths.qemuLog, 'utf8').catch(() => '');
        throw new QemuStartFailed(this.#def.name, output.slice(-2000));
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** ACPI power button, then force after `timeoutSeconds`. The caller holds exclusive(). */
  async shutdown(timeoutSeconds: number): Promise<void> {
    this.#crashed = false;
    const run = this.#run;
    if (run === undefined) return;
    this.#transition = 'shutting-down';
    try {
      await this.qmp()
        .execute('system_powerdown', undefined, { timeoutMs: QMP_TIMEOUT_MS })
        .catch((error: unknown) =>
          this.host.log.warn('system_powerdown failed', { vm: this.#def.name, error: String(error) }),
        );
      if (await waitForExit(run.pid, timeoutSeconds * 1000)) {
        this.host.log.info('VM powered off', { vm: this.#def.name });
        await this.#cleanUp();
      } else {
        this.host.log.warn('guest ignored the power button; forcing it off', {
          vm: this.#def.name,
          timeoutSeconds,
        });
        await this.forceStop();
      }
    } finally {
      this.#transition = undefined;
    }
  }

  /** `quit`, then SIGKILL if QEMU lingers. The caller holds exclusive(). */
  async forceStop(): Promise<void> {
    this.#crashed = false;
    const run = this.#run;
    if (run === undefined) return;
    await this.#qmp?.execute('quit', undefined, { timeoutMs: 5_000 }).catch(() => undefined);
    if (!(await waitForExit(run.pid, 10_000))) {
      this.host.log.warn('QEMU ignored quit; killing it', { vm: this.#def.name, pid: run.pid });
      signal(run.pid, 'SIGKILL');
      await waitForExit(run.pid, 10_000);
    }
    this.host.log.info('VM stopped', { vm: this.#def.name });
    await this.#cleanUp();
  }

  /** Hot-plugs the tools ISO as a read-only virtio disk. The caller holds exclusive(). */
  async plugTools(iso: string): Promise<void> {
    const qmp = this.qmp();
    const [file, raw] = toolsBlockdevs(iso);
    await qmp.execute('blockdev-add', file);
    try {
      await qmp.execute('blockdev-add', raw);
      await qmp.execute('device_add', toolsDevice());
    } catch (error) {
      await qmp.execute('blockdev-del', { 'node-name': TOOLS_NODE }).catch(() => undefined);
      await qmp.execute('blockdev-del', { 'node-name': TOOLS_FILE_NODE }).catch(() => undefined);
      throw error;
    }
  }

  /** Unplugs the tools disk: the guest is asked, QEMU reports DEVICE_DELETED when it let go. */
  async unplugTools(): Promise<void> {
    const qmp = this.qmp();
    const deleted = qmp.waitForEvent('DEVICE_DELETED', {
      timeoutMs: TOOLS_UNPLUG_TIMEOUT_MS,
      match: (event) => event.data.device === TOOLS_DEVICE_ID,
    });
    await qmp.execute('device_del', { id: TOOLS_DEVICE_ID });
    try {
      await deleted;
    } catch {
      throw new ToolsUnplugTimeout(this.#def.name, TOOLS_UNPLUG_TIMEOUT_MS / 1000);
    }
    await qmp.execute('blockdev-del', { 'node-name': TOOLS_NODE });
    await qmp.execute('blockdev-del', { 'node-name': TOOLS_FILE_NODE });
  }

  /** The definition with the tools disk inserted or not (already plugged or unplugged). */
  setToolsDisk(def: VmDefinition): void {
    if (def.id !== this.#def.id) throw new VmStateConflict(def.name, 'defined', 'replace');
    this.#def = def;
  }

  /** A live storage move put these disks in other files: the running QEMU already uses them. */
  relocateDisks(def: VmDefinition): void {
    const same = def.id === this.#def.id && def.disks.every((d, i) => d.id === this.#def.disks[i]?.id);
    if (!same) throw new VmStateConflict(def.name, 'running', 'change more than disk locations of');
    this.#def = def;
  }

  /** After an agent start: adopt a QEMU of this VM that is still running, or tidy up after one that is not. */
  async attach(): Promise<void> {
    const pid = Number((await readFile(this.paths.pidfile, 'utf8').catch(() => '')).trim());
    const ours = pid > 0 && (await isAlive(pid)) && isQemuOfVm(await readCmdline(pid), this.#def, this.paths);
    if (!ours) {
      await this.#cleanUp();
      return;
    }
    const record = await readFile(this.#runFile(), 'utf8')
      .then((text) => RunRecord.parse(JSON.parse(text)))
      .catch(() => undefined);
    this.#leases = this.host.leasesFor?.(this.#def);
    this.#run =
      record?.pid === pid
        ? record
        : { pid, startedAt: new Date().toISOString(), accelerator: this.host.accelerator };
    try {
      await this.#connect(Date.now() + 10_000);
      this.host.log.info('re-attached to running VM', { vm: this.#def.name, pid });
    } catch (error) {
      this.host.log.warn('running VM does not answer on QMP', {
        vm: this.#def.name,
        pid,
        error: String(error),
      });
    }
  }

  /** Lets go of QEMU without touching it (agent exit). */
  async detach(): Promise<void> {
    const qmp = this.#qmp;
    this.#qmp = undefined;
    await qmp?.close();
  }

  async #connect(retryUntilMs: number): Promise<QmpClient> {
    const qmp = await QmpClient.connect(this.paths.qmp, { timeoutMs: QMP_TIMEOUT_MS, retryUntilMs });
    this.#qmp = qmp;
    this.#shutdownSeen = false;
    qmp.onEvent((event) => {
      if (event.event === 'SHUTDOWN') this.#shutdownSeen = true;
    });
    qmp.onClose((error) => {
      // QEMU went away by itself (guest poweroff, crash): tidy up unless a stop is already doing it.
      if (error === undefined || this.#qmp !== qmp) return;
      this.#qmp = undefined;
      void this.exclusive(() => this.#afterExit('QMP connection closed'));
    });
    return qmp;
  }

  async #afterExit(reason: string): Promise<void> {
    const run = this.#run;
    if (run === undefined) return;
    if (!(await waitForExit(run.pid, 2_000))) {
      // QEMU is alive but the socket broke: reconnect rather than declare it gone.
      await this.#connect(Date.now() + 5_000).catch(() => undefined);
      return;
    }
    if (this.#shutdownSeen) this.host.log.info('VM exited', { vm: this.#def.name, pid: run.pid, reason });
    else {
      this.#crashed = true;
      // QEMU's last words, if it had any, are in its -D log.
      const qemuLog = await readFile(this.paths.qemuLog, 'utf8').catch(() => '');
      this.host.log.error('VM crashed', {
        vm: this.#def.name,
        pid: run.pid,
        reason,
        qemuLog: qemuLog.slice(-2000),
      });
    }
    await this.#cleanUp();
  }

  async #cleanUp(): Promise<void> {
    await this.detach();
    this.#run = undefined;
    for (const nic of this.#def.nics) {
      await deleteTap(nic.tap).catch((error: unknown) =>
        this.host.log.warn('cannot delete tap', { vm: this.#def.name, tap: nic.tap, error: String(error) }),
      );
    }
    await this.#removeRuntimeFiles();
  }

  async #removeRuntimeFiles(): Promise<void> {
    for (const file of [this.paths.pidfile, this.paths.qmp, this.paths.qga, this.#runFile()])
      await rm(file, { force: true });
  }

  #runFile(): string {
    return path.join(path.dirname(this.paths.pidfile), `${this.#def.name}.run.json`);
  }
}

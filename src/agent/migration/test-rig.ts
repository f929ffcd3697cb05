// Support for the migration lab tests (not a test itself): QEMUs of the guest image started
// directly (optionally inside a network namespace), the guest agent, and one migration attempt
// between two of them driven by the engine's source and target classes.
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { MigrationPlan } from '../../api/index.js';
import { hostDn } from '../../pki/index.js';
import {
  findGuestImage,
  guestKernelCommandLine,
  GUEST_READY_MARKER,
  GUEST_WORKLOADS,
} from '../../guest/index.js';
import { QmpClient } from '../../qmp/index.js';
import { guestExec } from '../guest-ops.js';
import { QgaClient } from '../qga.js';
import { DEFAULT_CONVERGENCE, type ConvergenceConfig } from './convergence.js';
import { IncomingMigration } from './incoming.js';
import { OutgoingMigration } from './outgoing.js';
import { PortAllocator } from './ports.js';
import { BlockJobs, StatusInfo } from './qemu-replies.js';
import { chooseTuning, migrationPlan, type TuningInput } from './tuning.js';

const MiB = 1024 * 1024;
export const MEMORY_MIB = 512;
const DISK_BYTES = 1024 * MiB;

export interface Qemu {
  name: string;
  child: ChildProcess;
  qmp: QmpClient;
  disk: string;
  qgaPath: string;
}

export interface AttemptOptions {
  convergence?: Partial<ConvergenceConfig>;
  /** Overrides of the tuned plan (e.g. a bandwidth cap that keeps the memory copy going). */
  plan?: Partial<MigrationPlan>;
  stallAfterMs?: number;
  targetDiskDir?: string;
  /** The target's network namespace and its address there (loopback when absent). */
  targetNetns?: string;
  address?: string;
  /** Prefix for host commands of the source side (its network namespace). */
  sourceHostCommand?: string[];
  /**
   * TLS move: each side's x509 directory (tls.ts) and the source's host name, the one certificate
   * the target accepts (hostDn).
   */
  tls?: { source: string; target: string; sourceHost: string };
  /** Runs once the target is prepared, before the source starts (e.g. a foreign NBD client). */
  beforeStart?: (incoming: IncomingMigration, nbd: { host: string; port: number }) => Promise<void>;
  /**
   * Holds the disk mirror in its phase: its job runs at this speed (block-job-set-speed as soon
   * as it exists), so a fault surely lands in it. On loopback ~100 MiB mirror in under 250 ms.
   */
  mirrorBytesPerSecond?: number;
}

/** A mirror that lasts: ~100 MiB of the source's data at 16 MiB/s take ~6 s, a fault strikes in the first. */
export const SLOW_MIRROR = { mirrorBytesPerSecond: 16 * MiB } satisfies AttemptOptions;

/**
 * A memory copy that is still running seconds after it started, for faults injected into it. A
 * downtime limit of 0 alone does not do it: QEMU 7.2 completes as soon as a pass leaves nothing
 * pending before its next dirty sync, which a fast host reaches within a second. Capped at
 * 2 MiB/s, the first pass over the guest's ~150 MiB of non-zero memory takes over a minute. One
 * stream, as tuning.ts plans for any capped link: QEMU 7.2 with multifd under a bandwidth cap
 * stays `cancelling` for good after migrate_cancel.
 */
export const SLOW_MEMORY_COPY = {
  plan: { maxBandwidthBytesPerSecond: 2 * MiB, multifdChannels: 0 },
  convergence: { targetDowntimeMs: 0, maxDowntimeMs: 0, allowThrottle: false },
} satisfies AttemptOptions;

/** One end of a veth pair in a network namespace of its own. */
export interface LinkEnd {
  ns: string;
  dev: string;
  ip: string;
}

const ipCommand = (...args: string[]): void => {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
};

/** Two network namespaces joined by one veth pair (a /30 between them), both ends up. */
export function linkNamespaces(a: LinkEnd, b: LinkEnd): void {
  ipCommand('netns', 'add', a.ns);
  ipCommand('netns', 'add', b.ns);
  ipCommand('link', 'add', a.dev, 'type', 'veth', 'peer', 'name', b.dev);
  for (const end of [a, b]) {
    ipCommand('link', 'set', end.dev, 'netns', end.ns);
    ipCommand('-n', end.ns, 'addr', 'add', `${end.ip}/30`, 'dev', end.dev);
    ipCommand('-n', end.ns, 'link', 'set', 'lo', 'up');
    ipCommand('-n', end.ns, 'link', 'set', end.dev, 'up');
  }
}

/** Egress of `end` limited by a token bucket (tc tbf), or back to the default qdisc. */
export function limitEgress(end: LinkEnd, rate: string | undefined, burst = '64kb'): void {
  const args = ['-n', end.ns, 'qdisc', rate ? 'replace' : 'del', 'dev', end.dev, 'root'];
  execFileSync('tc', rate ? [...args, 'tbf', 'rate', rate, 'burst', burst, 'latency', '50ms'] : args, {
    stdio: 'ignore',
  });
}

export interface Attempt {
  target: Qemu;
  incoming: IncomingMigration;
  outgoing: OutgoingMigration;
  done: Promise<void>;
  release: () => void;
}

export class MigrationRig {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'sb-mig-'));
  readonly #ports: PortAllocator;
  readonly #children = new Set<ChildProcess>();
  readonly #stderr = new Map<string, () => string>();
  readonly logs: string[] = [];
  readonly log = (msg: string, fields?: Record<string, unknown>): void => {
    this.logs.push(`${msg} ${JSON.stringify(fields ?? {})}`);
  };

  constructor(portRange: readonly [number, number]) {
    this.#ports = new PortAllocator(portRange);
  }

  async startQemu(
    name: string,
    o: { incoming?: boolean; diskDir?: string; netns?: string } = {},
  ): Promise<Qemu> {
    const image = await findGuestImage();
    const disk = path.join(o.diskDir ?? this.dir, `${name}.qcow2`);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, String(DISK_BYTES)]);
    const qmpPath = path.join(this.dir, `${name}.qmp`);
    const qgaPath = path.join(this.dir, `${name}.qga`);
    const argv = [
      ...(o.netns ? ['netns', 'exec', o.netns, 'qemu-system-x86_64'] : []),
      '-machine',
      'pc-q35-7.2',
      '-accel',
      'tcg,thread=multi',
      '-cpu',
      'Nehalem',
      '-smp',
      '1',
      '-m',
      `${MEMORY_MIB}M`,
      '-nodefaults',
      '-display',
      'none',
      '-kernel',
      image.kernel,
      '-initrd',
      image.initrd,
      '-append',
      guestKernelCommandLine({ hostname: 'mig' }),
      '-blockdev',
      JSON.stringify({ driver: 'file', 'node-name': 'file-d0', filename: disk }),
      '-blockdev',
      JSON.stringify({ driver: 'qcow2', 'node-name': 'disk-d0', file: 'file-d0' }),
      '-device',
      JSON.stringify({ driver: 'virtio-blk-pci', id: 'virtio-disk-d0', drive: 'disk-d0' }),
      '-device',
      'virtio-serial-pci,id=virtio-serial0',
      '-chardev',
      `socket,id=qga0,path=${qgaPath},server=on,wait=off`,
      '-device',
      'virtserialport,bus=virtio-serial0.0,chardev=qga0,name=org.qemu.guest_agent.0',
      '-serial',
      `file:${path.join(this.dir, `${name}.console.log`)}`,
      '-qmp',
      `unix:${qmpPath},server=on,wait=off`,
      ...(o.incoming ? ['-incoming', 'defer', '-S'] : []),
    ];
    // `ip netns exec` execs QEMU in place, so the child's pid is QEMU's.
    const child = spawn(o.netns ? 'ip' : 'qemu-system-x86_64', argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#children.add(child);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    this.#stderr.set(name, () => stderr);
    child.on('exit', () => this.#children.delete(child));
    const qmp = await QmpClient.connect(qmpPath, { retryUntilMs: Date.now() + 30_000 });
    return { name, child, qmp, disk, qgaPath };
  }

  async kill(q: Qemu | undefined): Promise<void> {
    if (!q || q.child.exitCode !== null || q.child.signalCode !== null) return;
    const exited = new Promise((resolve) => q.child.once('exit', resolve));
    q.child.kill('SIGKILL');
    await exited;
    await q.qmp.close();
  }

  async waitReady(q: Qemu, timeoutMs = 120_000): Promise<void> {
    const file = this.consoleFile(q);
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (existsSync(file) && readFileSync(file, 'utf8').includes(GUEST_READY_MARKER)) return;
      await sleep(250);
    }
    throw new Error(`${q.name} did not boot within ${timeoutMs} ms`);
  }

  async guest(q: Qemu, command: string[], detach = false) {
    // Right after a migration the guest agent has sometimes missed the first sync: ask again.
    let qga: QgaClient | undefined;
    for (let attempt = 1; qga === undefined; attempt++) {
      qga = await QgaClient.open(q.qgaPath, q.name, 20_000).catch((error: unknown) => {
        if (attempt >= 3) throw new Error(`${String(error)}\n${this.consoleTail(q)}`);
        return undefined;
      });
    }
    try {
      return await guestExec(qga, { vm: q.name, command, timeoutSeconds: 120, detach });
    } finally {
      qga.close();
    }
  }

  /** What a QEMU printed on stderr (its last 4 KB): where it says why it died. */
  qemuStderr(q: Qemu): string {
    return `stderr of ${q.name}: ${this.#stderr.get(q.name)?.() ?? ''}`;
  }

  consoleFile(q: Qemu): string {
    return path.join(this.dir, `${q.name}.console.log`);
  }

  /** The end of a guest's serial console, for failure messages (a panic shows up there). */
  consoleTail(q: Qemu, lines = 25): string {
    const file = this.consoleFile(q);
    if (!existsSync(file)) return `(no console log for ${q.name})`;
    const tail = readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines);
    return [`last console lines of ${q.name}:`, ...tail.map((l) => `  | ${l}`)].join('\n');
  }

  async uptime(q: Qemu): Promise<number> {
    const r = await this.guest(q, ['/bin/cat', '/proc/uptime']);
    return Number((r.stdout ?? '').split(' ')[0]);
  }

  /** A booted source with records to verify (/data/before) and ~100 MiB of data for the mirror. */
  async bootSource(name: string, netns?: string): Promise<Qemu> {
    const source = await this.startQemu(name, netns ? { netns } : {});
    await this.waitReady(source);
    await this.guest(source, [
      GUEST_WORKLOADS.diskWriter,
      'write',
      '--file',
      '/data/before',
      '--rate-kib',
      '0',
      '--count',
      '2000',
    ]);
    await this.guest(source, ['/bin/dd', 'if=/dev/urandom', 'of=/data/fill', 'bs=1M', 'count=100']);
    await this.guest(source, ['/bin/sync']);
    return source;
  }

  /** The agent's plan for the rig's host (2 cores, 1 vCPU guest), with what a test knows more. */
  plan(known: Pick<TuningInput, 'linkBitsPerSecond' | 'compression'> = {}): MigrationPlan {
    const t = chooseTuning({
      accelerator: 'tcg',
      hostCpus: 2,
      hostMemoryBytes: 24 * 1024 * MiB,
      vcpus: 1,
      memoryBytes: MEMORY_MIB * MiB,
      diskCount: 1,
      allowPostcopy: false,
      ...known,
    });
    return migrationPlan(t, false);
  }

  async attempt(source: Qemu, o: AttemptOptions = {}): Promise<Attempt> {
    const address = o.address ?? '127.0.0.1';
    const target = await this.startQemu(`target${Date.now()}`, {
      incoming: true,
      ...(o.targetDiskDir ? { diskDir: o.targetDiskDir } : {}),
      ...(o.targetNetns ? { netns: o.targetNetns } : {}),
    });
    const nbd = await this.#ports.allocate(o.targetNetns ? '127.0.0.1' : address);
    const stream = await this.#ports.allocate(o.targetNetns ? '127.0.0.1' : address);
    const plan = { ...this.plan(), ...o.plan };
    const incoming = new IncomingMigration({
      qmp: target.qmp,
      disks: [{ diskId: 'd0', nodeName: 'disk-d0' }],
      address,
      nbdPort: nbd.port,
      migrationPort: stream.port,
      plan,
      tls: o.tls && { dir: o.tls.target, peerDn: hostDn(o.tls.sourceHost) },
      log: this.log,
    });
    await incoming.prepare();
    if (o.beforeStart) {
      try {
        await o.beforeStart(incoming, { host: address, port: nbd.port });
      } catch (error) {
        await this.kill(target);
        nbd.release();
        stream.release();
        throw error;
      }
    }
    const outgoing = new OutgoingMigration({
      migrationId: crypto.randomUUID(),
      qmp: source.qmp,
      disks: [
        {
          diskId: 'd0',
          nodeName: 'disk-d0',
          exportName: incoming.exports[0]?.exportName ?? '',
          imagePath: source.disk,
        },
      ],
      nbd: { host: address, port: nbd.port },
      migrationUri: incoming.migrationUri,
      plan,
      convergence: { ...DEFAULT_CONVERGENCE, ...o.convergence },
      memoryBytes: MEMORY_MIB * MiB,
      stallAfterMs: o.stallAfterMs ?? 30_000,
      log: this.log,
      ...(o.sourceHostCommand ? { hostCommand: o.sourceHostCommand } : {}),
      tlsDir: o.tls?.source,
    });
    const done = outgoing.run();
    done.catch(() => undefined);
    if (o.mirrorBytesPerSecond) await this.#slowMirror(source.qmp, outgoing, o.mirrorBytesPerSecond);
    return {
      target,
      incoming,
      outgoing,
      done,
      release: () => {
        nbd.release();
        stream.release();
      },
    };
  }

  /** Sets the mirror job's speed the moment it exists (polled every 5 ms; it ends within ~250 ms otherwise). */
  async #slowMirror(qmp: QmpClient, o: OutgoingMigration, speed: number): Promise<void> {
    const until = Date.now() + 60_000;
    for (;;) {
      const jobs = await qmp.execute('query-block-jobs', undefined, { schema: BlockJobs });
      const mirror = jobs.find((j) => j.type === 'mirror');
      if (mirror) {
        await qmp.execute('block-job-set-speed', { device: mirror.device, speed });
        return;
      }
      if (['copy-memory', 'switchover', 'clean-up', 'done'].includes(o.phase) || Date.now() > until)
        throw new Error(`no mirror job to slow down (at ${o.phase})`);
      await sleep(5);
    }
  }

  async waitPhase(o: OutgoingMigration, phase: string, timeoutMs = 60_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (o.phase !== phase) {
      if (Date.now() > until) throw new Error(`phase ${phase} not reached (at ${o.phase})`);
      await sleep(20);
    }
  }

  /**
   * Strikes `fault` in a verified phase: polls the move every 20 ms until it is in `phase` with
   * that phase's copy under way (mirror: bytes copied, not yet in sync; memory: bytes sent), and
   * strikes at once. Returns the phase the move was in right after the strike; the caller asserts
   * it and that the failure names the same phase.
   */
  async strikeInPhase(
    o: OutgoingMigration,
    phase: 'mirror-disks' | 'copy-memory',
    fault: () => unknown,
    timeoutMs = 120_000,
  ): Promise<string> {
    const order = ['validate', 'prepare', 'mirror-disks', 'copy-memory'];
    const until = Date.now() + timeoutMs;
    for (;;) {
      const p = o.tracker.progress;
      const underWay =
        o.phase === phase &&
        (phase === 'copy-memory'
          ? (p.memory?.bytesTransferred ?? 0) > 0
          : p.disks.some((d) => d.bytesDone > 0) && !p.disks.every((d) => d.ready));
      if (underWay) {
        await fault();
        return o.phase;
      }
      if (!order.slice(0, order.indexOf(phase) + 1).includes(o.phase))
        throw new Error(`the move got to ${o.phase} before ${phase} was under way`);
      if (Date.now() > until)
        throw new Error(`${phase} not under way within ${timeoutMs} ms (at ${o.phase})`);
      await sleep(20);
    }
  }

  /** Waits until the mirrors have copied at least `bytes` (and are not yet in sync). */
  async waitMirrorBytes(o: OutgoingMigration, bytes: number, timeoutMs = 60_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const disks = o.tracker.progress.disks;
      const done = disks.reduce((s, d) => s + d.bytesDone, 0);
      if (o.phase !== 'mirror-disks') throw new Error(`the mirror ended before ${bytes} bytes (${o.phase})`);
      if (done >= bytes) {
        assert.ok(!disks.every((d) => d.ready), 'the mirror must still be copying');
        return;
      }
      if (Date.now() > until) throw new Error(`the mirror copied only ${done} bytes`);
      await sleep(50);
    }
  }

  /** Running, no mirror job or NBD node left, the guest answers and its records verify. */
  async assertSourceUnharmed(source: Qemu): Promise<void> {
    const status = await source.qmp.execute('query-status', undefined, { schema: StatusInfo });
    assert.equal(status.status, 'running');
    const jobs = await source.qmp.execute('query-block-jobs', undefined, { schema: BlockJobs });
    assert.deepEqual(jobs, []);
    const nodes = z
      .array(z.looseObject({ 'node-name': z.string() }))
      .parse(await source.qmp.execute('query-named-block-nodes'));
    assert.ok(!nodes.some((n) => n['node-name'].startsWith('mig-')), 'no NBD node left behind');
    const verify = await this.guest(source, [GUEST_WORKLOADS.diskWriter, 'verify', '--file', '/data/before']);
    assert.equal(verify.exitCode, 0, verify.stderr);
  }

  async close(): Promise<void> {
    for (const child of this.#children) child.kill('SIGKILL');
    await sleep(300);
    if (!process.env.SB_MIG_KEEP) rmSync(this.dir, { recursive: true, force: true });
    if (process.env.SB_MIG_LOG) console.log(this.logs.join('\n'));
  }
}

// The migration engine's QMP sequences against two real QEMUs of the guest image on loopback:
// faults and cancels first (the source must come out of each unharmed), then a full live move
// of a guest that writes checksummed records to its disk and dirties memory meanwhile.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { MigrationPlan } from '../../api/index.js';
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
import { MigrationCancelled, MigrationFailed } from './errors.js';
import { IncomingMigration } from './incoming.js';
import { OutgoingMigration } from './outgoing.js';
import { PortAllocator } from './ports.js';
import { BlockJobs, StatusInfo } from './qemu-replies.js';
import { chooseTuning } from './tuning.js';

const MiB = 1024 * 1024;
const MEMORY_MIB = 512;
const DISK_BYTES = 1024 * MiB;
const dir = mkdtempSync(path.join(tmpdir(), 'sb-mig-'));
const ports = new PortAllocator([47200, 47299]);
const children = new Set<ChildProcess>();
const mounted: string[] = [];

interface Qemu {
  name: string;
  child: ChildProcess;
  qmp: QmpClient;
  disk: string;
  qgaPath: string;
}

async function startQemu(name: string, incoming: boolean, diskDir = dir): Promise<Qemu> {
  const image = await findGuestImage();
  const disk = path.join(diskDir, `${name}.qcow2`);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, String(DISK_BYTES)]);
  const qmpPath = path.join(dir, `${name}.qmp`);
  const qgaPath = path.join(dir, `${name}.qga`);
  const argv = [
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
    `file:${path.join(dir, `${name}.console.log`)}`,
    '-qmp',
    `unix:${qmpPath},server=on,wait=off`,
    ...(incoming ? ['-incoming', 'defer', '-S'] : []),
  ];
  const child = spawn('qemu-system-x86_64', argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  const qmp = await QmpClient.connect(qmpPath, { retryUntilMs: Date.now() + 30_000 });
  return { name, child, qmp, disk, qgaPath };
}

async function kill(q: Qemu | undefined): Promise<void> {
  if (!q || q.child.exitCode !== null || q.child.signalCode !== null) return;
  const exited = new Promise((resolve) => q.child.once('exit', resolve));
  q.child.kill('SIGKILL');
  await exited;
  await q.qmp.close();
}

async function waitReady(name: string, timeoutMs = 120_000): Promise<void> {
  const file = path.join(dir, `${name}.console.log`);
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (existsSync(file) && readFileSync(file, 'utf8').includes(GUEST_READY_MARKER)) return;
    await sleep(250);
  }
  throw new Error(`${name} did not boot within ${timeoutMs} ms`);
}

async function guest(q: Qemu, command: string[], detach = false) {
  // Right after a migration the guest agent has sometimes missed the first sync: ask again.
  let qga: QgaClient | undefined;
  for (let attempt = 1; qga === undefined; attempt++) {
    qga = await QgaClient.open(q.qgaPath, q.name, 20_000).catch((error: unknown) => {
      if (attempt >= 3) throw error;
      return undefined;
    });
  }
  try {
    return await guestExec(qga, { vm: q.name, command, timeoutSeconds: 120, detach });
  } finally {
    qga.close();
  }
}

async function uptime(q: Qemu): Promise<number> {
  const r = await guest(q, ['/bin/cat', '/proc/uptime']);
  return Number((r.stdout ?? '').split(' ')[0]);
}

function plan(overrides: Partial<MigrationPlan> = {}): MigrationPlan {
  const t = chooseTuning({
    accelerator: 'tcg',
    hostCpus: 2,
    hostMemoryBytes: 24 * 1024 * MiB,
    vcpus: 1,
    memoryBytes: MEMORY_MIB * MiB,
    diskCount: 1,
    allowPostcopy: false,
  });
  return { ...t, postcopy: false, ...overrides };
}

const logs: string[] = [];
const log = (msg: string, fields?: Record<string, unknown>): void => {
  logs.push(`${msg} ${JSON.stringify(fields ?? {})}`);
};

interface Attempt {
  target: Qemu;
  incoming: IncomingMigration;
  outgoing: OutgoingMigration;
  done: Promise<void>;
  release: () => void;
}

async function attempt(
  convergence: Partial<ConvergenceConfig> = {},
  stallAfterMs = 30_000,
  targetDiskDir = dir,
): Promise<Attempt> {
  const target = await startQemu(`target${Date.now()}`, true, targetDiskDir);
  const nbd = await ports.allocate('127.0.0.1');
  const stream = await ports.allocate('127.0.0.1');
  const p = plan();
  const incoming = new IncomingMigration({
    qmp: target.qmp,
    disks: [{ diskId: 'd0', nodeName: 'disk-d0' }],
    address: '127.0.0.1',
    nbdPort: nbd.port,
    migrationPort: stream.port,
    plan: p,
    log,
  });
  await incoming.prepare();
  const outgoing = new OutgoingMigration({
    migrationId: crypto.randomUUID(),
    qmp: source.qmp,
    disks: [{ diskId: 'd0', nodeName: 'disk-d0', exportName: incoming.exports[0]?.exportName ?? '' }],
    nbd: { host: '127.0.0.1', port: nbd.port },
    migrationUri: incoming.migrationUri,
    plan: p,
    convergence: { ...DEFAULT_CONVERGENCE, ...convergence },
    memoryBytes: MEMORY_MIB * MiB,
    stallAfterMs,
    log,
  });
  const done = outgoing.run();
  done.catch(() => undefined);
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

async function waitPhase(o: OutgoingMigration, phase: string, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (o.phase !== phase) {
    if (Date.now() > until) throw new Error(`phase ${phase} not reached (at ${o.phase})`);
    await sleep(20);
  }
}

async function assertSourceUnharmed(): Promise<void> {
  const status = await source.qmp.execute('query-status', undefined, { schema: StatusInfo });
  assert.equal(status.status, 'running');
  const jobs = await source.qmp.execute('query-block-jobs', undefined, { schema: BlockJobs });
  assert.deepEqual(jobs, []);
  const nodes = z
    .array(z.looseObject({ 'node-name': z.string() }))
    .parse(await source.qmp.execute('query-named-block-nodes'));
  assert.ok(!nodes.some((n) => n['node-name'].startsWith('mig-')), 'no NBD node left behind');
  // The guest still answers and its disk records are intact.
  const verify = await guest(source, [GUEST_WORKLOADS.diskWriter, 'verify', '--file', '/data/before']);
  assert.equal(verify.exitCode, 0, verify.stderr);
}

let source: Qemu;

before(async () => {
  source = await startQemu('source', false);
  // Data below the filesystem's first blocks, so the mirror has real bytes to copy.
  await waitReady('source');
  await guest(source, [
    GUEST_WORKLOADS.diskWriter,
    'write',
    '--file',
    '/data/before',
    '--rate-kib',
    '0',
    '--count',
    '2000',
  ]);
  await guest(source, ['/bin/dd', 'if=/dev/urandom', 'of=/data/fill', 'bs=1M', 'count=100']);
  await guest(source, ['/bin/sync']);
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await sleep(300);
  for (const m of mounted) execFileSync('umount', [m]);
  await source?.qmp.close();
  rmSync(dir, { recursive: true, force: true });
  if (process.env.SB_MIG_LOG) console.log(logs.join('\n'));
});

test(
  'cancel during the disk mirror: source unharmed, mirrors and NBD nodes gone',
  { timeout: 300_000 },
  async () => {
    const a = await attempt();
    try {
      await waitPhase(a.outgoing, 'mirror-disks');
      await sleep(300);
      a.outgoing.cancel();
      a.outgoing.cancel(); // twice is harmless
      await assert.rejects(a.done, MigrationCancelled);
      await assertSourceUnharmed();
    } finally {
      await kill(a.target);
      a.release();
    }
  },
);

test('target QEMU killed mid-mirror: the move fails, the source runs on', { timeout: 300_000 }, async () => {
  const a = await attempt();
  try {
    await waitPhase(a.outgoing, 'mirror-disks');
    await sleep(300);
    await kill(a.target);
    await assert.rejects(a.done, MigrationFailed);
    await assertSourceUnharmed();
  } finally {
    a.release();
  }
});

test(
  'target datastore full during the mirror: the move fails, the source runs on',
  { timeout: 300_000 },
  async () => {
    // A 48 MiB tmpfs as the target's datastore: the mirror's ~100 MiB of data cannot fit.
    const full = path.join(dir, 'full');
    mkdirSync(full);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', full]);
    mounted.push(full);
    const a = await attempt({}, 30_000, full);
    try {
      const error = await a.done.then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(error instanceof MigrationFailed, String(error));
      assert.equal(error.phase, 'mirror-disks');
      assert.match(error.message, /space|I\/O|error/i);
      await assertSourceUnharmed();
    } finally {
      await kill(a.target);
      a.release();
    }
  },
);

// A downtime limit of 1 ms with no throttle never converges: the copy stays in copy-memory.
const neverConverges = { targetDowntimeMs: 1, maxDowntimeMs: 1, allowThrottle: false };

test(
  'target QEMU killed mid-memory-copy: the move fails, the source runs on',
  { timeout: 300_000 },
  async () => {
    const dirtier = await guest(source, [GUEST_WORKLOADS.dirty, '--rate-mib', '0', '--size-mib', '64'], true);
    const a = await attempt(neverConverges);
    try {
      await waitPhase(a.outgoing, 'copy-memory', 120_000);
      await sleep(1500);
      await kill(a.target);
      await assert.rejects(a.done, MigrationFailed);
      await assertSourceUnharmed();
    } finally {
      a.release();
      await guest(source, ['/bin/kill', String(dirtier.pid)]);
    }
  },
);

test('cancel during the memory copy: source resumed, nothing left', { timeout: 300_000 }, async () => {
  const a = await attempt(neverConverges);
  try {
    await waitPhase(a.outgoing, 'copy-memory', 120_000);
    await sleep(1500);
    a.outgoing.cancel();
    await assert.rejects(a.done, MigrationCancelled);
    await assertSourceUnharmed();
  } finally {
    await kill(a.target);
    a.release();
  }
});

test(
  'live move with disk writes and memory dirtying: data verifies, uptime continues',
  { timeout: 600_000 },
  async () => {
    await guest(
      source,
      [GUEST_WORKLOADS.diskWriter, 'write', '--file', '/data/during', '--rate-kib', '256'],
      true,
    );
    await guest(source, [GUEST_WORKLOADS.dirty, '--rate-mib', '0', '--size-mib', '128'], true);
    await sleep(2000);
    const upBefore = await uptime(source);
    const a = await attempt();
    try {
      await a.done;
      const resumeMs = await a.incoming.resumed(60_000);
      const stats = a.outgoing.stats;
      console.log(
        `# move: total ${stats.totalTimeMs} ms, mirror ${stats.mirrorTimeMs} ms (${stats.diskBytes} B), memory ` +
          `${stats.memoryTimeMs} ms (${stats.memoryBytes} B), downtime ${stats.downtimeMs} ms (QEMU), ` +
          `target resume ${resumeMs} ms after completion, ${stats.iterations} passes, dirty before ` +
          `${Math.round((stats.dirtyRateBeforeBytesPerSecond ?? 0) / 1e6)} MB/s, peak ` +
          `${Math.round((stats.dirtyRatePeakBytesPerSecond ?? 0) / 1e6)} MB/s, throttle ${stats.throttlePeakPercent} % ` +
          `for ${stats.throttleSeconds} s; policy: ${JSON.stringify(a.outgoing.policyLog)}`,
      );
      assert.equal(a.outgoing.phase, 'done');
      assert.ok((stats.downtimeMs ?? Infinity) < 1000);
      const srcStatus = await source.qmp.execute('query-status', undefined, { schema: StatusInfo });
      assert.equal(srcStatus.status, 'postmigrate');
      const tgtStatus = await a.target.qmp.execute('query-status', undefined, { schema: StatusInfo });
      assert.equal(tgtStatus.status, 'running');
      await kill(source);
      // The writer runs on in the guest, now on the target; stop it and check every record.
      await sleep(1000);
      await guest(a.target, ['/usr/bin/killall', 'sb-diskwriter']);
      await guest(a.target, ['/usr/bin/killall', 'sb-dirty']);
      await sleep(500);
      for (const file of ['/data/before', '/data/during']) {
        const verify = await guest(a.target, [GUEST_WORKLOADS.diskWriter, 'verify', '--file', file]);
        assert.equal(verify.exitCode, 0, `${file}: ${verify.stdout} ${verify.stderr}`);
        assert.match(verify.stdout ?? '', /verified [1-9]\d* records/);
        console.log(`# ${file}: ${verify.stdout?.trim()}`);
      }
      assert.ok((await uptime(a.target)) > upBefore, 'guest uptime continues on the target');
    } finally {
      await kill(a.target);
      a.release();
    }
  },
);

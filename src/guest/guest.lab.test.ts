// The guest image against real QEMU, booted the way the agent boots it: q35 under TCG, a qcow2
// disk on virtio-blk, a virtio-net NIC on a tap (inside a network namespace of its own), qemu-ga
// on a virtio-serial port, the serial console in a file. Two boots share one disk: the first
// formats it, the second must find the records written by the first.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  buildGuestImage,
  checkMovedGuest,
  GuestKernelDied,
  GUEST_AGENT_PORT_NAME,
  GUEST_DATA_MOUNT,
  GUEST_READY_MARKER,
  GUEST_WORKLOADS,
  guestKernelCommandLine,
  type GuestImage,
} from './index.js';

const TIMEOUT = { timeout: 300_000 };
const NETNS = `sbguest${process.pid}`;
const HOST_IP = '10.199.7.1';
const GUEST_IP = '10.199.7.2';

let dir: string;
let image: GuestImage;
let vm: Vm | undefined;

/** A minimal newline-JSON client for qemu-ga or QMP (one command in flight at a time). */
class JsonLineClient {
  private buffered = '';
  private waiting: ((line: string) => void)[] = [];
  private lines: string[] = [];
  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffered += chunk;
      let nl: number;
      while ((nl = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, nl).trim();
        this.buffered = this.buffered.slice(nl + 1);
        if (!line) continue;
        const waiter = this.waiting.shift();
        if (waiter) waiter(line);
        else this.lines.push(line);
      }
    });
  }

  static async open(file: string): Promise<JsonLineClient> {
    const socket = connect(file);
    await once(socket, 'connect');
    return new JsonLineClient(socket);
  }

  next(timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(JSON.parse(line) as Record<string, unknown>);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no reply within the deadline')), timeoutMs);
      this.waiting.push((l) => {
        clearTimeout(timer);
        resolve(JSON.parse(l) as Record<string, unknown>);
      });
    });
  }

  /** Sends a command and returns its `return` (events in between are skipped). */
  async execute(command: string, args?: object): Promise<unknown> {
    this.socket.write(
      `${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`,
    );
    for (;;) {
      const reply = await this.next();
      if ('event' in reply) continue;
      if ('error' in reply) throw new Error(`${command}: ${JSON.stringify(reply.error)}`);
      return reply.return;
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

interface Vm {
  qemu: ChildProcess;
  serial: string;
  qga: JsonLineClient;
  qmp: JsonLineClient;
  readyLine: string;
  bootSeconds: number;
}

async function waitFor<T>(what: string, deadlineMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Every QEMU started, so that `after` can kill whatever a failed test left running. */
const started: ChildProcess[] = [];

/** Starts QEMU the way the agent does; `tap` is one of the taps on the namespace's bridge. */
function startQemu(name: string, tap: string, extra: string[] = []) {
  const files = {
    serial: path.join(dir, `${name}.serial.log`),
    qga: path.join(dir, `${name}.qga`),
    qmp: path.join(dir, `${name}.qmp`),
  };
  const qemu = spawn(
    'ip',
    [
      ['netns', 'exec', NETNS, 'qemu-system-x86_64'],
      ['-machine', 'pc-q35-7.2', '-accel', 'tcg,thread=multi', '-cpu', 'Nehalem', '-smp', '1', '-m', '512M'],
      ['-no-user-config', '-nodefaults', '-display', 'none'],
      ['-kernel', image.kernel, '-initrd', image.initrd],
      ['-append', guestKernelCommandLine({ ip: `${GUEST_IP}/24`, gateway: HOST_IP, hostname: 'sbguest' })],
      [
        '-blockdev',
        JSON.stringify({ driver: 'file', 'node-name': 'f0', filename: path.join(dir, 'disk.qcow2') }),
      ],
      ['-blockdev', JSON.stringify({ driver: 'qcow2', 'node-name': 'd0', file: 'f0' })],
      ['-device', JSON.stringify({ driver: 'virtio-blk-pci', id: 'vda', drive: 'd0' })],
      ['-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`],
      ['-device', 'virtio-net-pci,id=nic0,netdev=n0,mac=52:54:00:5b:00:02'],
      ['-device', 'virtio-serial-pci,id=virtio-serial0'],
      ['-chardev', `socket,id=qga0,path=${files.qga},server=on,wait=off`],
      ['-device', `virtserialport,bus=virtio-serial0.0,chardev=qga0,name=${GUEST_AGENT_PORT_NAME}`],
      ['-chardev', `file,id=serial0,path=${files.serial}`, '-serial', 'chardev:serial0'],
      [
        '-chardev',
        `socket,id=qmp0,path=${files.qmp},server=on,wait=off`,
        '-mon',
        'chardev=qmp0,mode=control',
      ],
      extra,
    ].flat(),
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  started.push(qemu);
  return { qemu, files };
}

async function connectQmp(qemu: ChildProcess, file: string): Promise<JsonLineClient> {
  const qmp = await waitFor('the QMP socket', 60_000, async () => {
    if (qemu.exitCode !== null) throw new Error(`QEMU exited with ${qemu.exitCode}`);
    return JsonLineClient.open(file);
  });
  await qmp.next(); // greeting
  await qmp.execute('qmp_capabilities');
  return qmp;
}

/** Waits for the guest's ready line on its serial console file. */
function readyLineOf(qemu: ChildProcess, serial: string): Promise<string> {
  return waitFor('the ready marker on the serial console', 180_000, async () => {
    if (qemu.exitCode !== null) throw new Error(`QEMU exited with ${qemu.exitCode}`);
    const text = existsSync(serial) ? await readFile(serial, 'utf8') : '';
    return text
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l.startsWith(GUEST_READY_MARKER));
  });
}

async function boot(name: string, tap: string): Promise<Vm> {
  const startedAt = Date.now();
  const { qemu, files } = startQemu(name, tap);
  const readyLine = await readyLineOf(qemu, files.serial);
  const bootSeconds = (Date.now() - startedAt) / 1000;
  const qmp = await connectQmp(qemu, files.qmp);
  const qga = await JsonLineClient.open(files.qga);
  return { qemu, serial: files.serial, qga, qmp, readyLine, bootSeconds };
}

async function stop(v: Vm): Promise<void> {
  v.qga.close();
  v.qmp.close();
  await kill(v.qemu);
}

async function kill(qemu: ChildProcess): Promise<void> {
  if (qemu.exitCode === null && qemu.signalCode === null) {
    const exited = once(qemu, 'exit');
    qemu.kill('SIGKILL');
    await exited;
  }
}

/** guest-exec with output capture; resolves when the program has exited. */
async function guestRun(qga: JsonLineClient, file: string, args: string[]) {
  const { pid } = (await qga.execute('guest-exec', { path: file, arg: args, 'capture-output': true })) as {
    pid: number;
  };
  const status = await waitFor(`${file} ${args.join(' ')} to exit`, 120_000, async () => {
    const s = (await qga.execute('guest-exec-status', { pid })) as {
      exited: boolean;
      exitcode?: number;
      'out-data'?: string;
      'err-data'?: string;
    };
    return s.exited ? s : undefined;
  });
  const decode = (b64?: string) => Buffer.from(b64 ?? '', 'base64').toString();
  return { exitcode: status.exitcode, out: decode(status['out-data']), err: decode(status['err-data']) };
}

function ping(): string {
  return execFileSync('ip', ['netns', 'exec', NETNS, 'ping', '-c', '3', '-i', '0.2', '-W', '5', GUEST_IP], {
    encoding: 'utf8',
  });
}

before(async () => {
  image = await buildGuestImage();
  dir = await mkdtemp(path.join(tmpdir(), 'silobreak-guest-lab-'));
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path.join(dir, 'disk.qcow2'), '1G']);
  execFileSync('ip', ['netns', 'add', NETNS]);
  const inNs = (...args: string[]) => execFileSync('ip', ['-n', NETNS, ...args]);
  inNs('link', 'set', 'lo', 'up');
  // A bridge with two taps: the guest boots on tap0 and migrates to a QEMU on tap1.
  inNs('link', 'add', 'br0', 'type', 'bridge');
  inNs('addr', 'add', `${HOST_IP}/24`, 'dev', 'br0');
  inNs('link', 'set', 'br0', 'up');
  for (const tap of ['tap0', 'tap1']) {
    inNs('tuntap', 'add', 'dev', tap, 'mode', 'tap');
    inNs('link', 'set', tap, 'master', 'br0');
    inNs('link', 'set', tap, 'up');
  }
  vm = await boot('first', 'tap0');
  console.log(
    `# guest boot under TCG: ${vm.bootSeconds.toFixed(1)} s to ${GUEST_READY_MARKER} (${vm.readyLine})`,
  );
}, TIMEOUT);

after(async () => {
  vm?.qga.close();
  vm?.qmp.close();
  for (const qemu of started) await kill(qemu);
  spawnSync('ip', ['netns', 'delete', NETNS], { stdio: 'ignore' }); // absent if before() failed early
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('the guest reports network, agent and data disk ready on its console', TIMEOUT, () => {
  assert.ok(vm);
  assert.match(vm.readyLine, new RegExp(`ip=${GUEST_IP}/24 `));
  assert.match(vm.readyLine, / qga=yes /);
  assert.match(vm.readyLine, / data=yes /);
  assert.match(vm.readyLine, /hostname=sbguest /);
});

test('qemu-ga answers guest-sync, guest-info and guest-get-osinfo', TIMEOUT, async () => {
  assert.ok(vm);
  const id = Math.floor(Math.random() * 1e9);
  assert.equal(await vm.qga.execute('guest-sync', { id }), id);
  const info = (await vm.qga.execute('guest-info')) as {
    version: string;
    supported_commands: { name: string }[];
  };
  assert.match(info.version, /^\d+\.\d+/);
  assert.ok(info.supported_commands.some((c) => c.name === 'guest-exec'));
  const os = (await vm.qga.execute('guest-get-osinfo')) as { id: string; 'kernel-release': string };
  assert.equal(os.id, 'silobreak-guest');
  assert.equal(os['kernel-release'], image.kernelVersion);
  assert.equal(
    await vm.qga.execute('guest-get-host-name').then((h) => (h as { 'host-name': string })['host-name']),
    'sbguest',
  );
});

test('the blank qcow2 disk was formatted and is mounted at /data (guest-get-fsinfo)', TIMEOUT, async () => {
  assert.ok(vm);
  const fs = (await vm.qga.execute('guest-get-fsinfo')) as {
    mountpoint: string;
    type: string;
    disk: { dev?: string; 'bus-type': string }[];
  }[];
  const data = fs.find((f) => f.mountpoint === GUEST_DATA_MOUNT);
  assert.ok(data, JSON.stringify(fs));
  assert.equal(data.type, 'ext4');
  assert.equal(data.disk[0]?.['bus-type'], 'virtio');
  assert.match(await readFile(vm.serial, 'utf8'), /formatting blank \/dev\/vda/);
});

test('the guest answers pings on its tap from the host side', TIMEOUT, () => {
  assert.match(ping(), / 0% packet loss/);
});

test('sb-diskwriter writes records and verify counts them all', TIMEOUT, async () => {
  assert.ok(vm);
  const file = `${GUEST_DATA_MOUNT}/records`;
  const wrote = await guestRun(vm.qga, GUEST_WORKLOADS.diskWriter, [
    'write',
    '--file',
    file,
    '--rate-kib',
    '0',
    '--count',
    '150',
    '--batch',
    '10',
  ]);
  assert.equal(wrote.exitcode, 0, wrote.err);
  assert.match(wrote.out, /^wrote 150 records \(seq 0\.\.149\)/);
  const more = await guestRun(vm.qga, GUEST_WORKLOADS.diskWriter, [
    'write',
    '--file',
    file,
    '--rate-kib',
    '400',
    '--count',
    '50',
  ]);
  assert.match(more.out, /^wrote 50 records \(seq 150\.\.199\)/);
  const verified = await guestRun(vm.qga, GUEST_WORKLOADS.diskWriter, ['verify', '--file', file]);
  assert.equal(verified.exitcode, 0, verified.err);
  assert.match(verified.out, /^verified 200 records\nmax-gap-ms \d+/);
});

test('sb-diskwriter verify fails on a damaged record', TIMEOUT, async () => {
  assert.ok(vm);
  const file = `${GUEST_DATA_MOUNT}/damaged`;
  await guestRun(vm.qga, GUEST_WORKLOADS.diskWriter, [
    'write',
    '--file',
    file,
    '--rate-kib',
    '0',
    '--count',
    '20',
  ]);
  // Flip one payload byte of record 7 (offset 7*4096 + 100).
  const damage = await guestRun(vm.qga, '/bin/sh', [
    '-c',
    `printf Z | dd of=${file} bs=1 seek=28772 conv=notrunc 2>/dev/null`,
  ]);
  assert.equal(damage.exitcode, 0, damage.err);
  const verified = await guestRun(vm.qga, GUEST_WORKLOADS.diskWriter, ['verify', '--file', file]);
  assert.equal(verified.exitcode, 1);
  assert.match(verified.err, /bad record 7 at offset 28672: checksum mismatch/);
});

test('sb-dirty dirties memory at the requested rate and reports it', TIMEOUT, async () => {
  assert.ok(vm);
  const run = await guestRun(vm.qga, GUEST_WORKLOADS.dirty, [
    '--rate-mib',
    '40',
    '--size-mib',
    '32',
    '--seconds',
    '3',
  ]);
  assert.equal(run.exitcode, 0, run.err);
  const m = /wrote (\d+) MiB in ([\d.]+) s \(([\d.]+) MiB\/s/.exec(run.out);
  assert.ok(m, run.out);
  const rate = Number(m[3]);
  console.log(`# sb-dirty at --rate-mib 40: ${rate} MiB/s`);
  assert.ok(rate > 20 && rate < 44, `rate ${rate} MiB/s`);
  const max = await guestRun(vm.qga, GUEST_WORKLOADS.dirty, [
    '--rate-mib',
    '0',
    '--size-mib',
    '64',
    '--seconds',
    '2',
  ]);
  console.log(`# sb-dirty at max rate under TCG: ${/\(([\d.]+) MiB\/s/.exec(max.out)?.[1]} MiB/s`);
  assert.match(max.out, /rate max/);
});

test('the guest lives on through a live migration with both workloads running', TIMEOUT, async () => {
  assert.ok(vm);
  const source = vm;
  const records = `${GUEST_DATA_MOUNT}/migrating`;
  // Workloads without output capture: they run until killed.
  await source.qga.execute('guest-exec', {
    path: GUEST_WORKLOADS.diskWriter,
    arg: ['write', '--file', records, '--rate-kib', '200'],
  });
  await source.qga.execute('guest-exec', {
    path: GUEST_WORKLOADS.dirty,
    arg: ['--rate-mib', '20', '--size-mib', '64'],
  });
  // Both running before the move starts: records on the disk, the dirtier's process up.
  await waitFor('both workloads to run', 30_000, async () => {
    const r = await guestRun(source.qga, '/bin/sh', ['-c', `test -s ${records} && pidof sb-dirty`]);
    return r.exitcode === 0 ? true : undefined;
  });

  // Same devices, same (shared) disk, on the other tap; memory over a local unix socket.
  const socket = path.join(dir, 'migration.sock');
  const target = startQemu('target', 'tap1', ['-incoming', `unix:${socket}`]);
  const targetQmp = await connectQmp(target.qemu, target.files.qmp);
  // QEMU 7.2 caps migration at 128 MiB/s by default; a local socket needs no cap.
  await source.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 4 * 1024 ** 3 });
  await source.qmp.execute('migrate', { uri: `unix:${socket}` });
  const result = await waitFor('the migration to finish', 180_000, async () => {
    const r = (await source.qmp.execute('query-migrate')) as {
      status?: string;
      downtime?: number;
      'total-time'?: number;
      'error-desc'?: string;
    };
    return r.status === 'completed' || r.status === 'failed' ? r : undefined;
  });
  assert.equal(result.status, 'completed', result['error-desc']);
  await stop(source);
  vm = {
    qemu: target.qemu,
    serial: target.files.serial,
    qmp: targetQmp,
    qga: await JsonLineClient.open(target.files.qga),
    readyLine: source.readyLine,
    bootSeconds: source.bootSeconds,
  };
  const moved = vm;
  try {
    await checkMovedGuest(target.files.serial, async () => {
      const status = (await moved.qmp.execute('query-status')) as { status: string };
      assert.equal(status.status, 'running');
      const id = Math.floor(Math.random() * 1e9);
      assert.equal(await moved.qga.execute('guest-sync', { id }), id);
      assert.match(ping(), / 0% packet loss/);

      const stopped = await guestRun(moved.qga, '/bin/sh', [
        '-c',
        'kill $(pidof sb-diskwriter) $(pidof sb-dirty) && sleep 1',
      ]);
      assert.equal(stopped.exitcode, 0, stopped.err);
      const verified = await guestRun(moved.qga, GUEST_WORKLOADS.diskWriter, ['verify', '--file', records]);
      assert.equal(verified.exitcode, 0, verified.err);
      const m = /^verified (\d+) records\nmax-gap-ms ([\d.]+)/.exec(verified.out);
      assert.ok(m && Number(m[1]) > 0, verified.out);
      console.log(
        `# migration: ${result['total-time']} ms total, QEMU downtime ${result.downtime} ms, ` +
          `disk writer's longest stall ${m[2]} ms over ${m[1]} records`,
      );
    });
  } catch (error) {
    // The later tests need a live guest: after a dead kernel, a fresh boot from the same disk.
    if (error instanceof GuestKernelDied) {
      await stop(moved);
      vm = await boot('rebooted', 'tap0');
    }
    throw error;
  }
});

test('the ACPI power button (system_powerdown) shuts the guest down cleanly', TIMEOUT, async () => {
  assert.ok(vm);
  const exited = once(vm.qemu, 'exit');
  const started = Date.now();
  await vm.qmp.execute('system_powerdown');
  const [code] = (await Promise.race([
    exited,
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error('guest did not power off within 60 s')), 60_000),
    ),
  ])) as [number | null];
  console.log(`# poweroff after system_powerdown: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.equal(code, 0);
  assert.match(await readFile(vm.serial, 'utf8'), /reboot: Power down/);
});

test('a second boot keeps /data: the records of the first are all there', TIMEOUT, async () => {
  if (vm) await stop(vm);
  vm = await boot('second', 'tap0');
  console.log(`# second boot (disk already formatted): ${vm.bootSeconds.toFixed(1)} s`);
  assert.doesNotMatch(await readFile(vm.serial, 'utf8'), /formatting/);
  const verified = await guestRun(vm.qga, GUEST_WORKLOADS.diskWriter, [
    'verify',
    '--file',
    `${GUEST_DATA_MOUNT}/records`,
  ]);
  assert.equal(verified.exitcode, 0, verified.err);
  assert.match(verified.out, /^verified 200 records/);
});

test('qemu-ga guest-shutdown powers the guest off', TIMEOUT, async () => {
  assert.ok(vm);
  const exited = once(vm.qemu, 'exit');
  // No reply on success: the agent is gone before it could send one.
  vm.qga.execute('guest-shutdown').catch(() => {});
  const [code] = (await Promise.race([
    exited,
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error('guest did not power off within 60 s')), 60_000),
    ),
  ])) as [number | null];
  assert.equal(code, 0);
  assert.match(await readFile(vm.serial, 'utf8'), /reboot: Power down/);
});

test('without disk, NIC or agent port the guest still comes up and says so', TIMEOUT, async () => {
  const serial = path.join(dir, 'bare.serial.log');
  const qemu = spawn(
    'qemu-system-x86_64',
    [
      ['-machine', 'pc-q35-7.2', '-accel', 'tcg,thread=multi', '-cpu', 'Nehalem', '-m', '256M'],
      ['-no-user-config', '-nodefaults', '-display', 'none'],
      ['-kernel', image.kernel, '-initrd', image.initrd, '-append', guestKernelCommandLine()],
      ['-chardev', `file,id=serial0,path=${serial}`, '-serial', 'chardev:serial0'],
    ].flat(),
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  started.push(qemu);
  const ready = await readyLineOf(qemu, serial);
  assert.match(ready, /hostname=silobreak-guest ip=none qga=no data=no /);
  await kill(qemu);
});

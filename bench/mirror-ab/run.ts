// Mirror speed A/B (issue 20, "mirrors at the datastore's speed"): the disk mirror of a live move
// alone — a source QEMU's qcow2 of random data mirrored over NBD (loopback) into a target QEMU's
// export of a fresh qcow2 — with the engine's settings (16 MiB buffer, main loop, the page cache)
// beside larger buffers, an iothread on both ends, and O_DIRECT + io_uring files. One core is kept
// busy by a spinning process meanwhile, as a TCG guest's vCPU keeps it in a real move; the variants
// take turns run by run, so none pays for another's warm-up. Also measured: the datastore's
// fdatasync write rate (dd) — the ceiling of a mirror's target.
//
//   npm run bench:mirror-ab [-- --gib 1 --runs 3]
//
// Results: bench/mirror-ab/results/<time>.{md,json}.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { QmpClient } from '../../src/qmp/index.js';
import { check, writeResults } from '../lab-link.js';

const MiB = 1024 * 1024;
const RESULTS = path.join(import.meta.dirname, 'results');
const { values: args } = parseArgs({
  options: { gib: { type: 'string', default: '1' }, runs: { type: 'string', default: '3' } },
});
const dataBytes = Number(args.gib) * 1024 * MiB;
const runs = Number(args.runs);

interface Variant {
  name: string;
  bufSizeBytes: number;
  iothread: boolean;
  directIo: boolean;
}

const VARIANTS: Variant[] = [
  {
    name: 'engine now: 16 MiB buffer, main loop, page cache',
    bufSizeBytes: 16 * MiB,
    iothread: false,
    directIo: false,
  },
  { name: '64 MiB buffer', bufSizeBytes: 64 * MiB, iothread: false, directIo: false },
  { name: '16 MiB buffer + iothread on both ends', bufSizeBytes: 16 * MiB, iothread: true, directIo: false },
  {
    name: '16 MiB buffer + O_DIRECT, io_uring files',
    bufSizeBytes: 16 * MiB,
    iothread: false,
    directIo: true,
  },
];

const log = (msg: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

interface Qemu {
  child: ChildProcess;
  qmp: QmpClient;
}

async function startQemu(dir: string, name: string, iothread: boolean): Promise<Qemu> {
  const socket = path.join(dir, `${name}.qmp`);
  const child = spawn(
    'qemu-system-x86_64',
    [
      '-machine',
      'none',
      '-nodefaults',
      '-display',
      'none',
      ...(iothread ? ['-object', 'iothread,id=io0'] : []),
      '-qmp',
      `unix:${socket},server=on,wait=off`,
    ],
    { stdio: 'ignore' },
  );
  const qmp = await QmpClient.connect(socket, { retryUntilMs: Date.now() + 20_000 });
  return { child, qmp };
}

async function addImage(q: Qemu, file: string, v: Variant): Promise<void> {
  await q.qmp.execute('blockdev-add', {
    driver: 'qcow2',
    'node-name': 'disk',
    file: {
      driver: 'file',
      filename: file,
      ...(v.directIo ? { cache: { direct: true }, aio: 'io_uring' } : {}),
    },
  });
}

async function mirrorOnce(dir: string, source: string, v: Variant, port: number): Promise<number> {
  const target = path.join(dir, `target-${port}.qcow2`);
  await check(['qemu-img', 'create', '-q', '-f', 'qcow2', target, String(dataBytes)]);
  const src = await startQemu(dir, `src-${port}`, v.iothread);
  const dst = await startQemu(dir, `dst-${port}`, v.iothread);
  try {
    await addImage(src, source, v);
    await addImage(dst, target, v);
    if (v.iothread)
      await src.qmp.execute('x-blockdev-set-iothread', { 'node-name': 'disk', iothread: 'io0' });
    await dst.qmp.execute('nbd-server-start', {
      addr: { type: 'inet', data: { host: '127.0.0.1', port: String(port) } },
    });
    await dst.qmp.execute('block-export-add', {
      type: 'nbd',
      id: 'exp',
      'node-name': 'disk',
      name: 'disk',
      writable: true,
      ...(v.iothread ? { iothread: 'io0' } : {}),
    });
    await src.qmp.execute('blockdev-add', {
      driver: 'nbd',
      'node-name': 'nbd',
      server: { type: 'inet', host: '127.0.0.1', port: String(port) },
      export: 'disk',
    });
    const ready = src.qmp.waitForEvent('BLOCK_JOB_READY', { timeoutMs: 600_000 });
    const started = Date.now();
    await src.qmp.execute('blockdev-mirror', {
      'job-id': 'm',
      device: 'disk',
      target: 'nbd',
      sync: 'full',
      'copy-mode': 'background',
      'buf-size': v.bufSizeBytes,
    });
    await ready;
    const ms = Date.now() - started;
    await src.qmp.execute('block-job-cancel', { device: 'm' });
    return ms;
  } finally {
    for (const q of [src, dst]) {
      q.child.kill('SIGKILL');
      await q.qmp.close().catch(() => undefined);
    }
    await rm(target, { force: true });
  }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join('/var/tmp', 'sb-mirror-ab-'));
  const spinner = spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' });
  try {
    const source = path.join(dir, 'source.qcow2');
    const chunk = path.join(dir, 'chunk');
    await writeFile(chunk, randomBytes(64 * MiB));
    await check(['qemu-img', 'create', '-q', '-f', 'qcow2', source, String(dataBytes)]);
    const commands: string[] = [];
    for (let at = 0; at < dataBytes; at += 64 * MiB)
      commands.push('-c', `write -q -s ${chunk} ${at} ${64 * MiB}`);
    await check(['qemu-io', '-f', 'qcow2', ...commands, source]);
    const ddOut = await check([
      'sh',
      '-c',
      `dd if=${chunk} of=${path.join(dir, 'dd')} bs=1M count=64 conv=fdatasync 2>&1; rm -f ${path.join(dir, 'dd')}`,
    ]);
    const ddRate = /([\d.]+) ([MG])B\/s/.exec(ddOut);
    const fsyncBytesPerSecond = ddRate ? Number(ddRate[1]) * (ddRate[2] === 'G' ? 1e9 : 1e6) : NaN;
    const times = new Map<string, number[]>(VARIANTS.map((v) => [v.name, []]));
    let port = 20_500;
    for (let run = 0; run < runs + 1; run++) {
      // Rotate the order each run; run 0 warms the page cache and QEMU and is not counted.
      const order = VARIANTS.map((_, i) => VARIANTS[(i + run) % VARIANTS.length] as Variant);
      for (const v of order) {
        const ms = await mirrorOnce(dir, source, v, port++);
        if (run > 0) times.get(v.name)?.push(ms);
        log(
          `${run === 0 ? 'warm-up' : `run ${run}`}: ${v.name}: ${((dataBytes / MiB / ms) * 1000).toFixed(0)} MiB/s`,
        );
        await sleep(500);
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
    const base = median(times.get(VARIANTS[0]?.name ?? '') ?? []);
    const lines = [
      `# Mirror A/B (bench/mirror-ab), ${new Date().toISOString()}`,
      '',
      `${dataBytes / MiB} MiB of random data in a qcow2, mirrored over NBD on loopback into a fresh qcow2; ${runs} runs per variant (order rotated, one uncounted warm-up round), one of ${cpus().length} cores kept busy; load ${loadavg()[0]?.toFixed(1)} at the end. Datastore fdatasync write rate (dd 64 MiB): ${(fsyncBytesPerSecond / MiB).toFixed(0)} MiB/s.`,
      '',
      '| variant | median time | MiB/s (median) | runs (MiB/s) | x engine now |',
      '|---|---:|---:|---|---:|',
      ...VARIANTS.map((v) => {
        const xs = times.get(v.name) ?? [];
        const m = median(xs);
        return `| ${v.name} | ${(m / 1000).toFixed(2)} s | ${((dataBytes / MiB / m) * 1000).toFixed(0)} | ${xs.map((x) => ((dataBytes / MiB / x) * 1000).toFixed(0)).join(', ')} | ${(base / m).toFixed(2)} |`;
      }),
      '',
    ];
    const text = lines.join('\n');
    console.log(text);
    await writeResults(RESULTS, text, { dataBytes, fsyncBytesPerSecond, times: Object.fromEntries(times) });
  } finally {
    spinner.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
}

await main();

// The QEMU mechanism of a delta return move (delta.ts), proven on image files without a guest and
// without network namespaces: a "visiting" QEMU (q35, paused CPUs, the disk on an ide-hd so writes
// go through the top of the block graph like a guest's) and a "home" QEMU (-machine none) that
// exports the retained copy over NBD on 127.0.0.1. Writes run throughout the move; at the end
// `qemu-img compare` must find the visiting disk and the home copy identical.
// Named *.lab.test.ts so the unit run skips it (it starts QEMUs and writes ~1.5 GiB of images);
// run it alone: node --import tsx --test src/agent/migration/delta.lab.test.ts
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { QmpClient, queryNamedBlockNodes } from '../../qmp/index.js';
import {
  cancelDelta,
  deltaOverlayPath,
  finishDelta,
  flattenLeftBehind,
  startDeltaMove,
  startTracking,
  trackingBitmap,
  trackingBitmapName,
  waitDeltaCopied,
  type DeltaDisk,
} from './delta.js';

const MiB = 1024 * 1024;
// SB_DELTA_DISK_MIB: a bigger disk for a one-off measurement (default 256 MiB).
const DISK_BYTES = Number(process.env.SB_DELTA_DISK_MIB ?? 256) * MiB;
const CLUSTER = 64 * 1024;
const NODE = 'disk0';
const EXPORT = 'home';

interface Qemu {
  child: ChildProcess;
  qmp: QmpClient;
  stderr: string[];
}

let dir = '';
let port = 0;
const running = new Set<Qemu>();

async function startQemu(
  name: string,
  image: string,
  visiting: boolean,
  extra: string[] = [],
): Promise<Qemu> {
  const sock = path.join(dir, `${name}.qmp`);
  rmSync(sock, { force: true });
  const args = [
    '-M',
    visiting ? 'q35' : 'none',
    '-accel',
    'tcg',
    '-S',
    '-nodefaults',
    '-display',
    'none',
    '-qmp',
    `unix:${sock},server=on,wait=off`,
    '-blockdev',
    `driver=file,filename=${image},node-name=${NODE}-file`,
    '-blockdev',
    `driver=qcow2,file=${NODE}-file,node-name=${NODE}`,
    ...(visiting ? ['-device', `ide-hd,drive=${NODE},bus=ide.0,id=vd0`] : []),
    ...extra,
  ];
  const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const stderr: string[] = [];
  child.stderr?.on('data', (b: Buffer) => stderr.push(b.toString()));
  const qmp = await QmpClient.connect(sock, { retryUntilMs: Date.now() + 15_000 });
  const q = { child, qmp, stderr };
  running.add(q);
  return q;
}

async function stopQemu(q: Qemu): Promise<void> {
  const exited = new Promise((resolve) => q.child.once('exit', resolve));
  await q.qmp.execute('quit').catch(() => undefined);
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  if (q.child.exitCode === null) q.child.kill('SIGKILL');
  running.delete(q);
}

/** A write through the guest's device (the top of the graph), as a guest would. */
async function write(q: Qemu, pattern: number, offset: number, length: number): Promise<void> {
  // Pattern 0 writes zeroes the way a guest's write-zeroes request does (no data on the wire).
  const op = pattern === 0 ? 'write -z' : `write -P 0x${pattern.toString(16)}`;
  const out = await q.qmp.execute('human-monitor-command', {
    'command-line': `qemu-io -d vd0 "${op} ${offset} ${length}"`,
  });
  // qemu-io prints its success to QEMU's stdout; the monitor's answer carries only errors.
  assert.equal(String(out).trim(), '', `qemu-io write: ${String(out)}`);
}

function rand(n: number): number {
  return Math.floor(Math.random() * n);
}

/** A random write: cluster-aligned or not, 512 B to 192 KiB, sometimes straddling clusters. */
function randomWrite(within?: number[]): { offset: number; length: number } {
  const length = 512 * (1 + rand(384));
  const base = within?.length ? (within[rand(within.length)] as number) : rand(DISK_BYTES / 512) * 512;
  const offset = Math.min(base + 512 * rand(CLUSTER / 512), DISK_BYTES - length);
  return { offset, length };
}

/** Keeps writing until stopped; counts the bytes. */
function writer(q: Qemu, within?: () => number[]): { stop: () => Promise<number> } {
  let stopped = false;
  let bytes = 0;
  const loop = (async () => {
    while (!stopped) {
      const w = randomWrite(within?.());
      // One write in ten is a write-zeroes request.
      await write(q, rand(10) === 0 ? 0 : 1 + rand(254), w.offset, w.length);
      bytes += w.length;
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return bytes;
    },
  };
}

function compare(a: string, b: string): string {
  try {
    return execFileSync('qemu-img', ['compare', '-U', a, b]).toString().trim();
  } catch (error) {
    const e = error as { stdout?: Buffer; status?: number };
    return `differ (exit ${e.status}): ${e.stdout?.toString().trim()}`;
  }
}

interface Round {
  name: string;
  /** Share of the disk written between the arrival and the move. */
  changedShare: number;
  /** Write during the changed-cluster copy into the clusters being copied. */
  hitCopied?: boolean;
  backupSpeed?: number;
  /** The stay rewrites whole MiB-aligned MiBs (like files rewritten) instead of scattered small writes. */
  alignedMiB?: boolean;
  /** Quit and restart the visiting QEMU before the move (the bitmap must survive). */
  restart?: boolean;
  /** Cancel a first attempt (during the changed-cluster copy, or once in sync), then retry onto the same retained copy. */
  cancelFirst?: 'copying' | 'in-sync';
}

const results: string[] = [];

/** A loopback port nobody listens on now; the tests use it and the next few above it. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  assert.ok(address && typeof address === 'object');
  return address.port;
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'silobreak-deltaproof-'));
  port = await freePort();
  // The home disk: random data over the whole disk (nothing compares equal by accident).
  const raw = path.join(dir, 'seed.raw');
  execFileSync('dd', ['if=/dev/urandom', `of=${raw}`, 'bs=1M', `count=${DISK_BYTES / MiB}`, 'status=none']);
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, path.join(dir, 'seed.qcow2')]);
  rmSync(raw);
});

after(async () => {
  for (const q of [...running]) await stopQemu(q);
  rmSync(dir, { recursive: true, force: true });
  console.log(results.join('\n'));
});

async function runRound(round: Round, index: number): Promise<void> {
  const visitingImage = path.join(dir, `visiting-${index}.qcow2`);
  const homeImage = path.join(dir, `home-${index}.qcow2`);
  const overlay = deltaOverlayPath(visitingImage, `t${index}`);
  // Departure: both hosts hold the same disk; the home keeps it as the retained copy.
  copyFileSync(path.join(dir, 'seed.qcow2'), visitingImage);
  copyFileSync(path.join(dir, 'seed.qcow2'), homeImage);
  const bitmap = trackingBitmapName(`gen${index}`);

  let visiting = await startQemu(`v${index}`, visitingImage, true);
  await startTracking(visiting.qmp, NODE, bitmap);
  // The stay: rewrite changedShare of the disk at random places.
  let written = 0;
  const trackedClusters: number[] = [];
  while (written < round.changedShare * DISK_BYTES) {
    const w = round.alignedMiB ? { offset: rand(DISK_BYTES / MiB) * MiB, length: MiB } : randomWrite();
    await write(visiting, rand(10) === 0 ? 0 : 1 + rand(254), w.offset, w.length);
    trackedClusters.push(w.offset - (w.offset % CLUSTER));
    written += w.length;
  }
  if (round.restart) {
    await stopQemu(visiting);
    visiting = await startQemu(`v${index}b`, visitingImage, true);
  }
  const tracked = await trackingBitmap(visiting.qmp, NODE, bitmap);
  assert.ok(tracked, 'the tracking bitmap is there');
  // Aligned rewrites: the bitmap marks no more than what was written (less where writes overlapped).
  if (round.alignedMiB) assert.ok(tracked.count <= written && tracked.count >= 0.8 * written);
  assert.equal(tracked.persistent, true);

  const home = await startQemu(`h${index}`, homeImage, false);
  await home.qmp.execute('nbd-server-start', {
    addr: { type: 'inet', data: { host: '127.0.0.1', port: String(port + index) } },
  });
  await home.qmp.execute('block-export-add', {
    type: 'nbd',
    id: 'ex',
    'node-name': NODE,
    name: EXPORT,
    writable: true,
  });

  const disk: DeltaDisk = {
    diskId: 'd0',
    nodeName: NODE,
    imagePath: visitingImage,
    overlayPath: overlay,
    bitmap,
    exportName: EXPORT,
  };
  const options = {
    nbd: { host: '127.0.0.1', port: port + index },
    tag: `t${index}`,
    backupSpeed: round.backupSpeed,
  };
  const within = round.hitCopied ? () => trackedClusters : undefined;

  if (round.cancelFirst) {
    const w = writer(visiting, within);
    const attempt = await startDeltaMove(visiting.qmp, disk, options);
    if (round.cancelFirst === 'in-sync') await waitDeltaCopied(visiting.qmp, attempt, options);
    else await new Promise((r) => setTimeout(r, 800));
    const undoStarted = Date.now();
    await cancelDelta(visiting.qmp, attempt);
    results.push(`${round.name}: undo (cancel + commit of the overlay) ${Date.now() - undoStarted} ms`);
    await w.stop();
    const graph = await blockGraph(visiting.qmp);
    assert.deepEqual(graph.chain, [NODE], 'after the undo the device sits on the plain disk again');
    const after = await trackingBitmap(visiting.qmp, NODE, bitmap);
    assert.ok(
      after && after.count >= (tracked?.count ?? 0),
      'the bitmap kept everything and recorded the commit',
    );
  }

  const started = Date.now();
  const w = writer(visiting, within);
  const move = await startDeltaMove(visiting.qmp, disk, options);
  const graph = await blockGraph(visiting.qmp);
  const copied = await waitDeltaCopied(visiting.qmp, move, options);
  // In sync and write-blocking: keep writing a moment, as the guest does during the memory copy.
  await new Promise((r) => setTimeout(r, 500));
  const duringMove = await w.stop();
  await finishDelta(visiting.qmp, move);
  const ms = Date.now() - started;
  await stopQemu(visiting);
  await stopQemu(home);

  const verdict = compare(overlay, homeImage);
  // The host left behind folds the overlay back: its image is then the disk as it left.
  await flattenLeftBehind(visitingImage, overlay);
  const flattened = compare(visitingImage, homeImage);
  assert.doesNotMatch(execFileSync('qemu-img', ['info', visitingImage]).toString(), /name: sb-delta-/);
  results.push(
    `${round.name}: written during the stay ${(written / MiB).toFixed(1)} MiB, tracked ${(tracked.count / MiB).toFixed(1)} MiB (${((100 * tracked.count) / DISK_BYTES).toFixed(1)} %), ` +
      `backup sent ${(copied.deltaBytes / MiB).toFixed(1)} MiB in ${copied.backupMs} ms, ` +
      `overlay mirror ${(copied.overlayBytes / MiB).toFixed(1)} MiB in ${copied.mirrorMs} ms, ` +
      `bitmap at the freeze ${(move.deltaBytes / MiB).toFixed(1)} MiB, written during the move ${(duringMove / MiB).toFixed(1)} MiB, total ${ms} ms; ` +
      `graph during the copy: ${graph.chain.join(' -> ')}; compare: ${verdict}`,
  );
  assert.equal(copied.deltaBytes, move.deltaBytes, 'the backup sent exactly the tracked clusters');
  assert.equal(verdict, 'Images are identical.');
  assert.equal(flattened, 'Images are identical.', 'the image left behind after the commit');
  assert.ok(duringMove > 0, 'the writer ran during the move');
}

/** The device's node chain from the top (filters and backing files, not protocol nodes). */
async function blockGraph(qmp: QmpClient): Promise<{ chain: string[] }> {
  const graph = (await qmp.execute('x-debug-query-block-graph')) as {
    nodes: { id: number; name: string; type: string }[];
    edges: { parent: number; child: number; name: string }[];
  };
  const from = (id: number | undefined) => graph.edges.filter((e) => e.parent === id);
  const chain: string[] = [];
  let id = graph.nodes.find((n) => n.type === 'block-backend' && n.name === 'vd0')?.id;
  while (chain.length < 8) {
    const edges = from(id);
    const edge = ['root', 'backing', 'file'].map((name) => edges.find((e) => e.name === name)).find(Boolean);
    // A node without children is the protocol (file) node under a format node: not part of the chain.
    if (!edge || from(edge.child).length === 0) break;
    chain.push(graph.nodes.find((n) => n.id === edge.child)?.name ?? '?');
    id = edge.child;
  }
  return { chain };
}

const ROUNDS: Round[] = [
  { name: 'random 10 %', changedShare: 0.1 },
  {
    name: 'writes into the clusters being copied, slow copy',
    changedShare: 0.1,
    hitCopied: true,
    backupSpeed: 16 * MiB,
  },
  { name: 'after a QEMU restart, 3 %', changedShare: 0.03, restart: true },
  { name: '5 % rewritten in aligned MiBs', changedShare: 0.05, alignedMiB: true },
  {
    name: 'cancelled mid-copy, then retried',
    changedShare: 0.1,
    cancelFirst: 'copying',
    backupSpeed: 16 * MiB,
  },
  {
    name: 'cancelled once in sync (write-blocking), then retried',
    changedShare: 0.05,
    cancelFirst: 'in-sync',
  },
];

// The form first asked for: a write-blocking mirror (sync=none) carrying new writes and a
// blockdev-backup sync=bitmap beside it on the same disk. Every arrangement is refused.
test('QEMU 10.0.2 refuses a bitmap backup beside a mirror on one disk', { timeout: 60_000 }, async () => {
  const image = path.join(dir, 'refused.qcow2');
  const target = path.join(dir, 'refused-target.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', image, String(64 * MiB)]);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', target, String(64 * MiB)]);
  const q = await startQemu('refused', image, true);
  await q.qmp.execute('blockdev-add', {
    driver: 'qcow2',
    'node-name': 'tgt',
    file: { driver: 'file', filename: target },
  });
  await startTracking(q.qmp, NODE, 'trk');
  await write(q, 0x11, MiB, MiB);
  const refusal = (promise: Promise<unknown>): Promise<string> =>
    promise.then(
      () => 'accepted',
      (error: unknown) => String(error),
    );
  const mirror = (device: string) =>
    q.qmp.execute('blockdev-mirror', {
      'job-id': 'mir',
      device,
      target: 'tgt',
      sync: 'none',
      'copy-mode': 'write-blocking',
      'filter-node-name': 'M',
    });
  const backup = (device: string, bitmap = 'trk') =>
    q.qmp.execute('blockdev-backup', {
      'job-id': 'bak',
      device,
      target: 'tgt',
      sync: 'bitmap',
      bitmap,
      'bitmap-mode': 'never',
      'filter-node-name': 'C',
      // One 64-KiB copy at a time at 1 B/s: the job stays (block-copy's parallel workers copied
      // the whole dirty MiB in one burst before the limit applied, and a slow QMP answer then
      // found the job and its filter gone).
      speed: 1,
      'x-perf': { 'max-workers': 1, 'max-chunk': 65_536 },
    });
  await mirror(NODE);
  // The bitmap is looked up on `device` only, not through the filter.
  assert.match(await refusal(backup('M')), /Bitmap 'trk' could not be found/);
  await q.qmp.execute('block-dirty-bitmap-add', { node: 'M', name: 'copy', disabled: true });
  await q.qmp.execute('block-dirty-bitmap-merge', {
    node: 'M',
    target: 'copy',
    bitmaps: [{ node: NODE, name: 'trk' }],
  });
  assert.match(
    await refusal(backup('M', 'copy')),
    /Node 'M' is busy: block device is in use by block job: mirror/,
  );
  assert.match(
    await refusal(backup(NODE)),
    /Node 'disk0' is busy: block device is in use by block job: mirror/,
  );
  const cancelled = q.qmp.waitForEvent('BLOCK_JOB_CANCELLED', { timeoutMs: 10_000 });
  await q.qmp.execute('block-job-cancel', { device: 'mir', force: true });
  await cancelled;
  await backup(NODE);
  assert.match(await refusal(mirror('C')), /Need a root block node/);
  await stopQemu(q);
});

// Tracking starts on the target of a live move between `completed` and `cont` (late-block-activate:
// the node is still inactive), is stored in the image on quit, and is there again after a restart
// and after the VM's next outgoing migration.
test(
  'tracking bitmap: started on an inactive incoming disk, kept across restart and migration',
  { timeout: 120_000 },
  async () => {
    const source = path.join(dir, 'mig-source.qcow2');
    const arrived = path.join(dir, 'mig-target.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', source, String(64 * MiB)]);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', arrived, String(64 * MiB)]);
    const migrationPort = await freePort();
    const src = await startQemu('mig-src', source, true, ['-m', '64']);
    const dst = await startQemu('mig-dst', arrived, true, ['-m', '64', '-incoming', 'defer']);
    await dst.qmp.execute('migrate-set-capabilities', {
      capabilities: [{ capability: 'late-block-activate', state: true }],
    });
    await dst.qmp.execute('migrate-incoming', { uri: `tcp:127.0.0.1:${migrationPort}` });
    const completed = dst.qmp.waitForEvent('MIGRATION', {
      timeoutMs: 60_000,
      match: (e) => e.data.status === 'completed',
    });
    await dst.qmp.execute('migrate-set-capabilities', {
      capabilities: [{ capability: 'events', state: true }],
    });
    await src.qmp.execute('migrate', { uri: `tcp:127.0.0.1:${migrationPort}` });
    await completed;
    assert.equal(await nodeActive(dst.qmp), false, 'the arrived disk is still inactive before cont');
    const bitmap = trackingBitmapName('arrival1');
    await startTracking(dst.qmp, NODE, bitmap);
    await dst.qmp.execute('cont');
    await stopQemu(src);
    assert.equal(await nodeActive(dst.qmp), true);
    await write(dst, 0x33, 4 * MiB, MiB);
    assert.equal((await trackingBitmap(dst.qmp, NODE, bitmap))?.count, MiB, 'writes after cont are tracked');
    await stopQemu(dst);
    assert.match(execFileSync('qemu-img', ['info', arrived]).toString(), new RegExp(`name: ${bitmap}`));

    const again = await startQemu('mig-again', arrived, true, ['-m', '64']);
    const reloaded = await trackingBitmap(again.qmp, NODE, bitmap);
    assert.equal(reloaded?.count, MiB, 'the bitmap is back after a restart');
    assert.equal(reloaded?.persistent, true);
    assert.equal(reloaded?.recording, true);
    // An outgoing migration inactivates the disk, which stores the bitmap in the image; a source
    // that carries on afterwards (cont) has it again, still recording.
    const stream = path.join(dir, 'mig.stream');
    const out = again.qmp.waitForEvent('MIGRATION', {
      timeoutMs: 60_000,
      match: (e) => e.data.status === 'completed',
    });
    await again.qmp.execute('migrate-set-capabilities', {
      capabilities: [{ capability: 'events', state: true }],
    });
    await again.qmp.execute('migrate', { uri: `file:${stream}` });
    await out;
    assert.equal(await nodeActive(again.qmp), false);
    const stored = execFileSync('qemu-img', ['info', '-U', '--output=json', arrived]).toString();
    assert.match(stored, new RegExp(`"name": "${bitmap}"`));
    assert.doesNotMatch(stored, /in-use/, 'stored cleanly at inactivation');
    await again.qmp.execute('cont');
    await write(again, 0x44, 8 * MiB, MiB);
    assert.equal((await trackingBitmap(again.qmp, NODE, bitmap))?.count, 2 * MiB);
    await stopQemu(again);
  },
);

// QEMU killed with the image open: the bitmap's in-use flag stays set, QEMU reports it
// inconsistent at the next start, and no delta move is made from it.
test('a tracking bitmap left in use by a killed QEMU is refused', { timeout: 60_000 }, async () => {
  const image = path.join(dir, 'killed.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', image, String(64 * MiB)]);
  const bitmap = trackingBitmapName('killed');
  let q = await startQemu('killed', image, true);
  await startTracking(q.qmp, NODE, bitmap);
  await stopQemu(q); // stored once
  q = await startQemu('killed2', image, true);
  await write(q, 0x55, 0, MiB);
  q.child.kill('SIGKILL');
  await new Promise((r) => q.child.once('exit', r));
  running.delete(q);
  q = await startQemu('killed3', image, true);
  const info = await trackingBitmap(q.qmp, NODE, bitmap);
  assert.equal(info?.inconsistent, true);
  const disk: DeltaDisk = {
    diskId: 'd0',
    nodeName: NODE,
    imagePath: image,
    overlayPath: path.join(dir, 'killed.delta.qcow2'),
    bitmap,
    exportName: EXPORT,
  };
  await assert.rejects(
    startDeltaMove(q.qmp, disk, { nbd: { host: '127.0.0.1', port: 1 }, tag: 'k' }),
    /tracking bitmap sb-delta-killed is inconsistent/,
  );
  await assert.rejects(
    startDeltaMove(
      q.qmp,
      { ...disk, bitmap: trackingBitmapName('other') },
      { nbd: { host: '127.0.0.1', port: 1 }, tag: 'k' },
    ),
    /has no tracking bitmap sb-delta-other/,
  );
  assert.deepEqual((await blockGraph(q.qmp)).chain, [NODE], 'nothing was changed');
  await stopQemu(q);
});

async function nodeActive(qmp: QmpClient): Promise<boolean | undefined> {
  return (await queryNamedBlockNodes(qmp)).find((n) => n['node-name'] === NODE)?.active;
}

// The full move's disk phase for the same disk, to set the delta's figures against.
test('for comparison: a full mirror of the same disk', { timeout: 300_000 }, async () => {
  const image = path.join(dir, 'full-source.qcow2');
  const empty = path.join(dir, 'full-target.qcow2');
  copyFileSync(path.join(dir, 'seed.qcow2'), image);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', empty, String(DISK_BYTES)]);
  const source = await startQemu('full-src', image, true);
  const target = await startQemu('full-dst', empty, false);
  const nbdPort = await freePort();
  await target.qmp.execute('nbd-server-start', {
    addr: { type: 'inet', data: { host: '127.0.0.1', port: String(nbdPort) } },
  });
  await target.qmp.execute('block-export-add', {
    type: 'nbd',
    id: 'ex',
    'node-name': NODE,
    name: EXPORT,
    writable: true,
  });
  await source.qmp.execute('blockdev-add', {
    driver: 'nbd',
    'node-name': 'full-nbd',
    server: { type: 'inet', host: '127.0.0.1', port: String(nbdPort) },
    export: EXPORT,
  });
  const started = Date.now();
  const ready = source.qmp.waitForEvent('BLOCK_JOB_READY', { timeoutMs: 240_000 });
  await source.qmp.execute('blockdev-mirror', {
    'job-id': 'full',
    device: NODE,
    target: 'full-nbd',
    sync: 'full',
    'copy-mode': 'background',
  });
  const event = await ready;
  const ms = Date.now() - started;
  const done = source.qmp.waitForEvent('BLOCK_JOB_COMPLETED', { timeoutMs: 30_000 });
  await source.qmp.execute('block-job-cancel', { device: 'full' });
  await done;
  await stopQemu(source);
  await stopQemu(target);
  results.push(
    `full mirror of the same ${DISK_BYTES / MiB} MiB disk: ${(Number(event.data.len) / MiB).toFixed(1)} MiB in ${ms} ms`,
  );
  assert.equal(compare(image, empty), 'Images are identical.');
});

ROUNDS.forEach((round, index) => {
  test(`delta move: ${round.name}`, { timeout: 300_000 }, () => runRound(round, index));
});

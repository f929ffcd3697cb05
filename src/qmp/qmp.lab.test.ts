// The QMP client against a real QEMU: a paused q35 machine under TCG with one qcow2 disk.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  QmpClient,
  QmpClosedError,
  QmpError,
  type QmpEvent,
  queryBlock,
  queryBlockJobs,
  queryBlockstats,
  queryCpusFast,
  queryDirtyRate,
  queryMigrate,
  queryStatus,
  queryVersion,
} from './index.js';

const TIMEOUT = { timeout: 120_000 };

let dir: string;
let qemu: ChildProcess | undefined;
let qemuStderr = '';
let qmp: QmpClient;
const events: QmpEvent[] = [];

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'silobreak-qmp-lab-'));
  const disk = path.join(dir, 'disk.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']);
  const socket = path.join(dir, 'qmp.sock');
  qemu = spawn(
    'qemu-system-x86_64',
    [
      ['-machine', 'q35', '-accel', 'tcg', '-m', '64', '-nodefaults', '-display', 'none', '-S'],
      ['-blockdev', `driver=file,filename=${disk},node-name=file0`],
      ['-blockdev', 'driver=qcow2,file=file0,node-name=disk0'],
      ['-device', 'virtio-blk-pci,drive=disk0,id=vda'],
      ['-qmp', `unix:${socket},server=on,wait=off`],
    ].flat(),
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  qemu.stderr?.on('data', (chunk: Buffer) => (qemuStderr += chunk.toString()));
  qmp = await QmpClient.connect(socket, { retryUntilMs: Date.now() + 60_000, timeoutMs: 30_000 });
  qmp.onEvent((e) => events.push(e));
}, TIMEOUT);

after(async () => {
  await qmp?.close();
  if (qemu && qemu.exitCode === null && qemu.signalCode === null) {
    const exited = once(qemu, 'exit');
    qemu.kill('SIGKILL');
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
});

test('greeting and query-version agree on QEMU 7.x or newer', TIMEOUT, async () => {
  const { qemu: fromGreeting } = qmp.greeting.QMP.version;
  assert.ok(fromGreeting.major >= 7, `QEMU ${fromGreeting.major}.${fromGreeting.minor}`);
  const version = await queryVersion(qmp);
  assert.deepEqual(version.qemu, fromGreeting);
  assert.equal(version.package, qmp.greeting.QMP.version.package);
});

test('query-status of a machine started with -S is prelaunch, not running', TIMEOUT, async () => {
  const status = await queryStatus(qmp);
  assert.equal(status.status, 'prelaunch');
  assert.equal(status.running, false);
});

test('an unknown command rejects with QmpError CommandNotFound', TIMEOUT, async () => {
  const error = await qmp.execute('no-such-command').catch((e: unknown) => e);
  assert.ok(error instanceof QmpError, String(error));
  assert.equal(error.errorClass, 'CommandNotFound');
  assert.equal(error.command, 'no-such-command');
  assert.match(error.desc, /no-such-command/);
  const badArgs = await qmp.execute('query-status', { bogus: 1 }).catch((e: unknown) => e);
  assert.ok(badArgs instanceof QmpError);
  assert.equal(badArgs.errorClass, 'GenericError');
});

test('cont emits RESUME and stop emits STOP', TIMEOUT, async () => {
  const resumed = qmp.waitForEvent('RESUME', { timeoutMs: 30_000 });
  await qmp.execute('cont');
  await resumed;
  assert.equal((await queryStatus(qmp)).status, 'running');
  const stopped = qmp.waitForEvent('STOP', { timeoutMs: 30_000 });
  await qmp.execute('stop');
  const stop = await stopped;
  assert.deepEqual(stop.data, {});
  assert.ok(stop.timestamp.seconds > 1_600_000_000, 'timestamp is wall-clock time');
  assert.deepEqual(
    events.map((e) => e.event).filter((n) => n === 'RESUME' || n === 'STOP'),
    ['RESUME', 'STOP'],
  );
  assert.equal((await queryStatus(qmp)).status, 'paused');
});

test('block, cpu and dirty-rate queries parse real replies', TIMEOUT, async () => {
  const block = await queryBlock(qmp);
  const vda = block.find((b) => b.qdev?.includes('vda'));
  assert.ok(vda?.inserted, JSON.stringify(block));
  assert.equal(vda.inserted['node-name'], 'disk0');
  assert.equal(vda.inserted.image.format, 'qcow2');
  assert.equal(vda.inserted.image['virtual-size'], 64 * 1024 * 1024);

  const drives = await queryBlockstats(qmp);
  assert.ok(drives.some((s) => s.qdev?.includes('vda')));
  const nodes = await queryBlockstats(qmp, { queryNodes: true });
  const disk0 = nodes.find((s) => s['node-name'] === 'disk0');
  assert.ok(disk0, JSON.stringify(nodes.map((s) => s['node-name'])));
  assert.equal(disk0.parent?.['node-name'], 'file0');
  assert.equal(typeof disk0.stats.wr_bytes, 'number');

  assert.deepEqual(await queryBlockJobs(qmp), []);

  const cpus = await queryCpusFast(qmp);
  assert.equal(cpus.length, 1);
  assert.equal(cpus[0]?.target, 'x86_64');
  assert.ok((cpus[0]?.['thread-id'] ?? 0) > 0);

  const dirty = await queryDirtyRate(qmp);
  assert.equal(dirty.status, 'unstarted');
});

test('a migration to a local pipe reports MIGRATION events and parsed statistics', TIMEOUT, async () => {
  assert.deepEqual(await queryMigrate(qmp), {}, 'nothing to report before any migration');
  await qmp.execute('migrate-set-capabilities', {
    capabilities: [{ capability: 'events', state: true }],
  });
  const state = path.join(dir, 'state');
  const completed = qmp.waitForEvent('MIGRATION', {
    timeoutMs: 100_000,
    match: (e) => e.data.status === 'completed' || e.data.status === 'failed',
  });
  await qmp.execute('migrate', { uri: `exec:cat > ${state}` });
  assert.equal((await completed).data.status, 'completed');
  const info = await queryMigrate(qmp);
  assert.equal(info.status, 'completed');
  assert.ok(info.ram && info.ram.total >= 64 * 1024 * 1024, JSON.stringify(info.ram));
  assert.ok(info.ram.transferred > 0);
  assert.equal(info.ram.remaining, 0);
  assert.ok((info.ram['dirty-sync-count'] ?? 0) >= 1);
  assert.equal(typeof info['total-time'], 'number');
  assert.equal(typeof info.downtime, 'number');
  assert.ok((await stat(state)).size > 0);
  const statuses = events.filter((e) => e.event === 'MIGRATION').map((e) => e.data.status);
  assert.deepEqual([statuses[0], statuses.at(-1)], ['setup', 'completed']);
});

test('quit: the reply arrives, then SHUTDOWN, then QEMU closes the connection', TIMEOUT, async () => {
  const closed = new Promise<Error | undefined>((resolve) => qmp.onClose(resolve));
  const shutdown = qmp.waitForEvent('SHUTDOWN', { timeoutMs: 30_000 });
  assert.deepEqual(await qmp.execute('quit'), {});
  assert.equal((await shutdown).data.reason, 'host-qmp-quit');
  const closeError = await closed;
  assert.ok(closeError instanceof QmpClosedError, 'QEMU closing the socket is reported');
  assert.equal(qmp.closed, true);
  await assert.rejects(qmp.execute('query-status'), QmpClosedError);
  assert.ok(qemu);
  const [code] = qemu.exitCode === null ? ((await once(qemu, 'exit')) as [number | null]) : [qemu.exitCode];
  assert.equal(code, 0, qemuStderr);
});

// A cold move's agent side against the real thing (a `silobreak agent` process on loopback,
// qemu-nbd and qemu-img; no guest boots): the exports serve only a client with the move's secret,
// and the target copies only from them (another export, or the wrong secret, is refused with 422
// and nothing written); the copy runs in the background and ends byte for byte equal with the
// exports closed; a copy whose link goes silent for its stall window stops and removes its
// half-made VM; an agent killed with exports open and a copy running leaves nothing once it is
// started again.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, test } from 'node:test';
import {
  AgentMigrationClient,
  type ApiError,
  type ColdCopyRequest,
  type ColdCopyStatus,
} from '../../api/index.js';
import { startLabAgent, type LabAgent } from '../lab-agent.js';

const MiB = 1024 * 1024;
const root = path.resolve(import.meta.dirname, '..', '..', '..');
let agent: LabAgent;
let moves: AgentMigrationClient;

/** PIDs of processes named `name` whose command line mentions `dir`. */
function processesOf(name: string, dir: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (path.basename(argv[0] ?? '') === name && argv.some((a) => a.includes(dir))) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** A stopped VM with one 64 MiB disk holding `dataMiB` of random data at its start. */
async function vmWithData(name: string, dataMiB: number): Promise<string> {
  const vm = await agent.client.createVm({
    name,
    vcpus: 1,
    memoryMiB: 128,
    disks: [{ id: 'root', sizeBytes: 64 * MiB }],
    start: false,
  });
  const image = vm.disks[0]?.path ?? '';
  if (dataMiB > 0) {
    const raw = path.join(agent.dir, `${name}.raw`);
    await writeFile(raw, Buffer.concat([randomBytes(dataMiB * MiB), Buffer.alloc((64 - dataMiB) * MiB)]));
    execFileSync('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'qcow2', raw, image]);
  }
  return image;
}

/**
 * A TCP relay on loopback to `port` that passes at most `limit` bytes from it on each connection,
 * then nothing more (a link cut in the middle of a copy); the rest is dropped.
 */
async function cutAfter(port: number, limit: number): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port });
    sockets.add(client).add(upstream);
    let passed = 0;
    client.on('data', (chunk: Buffer) => upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => {
      if (passed < limit) client.write(chunk.subarray(0, limit - passed));
      passed += chunk.length;
    });
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

const nbdPort = (uri: string | undefined) => Number(/:(\d+)\//.exec(uri ?? '')?.[1]);

async function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

async function settled(id: string): Promise<ColdCopyStatus> {
  for (const deadline = Date.now() + 120_000; ; await sleep(200)) {
    const status = await moves.coldStatus(id);
    if (status.state !== 'running') return status;
    assert.ok(Date.now() < deadline, 'the copy never ended');
  }
}

before(async () => {
  agent = await startLabAgent({ prefix: 'sb-cold-', hostName: 'h1', token: randomBytes(16).toString('hex') });
  moves = new AgentMigrationClient(agent.client.http);
});
/** Cold moves a case opened: closed after it, and every VM deleted, so a failed case fails alone. */
const opened: string[] = [];
afterEach(async () => {
  for (const id of opened.splice(0)) await moves.coldClose(id).catch(() => undefined);
  for (const vm of await agent.client.listVms()) await agent.client.deleteVm(vm.name, true);
});

after(async () => {
  // The restarted agent (last case) is not the one close() knows.
  agent.process.kill('SIGKILL');
  await agent.close();
});

test('a cold copy runs in the background, ends equal to its source, and the exports close', async () => {
  const source = await vmWithData('src', 24);
  const id = randomUUID();
  opened.push(id);
  const exported = await moves.coldExport('src', id);
  assert.equal(processesOf('qemu-nbd', agent.dir).length, 1, 'one export per disk');
  const target =
    (
      await agent.client.createVm({
        name: 'dst',
        vcpus: 1,
        memoryMiB: 128,
        disks: [{ id: 'root', sizeBytes: 64 * MiB }],
        start: false,
      })
    ).disks[0]?.path ?? '';
  const untouched = readFileSync(target);

  // The exports serve only a client with the move's secret.
  assert.match(exported.secret, /^[0-9a-f]{64}$/);
  const uri = exported.disks[0]?.uri ?? '';
  assert.throws(
    () => execFileSync('qemu-img', ['info', '-f', 'raw', uri], { stdio: 'pipe' }),
    /TLS negotiation required/,
  );
  // A copy with another secret, or from an export that is not this move's (a plain qemu-nbd on
  // another port, serving another image), is refused before anything is written.
  const foreign = path.join(agent.dir, 'foreign.raw');
  await writeFile(foreign, randomBytes(MiB));
  const foreignPort = 50990;
  const other = spawn(
    'qemu-nbd',
    [
      '--read-only',
      '--persistent',
      '-f',
      'raw',
      '-b',
      '127.0.0.1',
      '-p',
      String(foreignPort),
      '-x',
      'root',
      foreign,
    ],
    { stdio: 'ignore' },
  );
  try {
    for (let i = 0; i < 50 && !(await canConnect(foreignPort)); i++) await sleep(100);
    for (const [what, request] of [
      ['another secret', { migrationId: id, disks: exported.disks, secret: 'cd'.repeat(32) }],
      [
        'another export',
        {
          migrationId: id,
          disks: [{ diskId: 'root', uri: `nbd://127.0.0.1:${foreignPort}/root` }],
          secret: exported.secret,
        },
      ],
    ] satisfies [string, ColdCopyRequest][]) {
      await assert.rejects(moves.coldCopy('dst', request), (error: ApiError) => {
        assert.deepEqual(
          [error.status, error.code, error.field],
          [422, 'cold-source-refused', 'disks.0.uri'],
          what,
        );
        assert.doesNotMatch(error.message, /qemu|TLS|handshake|--object/i, what);
        return true;
      });
      await assert.rejects(moves.coldStatus(id), { code: 'migration-not-found' }, `${what}: no copy started`);
      assert.deepEqual(processesOf('qemu-img', agent.dir), [], what);
      assert.ok(readFileSync(target).equals(untouched), `${what}: nothing written`);
    }
  } finally {
    other.kill('SIGKILL');
  }

  const started = await moves.coldCopy('dst', {
    migrationId: id,
    disks: exported.disks,
    secret: exported.secret,
  });
  assert.equal(started.state, 'running');
  const done = await settled(id);
  assert.equal(done.state, 'completed', JSON.stringify(done.error));
  assert.equal(done.percent, 100);
  // Counted at the copy's steps: over loopback 24 MiB take well under the watch's second.
  assert.ok(done.receivedBytes > 0, `received ${done.receivedBytes} bytes`);
  execFileSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', source, target]);
  assert.deepEqual(await moves.coldClose(id), { migrationId: id, closed: true });
  await sleep(500);
  assert.deepEqual(processesOf('qemu-nbd', agent.dir), [], 'the export is gone');
  assert.deepEqual(
    await moves.coldClose(id),
    { migrationId: id, closed: false },
    'closing again changes nothing',
  );
  assert.equal((await agent.client.getVm('dst')).state, 'stopped', 'the finished copy stays');
});

test('a copy whose link goes silent for its stall window stops and removes its half-made VM', async () => {
  await vmWithData('src3', 16);
  const id = randomUUID();
  opened.push(id);
  const exported = await moves.coldExport('src3', id);
  // The export behind a link that goes silent after the first MiB (the check before the copy passes).
  const link = await cutAfter(nbdPort(exported.disks[0]?.uri), MiB);
  try {
    await vmWithData('half', 0);
    const started = Date.now();
    await moves.coldCopy('half', {
      migrationId: id,
      disks: [{ diskId: 'root', uri: `nbd://127.0.0.1:${link.port}/root` }],
      secret: exported.secret,
      stallWindowSeconds: 5,
    });
    const done = await settled(id);
    const ms = Date.now() - started;
    assert.equal(done.state, 'failed');
    assert.equal(done.error?.code, 'migration-stalled');
    assert.match(done.error?.detail ?? '', /no byte from the source's exports for \d+ s/);
    assert.ok(ms >= 5000 && ms < 15_000, `stopped after ${ms} ms`);
    assert.ok(done.receivedBytes > 0, 'it had begun');
    assert.deepEqual(
      (await agent.client.listVms()).map((v) => v.name),
      ['src3'],
      'the half-made VM is gone',
    );
    assert.deepEqual(
      readdirSync(path.join(agent.dir, 'ds1')).filter((f) => f.includes('half')),
      [],
      'with its image',
    );
    assert.deepEqual(processesOf('qemu-img', agent.dir), []);
  } finally {
    link.close();
  }
});

test('an agent killed with exports open and a copy running leaves nothing once it is started again', async () => {
  await vmWithData('src2', 8);
  await vmWithData('kept', 4);
  const id = randomUUID();
  opened.push(id);
  const exported = await moves.coldExport('src2', id);
  // The copy reads over a link that goes silent, so it is still running when the agent dies.
  const link = await cutAfter(nbdPort(exported.disks[0]?.uri), MiB);
  try {
    await vmWithData('dst2', 0);
    const copyId = randomUUID();
    opened.push(copyId);
    await moves.coldCopy('dst2', {
      migrationId: copyId,
      disks: [{ diskId: 'root', uri: `nbd://127.0.0.1:${link.port}/root` }],
      secret: exported.secret,
    });
    assert.equal(processesOf('qemu-nbd', agent.dir).length, exported.disks.length);
    assert.equal(processesOf('qemu-img', agent.dir).length, 1);
    agent.process.kill('SIGKILL');
    await sleep(500);
    assert.equal(processesOf('qemu-nbd', agent.dir).length, 1, 'the export outlived its agent');
    // The same agent again, on its configuration and state.
    const log = openSync(path.join(agent.dir, 'agent.log'), 'a');
    agent.process = spawn(
      process.execPath,
      [path.join(root, 'bin/silobreak.js'), 'agent', '--config', path.join(agent.dir, 'agent.json')],
      { stdio: ['ignore', log, log] },
    );
    closeSync(log);
    for (const deadline = Date.now() + 60_000; ; await sleep(200)) {
      if (
        await agent.client.host().then(
          () => true,
          () => false,
        )
      )
        break;
      assert.ok(Date.now() < deadline, 'the agent came back');
    }
    await sleep(500);
    assert.deepEqual(processesOf('qemu-nbd', agent.dir), [], 'its export ended');
    assert.deepEqual(processesOf('qemu-img', agent.dir), [], 'its copy ended');
    assert.deepEqual(
      (await agent.client.listVms()).map((v) => v.name).sort(),
      ['kept', 'src2'],
      'the half-made copy went, the other VMs stayed',
    );
    assert.deepEqual(await moves.coldClose(id), { migrationId: id, closed: false });
    await assert.rejects(moves.coldStatus(copyId), { code: 'migration-not-found' });
    assert.deepEqual(readdirSync(path.join(agent.dir, 'state', 'cold-moves')), [], 'no key or journal left');
  } finally {
    link.close();
  }
});

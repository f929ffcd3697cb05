// The migration API end to end: two real agents (in this process, on loopback, each with its own
// state dir and datastore) move a running VM of the guest image through AgentMigrationClient,
// the way the manager will: cancel before the copy (twice), abort on the target, then a new move
// of the same VM right after, which must complete with the guest's records intact.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AgentClient,
  AgentMigrationClient,
  type IncomingVm,
  type MigrationStatus,
  type Vm,
} from '../../api/index.js';
import { checkMovedGuest, GUEST_WORKLOADS } from '../../guest/index.js';
import { startAgent, type RunningAgent } from '../agent.js';
import { jsonLineLogger } from '../logger.js';
import { migrationRoutes } from './routes.js';

const dir = mkdtempSync(path.join(tmpdir(), 'sb-migapi-'));
const token = randomBytes(16).toString('hex');
const agents: RunningAgent[] = [];
let a: { agent: AgentClient; moves: AgentMigrationClient; ds: string };
let b: { agent: AgentClient; moves: AgentMigrationClient; ds: string };
const VM = 'mover';
const VM2 = 'mover2';

async function agentAt(name: string, portBase: number) {
  const ds = path.join(dir, name, 'ds');
  const running = await startAgent(
    {
      hostName: name,
      listen: { address: '127.0.0.1', port: portBase + 49 },
      breakGlassToken: token,
      fabricAddress: '127.0.0.1',
      stateDir: path.join(dir, name, 'state'),
      datastores: [
        { name: 'local', path: ds, default: true },
        { name: 'second', path: `${ds}2` },
      ],
      vswitches: [],
      accelerator: 'tcg',
    },
    {
      log: jsonLineLogger(process.env.SB_MIG_LOG ? 'info' : 'silent'),
      routePlugins: [migrationRoutes({ portRange: [portBase, portBase + 48] })],
    },
  );
  agents.push(running);
  // The agents' break-glass sockets: this test drives the move routes as the manager would.
  const agent = new AgentClient({ baseUrl: 'http://agent', socketPath: running.socketPath, token }, 60_000);
  return { agent, moves: new AgentMigrationClient(agent.http), ds };
}

async function exec(client: AgentClient, command: string[], detach = false, vmName = VM) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await client.guestExec(vmName, command, 120, detach);
    } catch (error) {
      // Retried while the guest agent starts (a minute at most).
      if (attempt >= 60) throw error;
      await sleep(1000);
    }
  }
}

function incomingVm(vm: Vm): IncomingVm {
  return {
    id: vm.id,
    name: vm.name,
    vcpus: vm.vcpus,
    memoryMiB: vm.memoryMiB,
    disks: vm.disks.map((d) => ({ id: d.id, format: d.format, virtualSizeBytes: d.virtualSizeBytes })),
    nics: vm.nics.map((n) => ({ id: n.id, vswitch: n.vswitch, mac: n.mac })),
    machineType: vm.machineType,
    cpuModel: vm.cpuModel,
  };
}

async function waitFinished(id: string, timeoutMs = 300_000, on = a): Promise<MigrationStatus> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const status = await on.moves.status(id);
    if (status.state !== 'running') return status;
    if (Date.now() > until) throw new Error(`migration ${id} still ${status.progress.phase}`);
    await sleep(250);
  }
}

before(async () => {
  a = await agentAt('hosta', 47300);
  b = await agentAt('hostb', 47350);
  await a.agent.createVm({
    name: VM,
    vcpus: 1,
    memoryMiB: 384,
    disks: [{ id: 'root', sizeBytes: 512 * 1024 * 1024 }],
    start: true,
  });
  const written = await exec(a.agent, [
    GUEST_WORKLOADS.diskWriter,
    'write',
    '--file',
    '/data/before',
    '--rate-kib',
    '0',
    '--count',
    '1000',
  ]);
  assert.equal(written.exitCode, 0, written.stderr);
});

after(async () => {
  for (const client of [a?.agent, b?.agent]) {
    for (const name of [VM, VM2]) await client?.stopVm(name).catch(() => undefined);
  }
  for (const agent of agents) await agent.close();
  if (!process.env.SB_MIG_KEEP) rmSync(dir, { recursive: true, force: true });
});

test(
  'cancel before the copy (twice), abort on the target: nothing left, VM runs on',
  { timeout: 300_000 },
  async () => {
    const id = randomUUID();
    const plan = await a.moves.plan({ vmName: VM });
    const vm = await a.agent.getVm(VM);
    const prepared = await b.moves.prepareIncoming({
      migrationId: id,
      vm: incomingVm(vm),
      plan,
      sourceHost: 'hosta',
    });
    assert.equal(prepared.exports.length, 1);
    assert.equal((await b.agent.getVm(VM)).state, 'incoming');
    // A second move of the same VM while this one is in flight is refused.
    await a.moves.start({ migrationId: id, vmName: VM, plan, target: prepared });
    await assert.rejects(
      a.moves.start({ migrationId: randomUUID(), vmName: VM, plan, target: prepared }),
      (e: Error & { status?: number }) => e.status === 409,
    );
    await a.moves.cancel(id);
    await a.moves.cancel(id);
    const status = await waitFinished(id);
    assert.equal(status.state, 'cancelled');
    const aborted = await b.moves.abortIncoming(id);
    assert.equal(aborted.state, 'cancelled');
    assert.deepEqual(await b.agent.listVms(), []);
    assert.deepEqual(readdirSync(b.ds), []);
    assert.equal((await a.agent.getVm(VM)).state, 'running');
  },
);

test('live storage move to another datastore while the guest writes', { timeout: 300_000 }, async () => {
  await exec(
    a.agent,
    [GUEST_WORKLOADS.diskWriter, 'write', '--file', '/data/moving', '--rate-kib', '256'],
    true,
  );
  const before = await a.agent.getVm(VM);
  await assert.rejects(
    a.moves.moveStorage(VM, { datastore: 'local' }),
    (e: Error & { status?: number; field?: string }) => e.status === 400 && e.field === 'datastore',
  );
  const started = await a.moves.moveStorage(VM, { datastore: 'second' });
  assert.equal(started.role, 'storage');
  const status = await waitFinished(started.id);
  assert.equal(status.state, 'completed', JSON.stringify(status.error));
  assert.equal(status.progress.percent, 100);
  console.log(`# storage move: ${status.stats.totalTimeMs} ms for ${status.stats.diskBytes} B`);
  const after = await a.agent.getVm(VM);
  assert.equal(after.state, 'running');
  assert.equal(after.disks[0]?.datastore, 'second');
  assert.notEqual(after.disks[0]?.path, before.disks[0]?.path);
  assert.deepEqual(readdirSync(a.ds), [], 'old file removed');
  await exec(a.agent, ['/usr/bin/killall', 'sb-diskwriter']);
  const verify = await exec(a.agent, [GUEST_WORKLOADS.diskWriter, 'verify', '--file', '/data/moving']);
  assert.equal(verify.exitCode, 0, `${verify.stdout} ${verify.stderr}`);
});

test(
  'a new move right after the cancel completes; the guest runs on the target only',
  { timeout: 600_000 },
  async () => {
    await exec(
      a.agent,
      [GUEST_WORKLOADS.diskWriter, 'write', '--file', '/data/during', '--rate-kib', '128'],
      true,
    );
    const id = randomUUID();
    const plan = await a.moves.plan({ vmName: VM, policy: { linkBitsPerSecond: 15e9 } });
    const vm = await a.agent.getVm(VM);
    const prepared = await b.moves.prepareIncoming({
      migrationId: id,
      vm: incomingVm(vm),
      plan,
      sourceHost: 'hosta',
    });
    await a.moves.start({ migrationId: id, vmName: VM, plan, target: prepared });
    const status = await waitFinished(id);
    assert.equal(status.state, 'completed', JSON.stringify(status.error));
    assert.equal(status.progress.percent, 100);
    const moved = await b.moves.finishIncoming(id);
    assert.equal(moved.state, 'running');
    assert.equal(moved.id, vm.id);
    const s = status.stats;
    console.log(
      `# API move: total ${s.totalTimeMs} ms, mirror ${s.mirrorTimeMs} ms, memory ${s.memoryTimeMs} ms, ` +
        `downtime ${s.downtimeMs} ms, ${s.iterations} passes, multifd ${s.multifdChannels}`,
    );
    const completed = await a.moves.complete(id);
    assert.equal(completed.state, 'completed');
    assert.deepEqual(await a.agent.listVms(), []);
    assert.deepEqual(readdirSync(a.ds), [], 'source disks removed');
    assert.deepEqual(readdirSync(`${a.ds}2`), [], 'source disks removed');
    await checkMovedGuest(path.join(dir, 'hostb', 'state', `${VM}.console.log`), async () => {
      await exec(b.agent, ['/usr/bin/killall', 'sb-diskwriter']);
      for (const file of ['/data/before', '/data/during']) {
        const verify = await exec(b.agent, [GUEST_WORKLOADS.diskWriter, 'verify', '--file', file]);
        assert.equal(verify.exitCode, 0, `${file}: ${verify.stdout} ${verify.stderr}`);
        console.log(`# ${file}: ${verify.stdout?.trim()}`);
      }
    });
  },
);

test(
  'target agent restarted during the copy: the move completes and the guest runs there',
  {
    timeout: 600_000,
  },
  async () => {
    // A second guest, booted on host b, moves to a; a's agent stops as the copy starts and is
    // back only after it completed, so the restarted agent adopts the move and resumes the guest.
    await b.agent.createVm({
      name: VM2,
      vcpus: 1,
      memoryMiB: 384,
      disks: [{ id: 'root', sizeBytes: 512 * 1024 * 1024 }],
      start: true,
    });
    const written = await exec(
      b.agent,
      [GUEST_WORKLOADS.diskWriter, 'write', '--file', '/data/before', '--rate-kib', '0', '--count', '500'],
      false,
      VM2,
    );
    assert.equal(written.exitCode, 0, written.stderr);
    await exec(b.agent, [GUEST_WORKLOADS.dirty, '--rate-mib', '50', '--size-mib', '64'], true, VM2);
    const id = randomUUID();
    const plan = await b.moves.plan({ vmName: VM2 });
    const vm = await b.agent.getVm(VM2);
    const prepared = await a.moves.prepareIncoming({
      migrationId: id,
      vm: incomingVm(vm),
      plan,
      sourceHost: 'hostb',
    });
    await b.moves.start({ migrationId: id, vmName: VM2, plan, target: prepared });
    const agentA = agents[0];
    assert.ok(agentA);
    await agentA.close();
    agents.shift();
    const status = await waitFinished(id, 300_000, b);
    assert.equal(status.state, 'completed', JSON.stringify(status.error));
    a = await agentAt('hosta', 47300);
    const moved = await a.moves.finishIncoming(id);
    assert.equal(moved.state, 'running');
    await b.moves.complete(id);
    assert.deepEqual(
      (await b.agent.listVms()).map((v) => v.name),
      [VM],
    );
    const consoleFile = path.join(dir, 'hosta', 'state', `${VM2}.console.log`);
    await checkMovedGuest(consoleFile, async () => {
      const verify = await exec(
        a.agent,
        [GUEST_WORKLOADS.diskWriter, 'verify', '--file', '/data/before'],
        false,
        VM2,
      );
      assert.equal(verify.exitCode, 0, `${verify.stdout} ${verify.stderr}`);
    });
  },
);

// The manager against real agents (child processes on 127.0.0.1, TCG) and itself as a child
// process, so it can be killed with SIGKILL in the middle of a job.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import {
  AgentClient,
  agentSocketPath,
  ApiError,
  ManagerClient,
  type ChangeRecord,
  type ManagedVm,
} from '../api/index.js';

const BIN = path.resolve(import.meta.dirname, '..', '..', 'bin', 'silobreak.js');
const MiB = 1024 ** 2;
const ADMIN = `sb_test_${Date.now()}_admin_secret`;

let dir: string;
const agents: {
  name: string;
  url: string;
  token: string;
  config: string;
  proc: ChildProcess;
  client: AgentClient;
}[] = [];
let managerProc: ChildProcess | undefined;
let managerUrl: string;
let api: ManagerClient;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || !address) throw new Error('no port');
  return address.port;
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
}

function spawnLogged(args: string[], log: string): ChildProcess {
  const proc = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: string[] = [];
  proc.stdout?.on('data', (c: Buffer) => chunks.push(c.toString()));
  proc.stderr?.on('data', (c: Buffer) => chunks.push(c.toString()));
  proc.on('exit', () => void writeFile(log, chunks.join('')).catch(() => {}));
  return proc;
}

async function startAgent(name: string): Promise<void> {
  const port = await freePort();
  const base = path.join(dir, name);
  await mkdir(path.join(base, 'ds'), { recursive: true });
  const token = `${name}-agent-token-0123456789`;
  const config = {
    hostName: name,
    listen: { address: '127.0.0.1', port },
    breakGlassToken: token,
    fabricAddress: '127.0.0.1',
    stateDir: path.join(base, 'state'),
    datastores: [{ name: 'local', path: path.join(base, 'ds'), default: true }],
    vswitches: [],
    accelerator: 'tcg',
  };
  const configFile = path.join(base, 'agent.json');
  await writeFile(configFile, JSON.stringify(config));
  const proc = spawnLogged(['agent', '--config', configFile], path.join(base, 'agent.log'));
  const url = `https://127.0.0.1:${port}`;
  // The test's own look at the agent: its break-glass socket.
  const client = new AgentClient({
    baseUrl: 'http://agent',
    socketPath: agentSocketPath(path.join(base, 'state')),
    token,
  });
  agents.push({ name, url, token, config: configFile, proc, client });
  await until(`agent ${name}`, 60_000, () => client.host());
}

/** `silobreak agent-join-token` on the agent's config, as on its host. */
async function joinTokenOf(name: string): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [
    BIN,
    'agent-join-token',
    '--config',
    agent(name).config,
  ]);
  return stdout.trim();
}

async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill('SIGTERM');
  await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
  if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
}

async function startManagerProcess(port: number): Promise<void> {
  managerProc = spawnLogged(
    [
      'manager',
      '--data-dir',
      path.join(dir, 'manager'),
      '--listen',
      `127.0.0.1:${port}`,
      '--reconcile-interval',
      '1',
      '--token-file',
      path.join(dir, 'admin.secret'),
    ],
    path.join(dir, `manager-${Date.now()}.log`),
  );
  managerUrl = `http://127.0.0.1:${port}`;
  api = new ManagerClient(managerUrl, ADMIN);
  await until('manager', 30_000, () => api.info());
}

const agent = (name: string) => {
  const found = agents.find((a) => a.name === name);
  if (!found) throw new Error(`no agent ${name}`);
  return found;
};
const changesOf = async (objectId: string): Promise<ChangeRecord[]> =>
  (await api.listChanges({ objectId, limit: 1000 })).items;
const allChanges = async () => (await api.listChanges({ limit: 1000 })).items;

let managerPort: number;

before(
  async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sb-manager-lab-'));
    await writeFile(path.join(dir, 'admin.secret'), `${ADMIN}\n`, { mode: 0o600 });
    await Promise.all([startAgent('h1'), startAgent('h2')]);
    managerPort = await freePort();
    await startManagerProcess(managerPort);
  },
  { timeout: 180_000 },
);

after(
  async () => {
    // VMs first (the agent leaves them running when it stops), then agents, manager and files.
    for (const a of agents) {
      const patient = new AgentClient({ ...a.client.http.endpoint }, 180_000);
      const vms = await patient.listVms().catch(() => []);
      for (const vm of vms) await patient.deleteVm(vm.name, true).catch(() => {});
    }
    // Whatever QEMU an agent could not remove still has its pidfile under our directory.
    for (const a of agents) {
      const stateDir = path.join(dir, a.name, 'state');
      const pidfiles = (await readdir(stateDir, { recursive: true }).catch(() => [])).filter((f) =>
        f.endsWith('.pid'),
      );
      for (const file of pidfiles) {
        const pid = Number((await readFile(path.join(stateDir, file), 'utf8').catch(() => '')).trim());
        if (pid > 0) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
    }
    for (const proc of [managerProc, ...agents.map((a) => a.proc)]) if (proc) await stopProcess(proc);
    await rm(dir, { recursive: true, force: true });
  },
  { timeout: 180_000 },
);

test(
  'hosts join with their join token; a wrong one is refused and changes nothing',
  { timeout: 60_000 },
  async () => {
    const before = (await allChanges()).length;
    const [, fingerprint] = (await joinTokenOf('h1')).split('.');
    await assert.rejects(
      api.addHost({ address: agent('h1').url, joinToken: `wrong-secret-0123456789ab.${fingerprint}` }),
      (e: unknown) => e instanceof ApiError && e.status === 400 && e.field === 'joinToken',
    );
    assert.equal((await allChanges()).length, before);
    for (const name of ['h1', 'h2']) {
      const host = await api.addHost({ address: agent(name).url, joinToken: await joinTokenOf(name) });
      assert.equal(host.name, name);
      assert.equal(host.state, 'connected');
      assert.equal(host.accelerator, 'tcg');
      const records = (await changesOf(host.id)).filter((c) => c.actor === 'admin');
      assert.deepEqual(
        records.map((c) => c.action),
        ['created'],
      );
    }
    await assert.rejects(
      api.addHost({ address: agent('h1').url, joinToken: `${'a'.repeat(24)}.${fingerprint}` }),
      (e: unknown) => e instanceof ApiError && e.status === 409,
    );
    const datastores = await api.listDatastores();
    assert.deepEqual(
      datastores.items.map((d) => `${d.host}/${d.name}/${d.default}`),
      ['h1/local/true', 'h2/local/true'],
    );
  },
);

test(
  'a VM created and started through the API runs on the chosen host, with one change record',
  { timeout: 240_000 },
  async () => {
    const { job } = await api.createVm({
      host: 'h2',
      spec: { name: 'api-vm', vcpus: 1, memoryMiB: 128, disks: [{ sizeBytes: 64 * MiB }], start: true },
    });
    const done = await api.waitForJob(job.id, 200_000);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.progress.percent, 100);
    const vm = await api.getVm('api-vm');
    assert.equal(vm.host, 'h2');
    assert.equal(vm.disks[0]?.datastore, 'local', "the host's default datastore");
    const onAgent = await agent('h2').client.getVm('api-vm');
    assert.ok(['running', 'starting'].includes(onAgent.state), onAgent.state);
    assert.ok(onAgent.pid, 'a QEMU process runs');
    assert.equal((await agent('h1').client.listVms()).length, 0);
    const mine = (await changesOf(vm.id)).filter((c) => c.actor === 'admin');
    assert.equal(mine.length, 1);
    assert.equal(mine[0]?.action, 'created');
    assert.equal(mine[0]?.jobId, job.id);
  },
);

test(
  'stop and delete through the API each leave exactly one change record by the token',
  { timeout: 240_000 },
  async () => {
    const vm = await api.getVm('api-vm');
    const stop = await api.stopVm(vm.id);
    assert.equal((await api.waitForJob(stop.job.id, 120_000)).state, 'succeeded');
    assert.equal((await agent('h2').client.getVm('api-vm')).state, 'stopped');
    let mine = (await changesOf(vm.id)).filter((c) => c.actor === 'admin');
    assert.deepEqual(
      mine.map((c) => [c.action, c.changes.find((x) => x.field === 'state')?.after]),
      [
        ['state-changed', 'stopped'],
        ['created', undefined],
      ],
    );
    const del = await api.deleteVm(vm.id);
    assert.equal((await api.waitForJob(del.job.id, 120_000)).state, 'succeeded');
    assert.deepEqual(await agent('h2').client.listVms(), []);
    await assert.rejects(api.getVm(vm.id), (e: unknown) => e instanceof ApiError && e.status === 404);
    mine = (await changesOf(vm.id)).filter((c) => c.actor === 'admin');
    assert.deepEqual(
      mine.map((c) => c.action),
      ['deleted', 'state-changed', 'created'],
    );
  },
);

test(
  'start and a clean shutdown through the API, each recorded once by the token',
  { timeout: 300_000 },
  async () => {
    const { job: create } = await api.createVm({
      host: 'h1',
      spec: { name: 'acpi-vm', vcpus: 1, memoryMiB: 128, disks: [] },
    });
    assert.equal((await api.waitForJob(create.id, 120_000)).state, 'succeeded');
    const { job: start } = await api.startVm('acpi-vm');
    assert.equal((await api.waitForJob(start.id, 120_000)).state, 'succeeded');
    // The guest handles the ACPI power button once its acpid runs: its boot starts acpid right
    // after the guest agent, so a press as soon as the agent answers can come too early.
    await until('acpid in the guest', 180_000, async () => {
      const r = await agent('h1').client.guestExec('acpi-vm', ['/bin/sh', '-c', 'pidof acpid'], 10);
      return r.exitCode === 0 ? true : undefined;
    });
    const timeoutSeconds = 60;
    const { job: shutdown } = await api.shutdownVm('acpi-vm', timeoutSeconds);
    const done = await api.waitForJob(shutdown.id, 150_000);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.equal((done.result as { state?: string } | undefined)?.state, 'stopped');
    // Clean: the guest powered itself off; after the timeout the agent would have forced it off.
    const tookMs = Date.parse(done.finishedAt ?? '') - Date.parse(done.startedAt ?? '');
    assert.ok(tookMs < timeoutSeconds * 1000, `the shutdown took ${tookMs} ms: forced off, not clean`);
    const vm = await api.getVm('acpi-vm');
    const mine = (await changesOf(vm.id)).filter((c) => c.actor === 'admin');
    assert.deepEqual(
      mine.map((c) => [c.action, c.jobId]),
      [
        ['state-changed', shutdown.id],
        ['state-changed', start.id],
        ['created', create.id],
      ],
    );
    const del = await api.deleteVm('acpi-vm');
    assert.equal((await api.waitForJob(del.job.id, 120_000)).state, 'succeeded');
  },
);

test(
  'a VM made or removed directly on an agent shows up by reconciliation as drift, recorded by agent:<host>',
  { timeout: 240_000 },
  async () => {
    const created = await agent('h1').client.createVm({
      name: 'side-vm',
      vcpus: 1,
      memoryMiB: 128,
      disks: [],
    });
    const seen = await until<ManagedVm>('side-vm in the inventory', 30_000, async () =>
      (await api.listVms({ host: 'h1' })).items.find((v) => v.id === created.id),
    );
    assert.equal(seen.host, 'h1');
    assert.deepEqual(
      (await changesOf(created.id)).map((c) => [c.actor, c.action]),
      [['agent:h1', 'created']],
    );
    await agent('h1').client.deleteVm('side-vm', true);
    await until('side-vm gone from the inventory', 30_000, async () =>
      (await api.listVms({ host: 'h1' })).items.some((v) => v.id === created.id) ? undefined : true,
    );
    assert.deepEqual(
      (await changesOf(created.id)).map((c) => [c.actor, c.action]),
      [
        ['agent:h1', 'deleted'],
        ['agent:h1', 'created'],
      ],
    );
    const drift = (await api.listStorageIssues({ rule: 'drift', state: 'all', limit: 1000 })).items;
    assert.deepEqual(
      drift.filter((i) => i.subject.name === 'side-vm').map((i) => i.message.split(':')[0]),
      ['VM side-vm vanished from host h1', 'VM side-vm appeared on host h1'],
    );
  },
);

test(
  'a manager killed (SIGKILL) during a job ends that job in a recorded state after restart',
  { timeout: 300_000 },
  async () => {
    const { job: create } = await api.createVm({
      host: 'h1',
      spec: { name: 'kill-vm', vcpus: 1, memoryMiB: 128, disks: [], start: true },
    });
    assert.equal((await api.waitForJob(create.id, 200_000)).state, 'succeeded');
    // Right after start the guest has no ACPI daemon yet, so the shutdown lasts its timeout: the
    // agent forces the VM off after 10 s (the clean-up after the file waits for that).
    const { job } = await api.shutdownVm('kill-vm', 10);
    await until('the shutdown job to run', 30_000, async () =>
      (await api.getJob(job.id)).state === 'running' ? true : undefined,
    );
    const proc = managerProc;
    assert.ok(proc);
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGKILL');
    await exited;

    await startManagerProcess(managerPort);
    const after = await api.getJob(job.id);
    assert.equal(after.state, 'failed');
    assert.equal(after.error?.code, 'manager-restarted');
    assert.ok(after.finishedAt);
    const [record] = await changesOf(job.id);
    assert.equal(record?.actor, 'system');
    assert.equal(record?.action, 'state-changed');
    assert.deepEqual(record?.changes[0], { field: 'state', before: 'running', after: 'failed' });
    // Nothing else was lost: hosts and the VM are still there.
    assert.equal((await api.listHosts()).items.length, 2);
    assert.equal((await api.getVm('kill-vm')).host, 'h1');
  },
);

test(
  'a host whose agent stops is marked unreachable, and connected again when it is back',
  { timeout: 120_000 },
  async () => {
    const h2 = agent('h2');
    const id = (await api.getHost('h2')).id;
    await stopProcess(h2.proc);
    const down = await until('h2 unreachable', 30_000, async () => {
      const host = await api.getHost('h2');
      return host.state === 'unreachable' ? host : undefined;
    });
    assert.ok(down.lastError, 'the reason is shown');
    h2.proc = spawnLogged(['agent', '--config', h2.config], path.join(dir, 'h2', 'agent-2.log'));
    await until('h2 agent back', 60_000, () => h2.client.host());
    await until('h2 connected', 30_000, async () =>
      (await api.getHost('h2')).state === 'connected' ? true : undefined,
    );
    const states = (await changesOf(id))
      .filter((c) => c.action === 'state-changed')
      .map((c) => [c.actor, c.changes[0]?.after]);
    assert.deepEqual(states, [
      ['system', 'connected'],
      ['system', 'unreachable'],
    ]);
  },
);

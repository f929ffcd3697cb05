import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import {
  AgentClient,
  agentSocketPath,
  ApiError,
  type AgentConfigInput,
  type GuestInfo,
  type VmSpec,
} from '../api/index.js';

/*
 * The agent as the lab runs it: a `silobreak agent` child process on 127.0.0.1 with its own state
 * directory, datastore and bridge, booting real (TCG) guests. One agent and few guests for the
 * whole file; everything is removed afterwards, even when a test fails.
 */

const root = path.resolve(import.meta.dirname, '..', '..');
const TOKEN = 'lab-test-token-0123456789';
const BRIDGE = `sbtb${process.pid % 100000}`;
const GiB = 2 ** 30;
const BOOT_DEADLINE_MS = 240_000;

let dir: string;
let configFile: string;
let config: AgentConfigInput;
let agent: ChildProcess | undefined;
let client: AgentClient;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || !address) throw new Error('no port');
  return address.port;
}

async function startAgentProcess(): Promise<void> {
  const log = openSync(path.join(dir, 'agent.log'), 'a');
  agent = spawn(process.execPath, [path.join(root, 'bin/silobreak.js'), 'agent', '--config', configFile], {
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await client.host();
      return;
    } catch (error) {
      if (agent.exitCode !== null || Date.now() > deadline)
        throw new Error(`agent did not come up: ${await readFile(path.join(dir, 'agent.log'), 'utf8')}`, {
          cause: error,
        });
      await sleep(200);
    }
  }
}

async function killAgent(signal: NodeJS.Signals): Promise<void> {
  const child = agent;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
  agent = undefined;
}

async function waitForGuest(name: string): Promise<GuestInfo> {
  const deadline = Date.now() + BOOT_DEADLINE_MS;
  for (;;) {
    try {
      return await client.guestInfo(name);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(1000);
    }
  }
}

/** Every file the agent could have created for a VM: definitions and disk images. */
async function footprint(): Promise<string[]> {
  const list = async (d: string) => (await readdir(d).catch(() => [])).map((f) => path.join(d, f));
  return [...(await list(path.join(dir, 'state', 'vms'))), ...(await list(path.join(dir, 'ds1')))].sort();
}

/** Asserts the call fails with this status and code and leaves the host as it was. */
async function rejectsWithNothingChanged(
  call: () => Promise<unknown>,
  status: number,
  code: string,
  field?: string,
) {
  const beforeFiles = await footprint();
  const beforeVms = (await client.listVms()).map((vm) => `${vm.name}:${vm.state}`);
  await assert.rejects(call(), (error) => {
    assert.ok(error instanceof ApiError, String(error));
    assert.equal(error.status, status, error.message);
    assert.equal(error.code, code, error.message);
    if (field !== undefined) assert.equal(error.field, field, error.message);
    return true;
  });
  assert.deepEqual(await footprint(), beforeFiles);
  assert.deepEqual(
    (await client.listVms()).map((vm) => `${vm.name}:${vm.state}`),
    beforeVms,
  );
}

const linkExists = (name: string) => {
  try {
    execFileSync('ip', ['link', 'show', 'dev', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-agent-lab-'));
  await mkdir(path.join(dir, 'ds1'));
  config = {
    hostName: 'lab-a',
    listen: { address: '127.0.0.1', port: await freePort() },
    breakGlassToken: TOKEN,
    fabricAddress: '127.0.0.1',
    stateDir: path.join(dir, 'state'),
    datastores: [{ name: 'ds1', path: path.join(dir, 'ds1'), default: true }],
    vswitches: [{ name: 'sw0', bridge: BRIDGE }],
    accelerator: 'tcg',
  };
  configFile = path.join(dir, 'agent.json');
  await writeFile(configFile, JSON.stringify(config));
  // The agent's break-glass socket: this test drives the agent directly, as no manager is there.
  client = new AgentClient(
    { baseUrl: 'http://agent', socketPath: agentSocketPath(config.stateDir), token: TOKEN },
    60_000,
  );
  await startAgentProcess();
});

after(async () => {
  await killAgent('SIGKILL');
  // VMs outlive the agent by design: stop whatever a failed test left running, then its taps.
  const state = path.join(dir, 'state');
  for (const file of await readdir(state).catch(() => [])) {
    if (!file.endsWith('.pid')) continue;
    const pid = Number(await readFile(path.join(state, file), 'utf8'));
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await sleep(500);
  for (const file of await readdir(path.join(state, 'vms')).catch(() => [])) {
    const def = JSON.parse(await readFile(path.join(state, 'vms', file), 'utf8')) as {
      nics: { tap: string }[];
    };
    for (const nic of def.nics) if (linkExists(nic.tap)) execFileSync('ip', ['link', 'del', 'dev', nic.tap]);
  }
  if (linkExists(BRIDGE)) execFileSync('ip', ['link', 'del', 'dev', BRIDGE]);
  await rm(dir, { recursive: true, force: true });
});

const spec = (name: string, extra: Partial<VmSpec> = {}): VmSpec => ({
  name,
  vcpus: 1,
  memoryMiB: 256,
  disks: [{ sizeBytes: 128 * 2 ** 20 }],
  nics: [{ vswitch: 'sw0' }],
  guestIp: '10.251.7.10/24',
  ...extra,
});

test('host, datastores and switches are reported; the bridge was made', async () => {
  const host = await client.host();
  assert.equal(host.name, 'lab-a');
  assert.equal(host.accelerator, 'tcg');
  assert.equal(host.machineType, 'pc-q35-7.2');
  assert.ok(host.memoryBytes > GiB && host.memoryFreeBytes <= host.memoryBytes);
  const [ds] = await client.datastores();
  assert.equal(ds?.name, 'ds1');
  assert.ok(ds && ds.capacityBytes >= ds.freeBytes && ds.freeBytes > 0);
  assert.deepEqual(await client.vswitches(), [{ name: 'sw0', bridge: BRIDGE }]);
  assert.ok(linkExists(BRIDGE));
});

/** A request to the agent's break-glass socket exactly as given: its status and JSON body. */
function onSocket(
  method: string,
  route: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; json: { code?: string } }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      { socketPath: agentSocketPath(config.stateDir), method, path: route, headers },
      (response) => {
        let text = '';
        response.on('data', (c: Buffer) => (text += c.toString()));
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, json: JSON.parse(text) as { code?: string } }),
        );
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

test('requests without the right token get 401 and change nothing', async () => {
  const before = await footprint();
  for (const [method, route, body] of [
    ['GET', '/v1/host', undefined],
    ['GET', '/metrics', undefined],
    ['POST', '/v1/vms', JSON.stringify(spec('intruder'))],
  ] as const) {
    const attempts: Record<string, string>[] = [
      {},
      { authorization: 'Bearer wrong-token-0123456789' },
      { authorization: TOKEN },
    ];
    for (const headers of attempts) {
      const response = await onSocket(
        method,
        route,
        { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) },
        body,
      );
      assert.equal(response.status, 401, `${method} ${route}`);
      assert.equal(response.json.code, 'unauthorized');
    }
  }
  assert.deepEqual(await footprint(), before);
  assert.deepEqual(await client.listVms(), []);
});

test('bad input is refused with a problem naming the field, and changes nothing', async () => {
  const beforeFiles = await footprint();
  const malformed = await onSocket(
    'POST',
    '/v1/vms',
    { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    '{"name": "x",',
  );
  assert.equal(malformed.status, 400);
  assert.equal(malformed.json.code, 'malformed-json');
  assert.deepEqual(await footprint(), beforeFiles);

  await rejectsWithNothingChanged(() => client.createVm(spec('Bad_Name')), 400, 'invalid-input', 'name');
  await rejectsWithNothingChanged(
    () => client.createVm(spec('a', { vcpus: 0 })),
    400,
    'invalid-input',
    'vcpus',
  );
  await rejectsWithNothingChanged(
    () =>
      client.createVm(
        spec('a', { disks: [{ sizeBytes: 2 ** 20 }, { datastore: 'nope', sizeBytes: 2 ** 20 }] }),
      ),
    422,
    'datastore-not-found',
    'disks.1.datastore',
  );
  await rejectsWithNothingChanged(
    () => client.createVm(spec('a', { nics: [{ vswitch: 'nope' }] })),
    422,
    'vswitch-not-found',
    'nics.0.vswitch',
  );
  const [ds] = await client.datastores();
  await rejectsWithNothingChanged(
    () => client.createVm(spec('a', { disks: [{ sizeBytes: (ds?.freeBytes ?? 0) + GiB }] })),
    422,
    'insufficient-capacity',
    'disks.0.sizeBytes',
  );
  const host = await client.host();
  await rejectsWithNothingChanged(
    () => client.createVm(spec('a', { memoryMiB: Math.ceil(host.memoryBytes / 2 ** 20) + 1024 })),
    422,
    'insufficient-memory',
    'memoryMiB',
  );
  await rejectsWithNothingChanged(
    () => client.createVm(spec('a', { guestIp: undefined, guestGateway: '10.251.7.1' })),
    400,
    'invalid-input',
    'guestGateway',
  );
  await rejectsWithNothingChanged(() => client.getVm('ghost'), 404, 'vm-not-found');
  await rejectsWithNothingChanged(() => client.startVm('ghost'), 404, 'vm-not-found');
  await rejectsWithNothingChanged(() => client.deleteVm('ghost', true), 404, 'vm-not-found');
});

test('a VM lives: define+start, guest agent, metrics, agent restart, shutdown, start, stop, delete', async (t) => {
  const created = await client.createVm({ ...spec('life'), start: true });
  assert.equal(created.state, 'running');
  assert.ok(created.pid);
  const [disk] = created.disks;
  const [nic] = created.nics;
  assert.ok(disk && nic);
  assert.equal(disk.nodeName, 'disk-disk0');
  assert.ok(existsSync(disk.path));
  assert.match(nic.mac, /^52:54:00:/);
  assert.ok(linkExists(nic.tap), 'the tap exists while the VM runs');

  await t.test('duplicate names and second starts are conflicts that change nothing', async () => {
    await rejectsWithNothingChanged(() => client.createVm(spec('life')), 409, 'vm-exists', 'name');
    await rejectsWithNothingChanged(() => client.startVm('life'), 409, 'vm-state-conflict');
    await rejectsWithNothingChanged(() => client.deleteVm('life', true), 409, 'vm-state-conflict');
  });

  await t.test('the guest agent answers: info with the data disk, and exec', async () => {
    const info = await waitForGuest('life');
    assert.match(info.agentVersion, /^\d+\.\d+/);
    const data = info.filesystems?.find((f) => f.mountpoint === '/data');
    assert.ok(data, JSON.stringify(info));
    assert.ok((data.totalBytes ?? 0) > 64 * 2 ** 20);
    const exec = await client.guestExec('life', [
      '/bin/sh',
      '-c',
      'echo out; echo err >&2; hostname; exit 4',
    ]);
    assert.deepEqual({ ...exec, pid: 0 }, { pid: 0, exitCode: 4, stdout: 'out\nlife\n', stderr: 'err\n' });
  });

  await t.test(
    'what the agent and its QEMU made is owner-only: state, sockets, logs, pidfile, images',
    async () => {
      const open: string[] = [];
      // The state directory itself; the datastore is the admin's directory, its images are checked.
      if (((await stat(config.stateDir)).mode & 0o077) !== 0) open.push(config.stateDir);
      for (const top of [config.stateDir, path.join(dir, 'ds1')]) {
        for (const entry of await readdir(top, { recursive: true })) {
          const full = path.join(top, entry);
          const mode = (await lstat(full)).mode;
          if ((mode & 0o077) !== 0) open.push(`${full} ${(mode & 0o777).toString(8)}`);
        }
      }
      assert.deepEqual(open, []);
      assert.ok(
        (await readdir(config.stateDir)).some((f) => f.endsWith('.qemu.log')),
        'QEMU wrote its log',
      );
    },
  );

  await t.test('metrics show the running VM and its disk I/O', async () => {
    const text = await client.metrics();
    assert.match(text, /^silobreak_vm_running\{host="lab-a",vm="life"\} 1$/m);
    assert.match(text, /^silobreak_vms\{host="lab-a",state="running"\} 1$/m);
    const written =
      /^silobreak_vm_disk_written_bytes_total\{host="lab-a",vm="life",disk="disk0"\} (\d+)$/m.exec(text);
    assert.ok(written && Number(written[1]) > 0, 'the guest formatted its disk, so bytes were written');
    assert.match(text, /^silobreak_datastore_free_bytes\{host="lab-a",datastore="ds1"\} \d+$/m);
  });

  await t.test('a killed agent comes back to the same running QEMU', async () => {
    await killAgent('SIGKILL');
    await assert.rejects(client.host());
    await startAgentProcess();
    const vm = await client.getVm('life');
    assert.equal(vm.state, 'running');
    assert.equal(vm.pid, created.pid);
    assert.equal(vm.startedAt, created.startedAt);
    const exec = await client.guestExec('life', ['/bin/cat', '/proc/uptime']);
    assert.equal(exec.exitCode, 0);
  });

  await t.test('graceful shutdown powers the guest off and removes the tap', async () => {
    const started = Date.now();
    const vm = await client.shutdownVm('life', 90);
    assert.equal(vm.state, 'stopped');
    assert.equal(vm.pid, undefined);
    assert.ok(!linkExists(nic.tap));
    const log = await readFile(path.join(dir, 'agent.log'), 'utf8');
    assert.match(log, /"msg":"VM powered off","vm":"life"/, `not forced: took ${Date.now() - started} ms`);
  });

  await t.test('it starts again with the same disk, MAC and tap, then is forced off', async () => {
    const again = await client.startVm('life');
    assert.equal(again.state, 'running');
    assert.notEqual(again.pid, created.pid);
    assert.deepEqual(again.nics, created.nics);
    await waitForGuest('life');
    const marker = await client.guestExec('life', ['/bin/sh', '-c', 'echo kept > /data/kept && sync']);
    assert.equal(marker.exitCode, 0);
    const stopped = await client.stopVm('life');
    assert.equal(stopped.state, 'stopped');
    assert.ok(!linkExists(nic.tap));
    assert.deepEqual(
      await readdir(path.join(dir, 'state')).then((f) => f.filter((n) => n.startsWith('life.'))),
      ['life.console.log', 'life.qemu.log'],
    );
  });

  await t.test('delete without disks keeps the image; a new VM may not take it over', async () => {
    await client.deleteVm('life', false);
    await rejectsWithNothingChanged(() => client.getVm('life'), 404, 'vm-not-found');
    assert.ok(existsSync(disk.path));
    await rejectsWithNothingChanged(() => client.createVm(spec('life')), 409, 'disk-file-exists', 'disks.0');
    await rm(disk.path);
  });

  await t.test('delete with disks removes the images too', async () => {
    const vm = await client.createVm(
      spec('other', { disks: [{ sizeBytes: 2 ** 20 }, { id: 'logs', sizeBytes: 2 ** 20 }] }),
    );
    assert.equal(vm.state, 'stopped');
    assert.equal(vm.disks.length, 2);
    for (const d of vm.disks) assert.ok(existsSync(d.path));
    await client.deleteVm('other', true);
    for (const d of vm.disks) assert.ok(!existsSync(d.path));
    assert.deepEqual(await footprint(), []);
  });
});

test('SIGTERM stops the agent without touching VMs; a QEMU killed behind its back is crashed', async () => {
  const vm = await client.createVm({ ...spec('survivor', { disks: [], nics: [] }), start: true });
  assert.ok(vm.pid);
  await killAgent('SIGTERM');
  assert.match(await readFile(path.join(dir, 'agent.log'), 'utf8'), /agent stopped; VMs left running/);
  process.kill(vm.pid, 0);
  await startAgentProcess();
  assert.equal((await client.getVm('survivor')).pid, vm.pid);

  process.kill(vm.pid, 'SIGKILL');
  const deadline = Date.now() + 30_000;
  let state = (await client.getVm('survivor')).state;
  while (state !== 'crashed' && Date.now() < deadline) {
    await sleep(200);
    state = (await client.getVm('survivor')).state;
  }
  assert.equal(state, 'crashed');
  assert.match(await client.metrics(), /^silobreak_vms\{host="lab-a",state="crashed"\} 1$/m);
  const restarted = await client.startVm('survivor');
  assert.equal(restarted.state, 'running');
  assert.equal((await client.stopVm('survivor')).state, 'stopped');
  await client.deleteVm('survivor', true);
});

// The agent's upgrade as a host lives it: an agent installed from a copy of this tree (its own
// package.json), whose QEMU is found on its PATH, refuses an upgrade while a VM runs; with none, it
// runs the configured command — here a stand-in for the new release, kept in this test: it puts
// a new package.json over the installed one and a QEMU that says 10.9.0 (a wrapper around the real
// one), then restarts the agent detached — and the agent comes back reporting the new versions,
// its VM still defined and starting on the new QEMU.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import {
  AgentClient,
  agentSocketPath,
  ApiError,
  type AgentConfigInput,
  type HostInfo,
} from '../api/index.js';

const root = path.resolve(import.meta.dirname, '..', '..');
const TOKEN = 'upgrade-lab-token-0123456789';
let dir: string;
let client: AgentClient;

const file = (name: string) => path.join(dir, name);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || !address) throw new Error('no free port');
  return address.port;
}

async function until<T>(what: string, seconds: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(
        `${what}: not within ${seconds} s; agent log:\n${await readFile(file('agent.log'), 'utf8')}`,
      );
    await sleep(250);
  }
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-upgrade-lab-'));
  // The installed release: this tree's code and package.json; the next release's package.json.
  const install = file('install');
  await mkdir(install);
  for (const part of ['bin', 'src', 'package.json', 'tsconfig.json'])
    await cp(path.join(root, part), path.join(install, part), {
      recursive: true,
      filter: (f) => !f.includes(`${path.sep}web${path.sep}dist`),
    });
  await symlink(path.join(root, 'node_modules'), path.join(install, 'node_modules'));
  const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { version: string };
  assert.equal(pkg.version, '0.1.0', 'the test bumps 0.1.0 to 0.1.1');
  await mkdir(file('release'));
  await writeFile(file('release/package.json'), JSON.stringify({ ...pkg, version: '0.1.1' }, null, 2));

  // QEMU as the agent finds it on its PATH: the real one, but for --version once an upgrade wrote
  // the version it stands for.
  const qemu = execFileSync('sh', ['-c', 'command -v qemu-system-x86_64'], { encoding: 'utf8' }).trim();
  await mkdir(file('bin'));
  await writeFile(
    file('bin/qemu-system-x86_64'),
    `#!/bin/sh\nif [ "$1" = --version ] && [ -f ${file('qemu-version')} ]; then\n` +
      `  echo "QEMU emulator version $(cat ${file('qemu-version')})"; exit 0\nfi\nexec ${qemu} "$@"\n`,
  );
  await chmod(file('bin/qemu-system-x86_64'), 0o755);

  await writeFile(
    file('start-agent.sh'),
    `#!/bin/sh\ncd ${dir}\necho $$ > ${file('agent.pid')}\n` +
      `PATH=${file('bin')}:$PATH exec ${process.execPath} ${file('install/bin/silobreak.js')} agent --config ${file('agent.json')} >> ${file('agent.log')} 2>&1\n`,
  );
  // The stand-in for `apt-get install silobreak qemu-system-x86`: files replaced in place, then the
  // service restarted once this command has answered (detached, as systemd-run would).
  await writeFile(
    file('upgrade.sh'),
    `#!/bin/sh\nset -e\necho "installing silobreak 0.1.1 and QEMU 10.9.0"\n` +
      `cp ${file('release/package.json')} ${file('install/package.json')}\n` +
      `echo 10.9.0 > ${file('qemu-version')}\n` +
      `setsid sh -c 'sleep 1; pid=$(cat ${file('agent.pid')}); kill $pid; ` +
      `while kill -0 $pid 2>/dev/null; do sleep 0.1; done; exec ${file('start-agent.sh')}' ` +
      `</dev/null >/dev/null 2>&1 &\necho "agent restart scheduled"\n`,
  );
  for (const f of ['start-agent.sh', 'upgrade.sh']) await chmod(file(f), 0o755);

  await mkdir(file('ds1'));
  const config: AgentConfigInput = {
    hostName: 'up1',
    listen: { address: '127.0.0.1', port: await freePort() },
    breakGlassToken: TOKEN,
    fabricAddress: '127.0.0.1',
    stateDir: file('state'),
    datastores: [{ name: 'ds1', path: file('ds1'), default: true }],
    datastoreRoots: [dir],
    vswitches: [],
    accelerator: 'tcg',
    upgrade: { command: [file('upgrade.sh')] },
  };
  await writeFile(file('agent.json'), JSON.stringify(config));
  spawn(file('start-agent.sh'), [], { detached: true, stdio: 'ignore' }).unref();
  client = new AgentClient(
    { baseUrl: 'http://agent', socketPath: agentSocketPath(file('state')), token: TOKEN },
    120_000,
  );
  await until('the agent answers', 90, () => client.host());
});

after(async () => {
  const kill = (pid: number) => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  };
  kill(Number(await readFile(file('agent.pid'), 'utf8').catch(() => '0')) || -1);
  const state = file('state');
  for (const f of (await readdir(state).catch(() => [])).filter((f) => f.endsWith('.pid')))
    kill(Number(await readFile(path.join(state, f), 'utf8')));
  await sleep(300);
  if (!process.env.SB_KEEP_LAB) await rm(dir, { recursive: true, force: true });
});

test('refused while a VM runs; then the command upgrades the host and the agent comes back on the new versions', async () => {
  const first = await client.host();
  assert.equal(first.agentVersion, '0.1.0');
  const realQemu = first.qemuVersion;
  assert.notEqual(realQemu, '10.9.0');

  await client.createVm({ name: 'busy', vcpus: 1, memoryMiB: 128, start: true });
  const refused = await client.upgradeHost(60_000).then(
    () => assert.fail('upgraded with a VM running'),
    (e: unknown) => e,
  );
  assert.ok(refused instanceof ApiError, String(refused));
  assert.equal(refused.code, 'vms-running');
  assert.equal(refused.status, 409);
  assert.match(refused.message, /VMs run on this host \(busy\)/);
  await assert.rejects(readFile(file('qemu-version')), 'nothing was run');

  await client.stopVm('busy');
  const result = await client.upgradeHost(120_000);
  assert.equal(result.exitCode, 0);
  assert.match(result.stdout, /installing silobreak 0\.1\.1 and QEMU 10\.9\.0\nagent restart scheduled\n/);
  assert.deepEqual(result.before, { agentVersion: '0.1.0', qemuVersion: realQemu });
  assert.deepEqual(result.after, { agentVersion: '0.1.1', qemuVersion: '10.9.0' });
  assert.equal(result.agentRestartNeeded, true);
  assert.ok(
    result.durationMs < 30_000,
    `${result.durationMs} ms: the detached restart did not hold the answer`,
  );

  // The restarted agent runs the new package and reports the new QEMU.
  const upgraded: HostInfo = await until('the agent reports 0.1.1', 120, async () => {
    const h = await client.host();
    return h.agentVersion === '0.1.1' ? h : undefined;
  });
  assert.equal(upgraded.qemuVersion, '10.9.0');
  const log = await readFile(file('agent.log'), 'utf8');
  assert.match(log, /"msg":"host upgrade: the command ended".*"stdout":"installing silobreak/);

  // The VM stayed defined through the upgrade and starts on the new QEMU.
  const vm = await client.startVm('busy');
  assert.ok(['starting', 'running'].includes(vm.state), vm.state);
  await client.stopVm('busy');
});

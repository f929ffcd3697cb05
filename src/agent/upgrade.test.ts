// POST /v1/host/upgrade on the agent's real server (a temp state dir, no QEMU: a VM with no disks
// can be defined, not booted), with real commands: the output comes back and goes to the log, a
// failure is a typed error with the command's last words, no VM starts and no second upgrade
// begins while one runs. Refusal while a VM runs: upgrade.lab.test.ts (it needs a QEMU).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { HostInfo, HostUpgradeResult, Problem } from '../api/index.js';
import { jsonLineLogger } from './logger.js';
import { qemuVersion } from './versions.js';
import { runCommand, UPGRADE_OUTPUT_BYTES } from './upgrade.js';
import { startTestAgent, type TestAgent } from './test-server.js';

const TOKEN = 'upgrade-test-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };
let agent: TestAgent;
let plain: TestAgent;
/** Where the test leaves the stand-in release its gate and fail files. */
let gates: string;
const logLines: string[] = [];

/*
 * The stand-in for a release: it waits for the test's gate file (so the test can act while it
 * runs), fails when the test wrote a `fail` file, and otherwise says what it installed.
 */
const SCRIPT = `
dir="$1"
echo "upgrading from $(pwd)"
while [ ! -f "$dir/gate" ]; do sleep 0.02; done
if [ -f "$dir/fail" ]; then echo "E: no space left on device" >&2; exit 3; fi
echo "installed silobreak and qemu-system-x86"
`;

before(async () => {
  gates = await mkdtemp(path.join(tmpdir(), 'sb-upgrade-gates-'));
  plain = await startTestAgent({ token: TOKEN, prefix: 'sb-upgrade-none-' });
  agent = await startTestAgent({
    token: TOKEN,
    prefix: 'sb-upgrade-',
    log: jsonLineLogger('info', (line) => logLines.push(line)),
    upgrade: { command: ['/bin/sh', '-c', SCRIPT, 'upgrade', gates] },
  });
});

after(async () => {
  await agent.close();
  await plain.close();
  await rm(gates, { recursive: true, force: true });
});

async function call(a: TestAgent, method: 'GET' | 'POST', url: string, body?: unknown) {
  const response = await a.app.inject({
    method,
    url,
    headers: body === undefined ? auth : { ...auth, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  });
  return { status: response.statusCode, json: () => response.json<unknown>() };
}

test('an agent without an upgrade command refuses: 409 upgrade-unavailable', async () => {
  const r = await call(plain, 'POST', '/v1/host/upgrade');
  assert.equal(r.status, 409);
  const p = Problem.parse(r.json());
  assert.equal(p.code, 'upgrade-unavailable');
  assert.match(p.detail, /upgrade\.command/);
});

test('the command runs (its argv, no shell); while it runs no VM starts and no second upgrade begins; its output and the versions after come back', async () => {
  assert.equal((await call(agent, 'POST', '/v1/vms', { name: 'idle', vcpus: 1, memoryMiB: 64 })).status, 201);
  const upgrading = call(agent, 'POST', '/v1/host/upgrade');
  await sleep(200);
  const start = await call(agent, 'POST', '/v1/vms/idle/start');
  assert.equal(start.status, 409);
  assert.equal(Problem.parse(start.json()).code, 'host-upgrading');
  const second = await call(agent, 'POST', '/v1/host/upgrade');
  assert.equal(second.status, 409);
  assert.equal(Problem.parse(second.json()).code, 'host-upgrading');

  await writeFile(path.join(gates, 'gate'), '');
  const done = await upgrading;
  assert.equal(done.status, 200);
  const result = HostUpgradeResult.parse(done.json());
  assert.equal(result.exitCode, 0);
  assert.match(result.stdout, /^upgrading from .*\ninstalled silobreak and qemu-system-x86\n$/);
  assert.equal(result.stderr, '');
  // The test agent ran as 0.0.0-test on QEMU "none"; installed are the package's and the real QEMU.
  assert.deepEqual(result.before, { agentVersion: '0.0.0-test', qemuVersion: 'none' });
  const qemu = await qemuVersion();
  assert.deepEqual(result.after, { agentVersion: '0.1.0', qemuVersion: qemu });
  assert.equal(result.agentRestartNeeded, true);
  assert.equal(
    HostInfo.parse((await call(agent, 'GET', '/v1/host')).json()).qemuVersion,
    qemu,
    'VMs start on the new QEMU from now on: the host reports it at once',
  );
  const ended = logLines
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((l) => l.msg === 'host upgrade: the command ended');
  assert.match(String(ended?.stdout), /installed silobreak/, 'the output is in the agent log');

  // Starts are let through again (this one fails for want of a guest image, not the upgrade).
  const after = await call(agent, 'POST', '/v1/vms/idle/start');
  assert.notEqual(Problem.safeParse(after.json()).data?.code, 'host-upgrading');
  assert.deepEqual(agent.breaches, []);
});

test('a failing command is 502 upgrade-failed with its exit code and last words; the host is free again', async () => {
  await writeFile(path.join(gates, 'fail'), '');
  const r = await call(agent, 'POST', '/v1/host/upgrade');
  assert.equal(r.status, 502);
  const p = Problem.parse(r.json());
  assert.equal(p.code, 'upgrade-failed');
  assert.match(p.detail, /exited with 3 after \d+\.\d s: E: no space left on device$/);
  const again = await call(agent, 'POST', '/v1/host/upgrade');
  assert.equal(
    Problem.parse(again.json()).code,
    'upgrade-failed',
    'not host-upgrading: the hold was released',
  );
});

test('a command that cannot start, runs too long, says too much or leaves a child behind', async () => {
  const missing = await runCommand(['/nonexistent/upgrade'], 5000);
  assert.ok('error' in missing && /ENOENT/.test(missing.error.message));

  const t0 = Date.now();
  const slow = await runCommand(['/bin/sleep', '30'], 200);
  assert.ok(!('error' in slow));
  assert.equal(slow.timedOut, true);
  assert.equal(slow.signal, 'SIGTERM');
  assert.ok(Date.now() - t0 < 5000);

  const loud = await runCommand(['/bin/sh', '-c', 'head -c 200000 /dev/zero | tr "\\0" a; echo END'], 5000);
  assert.ok(!('error' in loud));
  assert.equal(loud.stdout.length, UPGRADE_OUTPUT_BYTES);
  assert.ok(loud.stdout.endsWith('aaaEND\n'), 'the last bytes are kept');

  // A restart scheduled in the background keeps the pipes open: the answer does not wait for it.
  const t1 = Date.now();
  const detached = await runCommand(['/bin/sh', '-c', 'sleep 20 & echo scheduled'], 5000);
  assert.ok(!('error' in detached));
  assert.equal(detached.exitCode, 0);
  assert.equal(detached.stdout, 'scheduled\n');
  assert.ok(Date.now() - t1 < 5000, `took ${Date.now() - t1} ms`);
});

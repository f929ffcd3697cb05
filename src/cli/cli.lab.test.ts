import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import {
  AgentClient,
  agentSocketPath,
  Host,
  Job,
  ManagedDatastore,
  ManagedVm,
  ManagedVSwitch,
  ManagerClient,
  Pool,
} from '../api/index.js';

/*
 * The real `silobreak` bin as a child process against a real manager (`silobreak manager`, also a
 * child process: cli/ may import only api/) whose hosts are the agents of a 2-host TCG lab
 * (`silobreak lab up`). Output is parsed from --json and checked against the manager's API, the
 * agents' API and the lab network (the VM answers ping from the lab's client namespace).
 */

const LAB = 'clitest';
const BIN = path.resolve(import.meta.dirname, '..', '..', 'bin', 'silobreak.js');

const LabJson = z.object({
  index: z.number().int(),
  hosts: z.array(
    z.object({
      name: z.string(),
      agentUrl: z.string(),
      token: z.string(),
      fabricAddress: z.string(),
      stateDir: z.string(),
      configPath: z.string(),
    }),
  ),
});
type LabHostJson = z.infer<typeof LabJson>['hosts'][number];

/** The host's agent on its break-glass socket (the lab's token): a look behind the manager's back. */
const labAgent = (h: LabHostJson) =>
  new AgentClient(
    { baseUrl: 'http://agent', socketPath: agentSocketPath(h.stateDir), token: h.token },
    180_000,
  );
let lab: z.infer<typeof LabJson>;
let managerProcess: ChildProcess | undefined;
let managerUrl: string;
const managerToken = randomBytes(24).toString('hex');
let manager: ManagerClient;
let dataDir: string;

/** The lab's n-th VM address (the lab gives VMs 10.251.<index>.100+n). */
const vmAddress = (n: number) => {
  const ip = `10.251.${lab.index}.${100 + n}`;
  return { ip, cidr: `${ip}/24` };
};

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: Record<string, string>, timeoutMs = 600_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      {
        timeout: timeoutMs,
        maxBuffer: 16 * 1024 * 1024,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Runs `silobreak ...args` as a user would; the manager comes from the environment, no config file is read. */
function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return run(args, {
    HOME: dataDir,
    SILOBREAK_CONFIG: path.join(dataDir, 'no-cli-config.json'),
    SILOBREAK_URL: managerUrl,
    SILOBREAK_TOKEN: managerToken,
    ...env,
  });
}

/** Runs a command that must succeed and parses its --json output. */
async function json<T extends z.ZodType>(schema: T, args: string[]): Promise<z.infer<T>> {
  const r = await cli([...args, '--json']);
  assert.equal(r.code, 0, `silobreak ${args.join(' ')} failed: ${r.stderr}`);
  return schema.parse(JSON.parse(r.stdout));
}

async function changeCount(): Promise<number> {
  return (await manager.listChanges({ limit: 1000 })).items.length;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}

async function ping(ip: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await run(['lab', 'exec', 'client', '--name', LAB, '--', 'ping', '-c', '1', '-W', '1', ip], {});
    if (r.code === 0) return;
    if (Date.now() > deadline) throw new Error(`${ip} did not answer ping within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** Starts `silobreak manager` on managerUrl (its data dir survives restarts) and waits until it answers. */
async function startManagerProcess(): Promise<void> {
  // Polls only when asked: the failed-job case relies on a VM the manager has not seen yet.
  const child = spawn(
    process.execPath,
    [
      BIN,
      'manager',
      '--data-dir',
      path.join(dataDir, 'manager'),
      '--listen',
      new URL(managerUrl).host,
      '--reconcile-interval',
      '3600',
    ],
    { env: { ...process.env, SILOBREAK_MANAGER_TOKEN: managerToken }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  managerProcess = child;
  child.stderr?.pipe(createWriteStream(path.join(dataDir, 'manager.log'), { flags: 'a' }));
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      await manager.info();
      return;
    } catch (error) {
      if (Date.now() > deadline || child.exitCode !== null) {
        const log = await readFile(path.join(dataDir, 'manager.log'), 'utf8').catch(() => '');
        throw new Error(`manager did not start: ${String(error)}\n${log}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  }
}

before(
  async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'silobreak-cli-'));
    // A lab left by a crashed earlier run would make `lab up` refuse.
    await run(['lab', 'down', '--name', LAB], {});
    // --no-manager: this file runs its own manager (and leaves the CLI config of a demo lab alone).
    const up = await run(
      [
        'lab',
        'up',
        '--name',
        LAB,
        '--hosts',
        '2',
        '--no-demo',
        '--no-manager',
        '--accelerator',
        'tcg',
        '--json',
      ],
      {},
    );
    assert.equal(up.code, 0, `lab up failed: ${up.stderr}`);
    lab = LabJson.parse(JSON.parse(up.stdout));
    managerUrl = `http://127.0.0.1:${await freePort()}`;
    manager = new ManagerClient(managerUrl, managerToken, 5000);
    await startManagerProcess();
  },
  { timeout: 900_000 },
);

after(
  async () => {
    if (managerProcess && managerProcess.exitCode === null) {
      const exited = new Promise((resolve) => managerProcess?.once('exit', resolve));
      managerProcess.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20_000))]);
      if (managerProcess.exitCode === null) managerProcess.kill('SIGKILL');
    }
    // The bin loads every part's sources: retry once should a parallel edit break it for a moment.
    let down = await run(['lab', 'down', '--name', LAB], {});
    if (down.code !== 0) {
      await new Promise((resolve) => setTimeout(resolve, 10_000));
      down = await run(['lab', 'down', '--name', LAB], {});
    }
    await rm(dataDir, { recursive: true, force: true });
    assert.equal(down.code, 0, `lab down failed: ${down.stderr}`);
  },
  { timeout: 600_000 },
);

test('bad usage exits 2 naming the flag, and changes nothing', { timeout: 300_000 }, async () => {
  const before = await changeCount();
  const cases: [string[], RegExp][] = [
    [['vm', 'create', 'web-1', '--host', 'h', '--memory', '512'], /--memory: '512' needs a unit/],
    [
      ['vm', 'create', 'web-1', '--host', 'h', '--vcpus', '0'],
      /--vcpus: must be a whole number from 1 to 64/,
    ],
    [['vm', 'create', 'Web_1', '--host', 'h'], /<name>: must be 1-31 lowercase/],
    [['vm', 'create', 'web-1', '--host', 'h', '--disk', '1G@'], /--disk \(0\): datastore ''/],
    [['host', 'add', '10.0.0.1:7001'], /required option '--join-token/],
    [['host', 'list', '--bogus'], /unknown option '--bogus'/],
    [['change', 'list', '--since', 'yesterday'], /--since: 'yesterday' is not a time/],
    [['changes', '--risk', 'severe'], /--risk: must be low, medium or high/],
    [['changes', 'timeline', '--bucket', 'week'], /--bucket: /],
    [['job', 'show', 'not-a-job'], /<id>: must be a job id/],
    [['vm'], /Usage: silobreak vm/],
    [['vm', 'list'], /no manager URL given/],
  ];
  // Independent calls: all at once (each CLI start-up is CPU-bound, about a second).
  const runs = await Promise.all(
    cases.map(([args]) => cli(args, args.join(' ') === 'vm list' ? { SILOBREAK_URL: '' } : {})),
  );
  for (const [i, [args, message]] of cases.entries()) {
    const r = runs[i]!;
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}, stderr ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.equal(r.stdout, '', `${args.join(' ')} printed to stdout`);
  }
  assert.equal(await changeCount(), before);
});

test('a bad token exits 1 with the 401 explained', { timeout: 120_000 }, async () => {
  const r = await cli(['host', 'list', '--token', 'not-the-right-token']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /rejected the token \(401 unauthorized\)/);
  assert.match(r.stderr, /hint: pass a valid --token, set SILOBREAK_TOKEN/);
});

test('a read-only token can look but not change: 403 explained, exit 1', { timeout: 180_000 }, async () => {
  const created = await json(z.object({ name: z.string(), role: z.string(), secret: z.string() }), [
    'token',
    'create',
    'viewer',
    '--role',
    'read-only',
  ]);
  assert.equal(created.role, 'read-only');
  const tokens = await json(z.array(z.object({ name: z.string(), role: z.string() })), ['token', 'list']);
  assert.ok(tokens.some((t) => t.name === 'viewer' && t.role === 'read-only'));
  const before = await changeCount();
  const looked = await cli(['pool', 'list'], { SILOBREAK_TOKEN: created.secret });
  assert.equal(looked.code, 0, looked.stderr);
  const refused = await cli(['pool', 'create', 'nope'], { SILOBREAK_TOKEN: created.secret });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /not allowed \(403 forbidden\)/);
  assert.match(refused.stderr, /hint: this needs an admin token/);
  assert.equal(await changeCount(), before);
  assert.equal((await cli(['token', 'delete', 'viewer'])).code, 0);
  const revoked = await cli(['pool', 'list'], { SILOBREAK_TOKEN: created.secret });
  assert.equal(revoked.code, 1);
  assert.match(revoked.stderr, /401/);
});

test('host add joins both lab hosts; host list shows them', { timeout: 180_000 }, async () => {
  for (const h of lab.hosts) {
    // As on a real host: the join token from `silobreak agent-join-token` there, then host add.
    const joinToken = await run(['agent-join-token', '--config', h.configPath], {});
    assert.equal(joinToken.code, 0, joinToken.stderr);
    const added = await json(Host, [
      'host',
      'add',
      new URL(h.agentUrl).host,
      '--join-token',
      joinToken.stdout.trim(),
    ]);
    assert.equal(added.name, h.name);
    assert.equal(added.state, 'connected');
    assert.equal(added.fabricAddress, h.fabricAddress);
  }
  const hosts = await json(z.array(Host), ['host', 'list']);
  assert.deepEqual(hosts.map((h) => h.name).sort(), lab.hosts.map((h) => h.name).sort());
  const table = await cli(['host', 'list']);
  assert.equal(table.code, 0);
  const lines = table.stdout.trimEnd().split('\n');
  assert.match(lines[0] ?? '', /^NAME\s+STATE\s+POOL\s+CLUSTER\s+MAINT\s+ADDRESS/);
  for (const h of lab.hosts) assert.ok(lines.some((l) => l.startsWith(h.name) && l.includes('connected')));
  const shown = await json(Host, ['host', 'show', lab.hosts[0]!.name]);
  assert.equal(shown.id, hosts.find((h) => h.name === lab.hosts[0]!.name)?.id);
});

test('datastore and vswitch lists show every host', { timeout: 120_000 }, async () => {
  const datastores = await json(z.array(ManagedDatastore), ['datastore', 'list']);
  const vswitches = await json(z.array(ManagedVSwitch), ['vswitch', 'list']);
  for (const h of lab.hosts) {
    assert.ok(
      datastores.some((d) => d.host === h.name && d.default),
      `default datastore of ${h.name}`,
    );
    assert.ok(
      vswitches.some((s) => s.host === h.name && s.name === 'vmsw0'),
      `vmsw0 of ${h.name}`,
    );
  }
  const one = await json(z.array(ManagedDatastore), ['datastore', 'list', '--host', lab.hosts[1]!.name]);
  assert.deepEqual([...new Set(one.map((d) => d.host))], [lab.hosts[1]!.name]);
});

test('pool create and add-host, recorded as changes by the token', { timeout: 180_000 }, async () => {
  const created = await json(Pool, ['pool', 'create', 'rack-1', '--description', 'first rack']);
  assert.deepEqual([created.name, created.description, created.hosts], ['rack-1', 'first rack', []]);
  const host = lab.hosts[0]!.name;
  const withHost = await json(Pool, ['pool', 'add-host', 'rack-1', host]);
  assert.deepEqual(withHost.hosts, [host]);
  const pools = await json(z.array(Pool), ['pool', 'list']);
  assert.deepEqual(pools.find((p) => p.name === 'rack-1')?.hosts, [host]);
  assert.equal((await json(Host, ['host', 'show', host])).pool, 'rack-1');
  const changes = await json(z.array(z.object({ actor: z.string(), action: z.string() })), [
    'change',
    'list',
    '--kind',
    'pool',
    '--object',
    'rack-1',
  ]);
  assert.ok(changes.length >= 1);
  assert.ok(changes.every((c) => c.actor === 'admin'));
  assert.ok(changes.some((c) => c.action === 'created'));
});

test('vm create --start runs the VM on the chosen host; it answers ping', { timeout: 600_000 }, async () => {
  const host = lab.hosts[1]!;
  const address = vmAddress(1);
  const job = await json(Job, [
    'vm',
    'create',
    'cli-vm-1',
    '--host',
    host.name,
    '--memory',
    '256M',
    '--disk',
    '256M',
    '--nic',
    'vmsw0',
    '--ip',
    address.cidr,
    '--start',
  ]);
  assert.equal(job.kind, 'vm-create');
  assert.equal(job.state, 'succeeded', JSON.stringify(job.error));
  const vm = ManagedVm.parse(job.result);
  assert.deepEqual([vm.name, vm.host, vm.state, vm.memoryMiB], ['cli-vm-1', host.name, 'running', 256]);
  assert.equal(vm.disks[0]?.virtualSizeBytes, 256 * 1024 * 1024);
  const listed = await json(z.array(ManagedVm), ['vm', 'list', '--host', host.name]);
  assert.deepEqual(
    listed.map((v) => [v.name, v.state]),
    [['cli-vm-1', 'running']],
  );
  // The agent itself, not just the manager, runs it.
  assert.equal((await labAgent(host).getVm('cli-vm-1')).state, 'running');
  await ping(address.ip, 300_000);
  const table = await cli(['vm', 'list']);
  assert.match(table.stdout, /^NAME\s+STATE\s+HOST\s+VCPUS\s+MEMORY\s+DISKS\s+IP/);
  assert.match(
    table.stdout,
    new RegExp(`cli-vm-1\\s+running\\s+${host.name}\\s+1\\s+256 MiB\\s+256 MiB\\s+${address.cidr}`),
  );
});

test(
  'without a terminal, a job prints plain progress lines, no bar or colour',
  { timeout: 300_000 },
  async () => {
    const r = await cli(['vm', 'shutdown', 'cli-vm-1', '--timeout', '5']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Job [0-9a-f-]{36}: vm-shutdown vm cli-vm-1\n/);
    const progressLines = r.stdout.split('\n').filter((l) => /^\[[\d.]+s\] +\d+% {2}\S/.test(l));
    assert.ok(progressLines.length >= 2, `plain progress lines expected:\n${r.stdout}`);
    assert.match(r.stdout, /succeeded: vm-shutdown vm cli-vm-1 in \d/);
    assert.match(
      r.stdout,
      new RegExp(`VM cli-vm-1 is stopped on ${lab.hosts[1]!.name}, ${vmAddress(1).cidr}\\.`),
    );
    assert.ok(!r.stdout.includes('\r') && !r.stdout.includes('\u001b['), 'no bar redraws or colour codes');
    assert.equal((await json(ManagedVm, ['vm', 'show', 'cli-vm-1'])).state, 'stopped');
  },
);

test('--detach returns the job at once; job watch re-attaches to its end', { timeout: 300_000 }, async () => {
  const detached = await json(Job, ['vm', 'start', 'cli-vm-1', '--detach']);
  assert.equal(detached.kind, 'vm-start');
  assert.ok(['queued', 'running'].includes(detached.state), detached.state);
  const watched = await json(Job, ['job', 'watch', detached.id]);
  assert.equal(watched.id, detached.id);
  assert.equal(watched.state, 'succeeded');
  assert.equal((await json(ManagedVm, ['vm', 'show', 'cli-vm-1'])).state, 'running');
  const listed = await json(z.array(Job), ['job', 'list', '--kind', 'vm-start']);
  assert.ok(listed.some((j) => j.id === detached.id && j.state === 'succeeded'));
  const human = await cli(['job', 'show', detached.id]);
  assert.match(human.stdout, /State:\s+succeeded/);
  const late = await cli(['job', 'cancel', detached.id]);
  assert.equal(late.code, 1, 'cancelling a finished job fails');
  assert.match(late.stderr, /\(409 job-finished\)/);
});

test('a job that fails exits 1 and says why', { timeout: 300_000 }, async () => {
  // A VM the agent has but the manager has not polled yet: the manager accepts the name, the agent refuses it.
  const host = lab.hosts[0]!;
  const agent = labAgent(host);
  await agent.createVm({ name: 'cli-ghost', vcpus: 1, memoryMiB: 64, disks: [], nics: [] });
  try {
    const r = await cli(['vm', 'create', 'cli-ghost', '--host', host.name, '--memory', '64M']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^silobreak: job [0-9a-f-]{36} \(vm-create vm cli-ghost\) failed: /);
    assert.match(r.stderr, /hint: details: silobreak job show /);
    const failed = await json(z.array(Job), ['job', 'list', '--state', 'failed']);
    assert.ok(failed.some((j) => j.kind === 'vm-create' && j.target.name === 'cli-ghost'));
  } finally {
    await agent.deleteVm('cli-ghost', true);
  }
});

test(
  'a watched job survives a manager crash: the CLI re-attaches and reports the end',
  { timeout: 600_000 },
  async () => {
    const host = lab.hosts[1]!;
    // The busybox guest ignores ACPI, so the shutdown job waits out its timeout: time to crash the manager.
    const child = spawn(process.execPath, [BIN, 'vm', 'shutdown', 'cli-vm-1', '--timeout', '20'], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: dataDir,
        SILOBREAK_CONFIG: path.join(dataDir, 'no-cli-config.json'),
        SILOBREAK_URL: managerUrl,
        SILOBREAK_TOKEN: managerToken,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? 1)));
    const deadline = Date.now() + 120_000;
    // Two progress lines: queued, then the job's running phase (the agent call is under way).
    while ((stdout.match(/^\[[\d.]+s\] +\d+% /gm) ?? []).length < 2) {
      assert.ok(Date.now() < deadline, `the job did not start: ${stdout}${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const jobId = /^Job ([0-9a-f-]{36})/.exec(stdout)?.[1];
    assert.ok(jobId, stdout);
    managerProcess?.kill('SIGKILL');
    await new Promise((resolve) => managerProcess?.once('exit', resolve));
    await startManagerProcess();
    const code = await exited;
    assert.match(stderr, new RegExp(`lost the manager \\(.+\\); re-attaching to job ${jobId}`));
    // Whatever the restarted manager made of the job, the CLI reports that and exits accordingly.
    const job = await manager.getJob(jobId);
    assert.ok(['succeeded', 'failed'].includes(job.state), job.state);
    assert.equal(code, job.state === 'succeeded' ? 0 : 1, stdout + stderr);
    if (job.state === 'failed')
      assert.match(stderr, new RegExp(`job ${jobId} \\(vm-shutdown vm cli-vm-1\\) failed`));
    // The agent finishes the shutdown on its own (unless the crash came before the call reached it).
    const agent = labAgent(host);
    const stopBy = Date.now() + 90_000;
    while ((await agent.getVm('cli-vm-1')).state !== 'stopped' && Date.now() < stopBy) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    if ((await agent.getVm('cli-vm-1')).state !== 'stopped') {
      assert.equal(job.state, 'failed', 'a succeeded shutdown leaves the VM stopped');
      await agent.stopVm('cli-vm-1');
    }
    await manager.reconcileHost(host.name);
    assert.equal((await json(ManagedVm, ['vm', 'show', 'cli-vm-1'])).state, 'stopped');
  },
);

test('on a terminal, a job draws a live bar and colours the outcome', { timeout: 300_000 }, async () => {
  // `script` gives the command a pseudo-terminal, as an interactive shell would.
  const command = [process.execPath, BIN, 'vm', 'start', 'cli-vm-1'].map((a) => `'${a}'`).join(' ');
  const r = await new Promise<Run>((resolve) => {
    execFile(
      'script',
      ['-qec', command, '/dev/null'],
      {
        timeout: 300_000,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          TERM: 'xterm',
          HOME: dataDir,
          SILOBREAK_CONFIG: path.join(dataDir, 'no-cli-config.json'),
          SILOBREAK_URL: managerUrl,
          SILOBREAK_TOKEN: managerToken,
        },
      },
      (error, stdout, stderr) => resolve({ code: error ? 1 : 0, stdout, stderr }),
    );
  });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /\r\[[#.]{24}\] +\d+%/, 'a redrawn bar');
  assert.ok(r.stdout.includes('\r\u001b[K'), 'the bar is cleared at the end');
  assert.ok(r.stdout.includes('\u001b[32msucceeded\u001b[0m: vm-start vm cli-vm-1'), r.stdout);
  assert.equal((await json(ManagedVm, ['vm', 'show', 'cli-vm-1'])).state, 'running');
});

test('vm stop and delete remove the VM everywhere', { timeout: 300_000 }, async () => {
  const stopped = await json(Job, ['vm', 'stop', 'cli-vm-1']);
  assert.equal(stopped.state, 'succeeded');
  assert.equal(ManagedVm.parse(stopped.result).state, 'stopped');
  const deleted = await json(Job, ['vm', 'delete', 'cli-vm-1']);
  assert.equal(deleted.state, 'succeeded');
  // What is shown afterwards, read all at once (each CLI start-up is CPU-bound, about a second).
  const Rated = z.object({ id: z.number(), action: z.string(), risk: z.string(), riskRule: z.string() });
  const host = lab.hosts[1]!;
  const [listed, gone, onAgent, history, high, all, timeline, chart, table] = await Promise.all([
    json(z.array(ManagedVm), ['vm', 'list']),
    cli(['vm', 'show', 'cli-vm-1']),
    labAgent(host).listVms(),
    json(z.array(z.object({ action: z.string(), actor: z.string() })), [
      'change',
      'list',
      '--kind',
      'vm',
      '--search',
      'cli-vm-1',
      '--since',
      '1h',
    ]),
    json(z.array(Rated), ['changes', '--risk', 'high', '--object', 'cli-vm-1']),
    json(z.array(Rated), ['changes', '--limit', '1000']),
    json(z.object({ total: z.number(), series: z.array(z.object({ name: z.string() })) }), [
      'changes',
      'timeline',
      '--by',
      'risk',
    ]),
    cli(['changes', 'timeline', '--bucket', 'day']),
    cli(['changes', '--object', 'cli-vm-1']),
  ]);
  assert.deepEqual(listed, []);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /not found/);
  assert.deepEqual(onAgent, []);
  assert.ok(history.some((c) => c.action === 'created' && c.actor === 'admin'));
  assert.ok(history.some((c) => c.action === 'deleted' && c.actor === 'admin'));
  // The Change Explorer: the deletion is high risk by its rule, found by risk and object name.
  assert.ok(
    high.some((c) => c.action === 'deleted' && c.riskRule === 'vm-deleted'),
    JSON.stringify(high),
  );
  assert.ok(high.every((c) => c.risk === 'high'));
  assert.equal(timeline.total, all.length);
  assert.deepEqual(
    timeline.series.map((s) => s.name),
    ['high', 'medium', 'low'],
  );
  assert.equal(chart.code, 0, chart.stderr);
  assert.match(chart.stdout, new RegExp(`^${all.length} changes by risk, `));
  assert.match(chart.stdout, /^high {4}[·▁-█]+ {2}\d+ \(peak \d+\)$/m);
  assert.match(table.stdout, /^WHEN +RISK +RULE /);
});

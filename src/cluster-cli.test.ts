// The cluster commands as users run them (`silobreak cluster …`, `vm ha`, `host drain|resume`),
// against a real in-process manager joined to two in-process agents (no QEMU: their VMs are
// defined, never started). Output and exit codes as a person or a script sees them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { ManagerClient } from './api/index.js';
import { startTestAgent, type TestAgent } from './agent/index.js';
import { startManager, testDatabase, type RunningManager } from './manager/index.js';

const bin = path.join(import.meta.dirname, '../bin/silobreak.js');
const AGENT_TOKEN = 'cluster-cli-agent-token-0123456789';
let dir: string;
let manager: RunningManager;
let admin: ManagerClient;
const agents: TestAgent[] = [];

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-cluster-cli-'));
  manager = await startManager({
    ...(await testDatabase(dir)),
    dataDir: dir,
    reconcileIntervalSeconds: 3600,
    log: () => {},
  });
  admin = new ManagerClient(manager.url, manager.adminToken ?? '');
  for (const hostName of ['h1', 'h2']) {
    const agent = await startTestAgent({
      token: AGENT_TOKEN,
      prefix: `sb-cluster-cli-${hostName}-`,
      hostName,
      datastoreSubdir: 'ds1',
    });
    await mkdir(path.join(agent.dir, 'ds1'));
    agents.push(agent);
    await admin.addHost(await agent.listen());
  }
  const created = await admin.createVm({ host: 'h1', spec: { name: 'web1', vcpus: 1, memoryMiB: 64 } });
  assert.equal((await admin.waitForJob(created.job.id, 30_000)).state, 'succeeded');
});

after(async () => {
  await manager.close();
  for (const agent of agents) await agent.close();
  await rm(dir, { recursive: true, force: true });
});

/** Runs the CLI; resolves with stdout, or rejects with the exit code and stderr. */
async function cli(...args: string[]): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [bin, ...args, '--url', manager.url, '--token', manager.adminToken ?? ''],
      { env: { ...process.env, NO_COLOR: '1', SILOBREAK_CONFIG: path.join(dir, 'none.json') } },
    );
    return stdout;
  } catch (error) {
    const e = error as { code: number; stderr: string };
    throw new Error(`exit ${e.code}: ${e.stderr}`);
  }
}

test('cluster create, join, show, list, evict and delete', async () => {
  assert.match(
    await cli('cluster', 'create', 'rack1'),
    /Created cluster rack1; join hosts with: silobreak cluster join rack1 <host>/,
  );
  assert.match(
    await cli('cluster', 'join', 'rack1', 'h1'),
    /Host h1 is in cluster rack1 \(lease host id 1\); its hosts: h1/,
  );
  assert.match(
    await cli('cluster', 'join', 'rack1', 'h2'),
    /Host h2 is in cluster rack1 \(lease host id 2\); its hosts: h1, h2/,
  );
  const show = await cli('cluster', 'show', 'rack1');
  assert.match(show, /h1\s+1\s+connected\s+none/);
  assert.match(show, /h2\s+2\s+connected\s+none/);
  assert.match(await cli('cluster', 'list'), /rack1\s+h1,h2\s+-/);
  assert.match(await cli('host', 'show', 'h2'), /Cluster:\s+rack1 \(lease host id 2\)/);
  assert.match(await cli('host', 'list', '--cluster', 'rack1'), /h1\s+connected\s+-\s+rack1\s+-/);
  await cli('cluster', 'create', 'rack2');
  await assert.rejects(
    cli('cluster', 'join', 'rack2', 'h1'),
    /exit 1: .*host: h1 is already in cluster rack1; evict it there first/,
  );
  await assert.rejects(
    cli('cluster', 'delete', 'rack1'),
    /exit 1: .*cluster rack1 still has hosts \(h1, h2\): evict them first/,
  );
  await assert.rejects(
    cli('cluster', 'create', 'Rack 3'),
    /exit 2: silobreak: <name>: must be 1-31 lowercase/,
  );
  assert.match(await cli('cluster', 'evict', 'rack1', 'h2'), /Host h2 left cluster rack1; its hosts: h1/);
  assert.match(await cli('cluster', 'delete', 'rack2'), /Deleted cluster rack2\./);
  await cli('cluster', 'join', 'rack1', 'h2');
});

test('vm ha: shows the settings, changes only what a flag names, refuses bad input naming it', async () => {
  assert.match(
    await cli('vm', 'ha', 'web1'),
    /VM web1: HA not protected, priority 500 \(on h1, cluster rack1\)\./,
  );
  assert.match(
    await cli('vm', 'ha', 'web1', '--protect', '--priority', '900', '--prefer', 'h2'),
    /VM web1: HA protected, priority 900, prefers h2 \(on h1, cluster rack1\)\./,
  );
  assert.match(await cli('vm', 'ha', 'web1', '--priority', '700'), /HA protected, priority 700, prefers h2/);
  assert.match(await cli('vm', 'ha', 'web1', '--no-prefer'), /HA protected, priority 700 \(/);
  await assert.rejects(
    cli('vm', 'ha', 'web1', '--prefer', 'h2,h9'),
    /exit 1: .*preferredHosts\.1: no host named h9/,
  );
  await assert.rejects(
    cli('vm', 'ha', 'web1', '--priority', '5000'),
    /exit 2: silobreak: --priority: must be a whole number from 0 to 1000/,
  );
  await assert.rejects(
    cli('vm', 'ha', 'web1', '--protect', '--unprotect'),
    /exit 2: silobreak: --protect: give --protect or --unprotect, not both/,
  );
  assert.match(await cli('vm', 'show', 'web1'), /HA:\s+protected, priority 700/);
  // A protected VM that does not run does not hold its host in the cluster; unprotected again.
  assert.match(await cli('vm', 'ha', 'web1', '--unprotect'), /HA not protected, priority 700/);
  const vm = await admin.getVm('web1');
  assert.deepEqual(vm.ha, { protected: false, priority: 700, preferredHosts: [] });
});

test('host drain of a host with only stopped VMs is in maintenance at once; it starts nothing until host resume', async () => {
  assert.match(
    await cli('host', 'drain', 'h1'),
    /Host h1 is in maintenance: no VM runs there \(silobreak host resume h1 ends it\)\./,
  );
  assert.match(await cli('host', 'show', 'h1'), /Maintenance:\s+in: no VM runs there/);
  assert.match(await cli('host', 'list', '--maintenance', 'in'), /^h1\s+connected\s+-\s+rack1\s+in\s/m);
  await assert.rejects(
    cli('vm', 'start', 'web1'),
    /exit 1: .*host h1 is in maintenance: cannot start web1 there/,
  );
  await assert.rejects(
    cli('vm', 'create', 'new1', '--host', 'h1', '--memory', '64M'),
    /exit 1: .*host: host h1 is in maintenance: cannot create new1 there/,
  );
  assert.match(await cli('host', 'resume', 'h1'), /Host h1 is out of maintenance; it takes VMs again\./);
  assert.equal((await admin.getHost('h1')).maintenance, 'none');
});

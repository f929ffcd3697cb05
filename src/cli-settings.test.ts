// The CLI's settings commands as users run them, against a real in-process manager joined to an
// in-process agent (no QEMU): `placement settings`, `storage thresholds` and `vm set` change only
// what they name, on the manager, in one merge patch (issue 28, row 2: a PUT of no body once reset
// every override, and a read-modify-write in the CLI lost a concurrent change); --unset drops one
// override, --reset replaces them all. And the lab contexts (row 11): with two labs' managers in the
// lab file, a plain command says which one it talks to, --lab picks the other.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { ManagerClient } from './api/index.js';
import { startTestAgent, type TestAgent } from './agent/index.js';
import { startManager, testDatabase, type RunningManager } from './manager/index.js';

const bin = path.join(import.meta.dirname, '../bin/silobreak.js');
const AGENT_TOKEN = 'cli-settings-agent-token-0123456789';
let dir: string;
let manager: RunningManager;
let admin: ManagerClient;
let agent: TestAgent;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-cli-settings-'));
  manager = await startManager({
    ...(await testDatabase(dir)),
    dataDir: dir,
    reconcileIntervalSeconds: 3600,
    log: () => {},
  });
  admin = new ManagerClient(manager.url, manager.adminToken ?? '');
  agent = await startTestAgent({ token: AGENT_TOKEN, prefix: 'sb-cli-settings-agent-', hostName: 'h1' });
  await admin.addHost(await agent.listen());
  const created = await admin.createVm({ host: 'h1', spec: { name: 'web1', vcpus: 1, memoryMiB: 64 } });
  assert.equal((await admin.waitForJob(created.job.id, 30_000)).state, 'succeeded');
});

after(async () => {
  await manager.close();
  await agent.close();
  await rm(dir, { recursive: true, force: true });
});

const run = async (...args: string[]): Promise<unknown> => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [bin, ...args, '--json', '--url', manager.url, '--token', manager.adminToken ?? ''],
    { env: { ...process.env, NO_COLOR: '1', SILOBREAK_CONFIG: path.join(dir, 'none.json') } },
  );
  return JSON.parse(stdout) as unknown;
};

test('placement settings: --set changes its own, a concurrent change stays; --unset drops one; --reset all', async () => {
  await run('placement', 'settings', '--set', 'holdSeconds=600');
  // Another admin meanwhile, through the API.
  await admin.patchPlacementSettings({ hotIops: 300 });
  await run('placement', 'settings', '--set', 'coolHoldSeconds=3600');
  assert.deepEqual((await admin.placementConfig()).overrides, {
    holdSeconds: 600,
    hotIops: 300,
    coolHoldSeconds: 3600,
  });
  await run('placement', 'settings', '--unset', 'hotIops');
  assert.deepEqual((await admin.placementConfig()).overrides, { holdSeconds: 600, coolHoldSeconds: 3600 });
  await run('placement', 'settings', '--reset', '--set', 'movesPerDay=2');
  assert.deepEqual((await admin.placementConfig()).overrides, { movesPerDay: 2 });
  await run('placement', 'settings', '--reset');
  assert.deepEqual((await admin.placementConfig()).overrides, {});
  await assert.rejects(run('placement', 'settings', '--unset', 'holdSecs'), /no setting 'holdSecs'/);
});

test('storage thresholds: --set and --unset merge on the manager; --reset clears', async () => {
  await run('storage', 'thresholds', 'h1', 'ds1', '--set', 'freeWarningPercent=30');
  await admin.patchStorageThresholds('h1', 'ds1', { freeCriticalPercent: 10 });
  await run('storage', 'thresholds', 'h1', 'ds1', '--unset', 'freeWarningPercent');
  assert.deepEqual((await admin.getStorageThresholds('h1', 'ds1')).overrides, { freeCriticalPercent: 10 });
  await run('storage', 'thresholds', 'h1', 'ds1', '--reset');
  assert.deepEqual((await admin.getStorageThresholds('h1', 'ds1')).overrides, {});
});

test('vm set changes only the settings given', async () => {
  await run('vm', 'set', 'web1', '--priority', 'high', '--home', 'h1/ds1');
  await run('vm', 'set', 'web1', '--pin');
  const p = await admin.vmPlacement('web1');
  assert.deepEqual(
    [p.priority, p.pinned, p.excluded, p.home],
    [75, true, false, { host: 'h1', datastore: 'ds1' }],
  );
  await run('vm', 'set', 'web1', '--home', 'none');
  assert.equal((await admin.vmPlacement('web1')).home, null);
  assert.equal((await admin.vmPlacement('web1')).priority, 75);
});

test('two labs up: a plain command says which manager it talks to; --lab and SILOBREAK_LAB pick the other', async () => {
  const otherDir = await mkdtemp(path.join(tmpdir(), 'sb-cli-settings-other-'));
  const other = await startManager({
    ...(await testDatabase(otherDir)),
    dataDir: otherDir,
    reconcileIntervalSeconds: 3600,
    log: () => {},
  });
  try {
    await new ManagerClient(other.url, other.adminToken ?? '').createPool({ name: 'only-in-b' });
    const file = path.join(dir, 'labs.json');
    await writeFile(
      file,
      JSON.stringify({
        current: 'b',
        contexts: {
          a: { url: manager.url, token: manager.adminToken },
          b: { url: other.url, token: other.adminToken },
        },
      }),
    );
    const cli = (args: string[], env: Record<string, string> = {}) =>
      promisify(execFile)(process.execPath, [bin, ...args, '--json'], {
        env: { ...process.env, NO_COLOR: '1', SILOBREAK_CONFIG: file, ...env },
      });
    const pools = (stdout: string) => (JSON.parse(stdout) as { name: string }[]).map((p) => p.name);
    const plain = await cli(['pool', 'list']);
    assert.deepEqual(pools(plain.stdout), ['only-in-b']);
    assert.match(plain.stderr, new RegExp(`lab b's manager \\(${other.url}\\); 2 labs are up \\(a, b\\)`));
    const a = await cli(['pool', 'list', '--lab', 'a']);
    assert.deepEqual([pools(a.stdout), a.stderr], [[], '']);
    assert.deepEqual(pools((await cli(['pool', 'list'], { SILOBREAK_LAB: 'a' })).stdout), []);
    await assert.rejects(cli(['pool', 'list', '--lab', 'c']), /--lab: no lab 'c'/);
  } finally {
    await other.close();
    await rm(otherDir, { recursive: true, force: true });
  }
});

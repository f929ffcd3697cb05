// A host losing its shared datastore is a Storage Explorer issue (issue 30), end to end without a
// lab: a real in-process manager joined to a real in-process agent whose shared datastore is a
// directory here. The agent's bounded check finds the storage gone (its marker away: the mount is
// not there; its marker a FIFO that blocks a read, as a hung network mount blocks one), the
// collector stores what it said, the rule opens `shared-datastore-lost`, the API and
// `silobreak storage issues` show it, and it ends when the storage is back.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { ManagerClient, SHARED_STORAGE_MARKER, type StorageIssue } from './api/index.js';
import { startTestAgent, type TestAgent } from './agent/index.js';
import { startManager, testDatabase, type RunningManager } from './manager/index.js';

const bin = path.join(import.meta.dirname, '../bin/silobreak.js');
const AGENT_TOKEN = 'shared-issue-agent-token-0123456789';
const RULE = 'shared-datastore-lost';
let dir: string;
let manager: RunningManager;
let admin: ManagerClient;
let agent: TestAgent;
let shared: string;
let storageId: string;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-shared-issue-'));
  manager = await startManager({
    ...(await testDatabase(dir)),
    dataDir: dir,
    reconcileIntervalSeconds: 3600,
    statsIntervalSeconds: 3600,
    log: () => {},
  });
  admin = new ManagerClient(manager.url, manager.adminToken ?? '');
  agent = await startTestAgent({
    token: AGENT_TOKEN,
    prefix: 'sb-shared-issue-h1-',
    hostName: 'h1',
    datastoreSubdir: 'ds1',
  });
  await mkdir(path.join(agent.dir, 'ds1'));
  await admin.addHost(await agent.listen());
  // The mount point of the shared storage: the agent never makes a shared datastore's directory.
  shared = path.join(agent.dir, 'san');
  await mkdir(shared);
  const added = await admin.addDatastore('h1', { name: 'san', path: shared, kind: 'shared', probe: false });
  assert.ok(added.storageId);
  storageId = added.storageId;
});

after(async () => {
  await manager.close();
  await agent.close();
  await rm(dir, { recursive: true, force: true });
});

async function cli(...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [bin, ...args, '--url', manager.url, '--token', manager.adminToken ?? ''],
    { env: { ...process.env, NO_COLOR: '1', SILOBREAK_CONFIG: path.join(dir, 'none.json') } },
  );
  return stdout;
}

/** A collection after the agent's last check of the storage is too old to be reused. */
async function collect(): Promise<StorageIssue[]> {
  await new Promise((resolve) => setTimeout(resolve, 1_100));
  await manager.collectStatsNow();
  return (await admin.listStorageIssues({ rule: RULE })).items;
}

const marker = () => path.join(shared, SHARED_STORAGE_MARKER);
const aside = () => path.join(agent.dir, 'marker.aside');

test('reachable: no issue', async () => {
  assert.deepEqual(await collect(), []);
});

test('the storage not mounted there (no marker): a critical issue naming host, datastore, storage and cause; in the CLI too', async () => {
  await rename(marker(), aside());
  const [issue, ...more] = await collect();
  assert.equal(more.length, 0);
  assert.ok(issue, 'an issue');
  assert.equal(issue.severity, 'critical');
  assert.deepEqual(issue.subject, { kind: 'datastore', name: 'h1/san', host: 'h1' });
  assert.match(
    issue.message,
    new RegExp(
      `^h1 cannot reach shared datastore san \\(storage ${storageId}\\): the storage is not mounted`,
    ),
  );
  const [row] = (await admin.listStorageDatastores({ q: 'san' })).items;
  assert.equal(row?.issues, 1, "the datastore's row counts it");
  const table = await cli('storage', 'issues');
  assert.match(table, /critical/);
  assert.match(table, /shared-datastore-lost/);
  assert.match(table, /h1\/san/);
  const json = JSON.parse(await cli('storage', 'issues', '--rule', RULE, '--json')) as StorageIssue[];
  assert.deepEqual(
    json.map((i) => [i.rule, i.subject.name, i.active]),
    [[RULE, 'h1/san', true]],
  );
});

test('a storage that does not answer (a read that blocks): the check gives up at its timeout and says so; the issue stays one', async () => {
  execFileSync('mkfifo', [marker()]);
  const started = Date.now();
  const [issue, ...more] = await collect();
  const took = Date.now() - started;
  assert.equal(more.length, 0, 'still one issue');
  assert.match(issue?.message ?? '', /its mount does not answer \(.* did not answer within 5 s/);
  assert.ok(took < 15_000, `the collection came back (${took} ms)`);
  await rm(marker());
});

test('the storage back: the issue ends, listed with both times', async () => {
  await rename(aside(), marker());
  assert.deepEqual(await collect(), []);
  const all = (await admin.listStorageIssues({ rule: RULE, state: 'all' })).items;
  assert.equal(all.length, 1);
  assert.equal(all[0]?.active, false);
  assert.ok(all[0]?.endedAt && all[0].endedAt >= all[0].startedAt);
});

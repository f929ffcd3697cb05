// POST /api/v1/upgrades/run against a real manager (SQLite in a temp dir) whose hosts are stand-in
// agents on loopback (mutual TLS with the manager's CA, as joined hosts): each answers the
// reconciliation's reads with no VMs and its upgrade route as a host does — the new versions
// reported afterwards, the answer lost to the agent's restart, a failed command, or a host that
// never comes back on its new versions. The run with VMs that move is src/upgrade-run.lab.test.ts.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  ManagerClient,
  UpgradeRunResult,
  type ContractBreach,
  type HostUpgradeResult,
  type Job,
  type Vm,
} from '../../api/index.js';
import { startManager, type RunningManager } from '../manager.js';
import { agentSnapshot, dbSnapshot, fakeAgentTls, rejects, seedHost, testVm } from '../test-inventory.js';
import { testDatabase } from '../test-postgres.js';

/** How a stand-in host lives its upgrade. */
type Mode =
  /** Answers with the new versions and reports them from then on (a restart it survives). */
  | 'ok'
  /** Cuts the connection (its restart did) and reports the new versions afterwards. */
  | 'drop'
  /** The command failed: 502 upgrade-failed. */
  | 'fail'
  /** Answers with the new versions but keeps reporting the old ones. */
  | 'stuck';

const OLD = { agentVersion: '0.1.0', qemuVersion: '10.0.2' };
const NEW = { agentVersion: '0.1.1', qemuVersion: '10.9.0' };

interface Stand {
  server: Server;
  mode: Mode;
  versions: typeof OLD;
  upgrades: number;
}

let dir: string;
let manager: RunningManager;
let admin: ManagerClient;
const breaches: ContractBreach[] = [];
const stands = new Map<string, Stand>();

function problem(status: number, code: string, detail: string) {
  return JSON.stringify({ type: 'about:blank', title: code, status, code, detail });
}

async function standIn(name: string, mode: Mode, vms: Vm[] = []): Promise<void> {
  const stand: Stand = { mode, versions: { ...OLD }, upgrades: 0, server: undefined as unknown as Server };
  const snapshot = agentSnapshot(name, vms);
  stand.server = createServer(await fakeAgentTls(dir, name), (req, res) => {
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && req.url === '/v1/host')
      return json(200, { ...snapshot.info, ...stand.versions });
    if (req.method === 'GET' && req.url === '/v1/datastores') return json(200, snapshot.datastores);
    if (req.method === 'GET' && req.url === '/v1/vswitches') return json(200, snapshot.vswitches);
    if (req.method === 'GET' && req.url === '/v1/vms') return json(200, vms);
    if (req.method === 'POST' && req.url === '/v1/host/upgrade') {
      stand.upgrades += 1;
      if (stand.mode === 'fail') {
        res.writeHead(502, { 'content-type': 'application/problem+json' });
        res.end(
          problem(502, 'upgrade-failed', 'the upgrade command exited with 100: E: Unable to locate package'),
        );
        return;
      }
      const answer: HostUpgradeResult = {
        command: ['/usr/local/sbin/site-upgrade'],
        exitCode: 0,
        durationMs: 1234,
        stdout: 'upgraded\n',
        stderr: '',
        before: OLD,
        after: NEW,
        agentRestartNeeded: true,
      };
      if (stand.mode !== 'stuck') stand.versions = { ...NEW };
      if (stand.mode === 'drop') return void req.socket.destroy();
      return json(200, answer);
    }
    res.writeHead(404, { 'content-type': 'application/problem+json' });
    res.end(problem(404, 'not-found', 'stand-in agent'));
  });
  await new Promise<void>((resolve) => stand.server.listen(0, '127.0.0.1', resolve));
  stands.set(name, stand);
  await seedHost(manager.db, name, (stand.server.address() as AddressInfo).port, vms);
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-upgrade-run-api-'));
  manager = await startManager({
    ...(await testDatabase(dir)),
    dataDir: dir,
    reconcileIntervalSeconds: 3600,
    statsIntervalSeconds: 3600,
    upgradeReconnectSeconds: 2,
    log: () => {},
    onContractBreach: (breach) => breaches.push(breach),
  });
  admin = new ManagerClient(manager.url, manager.adminToken ?? '');
  await standIn('h1', 'ok');
  await standIn('h2', 'drop');
  await standIn('h3', 'fail');
  await standIn('h4', 'stuck');
  // A running VM the plan places, whose drain fails: its host's agent answers nothing about it.
  await standIn('h5', 'ok', [testVm('v5', 'running', 5)]);
  await manager.reconcileNow();
});

after(async () => {
  assert.deepEqual(breaches, []);
  await manager.close();
  for (const s of stands.values()) await new Promise((resolve) => s.server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

const ended = (job: Job) => admin.waitForJob(job.id, 60_000);

/** The host's maintenance changes, oldest first, as `before->after by actor (job)`. */
async function maintenanceRecords(host: string, jobId: string): Promise<string[]> {
  const page = await admin.listChanges({ object: host, limit: 100 });
  return page.items
    .filter((c) => c.changes.some((f) => f.field === 'maintenance'))
    .reverse()
    .map((c) => {
      const f = c.changes.find((x) => x.field === 'maintenance');
      return `${String(f?.before)}->${String(f?.after)} by ${c.actor}${c.jobId === jobId ? ' (the run)' : ''}`;
    });
}

test('a run takes each host through maintenance, its upgrade and back on its new versions; an answer its restart cut is waited out', async () => {
  const { job } = await admin.runUpgrade({ hosts: ['h2', 'h1'] });
  assert.equal(job.kind, 'host-upgrade');
  assert.deepEqual(job.target, { kind: 'upgrade', id: 'upgrade', name: 'hosts h1, h2' });
  const done = await ended(job);
  assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
  const result = UpgradeRunResult.parse(done.result);
  // No VMs on either: the plan takes them by name.
  assert.deepEqual(
    result.steps.map((s) => [s.step, s.host, s.before, s.after, s.moved, s.stayed]),
    [
      [1, 'h1', OLD, NEW, [], []],
      [2, 'h2', OLD, NEW, [], []],
    ],
  );
  assert.equal(result.steps[0]?.upgradeMs, 1234, "the agent's figure");
  assert.deepEqual([result.returned, result.notReturned, result.placement], [[], [], []]);
  for (const name of ['h1', 'h2']) {
    const h = await admin.getHost(name);
    assert.deepEqual(
      [h.agentVersion, h.qemuVersion, h.maintenance, h.state],
      ['0.1.1', '10.9.0', 'none', 'connected'],
    );
    assert.equal(stands.get(name)?.upgrades, 1);
    assert.deepEqual(await maintenanceRecords(name, job.id), [
      'none->in by admin (the run)',
      'in->none by admin (the run)',
    ]);
  }
  assert.equal(done.progress.percent, 100);
});

test('the first failure stops the run naming step, host and phase; that host stays in maintenance, the next is not touched', async () => {
  const { job } = await admin.runUpgrade({ hosts: ['h3'] });
  const done = await ended(job);
  assert.equal(done.state, 'failed');
  assert.equal(done.error?.code, 'agent-error');
  assert.match(
    done.error?.detail ?? '',
    /^rolling upgrade stopped at step 1 of 1, host h3, upgrade: .*the upgrade command exited with 100.*\[upgrade-failed\]; h3 stays in maintenance \(silobreak host resume h3 ends it\); no host was upgraded$/,
  );
  const h3 = await admin.getHost('h3');
  assert.deepEqual([h3.maintenance, h3.agentVersion], ['in', '0.1.0']);
  await admin.resumeHost('h3');
});

test('a drain that cannot empty the host stops the run at drain: the host stays entering maintenance, not upgraded', async () => {
  const { job } = await admin.runUpgrade({ hosts: ['h5'] });
  const done = await ended(job);
  assert.equal(done.state, 'failed');
  assert.match(
    done.error?.detail ?? '',
    /^rolling upgrade stopped at step 1 of 1, host h5, drain: its drain \(job [0-9a-f-]{36}\) failed: .*v5.*; h5 stays entering maintenance \(silobreak host resume h5 ends it\); no host was upgraded$/,
  );
  const h5 = await admin.getHost('h5');
  assert.deepEqual([h5.maintenance, h5.agentVersion], ['entering', '0.1.0']);
  assert.equal(stands.get('h5')?.upgrades, 0, 'its upgrade was never asked for');
  await admin.resumeHost('h5');
});

test('a host that answers on its old versions fails the run at reconnect within the bound; one run at a time', async () => {
  const { job } = await admin.runUpgrade({ hosts: ['h4'] });
  // While it runs another is refused naming it, and nothing is queued (the running job's own row
  // changes meanwhile: the jobs are compared by id).
  const jobIds = async () =>
    (await manager.db.selectFrom('jobs').select('id').orderBy('id').execute()).map((r) => r.id).join();
  const before = await jobIds();
  const busy = await rejects(admin.runUpgrade({ hosts: ['h1'] }), 409);
  assert.match(
    busy.message,
    new RegExp(`a rolling upgrade \\(hosts h4\\) is under way as job ${job.id}: one at a time`),
  );
  assert.equal(await jobIds(), before);
  const done = await ended(job);
  assert.equal(done.state, 'failed');
  assert.equal(done.error?.code, 'host-unreachable');
  assert.match(
    done.error?.detail ?? '',
    /^rolling upgrade stopped at step 1 of 1, host h4, reconnect: it answers with agent 0\.1\.0, QEMU 10\.0\.2, not the agent 0\.1\.1, QEMU 10\.9\.0 its upgrade installed \(2 s after it\); h4 stays in maintenance/,
  );
  assert.equal((await admin.getHost('h4')).maintenance, 'in');
  await admin.resumeHost('h4');
});

test('refused as the plan is, before anything changes: unknown host, hosts and cluster both, a QEMU target that goes back', async () => {
  const before = await dbSnapshot(manager.db);
  await rejects(admin.runUpgrade({ hosts: ['nope'] }), 404, 'hosts.0');
  await rejects(
    admin.http.raw('POST', '/api/v1/upgrades/run', { hosts: ['h1'], cluster: 'c1' }),
    400,
    'hosts',
  );
  await rejects(admin.runUpgrade({ hosts: ['h1'], targetQemuVersion: '10.0.0' }), 400, 'targetQemuVersion');
  await rejects(
    admin.http.raw('POST', '/api/v1/upgrades/run', { hosts: ['h1'], returnVms: 'yes' }),
    400,
    'returnVms',
  );
  assert.equal(await dbSnapshot(manager.db), before);
});

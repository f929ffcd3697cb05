// The fabric event stream (GET /api/v1/events) of a real manager (SQLite in a temp dir, loopback
// HTTP), read with the typed client as the console reads it (fetch streaming, bearer token).
// Inventory changes come through the API (pools) and through the code path reconciliation uses
// (applySnapshot: a VM made and deleted on the host directly); the job is a VM create on a host
// whose agent does not answer, which runs and fails.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ManagerClient, TERMINAL_JOB_STATES, type FabricEvent, type FabricEventQuery } from '../api/index.js';
import { hostRow } from './inventory.js';
import { applySnapshot } from './reconcile.js';
import {
  agentSnapshot,
  rejects,
  seedHost,
  startTestManager,
  testVm,
  type TestManager,
} from './test-inventory.js';

let t: TestManager;

/** An open stream and every event it brought so far. */
class Watch {
  readonly events: FabricEvent[] = [];
  /** Resolves when the stream ends (the manager stopped); rejects if it broke. */
  readonly ended: Promise<void>;
  constructor(client: ManagerClient, q?: FabricEventQuery) {
    const stream = client.watchFabric(q, 60_000);
    this.ended = (async () => {
      for await (const e of stream) this.events.push(e);
    })();
  }
  /** The first event (from `from` on) the predicate accepts, waiting up to 10 s for it. */
  async until(what: string, accept: (e: FabricEvent) => boolean, from = 0): Promise<FabricEvent> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const found = this.events.slice(from).find(accept);
      if (found) return found;
      if (Date.now() > deadline)
        assert.fail(`no ${what} within 10 s; got ${this.events.map((e) => e.kind).join(', ')}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  ready = () => this.until('ready', (e) => e.kind === 'ready');
}

const watches: Watch[] = [];
async function watch(client: ManagerClient, q?: FabricEventQuery): Promise<Watch> {
  const w = new Watch(client, q);
  watches.push(w);
  await w.ready();
  return w;
}

before(async () => {
  t = await startTestManager('sb-events-api-');
  await seedHost(t.manager.db, 'h1', 9, [testVm('web1', 'running', 1)]);
});

after(async () => {
  await t.close();
});

test('ready first; a pool created and deleted through the API: inventory and change events', async () => {
  const w = await watch(t.admin);
  assert.equal(w.events[0]?.kind, 'ready', 'ready comes first');
  const pool = await t.admin.createPool({ name: 'gold' });
  const added = await w.until('pool added', (e) => e.kind === 'inventory' && e.name === 'gold');
  assert.deepEqual(added, {
    kind: 'inventory',
    object: 'pool',
    action: 'added',
    id: pool.id,
    name: 'gold',
    host: null,
    changeId: added.kind === 'inventory' ? added.changeId : -1,
  });
  const change = await w.until('change', (e) => e.kind === 'change' && e.change.object.name === 'gold');
  assert.ok(change.kind === 'change' && added.kind === 'inventory');
  assert.equal(change.id, added.changeId, 'the inventory event names its change record');
  assert.equal(change.change.action, 'created');
  assert.equal(change.change.actor, 'admin');
  // The same record as the change list gives.
  const [listed] = (await t.admin.listChanges({ objectId: pool.id })).items;
  assert.deepEqual(change.change, listed);
  await t.admin.deletePool('gold');
  await w.until('pool removed', (e) => e.kind === 'inventory' && e.name === 'gold' && e.action === 'removed');
  // A refused call changes nothing and sends nothing.
  const count = w.events.length;
  await rejects(t.admin.createPool({ name: 'Not Valid' }), 400, 'name');
  await rejects(t.admin.deletePool('gold'), 404);
  await t.admin.listPools();
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(w.events.length, count, 'no event for refused calls');
});

test('a VM made and deleted on its host: inventory added/removed, change records and a drift issue', async () => {
  const w = await watch(t.viewer);
  const sneaky = testVm('sneaky', 'running', 7);
  const host = await hostRow(t.manager.db, 'h1');
  await applySnapshot(t.manager.db, host, agentSnapshot('h1', [testVm('web1', 'running', 1), sneaky]));
  const added = await w.until('VM added', (e) => e.kind === 'inventory' && e.id === sneaky.id);
  assert.ok(added.kind === 'inventory');
  assert.deepEqual([added.object, added.action, added.name, added.host], ['vm', 'added', 'sneaky', 'h1']);
  const change = await w.until('change', (e) => e.kind === 'change' && e.id === added.changeId);
  assert.ok(change.kind === 'change');
  assert.equal(change.change.actor, 'agent:h1');
  const issue = await w.until('drift issue', (e) => e.kind === 'issue' && e.issue.rule === 'drift');
  assert.ok(issue.kind === 'issue');
  assert.equal(issue.action, 'opened');
  assert.match(issue.issue.message, /sneaky/);
  const [listed] = (await t.admin.listStorageIssues({ rule: 'drift' })).items;
  assert.deepEqual(issue.issue, listed, 'the same issue as the issue list gives');

  const from = w.events.length;
  await applySnapshot(
    t.manager.db,
    await hostRow(t.manager.db, 'h1'),
    agentSnapshot('h1', [testVm('web1', 'running', 1)]),
  );
  await w.until(
    'VM removed',
    (e) => e.kind === 'inventory' && e.id === sneaky.id && e.action === 'removed',
    from,
  );
  // A state change of a known VM is a change of it.
  await applySnapshot(
    t.manager.db,
    await hostRow(t.manager.db, 'h1'),
    agentSnapshot('h1', [testVm('web1', 'stopped', 1)]),
  );
  const stopped = await w.until('VM changed', (e) => e.kind === 'inventory' && e.name === 'web1', from);
  assert.ok(stopped.kind === 'inventory');
  assert.equal(stopped.action, 'changed');
});

test('a job: its snapshots while it runs, as its own stream gives them, until it ends', async () => {
  const w = await watch(t.admin);
  const jobsOnly = await watch(t.admin, { kinds: 'job' });
  const accepted = await t.admin.createVm({ host: 'h1', spec: { name: 'new1', vcpus: 1, memoryMiB: 128 } });
  const id = accepted.job.id;
  const own = (async () => {
    const jobs = [];
    for await (const job of t.admin.watchJob(id, 60_000)) jobs.push(job);
    return jobs;
  })();
  // The agent at port 9 does not answer: the job runs, then fails.
  const last = await w.until(
    'the job ended',
    (e) => e.kind === 'job' && e.id === id && TERMINAL_JOB_STATES.includes(e.job.state),
  );
  assert.ok(last.kind === 'job');
  assert.equal(last.job.state, 'failed');
  const states = w.events.flatMap((e) => (e.kind === 'job' && e.id === id ? [e.job.state] : []));
  assert.ok(states.includes('running'), `seen while it ran: ${states.join(', ')}`);
  assert.equal(states[states.length - 1], 'failed', states.join(', '));
  assert.deepEqual(last.job, await t.admin.getJob(id), 'the whole job, as GET /jobs/:id gives it');
  const ownJobs = await own;
  assert.deepEqual(ownJobs.at(-1), last.job, 'its own stream ends with the same last snapshot');

  // The job's own stream of an ended job: its last snapshot (with its time as the event id), then
  // the server ends the reply (the body is whole only if it does).
  const response = await fetch(`${t.manager.url}/api/v1/jobs/${id}/events`, {
    headers: { authorization: `Bearer ${t.manager.adminToken ?? ''}` },
    signal: AbortSignal.timeout(10_000),
  });
  assert.equal(response.headers.get('content-type'), 'text/event-stream');
  assert.equal(
    await response.text(),
    `event: job\nid: ${last.job.updatedAt}\ndata: ${JSON.stringify(last.job)}\n\n`,
  );
  await jobsOnly.until(
    'the job ended',
    (e) => e.kind === 'job' && e.id === id && TERMINAL_JOB_STATES.includes(e.job.state),
  );
  assert.deepEqual(
    [...new Set(jobsOnly.events.map((e) => e.kind))].sort(),
    ['job', 'ready'],
    'kinds=job: jobs only (and ready)',
  );
});

test('bad kinds: 400 naming the field; no token: 401', async () => {
  await rejects(t.admin.watchFabric({ kinds: 'jobs' }).next(), 400, 'kinds');
  await rejects(t.admin.watchFabric({ kinds: 'job,' }).next(), 400, 'kinds');
  await rejects(new ManagerClient(t.manager.url, 'sb_wrong').watchFabric().next(), 401);
});

test('every stream ends cleanly when the manager stops', async () => {
  assert.ok(watches.length >= 4);
  await t.manager.close();
  await Promise.all(watches.map((w) => w.ended));
  assert.deepEqual(t.breaches, []);
});

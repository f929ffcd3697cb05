// Datastores managed through the manager's API against a stand-in agent (loopback HTTPS, the agent's
// own schemas): add, set class and limits, probe, remove; every change recorded in the change log
// with the caller as actor; bad input names the field and changes nothing; the agent's refusals
// come back as the manager's conflict; a host's class is the best of its datastores'.
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, before, test } from 'node:test';
import {
  ApiError,
  DatastoreSpec,
  DatastoreUpdate,
  ManagerClient,
  type ContractBreach,
  type Datastore,
  type HostInfo,
} from '../api/index.js';
import { dbSnapshot, startTestManager, type TestManager } from './test-inventory.js';
import { standInAgent, type StandInAgent } from './test-standin-agent.js';

const info: HostInfo = {
  name: 'h1',
  fabricAddress: '10.251.0.11',
  agentVersion: '0.1.0',
  qemuVersion: '10.0.2',
  accelerator: 'tcg',
  cpus: 2,
  memoryBytes: 2 ** 33,
  memoryFreeBytes: 2 ** 32,
  machineType: 'pc-q35-7.2',
  cpuModel: 'Nehalem',
};
const space = { capacityBytes: 2 ** 34, freeBytes: 2 ** 33 };
/** The stand-in agent's datastores; `busy` holds an image, so the agent refuses to remove it. */
let stores: Datastore[] = [];
/** Requests that would change the agent, as `METHOD path`. */
const changes: string[] = [];
let probeCount = 0;
/** When false, the agent reports no probe figures (as after its restart). */
let reportProbes = true;

let agent: StandInAgent;
let test_: TestManager;
let manager: TestManager['manager'];
let admin: ManagerClient;
let viewer: ManagerClient;
let breaches: ContractBreach[];

const problem = (status: number, code: string, detail: string, field?: string) => ({
  status,
  body: { type: 'about:blank', title: code, status, code, detail, ...(field ? { field } : {}) },
});

async function body(request: IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of request) text += String(chunk);
  return text ? JSON.parse(text) : undefined;
}

async function answer(request: IncomingMessage): Promise<{ status: number; body?: unknown }> {
  const url = request.url ?? '';
  const method = request.method ?? 'GET';
  const named = /^\/v1\/datastores\/([^/]+)(\/probe)?$/.exec(url);
  if (method !== 'GET') changes.push(`${method} ${url}`);
  if (method === 'GET') {
    const replies: Record<string, unknown> = {
      '/v1/host': info,
      '/v1/datastores': stores.map((d) => (reportProbes ? d : { ...d, probe: undefined })),
      '/v1/vswitches': [],
      '/v1/vms': [],
    };
    return { status: 200, body: replies[url] ?? [] };
  }
  if (method === 'POST' && url === '/v1/datastores') {
    const spec = DatastoreSpec.parse(await body(request));
    if (stores.some((d) => d.name === spec.name))
      return problem(409, 'datastore-exists', `a datastore named "${spec.name}" exists already`, 'name');
    const d: Datastore = {
      name: spec.name,
      path: spec.path,
      default: false,
      kind: 'local',
      ...space,
      class: spec.class ?? 'standard',
      ...(spec.limits ? { limits: spec.limits } : {}),
    };
    stores.push(d);
    return { status: 201, body: d };
  }
  const d = stores.find((s) => s.name === named?.[1]);
  if (!d) return problem(422, 'datastore-not-found', 'no such datastore', 'name');
  if (method === 'POST' && named?.[2]) {
    probeCount++;
    d.probe = {
      iops: 12_000,
      bytesPerSecond: 900 * 2 ** 20,
      probedAt: new Date().toISOString(),
      durationMs: 2000,
    };
    return { status: 200, body: d };
  }
  if (method === 'PATCH') {
    const update = DatastoreUpdate.parse(await body(request));
    if (update.class) d.class = update.class;
    if (update.limits === null) delete d.limits;
    else if (update.limits) d.limits = update.limits;
    return { status: 200, body: d };
  }
  if (method === 'DELETE') {
    if (d.name === 'busy')
      return problem(409, 'datastore-in-use', 'datastore "busy" still holds VM "web1"', 'name');
    stores = stores.filter((s) => s !== d);
    return { status: 204 };
  }
  return problem(404, 'route-not-found', url);
}

before(async () => {
  stores = [{ name: 'local', path: '/d', default: true, ...space, class: 'standard', kind: 'local' }];
  agent = await standInAgent('h1', (request, response) => {
    void answer(request).then(
      (a) => {
        response.statusCode = a.status;
        response.setHeader('content-type', a.status >= 400 ? 'application/problem+json' : 'application/json');
        response.end(a.body === undefined ? undefined : JSON.stringify(a.body));
      },
      (error: unknown) => {
        response.statusCode = 500;
        response.end(String(error));
      },
    );
  });
  test_ = await startTestManager('sb-manager-ds-');
  ({ manager, admin, viewer, breaches } = test_);
  await admin.addHost(agent.join);
});

after(async () => {
  await test_.close();
  await agent.close();
});

const recordsOf = async (name: string) =>
  (await admin.listChanges({ limit: 1000 })).items.filter((c) => c.object.name === name).reverse();

async function rejects(call: Promise<unknown>, status: number, field?: string): Promise<ApiError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof ApiError, String(error));
    assert.equal(error.status, status, error.message);
    if (field !== undefined) assert.equal(error.field, field);
    return error;
  }
  assert.fail(`expected HTTP ${status}`);
}

test('add, set and remove a datastore: each in the inventory at once and in the change log by its caller', async () => {
  const added = await admin.addDatastore('h1', {
    name: 'slow',
    path: '/srv/slow',
    limits: { iops: 400, bytesPerSecond: 80 * 2 ** 20 },
    probe: false,
  });
  assert.deepEqual(
    [added.host, added.name, added.class, added.limits],
    ['h1', 'slow', 'standard', { iops: 400, bytesPerSecond: 80 * 2 ** 20 }],
  );
  assert.deepEqual(await admin.getDatastore('h1', 'slow'), added);

  const changed = await admin.updateDatastore('h1', 'slow', { class: 'archive', limits: { iops: 200 } });
  assert.deepEqual([changed.class, changed.limits], ['archive', { iops: 200 }]);
  const lifted = await admin.updateDatastore('h1', 'slow', { limits: null });
  assert.equal(lifted.limits, undefined);

  await admin.removeDatastore('h1', 'slow');
  await rejects(admin.getDatastore('h1', 'slow'), 404);

  const records = await recordsOf('h1/slow');
  assert.deepEqual(
    records.map((r) => [r.action, r.actor, r.changes.map((c) => c.field)]),
    [
      ['created', 'admin', []],
      ['setting-changed', 'admin', ['class', 'limits']],
      ['setting-changed', 'admin', ['limits']],
      ['deleted', 'admin', []],
    ],
  );
  assert.deepEqual(
    records[1]?.changes.find((c) => c.field === 'limits'),
    {
      field: 'limits',
      before: { iops: 400, bytesPerSecond: 80 * 2 ** 20 },
      after: { iops: 200 },
    },
  );
  assert.deepEqual(
    records.map((r) => r.risk),
    ['low', 'medium', 'medium', 'high'],
  );
});

test("a host's class is the best of its datastores'; list shows class and limits", async () => {
  assert.equal((await admin.getHost('h1')).class, 'standard');
  await admin.addDatastore('h1', { name: 'nvme', path: '/srv/nvme', class: 'fast', probe: false });
  assert.equal((await admin.getHost('h1')).class, 'fast');
  const list = (await admin.listDatastores({ host: 'h1' })).items;
  assert.deepEqual(
    list.map((d) => [d.name, d.class]),
    [
      ['local', 'standard'],
      ['nvme', 'fast'],
    ],
  );
  await admin.removeDatastore('h1', 'nvme');
  assert.equal((await admin.getHost('h1')).class, 'standard');
});

test('a probe is stored and kept while a restarted agent has none yet', async () => {
  const before = probeCount;
  const probed = await admin.probeDatastore('h1', 'local');
  assert.equal(probeCount, before + 1);
  assert.deepEqual([probed.probe?.iops, probed.probe?.bytesPerSecond], [12_000, 900 * 2 ** 20]);
  reportProbes = false;
  try {
    await admin.reconcileHost('h1');
    assert.deepEqual((await admin.getDatastore('h1', 'local')).probe, probed.probe);
  } finally {
    reportProbes = true;
  }
});

test('bad input names the field and changes nothing, on the manager or the agent', async () => {
  stores.push({
    name: 'busy',
    path: '/srv/busy',
    default: false,
    ...space,
    class: 'standard',
    kind: 'local',
  });
  await admin.reconcileHost('h1');
  const rows = await dbSnapshot(manager.db);
  const sent = changes.length;
  await rejects(admin.addDatastore('h1', { name: 'x', path: '/x', limits: { iops: 0 } }), 400, 'limits.iops');
  await rejects(admin.addDatastore('h1', { name: 'Bad', path: '/x' }), 400, 'name');
  await rejects(admin.addDatastore('h1', { name: 'x', path: 'relative' }), 400, 'path');
  await rejects(
    admin.updateDatastore('h1', 'busy', { limits: { bytesPerSecond: 5 } }),
    400,
    'limits.bytesPerSecond',
  );
  await rejects(admin.addDatastore('nohost', { name: 'x', path: '/x' }), 404);
  await rejects(admin.updateDatastore('h1', 'nope', { class: 'fast' }), 404);
  await rejects(viewer.updateDatastore('h1', 'busy', { class: 'fast' }), 403);
  assert.equal(changes.length, sent, 'the agent was asked nothing');
  // The agent's refusals: the manager's conflict, with the agent's field.
  const taken = await rejects(
    admin.addDatastore('h1', { name: 'busy', path: '/other', probe: false }),
    409,
    'name',
  );
  assert.equal(taken.code, 'conflict');
  const inUse = await rejects(admin.removeDatastore('h1', 'busy'), 409, 'name');
  assert.match(inUse.message, /web1/);
  assert.equal(await dbSnapshot(manager.db), rows);
});

test('every answer stayed inside the route table', () => {
  assert.deepEqual(breaches, []);
});

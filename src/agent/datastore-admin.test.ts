// Datastores managed at runtime through the agent's routes (no QEMU): add, change class and
// limits, remove (refused while an image lives there), probe; bad input names the field and
// changes nothing; the configuration file keeps the list.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { AgentConfig, Datastore, Problem, SHARED_STORAGE_MARKER } from '../api/index.js';
import { DatastoreAdmin, persistDatastoresIn } from './datastore-admin.js';
import { HostInventory } from './host.js';
import { jsonLineLogger } from './logger.js';
import type { VmService } from './vm-service.js';
import { startTestAgent, type TestAgent } from './test-server.js';

const TOKEN = 'datastore-admin-test-token-0123';
let agent: TestAgent;

before(async () => {
  agent = await startTestAgent({ token: TOKEN, prefix: 'sb-agent-ds-', datastoreSubdir: 'ds1' });
  await mkdir(path.join(agent.dir, 'ds1'));
});
after(() => agent.close());

async function call(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, body?: unknown) {
  const headers = { authorization: `Bearer ${TOKEN}` };
  const r = await agent.app.inject({
    method,
    url,
    headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  });
  return { status: r.statusCode, json: () => r.json<unknown>() };
}
const list = async () => Datastore.array().parse((await call('GET', '/v1/datastores')).json());
const problemOf = (r: { json: () => unknown }) => Problem.parse(r.json());

test('a datastore is added with its class and limits, changed, and removed', async () => {
  const dir = path.join(agent.dir, 'slow');
  const added = await call('POST', '/v1/datastores', {
    name: 'slow',
    path: dir,
    class: 'standard',
    limits: { iops: 400, bytesPerSecond: 80_000_000 },
    probe: false,
  });
  assert.equal(added.status, 201);
  const store = Datastore.parse(added.json());
  assert.deepEqual(
    [store.name, store.path, store.class, store.limits, store.default],
    ['slow', dir, 'standard', { iops: 400, bytesPerSecond: 80_000_000 }, false],
  );
  assert.deepEqual(
    (await list()).map((d) => d.name),
    ['ds1', 'slow'],
  );

  const changed = Datastore.parse(
    (await call('PATCH', '/v1/datastores/slow', { class: 'archive', limits: { iops: 100 } })).json(),
  );
  assert.deepEqual([changed.class, changed.limits], ['archive', { iops: 100 }]);
  const lifted = Datastore.parse((await call('PATCH', '/v1/datastores/slow', { limits: null })).json());
  assert.equal(lifted.limits, undefined);
  assert.equal(lifted.class, 'archive');

  assert.equal((await call('DELETE', '/v1/datastores/slow')).status, 204);
  assert.deepEqual(
    (await list()).map((d) => d.name),
    ['ds1'],
  );
});

test('bad input names the field and changes nothing', async () => {
  const before = await list();
  for (const [body, field] of [
    [{ name: 'Bad Name', path: '/tmp/x' }, 'name'],
    [{ name: 'ok', path: 'relative/dir' }, 'path'],
    [{ name: 'ok', path: '/tmp/x', limits: { iops: 0 } }, 'limits.iops'],
    [{ name: 'ok', path: '/tmp/x', limits: { iops: 5, burst: 9 } }, 'limits'],
    [{ name: 'ok', path: '/tmp/x', colour: 'red' }, ''],
  ] as const) {
    const r = await call('POST', '/v1/datastores', body);
    assert.equal(r.status, 400, JSON.stringify(body));
    const p = problemOf(r);
    assert.equal(p.code, 'invalid-input');
    assert.ok((p.field ?? '').startsWith(field), `${JSON.stringify(body)}: field ${p.field ?? ''}`);
  }
  const same = await call('POST', '/v1/datastores', { name: 'ds1', path: '/tmp/other', probe: false });
  assert.deepEqual(
    [same.status, problemOf(same).code, problemOf(same).field],
    [409, 'datastore-exists', 'name'],
  );
  const dir = await call('POST', '/v1/datastores', {
    name: 'twin',
    path: path.join(agent.dir, 'ds1'),
    probe: false,
  });
  assert.deepEqual(
    [dir.status, problemOf(dir).code, problemOf(dir).field],
    [409, 'datastore-exists', 'path'],
  );
  const bad = await call('PATCH', '/v1/datastores/ds1', { limits: { bytesPerSecond: -1 } });
  assert.equal(problemOf(bad).field, 'limits.bytesPerSecond');
  const missing = await call('PATCH', '/v1/datastores/nope', { class: 'fast' });
  assert.deepEqual([missing.status, problemOf(missing).code], [422, 'datastore-not-found']);
  assert.deepEqual(
    (await list()).map((d) => [d.name, d.class, d.limits]),
    before.map((d) => [d.name, d.class, d.limits]),
  );
});

test('a datastore only under the roots, by its real path: no system, state or manager directory, no alias of another', async () => {
  const names = async () => (await list()).map((d) => `${d.name} ${d.path}`);
  const before = await names();
  const managerDir = path.join(agent.dir, 'manager');
  await mkdir(managerDir, { mode: 0o700 });
  await writeFile(path.join(managerDir, 'manager.db'), '');
  await symlink(path.join(agent.dir, 'ds1'), path.join(agent.dir, 'alias'));
  await symlink('/etc', path.join(agent.dir, 'etc-link'));
  for (const [dir, status, code, detail] of [
    ['/', 400, 'invalid-input', /is a system directory/],
    ['/proc/self', 400, 'invalid-input', /is in \/proc, a system directory/],
    ['/etc/silobreak', 400, 'invalid-input', /is in \/etc/],
    [path.join(agent.dir, 'etc-link', 'x'), 400, 'invalid-input', /really \/etc\/x\) is in \/etc/],
    ['/var/lib/elsewhere', 400, 'invalid-input', /is not under the datastore roots of this host/],
    [path.join(agent.dir, 'state'), 400, 'invalid-input', /is in the agent's state directory/],
    [path.join(agent.dir, 'state', 'vms'), 400, 'invalid-input', /is in the agent's state directory/],
    [managerDir, 400, 'invalid-input', /in a Silobreak manager's data directory/],
    [path.join(managerDir, 'disks'), 400, 'invalid-input', /in a Silobreak manager's data directory/],
    [path.join(agent.dir, 'alias'), 409, 'datastore-exists', /is datastore "ds1"/],
    [path.join(agent.dir, 'alias', 'inner'), 409, 'datastore-exists', /is inside datastore "ds1"/],
    [agent.dir, 400, 'invalid-input', /holds the agent's state directory/],
  ] as const) {
    const r = await call('POST', '/v1/datastores', { name: 'nope', path: dir, probe: false });
    const p = problemOf(r);
    assert.deepEqual([r.status, p.code, p.field], [status, code, 'path'], `${dir}: ${p.detail}`);
    assert.match(p.detail, detail, dir);
  }
  // No control characters: a NUL reached the filesystem calls (500), ESC or RLO disguise the path.
  for (const bad of ['/tmp/a\u0000b', '/tmp/a\u001b[2Jb', '/tmp/a\u202eb']) {
    const r = await call('POST', '/v1/datastores', { name: 'nope', path: path.join(agent.dir, bad) });
    assert.deepEqual([r.status, problemOf(r).field], [400, 'path'], JSON.stringify(bad));
    assert.match(problemOf(r).detail, /control characters/);
  }
  assert.deepEqual(await names(), before);
  const made = await call('POST', '/v1/datastores', {
    name: 'fresh',
    path: path.join(agent.dir, 'alias-parent', '..', 'fresh'),
    probe: false,
  });
  assert.equal(made.status, 201);
  const fresh = Datastore.parse(made.json());
  assert.equal(fresh.path, path.join(await realpath(agent.dir), 'fresh'));
  assert.equal((await stat(fresh.path)).mode & 0o777, 0o700, 'made owner-only');
  assert.equal((await call('DELETE', '/v1/datastores/fresh')).status, 204);
});

test('remove is refused while an image lives there, and for the last datastore', async () => {
  const dir = path.join(agent.dir, 'held');
  await call('POST', '/v1/datastores', { name: 'held', path: dir, probe: false });
  await writeFile(path.join(dir, 'retained-root.qcow2'), 'x');
  const refused = await call('DELETE', '/v1/datastores/held');
  assert.deepEqual([refused.status, problemOf(refused).code], [409, 'datastore-in-use']);
  assert.match(problemOf(refused).detail ?? '', /retained-root\.qcow2/);
  assert.ok((await list()).some((d) => d.name === 'held'));
  await rm(path.join(dir, 'retained-root.qcow2'));
  assert.equal((await call('DELETE', '/v1/datastores/held')).status, 204);
  const last = await call('DELETE', '/v1/datastores/ds1');
  assert.deepEqual([last.status, problemOf(last).code], [400, 'invalid-input']);
});

test('a shared datastore is identified by its marker: written by the first host, read by the next', async () => {
  const dir = path.join(agent.dir, 'nfs');
  const missing = await call('POST', '/v1/datastores', {
    name: 'nfs',
    path: dir,
    kind: 'shared',
    probe: false,
  });
  // Shared storage is mounted, never made: a missing mount must not become a new storage.
  assert.deepEqual([missing.status, problemOf(missing).field], [400, 'path']);
  assert.match(problemOf(missing).detail, /mount the shared storage there first/);
  await assert.rejects(stat(dir));
  await mkdir(dir);
  const added = await call('POST', '/v1/datastores', {
    name: 'nfs',
    path: dir,
    kind: 'shared',
    probe: false,
  });
  assert.equal(added.status, 201);
  const store = Datastore.parse(added.json());
  assert.equal(store.kind, 'shared');
  const marker = JSON.parse(await readFile(path.join(dir, SHARED_STORAGE_MARKER), 'utf8')) as unknown;
  assert.deepEqual(marker, { storageId: store.storageId });
  // Another host's agent (a second inventory on the same directory) reads the same id.
  const other = new HostInventory(
    AgentConfig.parse({
      hostName: 'h2',
      listen: { address: '127.0.0.1', port: 1 },
      fabricAddress: '127.0.0.1',
      stateDir: path.join(agent.dir, 'state-h2'),
      datastores: [{ name: 'san', path: dir, kind: 'shared', default: true }],
      vswitches: [],
    }),
  );
  await other.init();
  const seen = await other.describe('san');
  assert.deepEqual([seen.kind, seen.storageId], ['shared', store.storageId]);
  // A local datastore reports no storage id; the list shows both kinds.
  const ds1 = (await list()).find((d) => d.name === 'ds1');
  assert.deepEqual([ds1?.kind, ds1?.storageId], ['local', undefined]);
  // The same storage twice on one host (mounted at a second path: its marker there too) is refused.
  const again = path.join(agent.dir, 'nfs-again');
  await mkdir(again);
  await writeFile(path.join(again, SHARED_STORAGE_MARKER), JSON.stringify(marker));
  const twice = await call('POST', '/v1/datastores', {
    name: 'nfs2',
    path: again,
    kind: 'shared',
    probe: false,
  });
  assert.deepEqual(
    [twice.status, problemOf(twice).code, problemOf(twice).field],
    [409, 'datastore-exists', 'path'],
  );
  assert.match(problemOf(twice).detail, /datastore "nfs" is that shared storage already/);
  await writeFile(path.join(dir, 'other-hosts-vm-root.qcow2'), 'x');
  assert.equal(
    (await call('DELETE', '/v1/datastores/nfs')).status,
    204,
    "other hosts' images do not hold it",
  );
  assert.deepEqual(
    JSON.parse(await readFile(path.join(dir, SHARED_STORAGE_MARKER), 'utf8')),
    marker,
    'the marker outlives the datastore on one host',
  );
});

test('a probe measures the datastore and is shown with it', async () => {
  const r = await call('POST', '/v1/datastores/ds1/probe');
  assert.equal(r.status, 200);
  const probe = Datastore.parse(r.json()).probe;
  assert.ok(probe && probe.iops > 0 && probe.bytesPerSecond > 0, JSON.stringify(probe));
  assert.deepEqual((await list()).find((d) => d.name === 'ds1')?.probe, probe);
});

test('the configuration file keeps the datastore list, other settings untouched', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'sb-ds-persist-'));
  try {
    const file = path.join(dir, 'agent.json');
    const raw = {
      hostName: 'h1',
      listen: { address: '127.0.0.1', port: 8470 },
      breakGlassToken: 'persist-token-0123456789',
      fabricAddress: '127.0.0.1',
      stateDir: path.join(dir, 'state'),
      datastores: [{ name: 'a', path: path.join(dir, 'a'), default: true }],
      vswitches: [],
    };
    await writeFile(file, JSON.stringify(raw));
    await mkdir(path.join(dir, 'b'));
    const inventory = new HostInventory(AgentConfig.parse(raw), persistDatastoresIn(file));
    await inventory.add({ name: 'b', path: path.join(dir, 'b'), class: 'fast', limits: { iops: 50 } });
    await inventory.update('a', { limits: { bytesPerSecond: 1_000_000 } });
    const kept = AgentConfig.parse(JSON.parse(await readFile(file, 'utf8')));
    assert.equal(kept.breakGlassToken, raw.breakGlassToken);
    assert.deepEqual(
      kept.datastores.map((d) => [d.name, d.class, d.limits, d.default]),
      [
        ['a', 'standard', { bytesPerSecond: 1_000_000 }, true],
        ['b', 'fast', { iops: 50 }, false],
      ],
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('changed limits reach every running QEMU with a disk there, at once; others are left alone', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'sb-ds-apply-'));
  try {
    const config = AgentConfig.parse({
      hostName: 'h1',
      listen: { address: '127.0.0.1', port: 8470 },
      breakGlassToken: 'apply-token-0123456789',
      fabricAddress: '127.0.0.1',
      stateDir: path.join(dir, 'state'),
      datastores: [
        { name: 'slow', path: dir, default: true },
        { name: 'other', path: dir },
      ],
      vswitches: [],
    });
    const inventory = new HostInventory(config);
    const sent: [string, unknown][] = [];
    const runtime = (name: string, datastore: string, active: boolean, fails = false) => ({
      active,
      def: { name, disks: [{ datastore }] },
      qmp: () => ({
        execute: async (command: string, args: unknown) => {
          if (fails) throw new Error("Device '/objects/tg-slow' not found");
          sent.push([`${name} ${command}`, args]);
          return {};
        },
      }),
    });
    const vms = {
      runtimes: () => [
        runtime('on-slow', 'slow', true),
        runtime('stopped', 'slow', false),
        runtime('elsewhere', 'other', true),
        runtime('old-qemu', 'slow', true, true),
      ],
    };
    const warnings: string[] = [];
    const log = { ...jsonLineLogger('silent'), warn: (msg: string) => void warnings.push(msg) };
    const admin = new DatastoreAdmin(inventory, vms as unknown as VmService, log, config);
    const shown = await admin.update('slow', { limits: { iops: 400 } });
    assert.deepEqual(shown.limits, { iops: 400 });
    assert.deepEqual(sent, [
      [
        'on-slow qom-set',
        { path: '/objects/tg-slow', property: 'limits', value: { 'iops-total': 400, 'bps-total': 0 } },
      ],
    ]);
    assert.equal(warnings.length, 1, 'a QEMU without the group: a warning, the change stands');
    sent.length = 0;
    await admin.update('slow', { class: 'archive' });
    assert.deepEqual(sent, [], 'a class change touches no QEMU');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { after, before, test } from 'node:test';
import { AgentClient } from './agent-client.js';
import { AGENT_ERRORS } from './agent-errors.js';
import { AGENT_COMMON_ERRORS, agentOpenApiDocument, agentRoutes } from './agent-routes.js';
import { AgentMigrationClient } from './migration-client.js';
import { OpenApiDocument, openApiPath, pathParams } from './route-table.js';

const routes = Object.entries(agentRoutes);

test('every route: path parameters and params schema agree, one route per method and path', () => {
  const seen = new Set<string>();
  for (const [name, r] of routes) {
    assert.deepEqual(
      pathParams(r.path).sort(),
      Object.keys('params' in r ? r.params.shape : {}).sort(),
      name,
    );
    const key = `${r.method} ${openApiPath(r.path)}`;
    assert.ok(!seen.has(key), `${name}: ${key} twice`);
    seen.add(key);
    assert.ok(r.path === '/metrics' || r.path.startsWith('/v1/'), name);
    assert.equal(r.method === 'GET' && 'body' in r, false, `${name}: a GET with a body`);
    assert.equal(r.status === 204, !('response' in r), `${name}: a reply schema exactly when not 204`);
  }
});

test('every route lists its own error codes once, none of the common ones', () => {
  for (const [name, r] of routes) {
    assert.equal(new Set(r.errors).size, r.errors.length, name);
    for (const code of r.errors) {
      assert.ok(code in AGENT_ERRORS, `${name}: ${code}`);
      assert.ok(!(AGENT_COMMON_ERRORS as readonly string[]).includes(code), `${name}: ${code} is common`);
    }
  }
  assert.ok(agentRoutes.getVm.errors.includes('vm-not-found'));
  assert.ok(agentRoutes.getMigration.errors.includes('migration-not-found'));
});

test('the OpenAPI document has every route, with its error statuses and the bearer scheme', () => {
  const doc = OpenApiDocument.parse(agentOpenApiDocument('9.9.9'));
  assert.equal(doc.info.version, '9.9.9');
  assert.deepEqual(doc.security, [{ bearer: [] }]);
  const operations = Object.values(doc.paths).flatMap((p) => Object.values(p));
  assert.deepEqual(operations.map((o) => o.operationId).sort(), Object.keys(agentRoutes).sort());

  const create = doc.paths['/v1/vms']?.post;
  assert.ok(create?.requestBody?.required);
  assert.deepEqual(Object.keys(create.responses).sort(), [
    '201',
    '400',
    '401',
    '403',
    '408',
    '409',
    '413',
    '414',
    '415',
    '422',
    '431',
    '500',
    '503',
  ]);
  const unprocessable = create.responses['422']?.content?.['application/problem+json']?.schema as {
    properties: { code: { enum: string[] } };
  };
  assert.ok(unprocessable.properties.code.enum.includes('insufficient-memory'));
  assert.ok(unprocessable.properties.code.enum.includes('datastore-not-found'));

  const del = doc.paths['/v1/vms/{name}']?.delete;
  assert.deepEqual(
    del?.parameters.map((p) => [p.name, p.in, p.required]),
    [
      ['name', 'path', true],
      ['deleteDisks', 'query', false],
      // Every route takes the calling manager's epoch (fencing, issue 31).
      ['silobreak-manager-epoch', 'header', false],
    ],
  );
  assert.deepEqual(del?.responses['204'], { description: 'Done' });
  assert.ok(
    doc.paths['/metrics']?.get?.responses['200']?.content?.['text/plain; version=0.0.4; charset=utf-8'],
  );
  assert.equal(doc.paths['/v1/migrations/{id}/complete']?.post?.requestBody?.required, false);
});

// ---- the clients build every call from the table ----

const seen: { method: string; url: string; body: string; type: string | undefined }[] = [];
let base = '';
const server = createServer((req: IncomingMessage, res) => {
  let body = '';
  req.on('data', (chunk: Buffer) => (body += chunk.toString()));
  req.on('end', () => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', body, type: req.headers['content-type'] });
    res.writeHead(418, { 'content-type': 'application/problem+json' });
    res.end(JSON.stringify({ title: 'Teapot', status: 418, code: 'recorded', detail: 'recorded' }));
  });
});
before(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  base = `http://127.0.0.1:${address.port}`;
});
after(() => server.close());

test('AgentClient and AgentMigrationClient call exactly the routes of the table', async () => {
  const agent = new AgentClient({ baseUrl: base, token: 'token-0123456789abcdef' });
  const moves = new AgentMigrationClient(agent.http);
  const id = '00000000-0000-4000-8000-000000000001';
  const plan = {
    slowLink: false,
    maxBandwidthBytesPerSecond: 1e9,
    multifdChannels: 0,
    postcopy: false,
    targetDowntimeMs: 30,
    maxDowntimeMs: 300,
    mirrorBufSizeBytes: 1 << 20,
    reasons: [],
  };
  const vm = {
    id,
    name: 'a',
    vcpus: 1,
    memoryMiB: 128,
    disks: [],
    nics: [],
    machineType: 'm',
    cpuModel: 'c',
  };
  const target = {
    migrationId: id,
    nbd: { host: '10.0.0.1', port: 1 },
    exports: [],
    migrationUri: 'tcp:x:1',
  };
  const calls: [keyof typeof agentRoutes, () => Promise<unknown>][] = [
    ['getHost', () => agent.host()],
    ['joinLockspace', () => agent.joinLockspace({ name: 'c1', hostId: 1, datastore: 'shared' })],
    ['leaveLockspace', () => agent.leaveLockspace()],
    ['listDatastores', () => agent.datastores()],
    ['addDatastore', () => agent.addDatastore({ name: 'slow', path: '/srv/slow', limits: { iops: 400 } })],
    ['updateDatastore', () => agent.updateDatastore('slow', { limits: null })],
    ['removeDatastore', () => agent.removeDatastore('slow')],
    ['probeDatastore', () => agent.probeDatastore('slow')],
    ['listVSwitches', () => agent.vswitches()],
    ['listVms', () => agent.listVms()],
    ['createVm', () => agent.createVm({ name: 'a', vcpus: 1, memoryMiB: 128 })],
    ['getVm', () => agent.getVm('a b')],
    ['deleteVm', () => agent.deleteVm('a', true)],
    ['startVm', () => agent.startVm('a')],
    ['shutdownVm', () => agent.shutdownVm('a', 5)],
    ['stopVm', () => agent.stopVm('a')],
    ['guestInfo', () => agent.guestInfo('a')],
    ['insertTools', () => agent.insertTools('a')],
    ['ejectTools', () => agent.ejectTools('a')],
    ['guestExec', () => agent.guestExec('a', ['true'])],
    ['getStats', () => agent.stats()],
    ['metrics', () => agent.metrics()],
    ['getJournal', () => agent.journal(0)],
    ['openApi', () => agent.openApi()],
    ['upgradeHost', () => agent.upgradeHost(5000)],
    ['planMigration', () => moves.plan({ vmName: 'a' })],
    ['listMigrations', () => moves.list()],
    ['prepareIncoming', () => moves.prepareIncoming({ migrationId: id, vm, plan, sourceHost: 'a' })],
    ['startMigration', () => moves.start({ migrationId: id, vmName: 'a', plan, target })],
    ['abortIncoming', () => moves.abortIncoming(id)],
    ['finishIncoming', () => moves.finishIncoming(id)],
    ['getMigration', () => moves.status(id)],
    ['cancelMigration', () => moves.cancel(id)],
    ['completeMigration', () => moves.complete(id, { keepSource: true })],
    ['moveStorage', () => moves.moveStorage('a', { datastore: 'b' })],
    ['coldExport', () => moves.coldExport('a', id)],
    ['coldClose', () => moves.coldClose(id)],
    [
      'coldCopy',
      () =>
        moves.coldCopy('a', {
          migrationId: id,
          disks: [{ diskId: 'root', uri: 'nbd://10.0.0.1:1/root' }],
          secret: 'a'.repeat(64),
        }),
    ],
    ['coldCopyStatus', () => moves.coldStatus(id)],
    ['listRetained', () => moves.listRetained()],
    ['releaseRetained', () => moves.releaseRetained(id)],
    ['openLinkSender', () => moves.openLinkSender({ durationMs: 300 })],
    [
      'probeLink',
      () => moves.probeLink({ sender: { address: '10.0.0.1', port: 49152, secret: 'a'.repeat(64) } }),
    ],
    ['requestCertificate', () => agent.requestCertificate({ joinSecret: 'a'.repeat(32) })],
    [
      'installCertificate',
      () =>
        agent.installCertificate({
          caCertificate: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n',
          certificate: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n',
          crl: '-----BEGIN X509 CRL-----\nx\n-----END X509 CRL-----\n',
        }),
    ],
    [
      'putRevocationList',
      () => agent.putRevocationList('-----BEGIN X509 CRL-----\nx\n-----END X509 CRL-----\n'),
    ],
    ['leaveFabric', () => agent.leaveFabric()],
  ];
  for (const [name, call] of calls) {
    seen.length = 0;
    await assert.rejects(call(), { name: 'ApiError', status: 418, code: 'recorded' }, name);
    const [request] = seen;
    const r = agentRoutes[name];
    assert.ok(request, name);
    assert.equal(request.method, r.method, name);
    const template = new RegExp(`^${r.path.replace(/:[A-Za-z]+/g, '[^/?]+')}(\\?.*)?$`);
    assert.match(request.url, template, name);
    // A body exactly when the route takes one, and then JSON (a PATCH's merge patch too).
    assert.equal(request.body !== '', 'body' in r, name);
    if ('body' in r) assert.equal(request.type, 'application/json', name);
  }
  assert.deepEqual(calls.map(([name]) => name).sort(), Object.keys(agentRoutes).sort(), 'every route');

  seen.length = 0;
  await assert.rejects(agent.getVm('a b'));
  assert.equal(seen[0]?.url, '/v1/vms/a%20b');
  seen.length = 0;
  await assert.rejects(agent.deleteVm('a', false));
  assert.equal(seen[0]?.url, '/v1/vms/a?deleteDisks=false');
});

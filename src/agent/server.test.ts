// The agent's HTTP server with a real core on a temporary state dir, and no QEMU: every route of
// the contract is served (with the move plugins mounted), input is checked at the edge, errors
// answer with the codes the contract lists, and a VM without disks or NICs can be defined and
// deleted. Requests go through Fastify's inject, so nothing listens.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import {
  AGENT_COMMON_ERRORS,
  agentRoutes,
  HostStats,
  OpenApiDocument,
  Problem,
  Vm,
  type AgentErrorCode,
  type AgentRouteName,
} from '../api/index.js';
import { jsonLineLogger } from './logger.js';
import { startTestAgent, type TestAgent } from './test-server.js';

const TOKEN = 'server-test-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };
let agent: TestAgent;
let app: FastifyInstance;

before(async () => {
  agent = await startTestAgent({ token: TOKEN, prefix: 'sb-agent-server-' });
  app = agent.app;
});

after(() => agent.close());

async function call(method: 'GET' | 'POST' | 'DELETE', url: string, body?: unknown) {
  const response = await app.inject({
    method,
    url,
    headers: auth,
    ...(body === undefined
      ? {}
      : { payload: JSON.stringify(body), headers: { ...auth, 'content-type': 'application/json' } }),
  });
  return {
    status: response.statusCode,
    type: response.headers['content-type'],
    json: () => response.json<unknown>(),
  };
}

/** The reply is a problem with this status and code, and the route's table entry lists the code. */
async function problem(
  route: AgentRouteName,
  reply: Awaited<ReturnType<typeof call>>,
  status: number,
  code: AgentErrorCode,
  field?: string,
) {
  assert.match(String(reply.type), /^application\/problem\+json/);
  const p = Problem.parse(reply.json());
  assert.deepEqual([p.status, p.code, p.field], [status, code, field], p.detail);
  const listed: readonly string[] = [...agentRoutes[route].errors, ...AGENT_COMMON_ERRORS];
  assert.ok(listed.includes(code), `${route} does not list ${code}`);
  return p;
}

test('every route of the table is served with the move plugins mounted', () => {
  for (const [name, r] of Object.entries(agentRoutes))
    assert.ok(app.hasRoute({ method: r.method, url: r.path }), `${name}: ${r.method} ${r.path}`);
});

test('the token guards every route, the OpenAPI document too', async () => {
  for (const url of ['/v1/openapi.json', '/v1/host', '/metrics', '/v1/no-such-route']) {
    const response = await app.inject({ method: 'GET', url, headers: { authorization: 'Bearer wrong' } });
    assert.equal(response.statusCode, 401, url);
    assert.equal(response.json<Problem>().code, 'unauthorized');
  }
});

test('GET /v1/openapi.json is the document generated from the table', async () => {
  const reply = await call('GET', '/v1/openapi.json');
  assert.equal(reply.status, 200);
  const doc = OpenApiDocument.parse(reply.json());
  assert.equal(doc.info.version, '0.0.0-test');
  const ids = Object.values(doc.paths).flatMap((p) => Object.values(p).map((o) => o.operationId));
  assert.deepEqual(ids.sort(), Object.keys(agentRoutes).sort());
});

test('host, datastores, switches, VMs and metrics answer from the core', async () => {
  const host = await call('GET', '/v1/host');
  assert.equal(host.status, 200);
  assert.equal(agentRoutes.getHost.response.parse(host.json()).name, 'unit');
  assert.equal(
    agentRoutes.listDatastores.response.parse((await call('GET', '/v1/datastores')).json())[0]?.name,
    'ds1',
  );
  assert.deepEqual((await call('GET', '/v1/vswitches')).json(), [{ name: 'sw0', bridge: 'sbunit0' }]);
  assert.deepEqual((await call('GET', '/v1/vms')).json(), []);
  const metrics = await call('GET', '/metrics');
  assert.equal(metrics.status, 200);
  assert.equal(metrics.type, agentRoutes.metrics.produces);
});

test('unknown fields, bad values and bodies where none belongs are 400 naming the field', async () => {
  const spec = { name: 'a', vcpus: 1, memoryMiB: 128 };
  await problem(
    'createVm',
    await call('POST', '/v1/vms', { ...spec, memoryMB: 128 }),
    400,
    'invalid-input',
    'memoryMB',
  );
  await problem(
    'createVm',
    await call('POST', '/v1/vms', { ...spec, disks: [{ sizeBytes: 1, datastor: 'ds1' }] }),
    400,
    'invalid-input',
    'disks.0.datastor',
  );
  await problem(
    'createVm',
    await call('POST', '/v1/vms', { ...spec, vcpus: 0 }),
    400,
    'invalid-input',
    'vcpus',
  );
  await problem('getVm', await call('GET', '/v1/vms/Bad_Name'), 400, 'invalid-input', 'name');
  await problem(
    'deleteVm',
    await call('DELETE', '/v1/vms/a?deleteDisks=yes'),
    400,
    'invalid-input',
    'deleteDisks',
  );
  await problem(
    'deleteVm',
    await call('DELETE', '/v1/vms/a?deletedisks=true'),
    400,
    'invalid-input',
    'deletedisks',
  );
  await problem(
    'startVm',
    await call('POST', '/v1/vms/a/start', { force: true }),
    400,
    'invalid-input',
    'force',
  );
  await problem('getMigration', await call('GET', '/v1/migrations/not-a-uuid'), 400, 'invalid-input', 'id');
  await problem(
    'planMigration',
    await call('POST', '/v1/migrations/plan', { vmName: 'a', policy: { targetDowntimeMS: 5 } }),
    400,
    'invalid-input',
    'policy.targetDowntimeMS',
  );
  const malformed = await app.inject({
    method: 'POST',
    url: '/v1/vms',
    headers: { ...auth, 'content-type': 'application/json' },
    payload: '{"name": ',
  });
  assert.equal(malformed.statusCode, 400);
  assert.equal(malformed.json<Problem>().code, 'malformed-json');
  const nowhere = await call('GET', '/v1/no-such-route');
  assert.deepEqual([nowhere.status, Problem.parse(nowhere.json()).code], [404, 'route-not-found']);
});

test("the manager's VM rules hold here too: unicast MACs, unique ids and MACs, no other VM's MAC", async () => {
  const spec = { name: 'rules', vcpus: 1, memoryMiB: 64 };
  const nic = (mac: string, id?: string) => ({ vswitch: 'sw0', mac, ...(id ? { id } : {}) });
  for (const mac of ['01:00:5e:00:00:01', 'ff:ff:ff:ff:ff:ff', '33:33:00:00:00:01', '00:00:00:00:00:00'])
    await problem(
      'createVm',
      await call('POST', '/v1/vms', { ...spec, nics: [nic(mac)] }),
      400,
      'invalid-input',
      'nics.0.mac',
    );
  await problem(
    'createVm',
    await call('POST', '/v1/vms', { ...spec, nics: [nic('52:54:00:28:00:01'), nic('52:54:00:28:00:01')] }),
    400,
    'invalid-input',
    'nics.1.mac',
  );
  await problem(
    'createVm',
    await call('POST', '/v1/vms', {
      ...spec,
      disks: [
        { id: 'root', sizeBytes: 1 },
        { id: 'root', sizeBytes: 1 },
      ],
    }),
    400,
    'invalid-input',
    'disks.1.id',
  );
  const first = await call('POST', '/v1/vms', { ...spec, nics: [nic('52:54:00:28:00:02')] });
  assert.equal(first.status, 201);
  await problem(
    'createVm',
    await call('POST', '/v1/vms', { ...spec, name: 'rules-2', nics: [nic('52:54:00:28:00:02')] }),
    409,
    'mac-in-use',
    'nics.0.mac',
  );
  assert.equal((await call('DELETE', '/v1/vms/rules?deleteDisks=true')).status, 204);
  assert.deepEqual((await call('GET', '/v1/vms')).json(), []);
});

test('the HTTP layer answers as the manager does: problem details, 404 for /v1/vms/, 414, 415, 431, and one bearer rule', async () => {
  // The scheme is case-insensitive (RFC 7235), as at the manager; a wrong token stays 401.
  for (const authorization of [`bearer ${TOKEN}`, `BEARER  ${TOKEN} `]) {
    const r = await app.inject({ method: 'GET', url: '/v1/host', headers: { authorization } });
    assert.equal(r.statusCode, 200, authorization);
  }
  for (const authorization of [`Bearer ${TOKEN}x`, `Basic ${TOKEN}`, `Bearer${TOKEN}`, `Bearer ${TOKEN} x`]) {
    const r = await app.inject({ method: 'GET', url: '/v1/host', headers: { authorization } });
    assert.equal(r.statusCode, 401, authorization);
  }
  const empty = await call('GET', '/v1/vms/');
  assert.deepEqual([empty.status, Problem.parse(empty.json()).code], [404, 'route-not-found']);
  const long = await call('GET', `/v1/vms/${'v'.repeat(2000)}`);
  assert.deepEqual([long.status, Problem.parse(long.json()).code], [414, 'uri-too-long']);
  // A JSON body sent as text/plain is not read as JSON: 415, nothing made.
  for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
    const r = await app.inject({
      method: 'POST',
      url: '/v1/vms',
      headers: { ...auth, 'content-type': type },
      payload: JSON.stringify({ name: 'plain', vcpus: 1, memoryMiB: 64 }),
    });
    assert.equal(r.statusCode, 415, type);
    const p = Problem.parse(r.json());
    assert.deepEqual(
      [p.code, p.title, p.field],
      ['unsupported-media-type', 'Unsupported Media Type', 'content-type'],
    );
  }
  assert.deepEqual((await call('GET', '/v1/vms')).json(), []);
  // Node's parser refuses a head over 16 KiB before Fastify sees it: still problem details.
  const { socketPath } = await agent.listenBreakGlass();
  const head = await new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
    const req = httpRequest(
      { socketPath, path: `/v1/vms?x=${'a'.repeat(17 * 1024)}`, headers: auth },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
  assert.equal(head.status, 431);
  assert.match(head.type, /^application\/problem\+json/);
  const p = Problem.parse(JSON.parse(head.body));
  assert.deepEqual(
    [p.status, p.code, p.title],
    [431, 'headers-too-large', 'Request Header Fields Too Large'],
  );
});

test("a move's policy has the manager's bounds at the agent too: link rate, downtime target within its limit", async () => {
  for (const [policy, field] of [
    [{ linkBitsPerSecond: 1e-300 }, 'policy.linkBitsPerSecond'],
    [{ linkBitsPerSecond: 1e20 }, 'policy.linkBitsPerSecond'],
    [{ targetDowntimeMs: 500 }, 'policy.targetDowntimeMs'],
    [{ targetDowntimeMs: 100, maxDowntimeMs: 50 }, 'policy.targetDowntimeMs'],
  ] as const)
    await problem(
      'planMigration',
      await call('POST', '/v1/migrations/plan', { vmName: 'ghost', policy }),
      400,
      'invalid-input',
      field,
    );
  // Within bounds the request reaches the VM (there is none here).
  await problem(
    'planMigration',
    await call('POST', '/v1/migrations/plan', { vmName: 'ghost', policy: { linkBitsPerSecond: 1e9 } }),
    404,
    'vm-not-found',
  );
});

test('no secret reaches the log: query strings redacted, the token never written whatever carries it', async () => {
  const lines: string[] = [];
  const logged = await startTestAgent({
    token: TOKEN,
    prefix: 'sb-agent-log-',
    log: jsonLineLogger('debug', (line) => void lines.push(line)),
  });
  try {
    const secret = 'sb_stolen-secret-0123456789';
    for (const [url, authorization] of [
      [`/v1/host?token=${secret}`, `Bearer ${TOKEN}`],
      [`/v1/vms?access_token=${secret}&x=1`, `Bearer ${TOKEN}`],
      [`/v1/host?api%5Fkey=${secret}`, 'Bearer wrong'],
      [`/v1/vms/${TOKEN}`, `Bearer ${TOKEN}`],
    ] as const)
      await logged.app.inject({ method: 'GET', url, headers: { authorization } });
    const text = lines.join('');
    assert.ok(lines.length >= 4, text);
    assert.doesNotMatch(text, new RegExp(secret));
    assert.ok(!text.includes(TOKEN), 'the agent token is never logged');
    assert.match(text, /"url":"\/v1\/host\?token=<redacted>"/);
    assert.match(text, /"url":"\/v1\/vms\?access_token=<redacted>&x=1"/);
  } finally {
    await logged.close();
  }
});

test('domain errors answer with the codes the table lists for the route', async () => {
  await problem('getVm', await call('GET', '/v1/vms/ghost'), 404, 'vm-not-found');
  await problem('startVm', await call('POST', '/v1/vms/ghost/start'), 404, 'vm-not-found');
  await problem('deleteVm', await call('DELETE', '/v1/vms/ghost?deleteDisks=true'), 404, 'vm-not-found');
  await problem('guestInfo', await call('GET', '/v1/vms/ghost/guest'), 404, 'vm-not-found');
  await problem(
    'planMigration',
    await call('POST', '/v1/migrations/plan', { vmName: 'ghost' }),
    404,
    'vm-not-found',
  );
  const id = '00000000-0000-4000-8000-000000000042';
  await problem('getMigration', await call('GET', `/v1/migrations/${id}`), 404, 'migration-not-found');
  await problem(
    'cancelMigration',
    await call('POST', `/v1/migrations/${id}/cancel`),
    404,
    'migration-not-found',
  );
  await problem(
    'abortIncoming',
    await call('POST', `/v1/migrations/incoming/${id}/abort`),
    404,
    'migration-not-found',
  );
  await problem(
    'completeMigration',
    await call('POST', `/v1/migrations/${id}/complete`, {}),
    404,
    'migration-not-found',
  );
  await problem(
    'createVm',
    await call('POST', '/v1/vms', { name: 'a', vcpus: 1, memoryMiB: 128, nics: [{ vswitch: 'nope' }] }),
    422,
    'vswitch-not-found',
    'nics.0.vswitch',
  );
  const closed = await call('POST', `/v1/migrations/cold/${id}/close`);
  assert.deepEqual([closed.status, closed.json()], [200, { migrationId: id, closed: false }]);
  await problem(
    'coldCopyStatus',
    await call('GET', `/v1/migrations/cold/${id}/copy`),
    404,
    'migration-not-found',
  );
  assert.deepEqual((await call('GET', '/v1/migrations')).json(), []);
});

test('a VM without disks or NICs: defined (201), shown, deleted (204)', async () => {
  const created = await call('POST', '/v1/vms', { name: 'bare', vcpus: 1, memoryMiB: 128 });
  assert.equal(created.status, 201);
  const vm = Vm.parse(created.json());
  assert.equal(vm.state, 'stopped');
  assert.deepEqual(Vm.parse((await call('GET', '/v1/vms/bare')).json()), vm);
  await problem(
    'createVm',
    await call('POST', '/v1/vms', { name: 'bare', vcpus: 1, memoryMiB: 128 }),
    409,
    'vm-exists',
    'name',
  );
  await problem(
    'coldCopy',
    await call('POST', '/v1/vms/bare/cold-copy', {
      migrationId: '7b0d5f5e-8a40-4c4e-9a51-3f7c2b1d9e01',
      disks: [{ diskId: 'root', uri: 'nbd://127.0.0.1:1/root' }],
      secret: SECRET,
    }),
    400,
    'invalid-input',
    'disks.0.diskId',
  );
  const deleted = await call('DELETE', '/v1/vms/bare?deleteDisks=true');
  assert.equal(deleted.status, 204);
  assert.deepEqual((await call('GET', '/v1/vms')).json(), []);
});

const SECRET = 'ab'.repeat(32);

test("a cold copy's request: nbd:// URIs of one host, unique disk ids, the move's secret, nothing else", async () => {
  const base = {
    migrationId: '7b0d5f5e-8a40-4c4e-9a51-3f7c2b1d9e02',
    disks: [{ diskId: 'root', uri: 'nbd://10.250.0.11:50000/root' }],
    secret: SECRET,
  };
  const refused = async (body: unknown, field: string, rule: RegExp) => {
    const p = await problem(
      'coldCopy',
      await call('POST', '/v1/vms/dst/cold-copy', body),
      400,
      'invalid-input',
      field,
    );
    assert.match(p.detail ?? '', rule);
  };
  const uriRule = /must be nbd:\/\/<IPv4 address>:<port>\/<export name>/;
  for (const uri of [
    'nbd://h:1/root',
    'nbd://10.250.0.11/root',
    'nbd://10.250.0.11:0/root',
    'nbd://10.250.0.11:65536/root',
    'nbd://10.250.0.11:50000/Root!',
    'nbd+unix:///root?socket=/run/x.sock',
    'http://10.250.0.11:50000/root',
    'nbd://10.250.0.11:50000/root?tls-creds=x',
    'not a url',
  ])
    await refused({ ...base, disks: [{ diskId: 'root', uri }] }, 'disks.0.uri', uriRule);
  await refused(
    {
      ...base,
      disks: [
        { diskId: 'root', uri: 'nbd://10.250.0.11:50000/root' },
        { diskId: 'root', uri: 'nbd://10.250.0.11:50001/root' },
      ],
    },
    'disks.1.diskId',
    /root is already item 0's diskId: must be unique/,
  );
  await refused(
    {
      ...base,
      disks: [
        { diskId: 'root', uri: 'nbd://10.250.0.11:50000/root' },
        { diskId: 'data', uri: 'nbd://10.250.0.99:50001/data' },
      ],
    },
    'disks.1.uri',
    /every export of a move is on its source/,
  );
  const { secret: _secret, ...noSecret } = base;
  await refused(noSecret, 'secret', /./);
  await refused({ ...base, secret: 'AB'.repeat(32) }, 'secret', /64 lowercase hex digits/);
  await refused({ ...base, disks: [] }, 'disks', /./);
  await refused({ ...base, peer: '10.250.0.11' }, 'peer', /is not a field of this request/);
  await refused(
    { ...base, disks: [{ ...base.disks[0], format: 'raw' }] },
    'disks.0.format',
    /is not a field of this request/,
  );
});

const qemuImg = (() => {
  try {
    execFileSync('qemu-img', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

test(
  'stats and metrics of a stopped VM: image format and compat, sizes, datastore sums, nothing invented',
  {
    skip: !qemuImg && 'qemu-img is not installed',
  },
  async () => {
    const MiB = 2 ** 20;
    const created = await call('POST', '/v1/vms', {
      name: 'idle',
      vcpus: 1,
      memoryMiB: 128,
      disks: [{ sizeBytes: 64 * MiB }, { id: 'logs', sizeBytes: 32 * MiB }],
    });
    assert.equal(created.status, 201);
    const vm = Vm.parse(created.json());
    try {
      // A guest's disk is its data: owner-only, whatever the umask (issue 28, row 8).
      for (const d of vm.disks) assert.equal((await stat(d.path)).mode & 0o777, 0o600, d.path);
      const stats = HostStats.parse((await call('GET', '/v1/stats')).json());
      assert.equal(stats.host, 'unit');
      assert.deepEqual(
        stats.disks.map((d) => [
          d.disk,
          d.format,
          d.formatVersion,
          d.virtualSizeBytes,
          d.counterEpoch,
          d.counters,
          d.histograms,
        ]),
        [
          ['disk0', 'qcow2', '1.1', 64 * MiB, null, null, null],
          ['logs', 'qcow2', '1.1', 32 * MiB, null, null, null],
        ],
      );
      const [ds] = stats.datastores;
      assert.ok(ds);
      assert.equal(ds.provisionedBytes, 96 * MiB);
      assert.ok(stats.disks.every((d) => d.allocatedBytes > 0));
      assert.equal(
        ds.allocatedBytes,
        stats.disks.reduce((sum, d) => sum + d.allocatedBytes, 0),
      );
      assert.match(ds.fsType, /^[a-z0-9.]+$/);
      assert.deepEqual(stats.guests, [{ vm: 'idle', vmId: vm.id, agentVersion: null, filesystems: null }]);

      // An old image put in place of a disk is seen at the next poll (the cache follows the file).
      const logs = vm.disks.find((d) => d.id === 'logs');
      assert.ok(logs);
      await rm(logs.path);
      execFileSync('qemu-img', [...'create -q -f qcow2 -o compat=0.10'.split(' '), logs.path, `${32 * MiB}`]);
      const again = HostStats.parse((await call('GET', '/v1/stats')).json());
      assert.equal(again.disks.find((d) => d.disk === 'logs')?.formatVersion, '0.10');

      const metrics = await app.inject({ method: 'GET', url: '/metrics', headers: auth });
      const lines = new Set(metrics.body.split('\n'));
      for (const expected of [
        'silobreak_disk_info{host="unit",vm="idle",disk="logs",datastore="ds1",format="qcow2",format_version="0.10"} 1',
        `silobreak_datastore_provisioned_bytes{host="unit",datastore="ds1"} ${96 * MiB}`,
        `silobreak_disk_virtual_bytes{host="unit",vm="idle",disk="disk0"} ${64 * MiB}`,
      ])
        assert.ok(lines.has(expected), `missing: ${expected}`);
      assert.doesNotMatch(
        metrics.body,
        /^silobreak_disk_read_operations_total\{/m,
        'a stopped disk has no counters',
      );
    } finally {
      assert.equal((await call('DELETE', '/v1/vms/idle?deleteDisks=true')).status, 204);
    }
  },
);

test(
  "a cold copy reads only from exports that answer with the move's secret: 422 naming the export, the peer's words kept out, nothing written",
  { skip: !qemuImg && 'qemu-img is not installed' },
  async () => {
    const MiB = 2 ** 20;
    const created = await call('POST', '/v1/vms', {
      name: 'dst',
      vcpus: 1,
      memoryMiB: 128,
      disks: [
        { id: 'root', sizeBytes: 8 * MiB },
        { id: 'data', sizeBytes: 8 * MiB },
      ],
    });
    assert.equal(created.status, 201);
    const vm = Vm.parse(created.json());
    // A peer that is no NBD export: it greets every connection with its banner.
    const banner = 'SSH-2.0-OpenSSH_9.2p1 banner-7f3a';
    const talker = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.end(`${banner}\r\n`);
    });
    await new Promise<void>((resolve) => talker.listen(0, '127.0.0.1', resolve));
    const port = (talker.address() as net.AddressInfo).port;
    const images = async () => Promise.all(vm.disks.map((d) => readFile(d.path)));
    const before = await images();
    // A VM that holds data is no copy's target, whatever its exports.
    await call('POST', '/v1/vms', {
      name: 'used',
      vcpus: 1,
      memoryMiB: 128,
      disks: [{ id: 'root', sizeBytes: 8 * MiB }],
    });
    const used = Vm.parse((await call('GET', '/v1/vms/used')).json()).disks[0]?.path ?? '';
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 0 64k', used], { stdio: 'ignore' });
    const id = '7b0d5f5e-8a40-4c4e-9a51-3f7c2b1d9e03';
    const body = (rootUri: string) => ({
      migrationId: id,
      disks: [
        { diskId: 'root', uri: rootUri },
        { diskId: 'data', uri: `nbd://127.0.0.1:${port}/data` },
      ],
      secret: SECRET,
    });
    try {
      await problem(
        'coldCopy',
        await call('POST', '/v1/vms/dst/cold-copy', { ...body(''), disks: body('').disks.slice(1) }),
        400,
        'invalid-input',
        'disks',
      );
      const p = await problem(
        'coldCopy',
        await call('POST', '/v1/vms/used/cold-copy', {
          ...body(''),
          disks: body('nbd://127.0.0.1:1/root').disks.slice(0, 1),
        }),
        409,
        'vm-state-conflict',
      );
      assert.match(
        p.detail ?? '',
        /disk "root"; a cold copy fills only the empty disks of a VM defined for the move/,
      );
      for (const [uri, field] of [
        // Nothing listens there.
        ['nbd://127.0.0.1:1/root', 'disks.0.uri'],
        // Something answers, but not as an export of this move.
        [`nbd://127.0.0.1:${port}/root`, 'disks.0.uri'],
      ] as const) {
        const p = await problem(
          'coldCopy',
          await call('POST', '/v1/vms/dst/cold-copy', body(uri)),
          422,
          'cold-source-refused',
          field,
        );
        assert.match(p.detail ?? '', /no export of this move answers at 127\.0\.0\.1:\d+ with its secret/);
        assert.doesNotMatch(p.detail ?? '', /qemu|--object|image-opts|convert|banner|SSH|keys\.psk/i);
      }
      await problem(
        'coldCopyStatus',
        await call('GET', `/v1/migrations/cold/${id}/copy`),
        404,
        'migration-not-found',
      );
      assert.deepEqual(await images(), before, 'nothing was written');
      assert.equal(Vm.parse((await call('GET', '/v1/vms/dst')).json()).id, vm.id, 'the VM stays');
      const left = await readdir(path.join(agent.core.config.stateDir, 'cold-moves')).catch(() => []);
      assert.deepEqual(left, [], 'no key or journal left behind');
    } finally {
      talker.close();
      assert.equal((await call('DELETE', '/v1/vms/dst?deleteDisks=true')).status, 204);
      assert.equal((await call('DELETE', '/v1/vms/used?deleteDisks=true')).status, 204);
    }
  },
);

// Last: every answer of the tests above was one the route table declares (error codes, and
// successful replies against their response schemas).
test('every answer stayed inside the route table', () => {
  assert.deepEqual(agent.breaches, []);
});

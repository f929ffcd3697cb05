// What the manager's REST API refuses, and how: a real manager (SQLite in a temp dir, loopback
// HTTP) with no agent; hosts and VMs enter the inventory the way reconciliation adds them. Every
// refusal is checked to change nothing.
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ManagerClient, OpenApiDocument, Problem } from '../api/index.js';
import type { ContractBreach } from '../api/index.js';
import { startManager, type RunningManager } from './manager.js';
import { dbSnapshot, rejects, seedHost, testMac, testVm } from './test-inventory.js';
import { testDatabase } from './test-postgres.js';

/** Answers outside the route table (error codes, and replies against their schemas). */
const breaches: ContractBreach[] = [];
let dir: string;
let manager: RunningManager;
let admin: ManagerClient;
let viewerSecret: string;

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  problem: Problem | undefined;
}

/** One request as sent (no client-side validation), its reply and the problem in it, if any. */
async function call(
  method: string,
  urlPath: string,
  options: { token?: string | null; body?: string | Buffer; type?: string } = {},
): Promise<Answer> {
  const token = options.token === undefined ? manager.adminToken : options.token;
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers['content-type'] = options.type ?? 'application/json';
  const reply = await fetch(`${manager.url}${urlPath}`, { method, headers, body: options.body ?? null });
  const text = await reply.text();
  const parsed = Problem.safeParse(text ? (JSON.parse(text) as unknown) : undefined);
  return {
    status: reply.status,
    headers: reply.headers,
    text,
    problem: parsed.success ? parsed.data : undefined,
  };
}

/** The reply must be problem details with this status (and field), in application/problem+json. */
function isProblem(answer: Answer, status: number, field?: string): Problem {
  assert.equal(answer.status, status, answer.text.slice(0, 300));
  assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
  assert.ok(answer.problem, `not problem details: ${answer.text.slice(0, 300)}`);
  assert.equal(answer.problem.status, status);
  if (field !== undefined) assert.equal(answer.problem.field, field, answer.problem.detail);
  return answer.problem;
}

const json = (value: unknown) => JSON.stringify(value);

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-manager-input-'));
  manager = await startManager({
    ...(await testDatabase(dir)),
    dataDir: dir,
    reconcileIntervalSeconds: 3600,
    log: () => {},
    onContractBreach: (breach) => breaches.push(breach),
  });
  admin = new ManagerClient(manager.url, manager.adminToken ?? '');
  viewerSecret = (await admin.createToken({ name: 'viewer', role: 'read-only' })).secret;
  await seedHost(manager.db, 'h1', 9, [testVm('web1', 'stopped', 1)]);
  await seedHost(manager.db, 'h2', 10, []);
});

after(async () => {
  await manager.close();
  await rm(dir, { recursive: true, force: true });
});

test('create VM: a MAC another host uses is 409, a multicast MAC, repeated disk ids or MACs 400, each naming the field', async () => {
  const before = await dbSnapshot(manager.db);
  const spec = { name: 'new1', vcpus: 1, memoryMiB: 128 };
  const taken = await rejects(
    admin.createVm({ host: 'h2', spec: { ...spec, nics: [{ vswitch: 'vmsw0', mac: testMac(1) }] } }),
    409,
    'spec.nics.0.mac',
  );
  assert.match(taken.message, /already used by VM web1 on host h1/);
  for (const mac of ['01:00:5e:00:00:01', 'ff:ff:ff:ff:ff:ff', '33:33:00:00:00:01', '00:00:00:00:00:00']) {
    await rejects(
      admin.createVm({ host: 'h2', spec: { ...spec, nics: [{ vswitch: 'vmsw0', mac }] } }),
      400,
      'spec.nics.0.mac',
    );
  }
  const disks = await rejects(
    admin.createVm({
      host: 'h2',
      spec: {
        ...spec,
        disks: [
          { id: 'root', sizeBytes: 1 },
          { id: 'root', sizeBytes: 2 },
        ],
      },
    }),
    400,
    'spec.disks.1.id',
  );
  assert.match(disks.message, /must be unique/);
  const twin = { vswitch: 'vmsw0', mac: '52:54:00:aa:00:01' };
  await rejects(
    admin.createVm({ host: 'h2', spec: { ...spec, nics: [twin, twin] } }),
    400,
    'spec.nics.1.mac',
  );
  await rejects(
    admin.createVm({
      host: 'h2',
      spec: {
        ...spec,
        nics: [
          { id: 'n', vswitch: 'vmsw0' },
          { id: 'n', vswitch: 'vmsw0' },
        ],
      },
    }),
    400,
    'spec.nics.1.id',
  );
  assert.equal(await dbSnapshot(manager.db), before);
});

test('join host: a bad port, plain http and a malformed join token are 400; the token is never echoed', async () => {
  const before = await dbSnapshot(manager.db);
  const fingerprint = 'f'.repeat(43);
  for (const address of ['127.0.0.1:99999', '127.0.0.1:70000', 'http://127.0.0.1:8470', '127.0.0.1:65536/']) {
    const answer = await call('POST', '/api/v1/hosts', {
      body: json({ address, joinToken: `${'s'.repeat(32)}.${fingerprint}` }),
    });
    assert.match(isProblem(answer, 400, 'address').detail, /address: /);
  }
  const secrets = [
    `agent-secret-1234\r\nX-Injected: 1.${fingerprint}`,
    `agent-secret-1234more.${fingerprint}\n`,
    `agent-secret-1234\u0000nul.${fingerprint}`,
    'agent-secret-12345678901234-no-fingerprint',
    'S'.repeat(100 * 1024),
  ];
  for (const joinToken of secrets) {
    const answer = await call('POST', '/api/v1/hosts', {
      body: json({ address: '127.0.0.1:19', joinToken }),
    });
    isProblem(answer, 400, 'joinToken');
    assert.ok(!answer.text.includes(joinToken.slice(0, 17)), 'the reply quotes the token');
  }
  // A well-formed token to an agent that does not answer: 502, and still no token in the reply.
  const secret = 'agent-secret-0123456789abc';
  const unreachable = await call('POST', '/api/v1/hosts', {
    body: json({ address: '127.0.0.1:19', joinToken: `${secret}.${fingerprint}` }),
  });
  isProblem(unreachable, 502);
  assert.ok(!unreachable.text.includes(secret));
  assert.equal(await dbSnapshot(manager.db), before);
});

test('without a token every request is 401 first: nothing of it is parsed', async () => {
  const before = await dbSnapshot(manager.db);
  const huge = Buffer.alloc(2 * 1024 * 1024, 'a');
  const anonymous: [string, string, string | Buffer | undefined][] = [
    ['POST', '/api/v1/pools', '{not json'],
    ['POST', '/api/v1/pools', ''],
    ['POST', '/api/v1/pools', '{"__proto__":{"admin":true},"name":"p"}'],
    ['POST', '/api/v1/pools', huge],
    ['GET', `/api/v1/vms/${'v'.repeat(200)}`, undefined],
    ['GET', `/api/v1/vms/${'v'.repeat(5000)}`, undefined],
    ['GET', '/api/v1/vms/%', undefined],
    ['GET', '/api/v1/vms?limit=0x10&bogus=1', undefined],
  ];
  for (const [method, url, body] of anonymous) {
    for (const token of [null, 'sb_wrong']) {
      const answer = await call(method, url, { token, ...(body !== undefined ? { body } : {}) });
      isProblem(answer, 401);
      assert.equal(answer.problem?.code, 'unauthorized', `${method} ${url.slice(0, 40)}`);
    }
  }
  // A read-only token learns no more about the input of a write than no token does.
  const viewer = await call('POST', '/api/v1/pools', { token: viewerSecret, body: '{not json' });
  isProblem(viewer, 403);
  // With the admin token, the same requests get what is wrong with them, as problem details.
  isProblem(await call('POST', '/api/v1/pools', { body: '{not json' }), 400, 'body');
  isProblem(await call('POST', '/api/v1/pools', { body: '' }), 400);
  isProblem(await call('POST', '/api/v1/pools', { body: '{"__proto__":{"a":1},"name":"p"}' }), 400, 'body');
  isProblem(await call('POST', '/api/v1/pools', { body: huge }), 413);
  isProblem(await call('GET', `/api/v1/vms/${'v'.repeat(200)}`), 400, 'vm');
  assert.equal(await dbSnapshot(manager.db), before);
});

test('malformed URLs, over-long parameters and oversized request heads get problem details too', async () => {
  isProblem(await call('GET', '/api/v1/vms/%'), 400);
  isProblem(await call('GET', '/api/v1/vms/%zz/start'), 400);
  isProblem(await call('GET', `/api/v1/vms/${'v'.repeat(5000)}`), 414);
  isProblem(await call('GET', '/api/v1/no/such/route'), 404);
  // A head over Node's 16 KiB limit cannot be read (nor its token): 431 as problem details.
  const head = await new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
    const req = httpRequest(`${manager.url}/api/v1/vms?name=${'a'.repeat(17 * 1024)}`, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(head.status, 431);
  assert.match(head.type, /^application\/problem\+json/);
  const headProblem = Problem.parse(JSON.parse(head.body));
  assert.deepEqual(
    [headProblem.status, headProblem.code, headProblem.title],
    [431, 'headers-too-large', 'Request header fields too large'],
  );
});

test("the HTTP layer's refusals: own codes and titles, as documented; text/plain is 415, not read as JSON", async () => {
  const before = await dbSnapshot(manager.db);
  const plain = isProblem(
    await call('POST', '/api/v1/pools', { body: json({ name: 'from-text' }), type: 'text/plain' }),
    415,
    'content-type',
  );
  assert.deepEqual([plain.code, plain.title], ['unsupported-media-type', 'Unsupported media type']);
  const big = isProblem(
    await call('POST', '/api/v1/pools', { body: json({ name: 'x'.repeat(2 * 1024 * 1024) }) }),
    413,
  );
  assert.deepEqual([big.code, big.title], ['body-too-large', 'Content too large']);
  const long = isProblem(await call('GET', `/api/v1/vms/${'v'.repeat(5000)}`), 414);
  assert.deepEqual([long.code, long.title], ['uri-too-long', 'URI too long']);
  // The bearer rule agents follow too: the scheme in any case.
  const lower = await fetch(`${manager.url}/api/v1/info`, {
    headers: { authorization: `bearer ${manager.adminToken}` },
  });
  assert.equal(lower.status, 200);
  // Each status as the document says: its codes and titles.
  const doc = OpenApiDocument.parse(await admin.openApi());
  const documented = (status: string) => {
    const schema = doc.paths['/api/v1/pools']?.post?.responses[status]?.content?.['application/problem+json']
      ?.schema as { properties: { title: { enum: string[] }; code: { enum: string[] } } };
    return [schema.properties.code.enum, schema.properties.title.enum];
  };
  assert.deepEqual(documented('415'), [[plain.code], [plain.title]]);
  assert.deepEqual(documented('413'), [[big.code], [big.title]]);
  assert.deepEqual(documented('414'), [[long.code], [long.title]]);
  assert.deepEqual(documented('431'), [['headers-too-large'], ['Request header fields too large']]);
  assert.equal(await dbSnapshot(manager.db), before);
});

test('a pool description with control characters or bidi overrides is 400 naming it; plain Unicode is fine', async () => {
  const before = await dbSnapshot(manager.db);
  for (const description of [
    'rack \x1b[2J one',
    'bell\x07',
    'nul\x00',
    'txt\u202eexe.sh',
    'two\nlines',
    'del\x7f',
  ]) {
    const error = await rejects(admin.createPool({ name: 'ctl', description }), 400, 'description');
    assert.match(error.message, /description: must not contain control characters/);
  }
  assert.equal(await dbSnapshot(manager.db), before);
  const pool = await admin.createPool({ name: 'uni', description: 'Zürich — rack №1 ✓' });
  assert.equal(pool.description, 'Zürich — rack №1 ✓');
  await admin.deletePool('uni');
});

test('a cursor of another list or with unusable values is 400 naming cursor', async () => {
  const b64 = (text: string) => Buffer.from(text).toString('base64url');
  for (const url of [
    '/api/v1/changes?cursor=WyJ4Il0',
    `/api/v1/changes?cursor=${b64('[1e999]')}`,
    `/api/v1/changes?cursor=${b64('[0.5]')}`,
    '/api/v1/jobs?cursor=WzEsMl0',
    `/api/v1/vms?cursor=${b64('[1,2]')}`,
    `/api/v1/pools?cursor=${b64('[null]')}`,
  ]) {
    isProblem(await call('GET', url), 400, 'cursor');
  }
});

test('unknown fields in bodies and queries are 400 naming them, and a typo starts nothing', async () => {
  const before = await dbSnapshot(manager.db);
  const cases: [string, string, unknown, string][] = [
    ['POST', '/api/v1/vms/web1/move', { to: 'h2', dryrun: true }, 'dryrun'],
    ['POST', '/api/v1/vms/web1/move', { to: 'h2', dryRun: true, force: true }, 'force'],
    [
      'POST',
      '/api/v1/vms/web1/move',
      { to: 'h2', dryRun: true, policy: { maxDowntime: 5 } },
      'policy.maxDowntime',
    ],
    [
      'POST',
      '/api/v1/vms/web1/move-storage',
      { datastore: 'local', dryRun: true, skipChecks: true },
      'skipChecks',
    ],
    ['POST', '/api/v1/vms/web1/start', { force: true }, 'force'],
    ['POST', '/api/v1/vms/web1/stop', { now: true }, 'now'],
    ['POST', '/api/v1/vms/web1/shutdown', { timeout: 5 }, 'timeout'],
    ['POST', '/api/v1/hosts/h1/reconcile', { deep: true }, 'deep'],
    ['POST', '/api/v1/pools', { name: 'p', force: true }, 'force'],
    ['POST', '/api/v1/pools/x/hosts', { host: 'h1', move: true }, 'move'],
    ['POST', '/api/v1/tokens', { name: 't', role: 'admin', expires: 1 }, 'expires'],
    [
      'POST',
      '/api/v1/hosts',
      { address: '127.0.0.1:9', joinToken: `${'x'.repeat(24)}.${'f'.repeat(43)}`, name: 'h' },
      'name',
    ],
    [
      'POST',
      '/api/v1/vms',
      { host: 'h2', spec: { name: 'n', vcpus: 1, memoryMiB: 128, cpus: 2 } },
      'spec.cpus',
    ],
    [
      'POST',
      '/api/v1/vms',
      { host: 'h2', spec: { name: 'n', vcpus: 1, memoryMiB: 128, disks: [{ sizeBytes: 1, thin: true }] } },
      'spec.disks.0.thin',
    ],
  ];
  for (const [method, url, body, field] of cases) {
    const problem = isProblem(await call(method, url, { body: json(body) }), 400, field);
    assert.match(problem.detail, new RegExp(`^${field.replace(/\./g, '\\.')}: is not a field`));
  }
  isProblem(await call('GET', '/api/v1/vms?stat=running'), 400, 'stat');
  isProblem(await call('DELETE', '/api/v1/vms/web1?deletedisks=false'), 400, 'deletedisks');
  assert.equal(await dbSnapshot(manager.db), before);
});

test('move requests: downtime target over its limit, absurd link rates, huge or repeated disk lists are 400', async () => {
  const before = await dbSnapshot(manager.db);
  const move = (body: unknown) => call('POST', '/api/v1/vms/web1/move', { body: json(body) });
  const p1 = isProblem(
    await move({ to: 'h2', dryRun: true, policy: { targetDowntimeMs: 2000, maxDowntimeMs: 1 } }),
    400,
    'policy.targetDowntimeMs',
  );
  assert.match(p1.detail, /must be at most maxDowntimeMs \(1\)/);
  // The default target (30 ms) counts too.
  isProblem(
    await move({ to: 'h2', dryRun: true, policy: { maxDowntimeMs: 10 } }),
    400,
    'policy.targetDowntimeMs',
  );
  for (const linkBitsPerSecond of [1e-300, 0.5, 1e20]) {
    isProblem(
      await move({ to: 'h2', dryRun: true, policy: { linkBitsPerSecond } }),
      400,
      'policy.linkBitsPerSecond',
    );
  }
  // The stream's encoding is the source's to choose; a policy may only turn compression off.
  isProblem(
    await move({ to: 'h2', dryRun: true, policy: { compression: 'zstd' } }),
    400,
    'policy.compression',
  );
  const storage = (body: unknown) => call('POST', '/api/v1/vms/web1/move-storage', { body: json(body) });
  isProblem(
    await storage({ datastore: 'local', dryRun: true, disks: Array(50_000).fill('root') }),
    400,
    'disks',
  );
  const repeated = isProblem(
    await storage({ datastore: 'local', dryRun: true, disks: ['root', 'root'] }),
    400,
    'disks.1',
  );
  assert.match(repeated.detail, /must be unique/);
  assert.equal(await dbSnapshot(manager.db), before);
});

test('401 says how to authenticate; the API is never cached and never sniffed', async () => {
  const anonymous = await call('GET', '/api/v1/info', { token: null });
  assert.equal(anonymous.headers.get('www-authenticate'), 'Bearer realm="silobreak"');
  const wrong = await call('GET', '/api/v1/info', { token: 'sb_wrong' });
  assert.equal(wrong.headers.get('www-authenticate'), 'Bearer realm="silobreak", error="invalid_token"');
  const created = await call('POST', '/api/v1/tokens', {
    body: json({ name: 'cache-check', role: 'read-only' }),
  });
  assert.equal(created.status, 201);
  assert.equal(created.headers.get('cache-control'), 'no-store');
  for (const answer of [anonymous, created, await call('GET', '/api/v1/vms')]) {
    assert.equal(answer.headers.get('cache-control'), 'no-store');
    assert.equal(answer.headers.get('x-content-type-options'), 'nosniff');
  }
  await admin.deleteToken('cache-check');
});

test('token creation and deletion are change records by the caller, without the secret', async () => {
  const created = await admin.createToken({ name: 'ci-bot', role: 'read-only' });
  await admin.deleteToken('ci-bot');
  const records = (await admin.listChanges({ kind: 'token', objectId: 'ci-bot' })).items;
  assert.deepEqual(
    records.map((r) => [r.actor, r.action, r.object.name, r.changes]),
    [
      ['admin', 'deleted', 'ci-bot', [{ field: 'role', before: 'read-only', after: null }]],
      ['admin', 'created', 'ci-bot', [{ field: 'role', before: null, after: 'read-only' }]],
    ],
  );
  const everything = JSON.stringify((await admin.listChanges({ limit: 1000 })).items);
  assert.ok(!everything.includes(created.secret));
  assert.ok(!everything.includes(created.secret.slice(3, 20)));
  // The first start's admin token is recorded too, by system.
  const [first] = (await admin.listChanges({ kind: 'token', objectId: 'admin' })).items;
  assert.deepEqual([first?.actor, first?.action], ['system', 'created']);
});

test('an empty path parameter is no route (404); limit takes decimal digits only', async () => {
  isProblem(await call('GET', '/api/v1/vms/'), 404);
  isProblem(await call('POST', '/api/v1/vms//start', { body: '{}' }), 404);
  for (const limit of ['0x10', '%205', '1e1', '5.0', '-1', '0', '1001', '']) {
    isProblem(await call('GET', `/api/v1/vms?limit=${limit}`), 400, 'limit');
  }
  const ok = await call('GET', '/api/v1/vms?limit=5');
  assert.equal(ok.status, 200);
});

test('the OpenAPI document: operationIds, dry-run replies, optional empty bodies, 400 and 401, license, servers', async () => {
  const doc = await admin.openApi();
  type Operation = {
    operationId?: string;
    requestBody?: { required: boolean };
    responses: Record<string, unknown>;
  };
  const paths = doc.paths as Record<string, Record<string, Operation>>;
  const operations = Object.values(paths).flatMap((p) => Object.values(p));
  const ids = operations.map((o) => o.operationId);
  assert.ok(
    ids.every((id) => typeof id === 'string' && /^[a-z][A-Za-z]+$/.test(id)),
    String(ids),
  );
  assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
  for (const op of operations) {
    // Every route may answer invalid input and a missing token (the common codes of each route).
    assert.ok(op.responses['400'] && op.responses['401'], op.operationId);
  }
  for (const p of ['/api/v1/vms/{vm}/move', '/api/v1/vms/{vm}/move-storage']) {
    const move = paths[p]?.post;
    assert.ok(move?.responses['202'] && move.responses['200'], p);
    assert.match(JSON.stringify(move.responses['200']), /"checks"/);
  }
  for (const [p, method] of [
    ['/api/v1/vms/{vm}/start', 'post'],
    ['/api/v1/vms/{vm}/stop', 'post'],
    ['/api/v1/vms/{vm}/shutdown', 'post'],
    ['/api/v1/hosts/{host}/reconcile', 'post'],
    ['/api/v1/jobs/{id}/cancel', 'post'],
  ] as const) {
    assert.equal(paths[p]?.[method]?.requestBody?.required, false, p);
  }
  assert.equal(paths['/api/v1/pools']?.post?.requestBody?.required, true);
  assert.deepEqual((doc.info as { license?: unknown }).license, {
    name: 'Apache-2.0',
    identifier: 'Apache-2.0',
  });
  assert.ok(Array.isArray(doc.servers) && doc.servers.length > 0);
  assert.doesNotMatch(JSON.stringify(doc), /"format":"cidrv4"/);
});

// Last: every answer of the tests above was one the route table declares.
test('a PUT with null or no body is 400 naming the body, and resets nothing; PATCH merges, null drops one override', async () => {
  await admin.setPlacementSettings({ holdSeconds: 600, hotIops: 300 });
  await admin.setStorageThresholds('h1', 'local', { freeWarningPercent: 30 });
  await admin.setVmPlacement('web1', { priority: 'high', pinned: true, excluded: false, home: null });
  const before = await dbSnapshot(manager.db, [
    'placement_config',
    'storage_thresholds',
    'vm_placement',
    'changes',
  ]);
  const puts = [
    '/api/v1/placement/settings',
    '/api/v1/storage/datastores/h1/local/thresholds',
    '/api/v1/vms/web1/placement',
  ];
  for (const url of puts) {
    isProblem(await call('PUT', url, { body: 'null' }), 400, 'body');
    isProblem(await call('PUT', url), 400, 'body');
    isProblem(await call('PATCH', url, { body: 'null', type: 'application/merge-patch+json' }), 400, 'body');
    isProblem(await call('PATCH', url), 400, 'body');
  }
  // A PUT replaces the VM's settings as a whole: all four, or 400 naming the one left out.
  isProblem(
    await call('PUT', '/api/v1/vms/web1/placement', { body: json({ pinned: false }) }),
    400,
    'priority',
  );
  assert.equal(
    await dbSnapshot(manager.db, ['placement_config', 'storage_thresholds', 'vm_placement', 'changes']),
    before,
  );

  const placed = await admin.patchPlacementSettings({ holdSeconds: 900, hotIops: null });
  assert.deepEqual(placed.overrides, { holdSeconds: 900 });
  const thresholds = await admin.patchStorageThresholds('h1', 'local', { freeCriticalPercent: 10 });
  assert.deepEqual(thresholds.overrides, { freeWarningPercent: 30, freeCriticalPercent: 10 });
  assert.deepEqual(
    (await admin.patchStorageThresholds('h1', 'local', { freeWarningPercent: null })).overrides,
    {
      freeCriticalPercent: 10,
    },
  );
  const vm = await admin.patchVmPlacement('web1', {
    pinned: false,
    home: { host: 'h1', datastore: 'local' },
  });
  assert.deepEqual([vm.priority, vm.pinned, vm.home], [75, false, { host: 'h1', datastore: 'local' }]);
  assert.equal((await admin.patchVmPlacement('web1', { home: null })).home, null);
  // A merge patch whose result breaks a rule names the field, as a PUT of the result would.
  isProblem(
    await call('PATCH', '/api/v1/placement/settings', {
      body: json({ coolIops: 500 }),
      type: 'application/merge-patch+json',
    }),
    400,
    'coolIops',
  );
  isProblem(
    await call('PATCH', '/api/v1/vms/web1/placement', { body: json({ home: { host: 'h1' } }) }),
    400,
    'home.datastore',
  );
  await admin.setPlacementSettings({});
  await admin.setStorageThresholds('h1', 'local', {});
});

test('every answer stayed inside the route table', () => {
  assert.deepEqual(breaches, []);
});

// Fuzz of the agent's HTTP API: for every operation of its OpenAPI document (the route table,
// with the move plugins mounted), generated bad requests (no or a wrong token, odd path
// parameters, unknown or out-of-range query parameters, bodies that are not JSON, not objects,
// with unknown fields or fields of the wrong type or out of bounds) must answer 4xx problem
// details, never 5xx, and change nothing: the VM list, the moves and the files under the state
// and datastore directories are compared before and after. A real agent core without QEMU, through
// Fastify's inject; a failure prints the seed (replay it with FUZZ_SEED=<seed>).
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { agentOpenApiDocument } from '../api/index.js';
import {
  fuzzOperations,
  fuzzSeed,
  operations,
  type Answer,
  type BadRequest,
  type FuzzOperation,
} from '../../tools/api-fuzz.js';
import { startTestAgent, type TestAgent } from './test-server.js';

const TOKEN = 'fuzz-test-token-0123456789';
/** Cases per operation: about 26 operations, the whole file well under a minute on slow cores. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 60);
/** Well-formed path parameters naming nothing, so that the rest of a request is checked too. */
const FILL = { name: 'fuzz-none', id: '00000000-0000-4000-8000-0000000000ff' };

let agent: TestAgent;
let dir: string;
let app: FastifyInstance;
let ops: FuzzOperation[];

before(async () => {
  agent = await startTestAgent({ token: TOKEN, prefix: 'sb-agent-fuzz-', datastoreSubdir: 'ds1' });
  ({ dir, app } = agent);
  // One VM (no disks, no NICs: no QEMU needed) for the requests to find.
  const created = await app.inject({
    method: 'POST',
    url: '/v1/vms',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    payload: JSON.stringify({ name: 'vm1', vcpus: 1, memoryMiB: 64 }),
  });
  assert.equal(created.statusCode, 201, created.body);
  ops = operations(agentOpenApiDocument('0.0.0-test'));
});

after(() => agent.close());

async function files(at: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(at, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const full = path.join(entry.parentPath, entry.name);
    out.push(`${path.relative(dir, full)}:${await readFile(full, 'utf8')}`);
  }
  return out.sort();
}

/** What a request could change: the VMs, the moves, and every file of the agent's directories. */
async function snapshot(): Promise<string> {
  const get = async (url: string) =>
    (await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${TOKEN}` } })).body;
  return JSON.stringify([await get('/v1/vms'), await get('/v1/migrations'), await files(dir)]);
}

async function send(request: BadRequest): Promise<Answer> {
  const response = await app.inject({
    method: request.method as 'GET' | 'POST' | 'DELETE',
    url: request.url,
    headers: request.headers,
    ...(request.body !== undefined ? { payload: request.body } : {}),
  });
  return {
    status: response.statusCode,
    contentType: String(response.headers['content-type'] ?? ''),
    text: response.body,
  };
}

test('the OpenAPI document lists every route the fuzz covers', () => {
  assert.ok(ops.length >= 25, `only ${ops.length} operations`);
});

test('bad requests to every operation: 4xx problem details, nothing changed', async (t) => {
  const seed = fuzzSeed();
  const cases = await fuzzOperations(t, ops, {
    token: TOKEN,
    fills: [FILL, { ...FILL, name: 'vm1' }],
    send,
    state: snapshot,
    seed,
    runs: RUNS,
  });
  t.diagnostic(`${cases} cases over ${ops.length} operations, seed ${seed}`);
});

// Last: every answer of the tests above was one the route table declares (error codes, and
// successful replies against their response schemas).
test('every answer stayed inside the route table', () => {
  assert.deepEqual(agent.breaches, []);
});

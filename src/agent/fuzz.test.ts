// Fuzz of the agent's HTTP API, as strict as the manager's (issue 28): for every operation of its
// OpenAPI document (the route table, with the move plugins mounted), generated bad requests (no
// or a wrong token, odd path parameters, unknown or out-of-range query parameters, bodies that are
// not JSON, not objects, of another media type, with unknown fields or fields of the wrong type or
// out of bounds) must answer 4xx problem details, never 5xx nor an internal error in the log, and
// change nothing: the VM list, the moves and the files under the state and datastore directories
// are compared before and after. And a concurrency property: N parallel creates with one MAC, one
// wins. A real agent core without QEMU over its break-glass unix socket (its own parser sees every request raw,
// as the manager's fuzz does); a failure prints the seed (replay it with FUZZ_SEED=<seed>).
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { agentOpenApiDocument, AgentClient, ApiError, UnicastMac, type HttpEndpoint } from '../api/index.js';
import {
  fuzzOperations,
  fuzzSeed,
  operations,
  sendRaw,
  type Answer,
  type BadRequest,
  type FuzzOperation,
} from '../../tools/api-fuzz.js';
import { jsonLineLogger } from './logger.js';
import { startTestAgent, type TestAgent } from './test-server.js';

const TOKEN = 'fuzz-test-token-0123456789';
/** Cases per operation: about 26 operations, the whole file well under a minute on slow cores. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 60);
/** Well-formed path parameters naming nothing, so that the rest of a request is checked too. */
const FILL = { name: 'fuzz-none', id: '00000000-0000-4000-8000-0000000000ff' };

let agent: TestAgent;
let dir: string;
let app: FastifyInstance;
/** The break-glass socket (the token's way in: the fuzz's auth cases need one). */
let endpoint: HttpEndpoint;
/** The fabric's way in: HTTPS with a manager's certificate. */
let fabric: HttpEndpoint;
let ops: FuzzOperation[];
/** What the agent logged as failed (a 5xx's 'request failed' is an error line): none expected. */
const errors: string[] = [];

before(async () => {
  agent = await startTestAgent({
    token: TOKEN,
    prefix: 'sb-agent-fuzz-',
    datastoreSubdir: 'ds1',
    log: jsonLineLogger('error', (line) => void errors.push(line)),
  });
  ({ dir, app } = agent);
  endpoint = await agent.listenBreakGlass();
  fabric = await agent.enrolled();
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

/** The request exactly as generated, over the agent's own HTTP server. */
const send = (request: BadRequest): Promise<Answer> => sendRaw(endpoint, request);

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
  assert.deepEqual(errors, []);
  t.diagnostic(`${cases} cases over ${ops.length} operations, seed ${seed}`);
});

test('N parallel creates with one MAC: exactly one wins, the others 409 mac-in-use naming the MAC', async () => {
  const client = new AgentClient(fabric);
  const mac = fc
    .tuple(...Array.from({ length: 6 }, () => fc.integer({ min: 0, max: 255 })))
    .map((b) => b.map((x, i) => (i === 0 ? x & 0xfe : x).toString(16).padStart(2, '0')).join(':'));
  await fc.assert(
    fc.asyncProperty(
      mac.filter((m) => UnicastMac.safeParse(m).success),
      fc.integer({ min: 2, max: 24 }),
      async (shared, n) => {
        const answers = await Promise.allSettled(
          Array.from({ length: n }, (_, i) =>
            client.createVm({
              name: `race-${i}`,
              vcpus: 1,
              memoryMiB: 64,
              nics: [{ vswitch: 'sw0', mac: shared }],
            }),
          ),
        );
        const won = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
        const lost = answers.flatMap((a) => (a.status === 'rejected' ? [a.reason as unknown] : []));
        assert.equal(won.length, 1, `${n} creates with ${shared}`);
        for (const e of lost) {
          assert.ok(e instanceof ApiError, String(e));
          assert.deepEqual([e.status, e.code, e.field], [409, 'mac-in-use', 'nics.0.mac']);
        }
        await client.deleteVm(won[0]?.name ?? '', true);
      },
    ),
    { seed: fuzzSeed(), numRuns: Math.max(5, Math.round(RUNS / 6)), endOnFailure: true },
  );
  assert.deepEqual(
    (await client.listVms()).map((v) => v.name),
    ['vm1'],
  );
});

// Last: every answer of the tests above was one the route table declares (error codes, and
// successful replies against their response schemas).
test('every answer stayed inside the route table', () => {
  assert.deepEqual(agent.breaches, []);
});

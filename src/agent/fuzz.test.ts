// Fuzz of the agent's HTTP API: for every operation of its OpenAPI document (the route table,
// with the move plugins mounted), generated bad requests (no or a wrong token, odd path
// parameters, unknown or out-of-range query parameters, bodies that are not JSON, not objects,
// with unknown fields or fields of the wrong type or out of bounds) must answer 4xx problem
// details, never 5xx, and change nothing: the VM list, the moves and the files under the state
// and datastore directories are compared before and after. A real agent core without QEMU, through
// Fastify's inject; a failure prints the seed (replay it with FUZZ_SEED=<seed>).
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import fc from 'fast-check';
import { AgentConfig, agentOpenApiDocument } from '../api/index.js';
import {
  assertRefused,
  badRequests,
  fuzzSeed,
  operations,
  type Answer,
  type BadRequest,
  type FuzzOperation,
} from '../../tools/api-fuzz.js';
import { AgentCore } from './core.js';
import { HostInventory } from './host.js';
import { jsonLineLogger } from './logger.js';
import { coldMoveRoutes } from './migration/cold.js';
import { migrationRoutes } from './migration/routes.js';
import { buildServer } from './server.js';
import { VmService } from './vm-service.js';

const TOKEN = 'fuzz-test-token-0123456789';
/** Cases per operation: about 26 operations, the whole file well under a minute on slow cores. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 60);
/** Well-formed path parameters naming nothing, so that the rest of a request is checked too. */
const FILL = { name: 'fuzz-none', id: '00000000-0000-4000-8000-0000000000ff' };

let dir: string;
let app: FastifyInstance;
let ops: FuzzOperation[];

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-agent-fuzz-'));
  const config = AgentConfig.parse({
    hostName: 'unit',
    listen: { address: '127.0.0.1', port: 1 },
    token: TOKEN,
    fabricAddress: '127.0.0.1',
    stateDir: path.join(dir, 'state'),
    datastores: [{ name: 'ds1', path: path.join(dir, 'ds1'), default: true }],
    vswitches: [{ name: 'sw0', bridge: 'sbunit0' }],
    accelerator: 'tcg',
  });
  const log = jsonLineLogger('silent');
  const inventory = new HostInventory(config);
  const vms = new VmService(inventory, {
    stateDir: config.stateDir,
    accelerator: 'tcg',
    boot: () => Promise.reject(new Error('no guest in unit tests')),
    bridgeOf: (vswitch) => inventory.bridgeOf(vswitch),
    log,
  });
  await vms.init();
  const core = new AgentCore(
    config,
    inventory,
    vms,
    { accelerator: 'tcg', source: 'config' },
    { agent: '0.0.0-test', qemu: 'none' },
    log,
  );
  app = await buildServer(core, { token: TOKEN, log, routePlugins: [migrationRoutes(), coldMoveRoutes()] });
  await app.ready();
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

after(async () => {
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

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
  let cases = 0;
  for (const op of ops) {
    await t.test(`${op.method} ${op.path}`, async () => {
      const before = await snapshot();
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(badRequests(op, TOKEN, FILL), badRequests(op, TOKEN, { ...FILL, name: 'vm1' })),
          async (request) => {
            cases++;
            assertRefused(request, await send(request));
            assert.equal(await snapshot(), before, `${request.kind}: ${request.method} ${request.url}`);
          },
        ),
        { seed, numRuns: RUNS, endOnFailure: true },
      );
    });
  }
  t.diagnostic(`${cases} cases over ${ops.length} operations, seed ${seed}`);
});

import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { z } from 'zod';
import {
  AddHostRequest,
  API_PREFIX,
  ChangeListQuery,
  ChangeRecord,
  CreatedToken,
  CreatePoolRequest,
  CreateTokenRequest,
  CreateVmRequest,
  DeleteVmQuery,
  EmptyBody,
  Host,
  HostListQuery,
  HostScopedListQuery,
  Job,
  JobAccepted,
  JobListQuery,
  ManagedDatastore,
  ManagedVm,
  ManagedVSwitch,
  ManagerInfo,
  MoveCleanupResult,
  MovePlan,
  MoveVmRequest,
  ObjectRef,
  Page,
  PageQuery,
  Pool,
  PoolHostRequest,
  Problem,
  ShutdownVmRequest,
  Token,
  TokenName,
  VmListQuery,
  VmMoveStorageRequest,
  type Job as JobType,
} from '../api/index.js';
import { authorize, bearerSecret, type Caller } from './auth.js';
import { listChanges } from './changes.js';
import type { Db } from './db.js';
import { InvalidInput, toProblem, Unauthorized } from './errors.js';
import {
  getHost,
  getPool,
  getVm,
  listDatastores,
  listHosts,
  listPools,
  listVms,
  listVSwitches,
} from './inventory.js';
import { isTerminal, type JobRunner } from './jobs.js';
import type { MoveService } from './move/index.js';
import type { ManagerService } from './service.js';

/*
 * The REST API. Every route is one entry of a table that both registers it with Fastify and
 * describes it in the OpenAPI document, from the same zod schemas that validate its input.
 */

interface Input<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  caller: Caller;
}

/** A reply other than the route's usual one (e.g. a dry run's 200), for the OpenAPI document. */
interface OtherReply {
  status: number;
  description: string;
  schema: z.ZodType;
}

interface Route {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  /** Unique name of the operation in the OpenAPI document (what client generators name methods by). */
  operationId: string;
  summary: string;
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  status: number;
  /** Reply schema; none for 204 and for event streams. */
  response?: z.ZodType;
  /** Replies with server-sent events instead of JSON. */
  stream?: boolean;
  otherReplies?: OtherReply[];
  handle(
    input: Input<unknown, unknown, unknown>,
    reply: FastifyReply,
    request: FastifyRequest,
  ): Promise<unknown>;
}

function route<
  P extends z.ZodObject = z.ZodObject<Record<never, never>>,
  Q extends z.ZodObject = z.ZodObject<Record<never, never>>,
  B extends z.ZodType = z.ZodUndefined,
>(def: {
  method: Route['method'];
  path: string;
  operationId: string;
  summary: string;
  params?: P;
  query?: Q;
  body?: B;
  status: number;
  response?: z.ZodType;
  stream?: boolean;
  otherReplies?: OtherReply[];
  handle(
    input: Input<z.output<P>, z.output<Q>, z.output<B>>,
    reply: FastifyReply,
    request: FastifyRequest,
  ): Promise<unknown>;
}): Route {
  return def as Route;
}

const firstKey = (value: unknown) =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? Object.keys(value)[0] : undefined;

const parse = <T extends z.ZodType>(
  schema: T | undefined,
  value: unknown,
  part: 'query' | 'body' | 'params',
): unknown => {
  if (!schema) {
    // Found by the API fuzz test: a route without a query (or body) schema ignored what it was
    // sent, so `DELETE /tokens/x?dryRun=true` deleted. As the agent does, a part the route does
    // not take is refused naming its first key (an empty object or no body is fine).
    const key = firstKey(value);
    if (key !== undefined)
      throw new InvalidInput(
        part === 'query'
          ? `${key}: unknown query parameter`
          : `${key}: unknown field (this route takes no body)`,
        key,
      );
    if (
      part === 'body' &&
      value !== undefined &&
      value !== null &&
      (typeof value !== 'object' || Array.isArray(value))
    )
      throw new InvalidInput('this route takes no request body');
    return undefined;
  }
  const result = schema.safeParse(value ?? {});
  if (!result.success) throw InvalidInput.fromZod(result.error);
  return result.data;
};

export interface ApiDeps {
  db: Db;
  service: ManagerService;
  jobs: JobRunner;
  moves: MoveService;
  version: string;
}

const dryRunReply: OtherReply = {
  status: 200,
  description: 'dryRun: the plan with every check; nothing was changed',
  schema: MovePlan,
};

const jobUrl = (id: string) => `${API_PREFIX}/jobs/${id}`;
const accepted = (reply: FastifyReply, job: JobType) => {
  reply.header('location', jobUrl(job.id));
  return { job, url: jobUrl(job.id) };
};

function routes({ db, service, jobs, moves, version }: ApiDeps): Route[] {
  const Ref = (name: string) => z.object({ [name]: ObjectRef });
  const VmRef = Ref('vm');
  const HostRef = Ref('host');
  const PoolRef = Ref('pool');
  const JobRef = z.object({ id: z.uuid() });
  let doc: Record<string, unknown> | undefined;
  const table: Route[] = [
    route({
      method: 'GET',
      path: '/info',
      operationId: 'getInfo',
      summary: 'Manager version, inventory size and the calling token',
      status: 200,
      response: ManagerInfo,
      async handle({ caller }) {
        const count = (table: 'hosts' | 'vms') =>
          db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .executeTakeFirstOrThrow();
        const [hosts, vms] = await Promise.all([count('hosts'), count('vms')]);
        return { version, hosts: Number(hosts.n), vms: Number(vms.n), token: caller };
      },
    }),
    route({
      method: 'GET',
      path: '/openapi.json',
      operationId: 'getOpenApi',
      summary: 'This API as an OpenAPI 3.1 document',
      status: 200,
      handle: async () => (doc ??= openApiDocument(table, version)),
    }),

    // Tokens
    route({
      method: 'GET',
      path: '/tokens',
      operationId: 'listTokens',
      summary: 'List API tokens (admin)',
      query: PageQuery,
      status: 200,
      response: Page(Token),
      handle: ({ query }) => service.listTokens(query),
    }),
    route({
      method: 'POST',
      path: '/tokens',
      operationId: 'createToken',
      summary: 'Create an API token (admin); the secret is in this reply only',
      body: CreateTokenRequest,
      status: 201,
      response: CreatedToken,
      handle: ({ body, caller }) => service.createToken(caller, body),
    }),
    route({
      method: 'DELETE',
      path: '/tokens/:name',
      operationId: 'deleteToken',
      summary: 'Delete an API token (admin)',
      params: z.object({ name: TokenName }),
      status: 204,
      handle: ({ params, caller }) => service.deleteToken(caller, params.name),
    }),

    // Hosts
    route({
      method: 'GET',
      path: '/hosts',
      operationId: 'listHosts',
      summary: 'List hosts',
      query: HostListQuery,
      status: 200,
      response: Page(Host),
      handle: ({ query }) => listHosts(db, query),
    }),
    route({
      method: 'POST',
      path: '/hosts',
      operationId: 'addHost',
      summary: 'Join a host: the manager reaches its agent with the token and takes its inventory',
      body: AddHostRequest,
      status: 201,
      response: Host,
      handle: ({ body, caller }) => service.addHost(caller, body),
    }),
    route({
      method: 'GET',
      path: '/hosts/:host',
      operationId: 'getHost',
      summary: 'Show a host (by id or name)',
      params: HostRef,
      status: 200,
      response: Host,
      handle: ({ params }) => getHost(db, String(params.host)),
    }),
    route({
      method: 'DELETE',
      path: '/hosts/:host',
      operationId: 'removeHost',
      summary: 'Forget a host and its inventory (its agent and VMs keep running)',
      params: HostRef,
      status: 204,
      handle: ({ params, caller }) => service.removeHost(caller, String(params.host)),
    }),
    route({
      method: 'POST',
      path: '/hosts/:host/reconcile',
      operationId: 'reconcileHost',
      summary: "Poll the host's agent now",
      params: HostRef,
      body: EmptyBody,
      status: 200,
      response: Host,
      handle: ({ params }) => service.reconcileHost(String(params.host)),
    }),

    // Pools
    route({
      method: 'GET',
      path: '/pools',
      operationId: 'listPools',
      summary: 'List resource pools',
      query: PageQuery,
      status: 200,
      response: Page(Pool),
      handle: ({ query }) => listPools(db, query),
    }),
    route({
      method: 'POST',
      path: '/pools',
      operationId: 'createPool',
      summary: 'Create a resource pool',
      body: CreatePoolRequest,
      status: 201,
      response: Pool,
      handle: ({ body, caller }) => service.createPool(caller, body),
    }),
    route({
      method: 'GET',
      path: '/pools/:pool',
      operationId: 'getPool',
      summary: 'Show a resource pool',
      params: PoolRef,
      status: 200,
      response: Pool,
      handle: ({ params }) => getPool(db, String(params.pool)),
    }),
    route({
      method: 'DELETE',
      path: '/pools/:pool',
      operationId: 'deletePool',
      summary: 'Delete an empty resource pool',
      params: PoolRef,
      status: 204,
      handle: ({ params, caller }) => service.deletePool(caller, String(params.pool)),
    }),
    route({
      method: 'POST',
      path: '/pools/:pool/hosts',
      operationId: 'addPoolHost',
      summary: 'Add a host to a pool (a host is in at most one pool)',
      params: PoolRef,
      body: PoolHostRequest,
      status: 200,
      response: Pool,
      handle: ({ params, body, caller }) =>
        service.setPoolMembership(caller, String(params.pool), body.host, true),
    }),
    route({
      method: 'DELETE',
      path: '/pools/:pool/hosts/:host',
      operationId: 'removePoolHost',
      summary: 'Remove a host from a pool',
      params: z.object({ pool: ObjectRef, host: ObjectRef }),
      status: 200,
      response: Pool,
      handle: ({ params, caller }) => service.setPoolMembership(caller, params.pool, params.host, false),
    }),

    // Datastores, virtual switches
    route({
      method: 'GET',
      path: '/datastores',
      operationId: 'listDatastores',
      summary: 'List datastores of all hosts',
      query: HostScopedListQuery,
      status: 200,
      response: Page(ManagedDatastore),
      handle: ({ query }) => listDatastores(db, query),
    }),
    route({
      method: 'GET',
      path: '/vswitches',
      operationId: 'listVSwitches',
      summary: 'List virtual switches of all hosts',
      query: HostScopedListQuery,
      status: 200,
      response: Page(ManagedVSwitch),
      handle: ({ query }) => listVSwitches(db, query),
    }),

    // VMs
    route({
      method: 'GET',
      path: '/vms',
      operationId: 'listVms',
      summary: 'List VMs',
      query: VmListQuery,
      status: 200,
      response: Page(ManagedVm),
      handle: ({ query }) => listVms(db, query),
    }),
    route({
      method: 'POST',
      path: '/vms',
      operationId: 'createVm',
      summary: 'Create a VM on a host, or on the best host of a pool (a job)',
      body: CreateVmRequest,
      status: 202,
      response: JobAccepted,
      handle: async ({ body, caller }, reply) => accepted(reply, await service.createVm(caller, body)),
    }),
    route({
      method: 'GET',
      path: '/vms/:vm',
      operationId: 'getVm',
      summary: 'Show a VM (by id, or by name when unique)',
      params: VmRef,
      status: 200,
      response: ManagedVm,
      handle: ({ params }) => getVm(db, String(params.vm)),
    }),
    route({
      method: 'POST',
      path: '/vms/:vm/start',
      operationId: 'startVm',
      summary: 'Start a VM (a job)',
      params: VmRef,
      body: EmptyBody,
      status: 202,
      response: JobAccepted,
      handle: async ({ params, caller }, reply) =>
        accepted(reply, await service.vmAction(caller, String(params.vm), 'vm-start')),
    }),
    route({
      method: 'POST',
      path: '/vms/:vm/shutdown',
      operationId: 'shutdownVm',
      summary: 'Ask the guest to power off, forcing it after timeoutSeconds (a job)',
      params: VmRef,
      body: ShutdownVmRequest,
      status: 202,
      response: JobAccepted,
      handle: async ({ params, body, caller }, reply) =>
        accepted(
          reply,
          await service.vmAction(caller, String(params.vm), 'vm-shutdown', body.timeoutSeconds),
        ),
    }),
    route({
      method: 'POST',
      path: '/vms/:vm/stop',
      operationId: 'stopVm',
      summary: 'Force a VM off at once (a job)',
      params: VmRef,
      body: EmptyBody,
      status: 202,
      response: JobAccepted,
      handle: async ({ params, caller }, reply) =>
        accepted(reply, await service.vmAction(caller, String(params.vm), 'vm-stop')),
    }),
    route({
      method: 'DELETE',
      path: '/vms/:vm',
      operationId: 'deleteVm',
      summary: 'Delete a VM, with its disks unless deleteDisks=false (a job)',
      params: VmRef,
      query: DeleteVmQuery,
      status: 202,
      response: JobAccepted,
      handle: async ({ params, query, caller }, reply) =>
        accepted(reply, await service.deleteVm(caller, String(params.vm), query.deleteDisks)),
    }),

    route({
      method: 'POST',
      path: '/vms/:vm/move',
      operationId: 'moveVm',
      summary:
        'Move a VM with its disks to another host (a job; cancel it with the job cancel call). With dryRun: 200 and the plan with every check, nothing changed',
      params: VmRef,
      body: MoveVmRequest,
      status: 202,
      response: JobAccepted,
      otherReplies: [dryRunReply],
      handle: async ({ params, body, caller }, reply) => {
        const answer = await moves.move(caller, String(params.vm), body);
        if ('plan' in answer) return reply.status(200).send(answer.plan);
        return accepted(reply, answer.job);
      },
    }),
    route({
      method: 'POST',
      path: '/vms/:vm/move-cleanup',
      operationId: 'cleanUpVmMoves',
      summary:
        "Remove what failed moves of a VM left on other hosts: kept undos run now, incoming copies no move in flight names are aborted; the VM's own host is never touched",
      params: VmRef,
      body: EmptyBody,
      status: 200,
      response: MoveCleanupResult,
      handle: ({ params }) => moves.cleanUpMoves(String(params.vm)),
    }),
    route({
      method: 'POST',
      path: '/vms/:vm/move-storage',
      operationId: 'moveVmStorage',
      summary:
        "Move a running VM's disks to another datastore of its host (a job). With dryRun: 200 and the plan with every check, nothing changed",
      params: VmRef,
      body: VmMoveStorageRequest,
      status: 202,
      response: JobAccepted,
      otherReplies: [dryRunReply],
      handle: async ({ params, body, caller }, reply) => {
        const answer = await moves.moveStorage(caller, String(params.vm), body);
        if ('plan' in answer) return reply.status(200).send(answer.plan);
        return accepted(reply, answer.job);
      },
    }),

    // Jobs
    route({
      method: 'GET',
      path: '/jobs',
      operationId: 'listJobs',
      summary: 'List jobs, newest first',
      query: JobListQuery,
      status: 200,
      response: Page(Job),
      handle: ({ query }) => jobs.list(query),
    }),
    route({
      method: 'GET',
      path: '/jobs/:id',
      operationId: 'getJob',
      summary: 'Show a job',
      params: JobRef,
      status: 200,
      response: Job,
      handle: ({ params }) => jobs.get(params.id),
    }),
    route({
      method: 'GET',
      path: '/jobs/:id/events',
      operationId: 'streamJobEvents',
      summary: "The job's snapshots as server-sent events (`data: <Job>`) until it ends",
      params: JobRef,
      status: 200,
      stream: true,
      handle: ({ params }, reply, request) => streamJob(jobs, params.id, reply, request),
    }),
    route({
      method: 'POST',
      path: '/jobs/:id/cancel',
      operationId: 'cancelJob',
      summary: 'Cancel a job (a running one stops at its next safe point)',
      params: JobRef,
      body: EmptyBody,
      status: 200,
      response: Job,
      handle: ({ params }) => jobs.cancel(params.id),
    }),

    // Change records
    route({
      method: 'GET',
      path: '/changes',
      operationId: 'listChanges',
      summary: 'List change records, newest first',
      query: ChangeListQuery,
      status: 200,
      response: Page(ChangeRecord),
      handle: ({ query }) => listChanges(db, query),
    }),
  ];
  return table;
}

/** Emitted on the job events when the server stops: open event streams end (clients re-attach). */
const STREAMS_CLOSING = 'streams-closing';

async function streamJob(
  jobs: JobRunner,
  id: string,
  reply: FastifyReply,
  request: FastifyRequest,
): Promise<void> {
  const first = await jobs.get(id);
  reply.hijack();
  const out = reply.raw;
  out.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  });
  let closed = false;
  const send = (job: JobType) => {
    if (closed) return;
    out.write(`event: job\nid: ${job.updatedAt}\ndata: ${JSON.stringify(job)}\n\n`);
    if (isTerminal(job.state)) end();
  };
  const onJob = (job: JobType) => {
    if (job.id === id) send(job);
  };
  // Comments keep proxies and idle timers from closing a quiet stream.
  const heartbeat = setInterval(() => out.write(': keep-alive\n\n'), 15_000);
  const end = () => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    jobs.events.off('job', onJob);
    jobs.events.off(STREAMS_CLOSING, end);
    out.end();
  };
  jobs.events.on('job', onJob);
  jobs.events.once(STREAMS_CLOSING, end);
  request.raw.on('close', end);
  send(first);
}

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, {
    io,
    unrepresentable: 'any',
    // `cidrv4` is no JSON Schema format; the pattern zod emits beside it says the same.
    override: ({ jsonSchema }) => {
      if (jsonSchema.format === 'cidrv4') delete jsonSchema.format;
    },
  });
  return rest;
}

function parameters(schema: z.ZodObject | undefined, where: 'path' | 'query') {
  if (!schema) return [];
  const json = jsonSchema(schema, 'input') as { properties?: Record<string, unknown>; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, s]) => ({
    name,
    in: where,
    required: where === 'path' || (json.required ?? []).includes(name),
    schema: s,
  }));
}

export function openApiDocument(table: Route[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const problem = (description: string) => ({
    description,
    content: { 'application/problem+json': { schema: jsonSchema(Problem, 'output') } },
  });
  const json = (description: string, schema: z.ZodType) => ({
    description,
    content: { 'application/json': { schema: jsonSchema(schema, 'output') } },
  });
  for (const r of table) {
    const path = API_PREFIX + r.path.replace(/:([A-Za-z]+)/g, '{$1}');
    const ok = r.stream
      ? {
          description: 'Server-sent events',
          content: { 'text/event-stream': { schema: { type: 'string' } } },
        }
      : r.response
        ? json('OK', r.response)
        : { description: 'Done' };
    const responses: Record<string, unknown> = { [String(r.status)]: ok };
    for (const other of r.otherReplies ?? [])
      responses[String(other.status)] = json(other.description, other.schema);
    responses['401'] = {
      ...problem('No valid token (checked before anything else of the request)'),
      headers: { 'WWW-Authenticate': { schema: { type: 'string' } } },
    };
    responses['4XX'] = problem(
      'Invalid input naming the field (400), read-only token (403), not found (404), conflict (409)',
    );
    responses.default = problem('Problem details');
    paths[path] ??= {};
    paths[path][r.method.toLowerCase()] = {
      operationId: r.operationId,
      summary: r.summary,
      parameters: [...parameters(r.params, 'path'), ...parameters(r.query, 'query')],
      ...(r.body
        ? {
            requestBody: {
              // The server reads a missing body as {}: required only where {} is not enough.
              required: !r.body.safeParse({}).success,
              content: { 'application/json': { schema: jsonSchema(r.body, 'input') } },
            },
          }
        : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Silobreak manager API',
      version,
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    // Relative: the document is served by the manager it describes, at whatever address it has.
    servers: [{ url: '/', description: 'this manager' }],
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{ bearer: [] }],
    paths,
  };
}

/** Longest path parameter the router hands on; longer ones are refused before any route runs. */
const MAX_PARAM_LENGTH = 1024;

/** Headers of every reply: no MIME sniffing; nothing of the API kept in a cache (token secrets). */
function commonHeaders(reply: FastifyReply, url: string): void {
  reply.header('x-content-type-options', 'nosniff');
  if (url.startsWith(API_PREFIX)) reply.header('cache-control', 'no-store');
}

/** Problem details written straight to the socket, for requests Node could not even parse. */
function clientErrorReply(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, detail] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'the request line and headers exceed 16 KiB']
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'the request did not arrive in time']
        : [400, 'the request is not valid HTTP'];
  const body = JSON.stringify({ ...toProblem({ statusCode: status, message: detail }), status });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/problem+json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nX-Content-Type-Options: nosniff\r\n` +
        `Cache-Control: no-store\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}

export function buildServer(deps: ApiDeps, log: (message: string) => void): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: 1024 * 1024,
    // Path parameters are validated (and refused naming the field) by the route's schema; the
    // router's own default limit of 100 would answer 414 before the token is even checked.
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    clientErrorHandler: clientErrorReply,
    // A malformed URL (e.g. a stray %) or an over-long parameter: problem details, after the token.
    frameworkErrors: (error, request, reply) => {
      const status = error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 414 : 400;
      const detail =
        status === 414
          ? `a path segment is longer than ${MAX_PARAM_LENGTH} characters`
          : 'the URL is not valid: a % must start an escape such as %25';
      void authenticate(request).then(
        () => sendProblem(request, reply, { statusCode: status, message: detail }),
        (e: unknown) => sendProblem(request, reply, e),
      );
    },
  });
  const sendProblem = (request: FastifyRequest, reply: FastifyReply, error: unknown) => {
    const problem = toProblem(error);
    if (problem.status >= 500 && problem.code === 'internal')
      log(`internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    commonHeaders(reply, request.url);
    if (problem.status === 401) {
      // RFC 6750: how to authenticate, and whether the token given was the trouble.
      const given = request.headers.authorization !== undefined;
      reply.header('www-authenticate', `Bearer realm="silobreak"${given ? ', error="invalid_token"' : ''}`);
    }
    return reply.status(problem.status).type('application/problem+json').send(problem);
  };
  // Open event streams would otherwise keep the server from closing.
  app.addHook('preClose', async () => {
    deps.jobs.events.emit(STREAMS_CLOSING);
  });
  app.setErrorHandler((error, request, reply) => sendProblem(request, reply, error));
  async function authenticate(request: FastifyRequest): Promise<Caller> {
    const secret = bearerSecret(request.headers.authorization);
    const caller = secret ? await deps.service.authenticate(secret) : undefined;
    if (!caller) throw new Unauthorized();
    return caller;
  }
  const noRoute = (request: FastifyRequest) => ({
    statusCode: 404,
    message: `no route ${request.method} ${request.url.split('?')[0]}`,
  });
  const callers = new WeakMap<FastifyRequest, Caller>();
  // The token is checked as soon as the route is known, before the body is read or parsed: an
  // anonymous caller gets 401 whatever it sent (bad JSON, a huge body), a read-only one 403.
  // Even a wrong path needs a token: without one, the API does not say which paths exist.
  app.addHook('onRequest', async (request, reply) => {
    commonHeaders(reply, request.url);
    const url = request.routeOptions.url;
    if (!request.is404 && !url?.startsWith(API_PREFIX)) return; // the console's public files
    const caller = await authenticate(request);
    if (request.is404) return;
    authorize(caller, request.method, url ?? '');
    // `/vms/` would match `/vms/:vm` with an empty name: it is no route.
    if (Object.values(request.params as Record<string, unknown>).some((v) => v === ''))
      throw noRoute(request);
    callers.set(request, caller);
  });
  app.setNotFoundHandler(async (request, reply) => sendProblem(request, reply, noRoute(request)));
  for (const r of routes(deps)) {
    app.route({
      method: r.method,
      url: API_PREFIX + r.path,
      handler: async (request, reply) => {
        const caller = callers.get(request);
        if (!caller) throw new Unauthorized(); // unreachable: the onRequest hook sets it
        const input = {
          params: parse(r.params, request.params, 'params'),
          query: parse(r.query, request.query, 'query'),
          body: parse(r.body, request.body, 'body'),
          caller,
        };
        const result = await r.handle(input, reply, request);
        // A handler that answers with another status (e.g. a dry run's 200) has sent its reply.
        if (r.stream || reply.sent) return reply;
        if (r.status === 204) return reply.status(204).send();
        return reply.status(r.status).send(result);
      },
    });
  }
  return app;
}

import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { z } from 'zod';
import {
  API_PREFIX,
  applyMergePatch,
  checkRouteInput,
  clientErrorReply,
  MAX_PATH_PARAM_LENGTH,
  MERGE_PATCH_TYPE,
  PlacementSettingsOverrides,
  StorageThresholdOverrides,
  VmPlacementRequest,
  VmHaRequest,
  ContractCheck,
  MANAGER_ANSWERED_BY_HEADER,
  MANAGER_COMMON_ERRORS,
  MANAGER_FORWARDED_HEADER,
  MANAGER_LEADER_ROUTES,
  type ContractBreach,
  managerOpenApiDocument,
  managerRoutes,
  type FabricEvent,
  type FabricEventKind,
  type Job as JobType,
  type ManagerRoutes,
  type ManagersStatus,
  type OpenApiDocument,
  type RouteInput,
  type RouteResult,
  type RouteSpec,
} from '../api/index.js';
import { authorize, bearerSecret, type Caller } from './auth.js';
import { changeTimeline, listChanges } from './changes.js';
import type { Db } from './db.js';
import { InvalidInput, NotLeader, toProblem, Unauthorized } from './errors.js';
import {
  getCluster,
  getHost,
  getPool,
  listClusters,
  getVm,
  getDatastore,
  listDatastores,
  listHosts,
  listPools,
  listVms,
  toolsCounts,
  listVSwitches,
} from './inventory.js';
import {
  datastoreSeries,
  diskSeries,
  getThresholds,
  listStorageDatastores,
  listStorageDisks,
  listStorageIssues,
  setThresholds,
  vmSeries,
} from './insight/index.js';
import type { FabricEvents } from './fabric-events.js';
import { isTerminal, JOB_POLL_MS, type JobRunner } from './jobs.js';
import { KeyedMutex } from './locks.js';
import { renderManagerMetrics, storedMoves } from './metrics.js';
import { retainedBytesOn, type MoveService } from './move/index.js';
import type { PlacementService } from './placement/index.js';
import type { ManagerService } from './service.js';
import type { LinkService } from './links.js';
import type { ClusterService } from './clusters.js';
import { planHostUpgrade, startHostUpgrade } from './upgrade/index.js';

/*
 * The REST API: the routes of src/api/manager-routes.ts, each bound here to its handler. Every
 * request's params, query and body are checked against the route's schemas before its handler
 * runs; the reply carries the route's status unless the handler answered itself (a dry run's 200,
 * an event stream).
 */

/** A handler of one route: the parsed input and the caller; the reply for headers or other answers. */
type ManagerHandler<R> = (
  input: RouteInput<R> & { caller: Caller },
  reply: FastifyReply,
  request: FastifyRequest,
) => RouteResult<R> | FastifyReply | Promise<RouteResult<R> | FastifyReply>;
export type ManagerHandlers = { [K in keyof ManagerRoutes]: ManagerHandler<ManagerRoutes[K]> };

export interface ApiDeps {
  db: Db;
  service: ManagerService;
  jobs: JobRunner;
  /** The fabric event stream's source. */
  events: FabricEvents;
  moves: MoveService;
  placement: PlacementService;
  links: LinkService;
  clusters: ClusterService;
  version: string;
  /** Who leads the managers of this database (leader.ts). */
  managers: () => Promise<ManagersStatus>;
  /** Told of every answer outside the route table (tests also check replies); else logged. */
  onContractBreach?: ((breach: ContractBreach) => void) | undefined;
  /** Several managers: how a follower passes the leader's routes on (none: it answers them itself). */
  forwarding?: LeaderForwarding | undefined;
}

/** What a manager needs to forward the routes that act on hosts to the leader (issue 31). */
export interface LeaderForwarding {
  /** This manager's name (sent with a forwarded request). */
  name: string;
  /** Whether this manager leads now. */
  leading(): boolean;
  /** The leading manager, when another one holds a live lease. */
  leader(): Promise<{ name: string; url: string } | undefined>;
}

/**
 * How long a forwarded request may take at the leader: a host's join (enrolment, its inventory)
 * or a datastore change waits for agents, each call of which has its own shorter timeout.
 */
const FORWARD_TIMEOUT_MS = 120_000;

/**
 * Passes a request on to the leader as it came (method, path and query, body, the caller's
 * token) and its answer back as it is. A leader that cannot be reached: not-leader, naming it.
 */
async function forwardToLeader(
  request: FastifyRequest,
  reply: FastifyReply,
  leader: { name: string; url: string },
  me: string,
): Promise<FastifyReply> {
  const headers: Record<string, string> = { [MANAGER_FORWARDED_HEADER]: me };
  if (request.headers.authorization) headers.authorization = request.headers.authorization;
  const type = request.headers['content-type'];
  // Fastify has parsed the body (JSON only, or a JSON merge patch): the same JSON goes on.
  if (request.body !== undefined && type) headers['content-type'] = type;
  let response: Response;
  try {
    response = await fetch(new URL(request.url, leader.url), {
      method: request.method,
      headers,
      ...(request.body !== undefined ? { body: JSON.stringify(request.body) } : {}),
      redirect: 'manual',
      signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS),
    });
  } catch (error) {
    const leaderIs = `the leader, manager ${leader.name} (${leader.url})`;
    // Sent but not answered in time: the leader may be doing it still.
    if (error instanceof Error && error.name === 'TimeoutError')
      throw new NotLeader(
        `manager ${me} does not lead, and ${leaderIs}, did not answer the forwarded request within ${FORWARD_TIMEOUT_MS / 1000} s: it may have been done; look before sending it again`,
      );
    const reason =
      error instanceof Error
        ? ((error.cause instanceof Error ? error.cause.message : undefined) ?? error.message)
        : String(error);
    throw new NotLeader(
      `manager ${me} does not lead, and ${leaderIs}, did not take the request: ${reason}; only the leader acts on hosts`,
    );
  }
  const body = Buffer.from(await response.arrayBuffer());
  reply.status(response.status);
  for (const name of ['content-type', 'www-authenticate', 'location']) {
    const value = response.headers.get(name);
    if (value !== null) reply.header(name, value);
  }
  reply.header(MANAGER_ANSWERED_BY_HEADER, leader.name);
  return reply.send(body);
}

const jobUrl = (id: string) => `${API_PREFIX}/jobs/${id}`;
const accepted = (reply: FastifyReply, job: JobType) => {
  reply.header('location', jobUrl(job.id));
  return { job, url: jobUrl(job.id) };
};

/** A merged document (a PATCH's result) checked as a PUT of it would be, naming the field at fault. */
function checkMerged<S extends z.ZodType>(schema: S, merged: unknown): z.output<S> {
  const checked = schema.safeParse(merged);
  if (!checked.success) throw InvalidInput.fromZod(checked.error);
  return checked.data;
}

function handlers({
  db,
  service,
  jobs,
  events,
  moves,
  placement,
  links,
  clusters,
  version,
  managers,
}: ApiDeps): ManagerHandlers {
  let doc: OpenApiDocument | undefined;
  // A PATCH reads, merges and writes its document; changes of one document go one at a time.
  const documents = new KeyedMutex();
  return {
    async getInfo({ caller }) {
      const count = (table: 'hosts' | 'vms') =>
        db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow();
      const [hosts, vms] = await Promise.all([count('hosts'), count('vms')]);
      return { version, hosts: Number(hosts.n), vms: Number(vms.n), token: caller };
    },
    getOpenApi: () => (doc ??= managerOpenApiDocument(version)),
    getManagers: () => managers(),

    listTokens: ({ query }) => service.listTokens(query),
    createToken: ({ body, caller }) => service.createToken(caller, body),
    deleteToken: ({ params, caller }) => service.deleteToken(caller, params.name),

    listHosts: ({ query }) => listHosts(db, query),
    addHost: ({ body, caller }) => service.addHost(caller, body),
    getHost: ({ params }) => getHost(db, params.host),
    removeHost: ({ params, caller }) => service.removeHost(caller, params.host),
    reconcileHost: ({ params }) => service.reconcileHost(params.host),
    renewHostCertificate: ({ params, caller }) => service.renewHostCertificate(caller, params.host),
    getHostLinks: ({ params }) => links.list(params.host),
    probeHostLinks: ({ params, body }) => links.probeHost(params.host, body),
    enterHostMaintenance: async ({ params, caller }, reply) => {
      const answer = await clusters.enterMaintenance(caller, params.host);
      if ('host' in answer) return reply.status(200).send(answer.host);
      return accepted(reply, answer.job);
    },
    resumeHost: ({ params, caller }) => clusters.resume(caller, params.host),

    listClusters: ({ query }) => listClusters(db, query),
    createCluster: ({ body, caller }) => clusters.createCluster(caller, body.name),
    getCluster: ({ params }) => getCluster(db, params.cluster),
    deleteCluster: ({ params, caller }) => clusters.deleteCluster(caller, params.cluster),
    joinCluster: ({ params, body, caller }) => clusters.join(caller, params.cluster, body.host),
    evictClusterHost: ({ params, caller }) => clusters.evict(caller, params.cluster, params.host),

    listPools: ({ query }) => listPools(db, query),
    createPool: ({ body, caller }) => service.createPool(caller, body),
    getPool: ({ params }) => getPool(db, params.pool),
    deletePool: ({ params, caller }) => service.deletePool(caller, params.pool),
    addPoolHost: ({ params, body, caller }) =>
      service.setPoolMembership(caller, params.pool, body.host, true),
    removePoolHost: ({ params, caller }) =>
      service.setPoolMembership(caller, params.pool, params.host, false),

    listDatastores: ({ query }) => listDatastores(db, query),
    getDatastore: async ({ params }) => {
      const found = await getDatastore(db, params.host, params.datastore);
      const retainedBytes = await retainedBytesOn(db, found.hostId, found.name);
      return retainedBytes ? { ...found, retainedBytes } : found;
    },
    addDatastore: ({ params, body, caller }) => service.addDatastore(caller, params.host, body),
    updateDatastore: ({ params, body, caller }) =>
      service.updateDatastore(caller, params.host, params.datastore, body),
    removeDatastore: ({ params, caller }) => service.removeDatastore(caller, params.host, params.datastore),
    probeDatastore: ({ params, caller }) => service.probeDatastore(caller, params.host, params.datastore),
    listVSwitches: ({ query }) => listVSwitches(db, query),

    listVms: ({ query }) => listVms(db, query),
    createVm: async ({ body, caller }, reply) => accepted(reply, await service.createVm(caller, body)),
    getVm: ({ params }) => getVm(db, params.vm),
    getVmSeries: ({ params, query }) => vmSeries(db, params.vm, query.window),
    startVm: async ({ params, caller }, reply) =>
      accepted(reply, await service.vmAction(caller, params.vm, 'vm-start')),
    shutdownVm: async ({ params, body, caller }, reply) =>
      accepted(reply, await service.vmAction(caller, params.vm, 'vm-shutdown', body.timeoutSeconds)),
    stopVm: async ({ params, caller }, reply) =>
      accepted(reply, await service.vmAction(caller, params.vm, 'vm-stop')),
    insertVmTools: async ({ params, caller }, reply) =>
      accepted(reply, await service.vmAction(caller, params.vm, 'vm-tools-insert')),
    ejectVmTools: async ({ params, caller }, reply) =>
      accepted(reply, await service.vmAction(caller, params.vm, 'vm-tools-eject')),
    deleteVm: async ({ params, query, caller }, reply) =>
      accepted(reply, await service.deleteVm(caller, params.vm, query.deleteDisks)),
    moveVm: async ({ params, body, caller }, reply) => {
      const answer = await moves.move(caller, params.vm, body);
      if ('plan' in answer) return reply.status(200).send(answer.plan);
      return accepted(reply, answer.job);
    },
    setVmHa: ({ params, body, caller }) =>
      documents.run(`ha ${params.vm}`, () => clusters.setVmHa(caller, params.vm, body)),
    patchVmHa: ({ params, body, caller }) =>
      documents.run(`ha ${params.vm}`, async () => {
        const { ha } = await getVm(db, params.vm);
        const merged = checkMerged(VmHaRequest, applyMergePatch(ha, body));
        return clusters.setVmHa(caller, params.vm, merged);
      }),
    cleanUpVmMoves: ({ params }) => moves.cleanUpMoves(params.vm),
    moveVmStorage: async ({ params, body, caller }, reply) => {
      const answer = await moves.moveStorage(caller, params.vm, body);
      if ('plan' in answer) return reply.status(200).send(answer.plan);
      return accepted(reply, answer.job);
    },

    listJobs: ({ query }) => jobs.list(query),
    getJob: ({ params }) => jobs.get(params.id),
    streamJobEvents: ({ params }, reply, request) => streamJob(jobs, params.id, reply, request),
    cancelJob: ({ params }) => jobs.cancel(params.id),

    streamFabricEvents: ({ query }, reply, request) =>
      streamFabric(events, jobs, query.kinds, reply, request),

    listChanges: ({ query }) => listChanges(db, query),
    changeTimeline: ({ query }) => changeTimeline(db, query),

    metrics: async () => renderManagerMetrics(await storedMoves(db), await toolsCounts(db)),

    listStorageDatastores: ({ query }) => listStorageDatastores(db, query),
    listStorageDisks: ({ query }) => listStorageDisks(db, query),
    listStorageIssues: ({ query }) => listStorageIssues(db, query),
    getStorageDiskSeries: ({ params, query }) => diskSeries(db, params.vm, params.disk, query.window),
    getStorageDatastoreSeries: ({ params, query }) =>
      datastoreSeries(db, params.host, params.datastore, query.window),
    getStorageThresholds: ({ params }) => getThresholds(db, params.host, params.datastore),
    listRetainedCopies: ({ query }) => moves.listRetained(query.vm),
    releaseRetainedCopy: ({ params, caller }) => moves.releaseRetained(caller, params.id),
    setStorageThresholds: ({ params, body, caller }) =>
      documents.run(`thresholds ${params.host}/${params.datastore}`, () =>
        setThresholds(db, { name: caller.name }, params.host, params.datastore, body),
      ),
    patchStorageThresholds: ({ params, body, caller }) =>
      documents.run(`thresholds ${params.host}/${params.datastore}`, async () => {
        const { overrides } = await getThresholds(db, params.host, params.datastore);
        const merged = checkMerged(StorageThresholdOverrides, applyMergePatch(overrides, body));
        return setThresholds(db, { name: caller.name }, params.host, params.datastore, merged);
      }),

    getPlacementStatus: () => placement.status(),
    getPlacementConfig: () => placement.config(),
    setPlacementMode: ({ body, caller }) => placement.setMode(caller, body.mode),
    setPlacementSettings: ({ body, caller }) =>
      documents.run('placement settings', () => placement.setSettings(caller, body)),
    patchPlacementSettings: ({ body, caller }) =>
      documents.run('placement settings', async () => {
        const { overrides } = await placement.config();
        const merged = checkMerged(PlacementSettingsOverrides, applyMergePatch(overrides, body));
        return placement.setSettings(caller, merged);
      }),
    evaluatePlacement: () => placement.evaluate(),
    listPlacementRecommendations: ({ query }) => placement.listRecommendations(query),
    applyPlacementRecommendation: async ({ params, caller }, reply) =>
      accepted(reply, await placement.apply(caller, params.id)),
    dismissPlacementRecommendation: ({ params, caller }) => placement.dismiss(caller, params.id),
    listPlacementSchedules: ({ query }) => placement.listSchedules(query),
    createPlacementSchedule: ({ body, caller }) => placement.addSchedule(caller, body),
    deletePlacementSchedule: ({ params, caller }) => placement.removeSchedule(caller, params.id),
    getVmPlacement: ({ params }) => placement.getVmPlacement(params.vm),
    setVmPlacement: ({ params, body, caller }) =>
      documents.run(`placement ${params.vm}`, () => placement.setVmPlacement(caller, params.vm, body)),
    patchVmPlacement: ({ params, body, caller }) =>
      documents.run(`placement ${params.vm}`, async () => {
        const current = await placement.getVmPlacement(params.vm);
        const document = {
          priority: current.priority,
          pinned: current.pinned,
          excluded: current.excluded,
          home: current.home,
        };
        const merged = checkMerged(VmPlacementRequest, applyMergePatch(document, body));
        return placement.setVmPlacement(caller, params.vm, merged);
      }),
    suggestPlacement: ({ body }) => placement.suggest(body),

    planUpgrade: ({ body }) => planHostUpgrade(db, body),
    runUpgrade: async ({ body, caller }, reply) =>
      accepted(reply, await startHostUpgrade({ db, jobs }, caller, body)),
  };
}

/** Emitted on the job events when the server stops: open event streams end (clients re-attach). */
const STREAMS_CLOSING = 'streams-closing';

/** How often an open event stream sends a comment: proxies and idle timers close quiet streams. */
const HEARTBEAT_MS = 15_000;

/** One open text/event-stream reply. */
interface EventStream {
  /** Writes one event (nothing once ended). */
  send(event: string, data: unknown, id?: string): void;
  /** Ends the stream (once; later calls do nothing). */
  end(): void;
  readonly closed: boolean;
}

/**
 * Opens an event-stream reply: heartbeat comments while open; it ends when the server stops
 * (STREAMS_CLOSING on `closing`), when the client goes, or on `end()`; `onEnd` runs once then.
 */
function openEventStream(
  reply: FastifyReply,
  request: FastifyRequest,
  closing: EventEmitter,
  onEnd: () => void,
): EventStream {
  reply.hijack();
  const out = reply.raw;
  out.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  });
  let closed = false;
  const heartbeat = setInterval(() => out.write(': keep-alive\n\n'), HEARTBEAT_MS);
  const end = () => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    onEnd();
    closing.off(STREAMS_CLOSING, end);
    out.end();
  };
  closing.once(STREAMS_CLOSING, end);
  request.raw.on('close', end);
  return {
    send: (event, data, id) => {
      if (closed) return;
      const idLine = id === undefined ? '' : `id: ${id}\n`;
      out.write(`event: ${event}\n${idLine}data: ${JSON.stringify(data)}\n\n`);
    },
    end,
    get closed() {
      return closed;
    },
  };
}

/**
 * A job's events: its state now, then each change, until it ends. Changes made in this process
 * come as they happen; a job this process does not run is also read again every JOB_POLL_MS, since
 * another manager may be the one running it (a follower's stream would otherwise never hear of
 * the job's progress or end).
 */
async function streamJob(
  jobs: JobRunner,
  id: string,
  reply: FastifyReply,
  request: FastifyRequest,
): Promise<FastifyReply> {
  const first = await jobs.get(id);
  let last = '';
  const onJob = (job: JobType) => {
    if (job.id === id) send(job);
  };
  const poll = setInterval(() => {
    // A job this process runs reaches the stream by its events: no read needed.
    if (jobs.runsHere(id)) return;
    jobs.get(id).then(
      (job) => job.updatedAt !== last && send(job),
      () => {}, // deleted or unreadable now: the stream ends with its heartbeat's connection
    );
  }, JOB_POLL_MS);
  const stream = openEventStream(reply, request, jobs.events, () => {
    clearInterval(poll);
    jobs.events.off('job', onJob);
  });
  const send = (job: JobType) => {
    last = job.updatedAt;
    stream.send('job', job, job.updatedAt);
    if (isTerminal(job.state)) stream.end();
  };
  jobs.events.on('job', onJob);
  send(first);
  return reply;
}

/** The fabric's events (GET /api/v1/events): `ready` once listening, then each event of the kinds asked for. */
async function streamFabric(
  events: FabricEvents,
  jobs: JobRunner,
  kinds: readonly FabricEventKind[] | undefined,
  reply: FastifyReply,
  request: FastifyRequest,
): Promise<FastifyReply> {
  // Set once subscribed; the stream may end before (a client gone at once, the server stopping).
  let unsubscribe: (() => void) | undefined = undefined;
  const stream = openEventStream(reply, request, jobs.events, () => unsubscribe?.());
  let ready = false;
  // Events that come while the source reads its marks go out after `ready`.
  const early: FabricEvent[] = [];
  const write = (e: FabricEvent) => stream.send(e.kind, e);
  const listener = (e: FabricEvent) => {
    if (e.kind !== 'ready' && kinds !== undefined && !kinds.includes(e.kind)) return;
    if (ready) write(e);
    else early.push(e);
  };
  unsubscribe = await events.subscribe(listener);
  if (stream.closed) {
    unsubscribe();
    return reply;
  }
  write({ kind: 'ready', at: new Date().toISOString() });
  ready = true;
  for (const e of early.splice(0)) write(e);
  return reply;
}

/** Headers of every reply: no MIME sniffing; nothing of the API kept in a cache (token secrets). */
function commonHeaders(reply: FastifyReply, url: string): void {
  reply.header('x-content-type-options', 'nosniff');
  if (url.startsWith(API_PREFIX)) reply.header('cache-control', 'no-store');
}

/** Problem details written straight to the socket, for requests Node could not even parse. */
function clientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  const reply = socket.destroyed
    ? undefined
    : clientErrorReply(error.code, (statusCode, message) => toProblem({ statusCode, message }));
  if (reply !== undefined && socket.writable) socket.write(reply);
  socket.destroy(error);
}

// Indexed by a plain string, each handler loses the tie to its own route's types; the mapped type
// ManagerHandlers guaranteed that tie where the handlers were written.
type LooseHandler = (
  input: RouteInput<RouteSpec> & { caller: Caller },
  reply: FastifyReply,
  request: FastifyRequest,
) => unknown;

export function buildServer(deps: ApiDeps, log: (message: string) => void): FastifyInstance {
  const contract = new ContractCheck(
    managerRoutes,
    MANAGER_COMMON_ERRORS,
    deps.onContractBreach ?? ((b) => log(`answer outside the route table: ${b.route}: ${b.detail}`)),
    deps.onContractBreach !== undefined,
  );
  const app = Fastify({
    logger: false,
    bodyLimit: 1024 * 1024,
    // Path parameters are validated (and refused naming the field) by the route's schema; the
    // router's own default limit of 100 would answer 414 before the token is even checked.
    routerOptions: { maxParamLength: MAX_PATH_PARAM_LENGTH },
    clientErrorHandler: clientError,
    // A malformed URL (e.g. a stray %) or an over-long parameter: problem details, after the token.
    frameworkErrors: (error, request, reply) => {
      const status = error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 414 : 400;
      const detail =
        status === 414
          ? `a path segment is longer than ${MAX_PATH_PARAM_LENGTH} characters`
          : 'the URL is not valid: a % must start an escape such as %25';
      void authenticate(request).then(
        () => sendProblem(request, reply, { statusCode: status, message: detail }),
        (e: unknown) => sendProblem(request, reply, e),
      );
    },
  });
  // A PATCH body is a JSON merge patch (RFC 7396): its media type is parsed as JSON is. Bodies
  // are JSON only: text/plain, which Fastify would read, is 415 as every other type is.
  app.addContentTypeParser(
    MERGE_PATCH_TYPE,
    { parseAs: 'string' },
    app.getDefaultJsonParser('error', 'error'),
  );
  app.removeContentTypeParser('text/plain');
  const sendProblem = (request: FastifyRequest, reply: FastifyReply, error: unknown) => {
    const problem = toProblem(error);
    contract.error(request.method, request.routeOptions.url, problem.code);
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
  const table: Record<string, RouteSpec> = managerRoutes;
  const leaderRoutes: ReadonlySet<string> = MANAGER_LEADER_ROUTES;
  const byName = handlers(deps) as unknown as Record<string, LooseHandler>;
  for (const [name, route] of Object.entries(table)) {
    const handle = byName[name];
    if (!handle) throw new Error(`no handler of ${name}`); // unreachable: ManagerHandlers has each
    app.route({
      method: route.method,
      url: route.path,
      handler: async (request, reply) => {
        const caller = callers.get(request);
        if (!caller) throw new Unauthorized(); // unreachable: the onRequest hook sets it
        const input = checkRouteInput(route, {
          params: request.params,
          query: request.query,
          body: request.body,
        });
        if (!input.ok) throw new InvalidInput(input.detail, input.field);
        const forwarding = deps.forwarding;
        if (forwarding && leaderRoutes.has(name) && !forwarding.leading()) {
          // Forwarded once at most: the lead moved since the request left the other manager.
          const by = request.headers[MANAGER_FORWARDED_HEADER];
          if (by !== undefined)
            throw new NotLeader(
              `manager ${forwarding.name} does not lead (any more): the request forwarded by manager ${String(by)} is not passed on again; send it again`,
            );
          const leader = await forwarding.leader();
          // No leader: answered here, which says not-leader as soon as it would call an agent.
          if (leader) return forwardToLeader(request, reply, leader, forwarding.name);
        }
        const result = await handle({ ...input.value, caller }, reply, request);
        // A handler that answers itself (a dry run's 200, an event stream) has sent its reply.
        if (reply.sent) return reply;
        contract.reply(route, result);
        if (route.status === 204) return reply.status(204).send();
        if (route.produces) reply.type(route.produces);
        return reply.status(route.status).send(result);
      },
    });
  }
  return app;
}

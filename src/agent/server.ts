import { createHash, timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { chmod, rm } from 'node:fs/promises';
import http from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { TLSSocket } from 'node:tls';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import {
  AGENT_COMMON_ERRORS,
  AGENT_EPOCH_HEADER,
  ManagerEpoch,
  bearerToken,
  clientErrorReply,
  MAX_PATH_PARAM_LENGTH,
  redactUrl,
  agentOpenApiDocument,
  agentRoutes,
  ContractCheck,
  MERGE_PATCH_TYPE,
  agentPkiRoutes,
  type ContractBreach,
  type AgentRoutes,
  type agentVmRoutes,
  type OpenApiDocument,
  type Problem,
  type RouteInput,
  type RouteResult,
  type RouteTable,
} from '../api/index.js';
import type { AgentPki } from './pki.js';
import { InvalidInput, LeasesUnavailable } from './errors.js';
import { sharedImages } from './shared-images.js';
import { diskIdAt } from './vm-service.js';
import { problem, problemFor } from './http-errors.js';
import { ManagerEpochs } from './epoch.js';
import { serveRoutes } from './http-routes.js';
import { redactingLogger, type Logger } from './logger.js';
import type { AgentCore } from './core.js';

/*
 * The agent's HTTP API: the routes of src/api/agent-routes.ts. Each is served from that table
 * with its input checked against the table's schemas; handlers get the parsed input and the
 * caller, and every failure goes to the one error handler.
 *
 * Who may call: over TLS (the fabric), a client whose certificate the fabric CA signed for a
 * manager; an unenrolled agent answers only enrollment, to whoever knows its join secret. Over
 * the break-glass unix socket (and Fastify's inject in tests), the bearer token of the config.
 */

/** Who sent a request: a manager's certificate, the break-glass token, or a joining manager. */
export type AgentCaller = { kind: 'manager'; name: string } | { kind: 'break-glass' } | { kind: 'joining' };

type AgentHandler<R> = (
  input: RouteInput<R> & { caller: AgentCaller },
) => RouteResult<R> | Promise<RouteResult<R>>;
export type AgentHandlersOf<T extends RouteTable> = { [K in keyof T]: AgentHandler<T[K]> };
export type AgentHandlers = AgentHandlersOf<AgentRoutes>;

const ENROLLMENT_ROUTES = new Set(
  [agentPkiRoutes.requestCertificate, agentPkiRoutes.installCertificate].map((r) => `${r.method} ${r.path}`),
);

/**
 * Extra routes (e.g. moves) mounted on the same server, behind the same token and error mapping:
 * a plugin returns the handlers of its part of the table and may add hooks to the app.
 */
export type AgentRoutePlugin = (
  app: FastifyInstance,
  core: AgentCore,
) => Partial<AgentHandlers> | Promise<Partial<AgentHandlers>>;

/** The manager's rule (src/api/rules.ts bearerToken): `bearer` works as `Bearer` does. */
/** The caller of each request in flight, as the onRequest hook found it. */
const callers = new WeakMap<FastifyRequest, AgentCaller>();

/** Enrollment, renewal, revocation lists, leaving: the agent's side of the fabric CA. */
function pkiHandlers(
  pki: AgentPki | undefined,
  epochs: ManagerEpochs,
): Partial<AgentHandlersOf<typeof agentPkiRoutes>> {
  if (!pki) return {};
  const asCaller = (caller: AgentCaller) => ({ manager: caller.kind !== 'joining' });
  return {
    requestCertificate: ({ body, caller }) =>
      pki.requestCertificate({ ...asCaller(caller), joinSecret: body.joinSecret }),
    installCertificate: async ({ body, caller }) => {
      const installed = await pki.installCertificate(asCaller(caller), body);
      // Joined to a fabric (perhaps another one, whose managers count their epochs afresh).
      if (caller.kind === 'joining') await epochs.reset();
      return installed;
    },
    putRevocationList: ({ body }) => pki.setRevocationList(body.crl),
    leaveFabric: async () => {
      await pki.leave();
      await epochs.reset();
    },
  };
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const given = bearerToken(header);
  if (given === undefined) return false;
  // Digests: equal lengths, so the comparison says nothing about the token's length either.
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(token));
}

/** Problem details straight to the socket, for requests Node could not even parse (431, 408). */
function clientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  const reply = socket.destroyed
    ? undefined
    : clientErrorReply(error.code, (status, detail) =>
        status === 431
          ? problem(431, 'headers-too-large', detail)
          : status === 408
            ? problem(408, 'request-timeout', detail)
            : problem(400, 'invalid-request', detail),
      );
  if (reply !== undefined && socket.writable) socket.write(reply);
  socket.destroy(error);
}

const UNAUTHORIZED =
  'a fabric certificate of a manager is required (or, on the break-glass socket, Authorization: Bearer <token>)';

/**
 * Who sent `request`, or the problem to answer instead. `pki` absent: a server without TLS (unit
 * tests), where only the token counts.
 */
function authenticate(
  request: FastifyRequest,
  options: { token: string | undefined; pki: AgentPki | undefined },
): AgentCaller | Problem {
  const socket = request.raw.socket;
  if (socket instanceof TLSSocket) {
    if (socket.authorized) {
      const peer = socket.getPeerCertificate();
      const role = peer.subject?.OU;
      const cn = peer.subject?.CN;
      const name = Array.isArray(cn) ? cn.join(',') : (cn ?? '?');
      if (role === 'manager') return { kind: 'manager', name };
      return problem(
        403,
        'forbidden',
        `the certificate of ${role ?? 'unknown role'} ${name} may not call the agent API: only a manager drives an agent`,
      );
    }
    if (options.pki?.enrolled) return problem(401, 'unauthorized', UNAUTHORIZED);
    if (ENROLLMENT_ROUTES.has(`${request.method} ${request.routeOptions.url ?? ''}`))
      return { kind: 'joining' };
    return problem(
      403,
      'not-enrolled',
      'this agent is not enrolled in a fabric yet: add it with `silobreak host add <address> --join-token <token>` (`silobreak agent join-token` on the host prints the token)',
    );
  }
  if (options.token !== undefined && tokenMatches(request.headers.authorization, options.token))
    return { kind: 'break-glass' };
  return problem(401, 'unauthorized', UNAUTHORIZED);
}

const isProblem = (x: AgentCaller | Problem): x is Problem => 'status' in x;

/** The routes every agent serves itself: host, VMs, guest agent, metrics, the OpenAPI document. */
function vmHandlers(core: AgentCore): AgentHandlersOf<typeof agentVmRoutes> {
  const vms = core.vms;
  let doc: OpenApiDocument | undefined;
  return {
    getHost: () => core.hostInfo(),
    joinLockspace: ({ body }) => {
      if (!core.leases) throw new LeasesUnavailable('this host runs no sanlock (agent config `sanlock`)');
      if (core.inventory.datastore(body.datastore, 'datastore').kind !== 'shared')
        throw new InvalidInput(`datastore: ${body.datastore} is not a shared datastore`, 'datastore');
      return core.leases.join(body);
    },
    leaveLockspace: async () => {
      await core.leases?.leave();
    },
    upgradeHost: () => core.upgrade.run(),
    listDatastores: () => core.inventory.datastores(),
    addDatastore: ({ body }) => core.datastores.add(body),
    updateDatastore: ({ params, body }) => core.datastores.update(params.name, body),
    removeDatastore: ({ params }) => core.datastores.remove(params.name),
    probeDatastore: ({ params }) => core.datastores.probe(params.name),
    listVSwitches: () => core.inventory.vswitches(),
    listVms: () => vms.list(),
    createVm: async ({ body }) => {
      // Disks that are existing images on shared storage (an HA restart) are opened where they are.
      const claims = body.disks.map((d, i) => ({
        id: diskIdAt(d, i),
        datastore: d.datastore,
        shared: d.shared,
        virtualSizeBytes: d.sizeBytes,
      }));
      const adopt = await sharedImages(core.inventory, core.config.hostName, claims, 'disks');
      return vms.define(body, { adopt });
    },
    getVm: ({ params }) => vms.get(params.name),
    deleteVm: ({ params, query }) => vms.delete(params.name, query.deleteDisks),
    startVm: ({ params }) => vms.start(params.name),
    shutdownVm: ({ params, body }) => vms.shutdown(params.name, body.timeoutSeconds),
    stopVm: ({ params }) => vms.stop(params.name),
    insertTools: ({ params }) => vms.setToolsDisk(params.name, true),
    ejectTools: ({ params }) => vms.setToolsDisk(params.name, false),
    guestInfo: ({ params }) => vms.guestInfo(params.name),
    guestExec: ({ params, body }) => vms.guestExec(params.name, body),
    getStats: () => core.stats(),
    getJournal: ({ query }) => vms.journal.since(query.after),
    metrics: () => core.metrics(),
    openApi: () => (doc ??= agentOpenApiDocument(core.versions.agent)),
  };
}

/**
 * Enrolled, renewed, a new revocation list, left: the HTTPS listener takes it from the next
 * handshake on (node's tls.Server reads rejectUnauthorized for each new connection).
 */
export function followEnrollment(app: FastifyInstance, pki: AgentPki): void {
  const server = app.server as HttpsServer & { rejectUnauthorized: boolean };
  pki.onChange((tls) => {
    server.setSecureContext(tls.context);
    server.rejectUnauthorized = tls.requireClientCertificate;
  });
}

/**
 * The break-glass listener: the same routes and guard on a unix socket (owner-only), where the
 * config's token is the way in. Requests Node cannot parse get problem details as on the fabric.
 */
export async function serveBreakGlass(app: FastifyInstance, socketPath: string): Promise<http.Server> {
  await rm(socketPath, { force: true });
  const server = http.createServer((req, res) => app.routing(req, res));
  server.on('clientError', clientError);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  await chmod(socketPath, 0o600);
  return server;
}

export async function buildServer(
  core: AgentCore,
  options: {
    /** The break-glass token (unix socket, tests' inject); none: only certificates. */
    token: string | undefined;
    /** Enrollment and certificates: the server is HTTPS then (buildServer's caller listens). */
    pki?: AgentPki | undefined;
    log: Logger;
    routePlugins: readonly AgentRoutePlugin[];
    /** Told of every answer outside the route table (tests also check replies); else logged. */
    onContractBreach?: (breach: ContractBreach) => void;
  },
): Promise<FastifyInstance> {
  // Whatever a message carries, the token never reaches the log (its URL's secrets neither).
  const log = redactingLogger(options.log, options.token === undefined ? [] : [options.token]);
  const auth = { token: options.token, pki: options.pki };
  const epochs = await ManagerEpochs.open(core.config.stateDir);
  const tls = options.pki?.serverTls();
  const contract = new ContractCheck(
    agentRoutes,
    AGENT_COMMON_ERRORS,
    options.onContractBreach ?? ((breach) => log.warn('answer outside the route table', { ...breach })),
    options.onContractBreach !== undefined,
  );
  const app = Fastify({
    logger: false,
    // The client certificate is asked for always; whether one is required follows enrollment
    // (the listener sets rejectUnauthorized when the agent enrolls: agent.ts).
    ...(tls
      ? {
          https: {
            ...tls.context,
            requestCert: true,
            rejectUnauthorized: tls.requireClientCertificate,
            minVersion: 'TLSv1.2' as const,
          },
        }
      : {}),
    bodyLimit: 1024 * 1024,
    // Found by the API fuzz test: a path the router cannot take (a stray or invalid % escape, a
    // parameter over the router's limit) was answered with Fastify's own JSON, not problem
    // details, and before the token was checked. Path parameters up to 1024 characters reach the
    // route's schema (which names the field); beyond, and for bad escapes, a 400 problem, after
    // the token as everywhere else.
    routerOptions: { maxParamLength: MAX_PATH_PARAM_LENGTH },
    clientErrorHandler: clientError,
    frameworkErrors: (error, request, rawReply) => {
      const reply = rawReply as FastifyReply;
      const caller = authenticate(request, auth);
      const body = isProblem(caller)
        ? caller
        : error.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? problem(414, 'uri-too-long', `a path segment is longer than ${MAX_PATH_PARAM_LENGTH} characters`)
          : problem(400, 'invalid-request', 'the URL is not valid: a % must start an escape such as %25');
      if (body.status === 401) reply.header('www-authenticate', 'Bearer');
      void reply.status(body.status).type('application/problem+json').send(body);
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

  // The OpenAPI document too is behind the same guard, as the manager's is.
  app.addHook('onRequest', async (request, reply) => {
    const caller = authenticate(request, auth);
    if (isProblem(caller)) {
      log.warn('request refused', {
        method: request.method,
        url: redactUrl(request.url),
        ip: request.ip,
        code: caller.code,
      });
      if (caller.status === 401) void reply.header('www-authenticate', 'Bearer');
      await reply.status(caller.status).type('application/problem+json').send(caller);
      return;
    }
    callers.set(request, caller);
    // Fencing (epoch.ts): a call under an older manager epoch than seen here goes no further. A
    // join is not fenced: it proves itself with the join secret, and may come from a new fabric.
    const header = request.headers[AGENT_EPOCH_HEADER];
    if (header !== undefined && caller.kind !== 'joining') {
      const epoch = ManagerEpoch.safeParse(header);
      const refusal = !epoch.success
        ? problem(
            400,
            'invalid-input',
            `header ${AGENT_EPOCH_HEADER}: must be a positive integer`,
            AGENT_EPOCH_HEADER,
          )
        : await epochs.admit(epoch.data).then(
            () => undefined,
            (error: unknown) => problemFor(error),
          );
      if (refusal) {
        log.warn('request refused', {
          method: request.method,
          url: redactUrl(request.url),
          code: refusal.code,
          detail: refusal.detail,
        });
        await reply.status(refusal.status).type('application/problem+json').send(refusal);
        return;
      }
    }
    // `/v1/vms/` would match `/v1/vms/:name` with an empty name: it is no route (as at the manager).
    if (Object.values(request.params as Record<string, unknown>).some((v) => v === ''))
      await reply
        .status(404)
        .type('application/problem+json')
        .send(problem(404, 'route-not-found', `no route ${request.method} ${request.url.split('?')[0]}`));
  });
  app.addHook('onResponse', async (request, reply) => {
    log.info('request', {
      method: request.method,
      url: redactUrl(request.url),
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime),
    });
  });
  app.setErrorHandler(async (error, request, reply) => {
    const body = problemFor(error);
    contract.error(request.method, request.routeOptions.url, body.code);
    if (body.status >= 500)
      log.error('request failed', {
        method: request.method,
        url: redactUrl(request.url),
        error: String(error),
      });
    await reply.status(body.status).type('application/problem+json').send(body);
  });
  app.setNotFoundHandler(async (request, reply) => {
    await reply
      .status(404)
      .type('application/problem+json')
      .send(problem(404, 'route-not-found', `no route ${request.method} ${request.url.split('?')[0]}`));
  });

  const handlers: Partial<AgentHandlers> = { ...vmHandlers(core), ...pkiHandlers(options.pki, epochs) };
  for (const plugin of options.routePlugins) Object.assign(handlers, await plugin(app, core));
  const unserved = serveRoutes(app, agentRoutes, handlers, contract, (request) => callers.get(request));
  // An agent started without some plugin (tests do) answers those routes 404 route-not-found.
  if (unserved.length) log.debug('routes without a handler', { routes: unserved });
  return app;
}

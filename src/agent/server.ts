import { createHash, timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import {
  AGENT_COMMON_ERRORS,
  bearerToken,
  clientErrorReply,
  MAX_PATH_PARAM_LENGTH,
  redactUrl,
  agentOpenApiDocument,
  agentRoutes,
  ContractCheck,
  MERGE_PATCH_TYPE,
  type ContractBreach,
  type AgentRoutes,
  type agentVmRoutes,
  type OpenApiDocument,
  type RouteHandlers,
} from '../api/index.js';
import { problem, problemFor } from './http-errors.js';
import { serveRoutes } from './http-routes.js';
import { redactingLogger, type Logger } from './logger.js';
import type { AgentCore } from './core.js';

/*
 * The agent's HTTP API: the routes of src/api/agent-routes.ts, all behind the bearer token. Each
 * is served from that table with its input checked against the table's schemas; handlers get the
 * parsed input, and every failure goes to the one error handler.
 */

export type AgentHandlers = RouteHandlers<AgentRoutes>;

/**
 * Extra routes (e.g. moves) mounted on the same server, behind the same token and error mapping:
 * a plugin returns the handlers of its part of the table and may add hooks to the app.
 */
export type AgentRoutePlugin = (
  app: FastifyInstance,
  core: AgentCore,
) => Partial<AgentHandlers> | Promise<Partial<AgentHandlers>>;

/** The manager's rule (src/api/rules.ts bearerToken): `bearer` works as `Bearer` does. */
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

/** The routes every agent serves itself: host, VMs, guest agent, metrics, the OpenAPI document. */
function vmHandlers(core: AgentCore): RouteHandlers<typeof agentVmRoutes> {
  const vms = core.vms;
  let doc: OpenApiDocument | undefined;
  return {
    getHost: () => core.hostInfo(),
    listDatastores: () => core.inventory.datastores(),
    addDatastore: ({ body }) => core.datastores.add(body),
    updateDatastore: ({ params, body }) => core.datastores.update(params.name, body),
    removeDatastore: ({ params }) => core.datastores.remove(params.name),
    probeDatastore: ({ params }) => core.datastores.probe(params.name),
    listVSwitches: () => core.inventory.vswitches(),
    listVms: () => vms.list(),
    createVm: ({ body }) => vms.define(body),
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

export async function buildServer(
  core: AgentCore,
  options: {
    token: string;
    log: Logger;
    routePlugins: readonly AgentRoutePlugin[];
    /** Told of every answer outside the route table (tests also check replies); else logged. */
    onContractBreach?: (breach: ContractBreach) => void;
  },
): Promise<FastifyInstance> {
  // Whatever a message carries, the token never reaches the log (its URL's secrets neither).
  const log = redactingLogger(options.log, [options.token]);
  const contract = new ContractCheck(
    agentRoutes,
    AGENT_COMMON_ERRORS,
    options.onContractBreach ?? ((breach) => log.warn('answer outside the route table', { ...breach })),
    options.onContractBreach !== undefined,
  );
  const app = Fastify({
    logger: false,
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
      const body = !tokenMatches(request.headers.authorization, options.token)
        ? problem(401, 'unauthorized', 'a valid bearer token is required (Authorization: Bearer <token>)')
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

  // The OpenAPI document too is behind the token, as the manager's is.
  app.addHook('onRequest', async (request, reply) => {
    if (!tokenMatches(request.headers.authorization, options.token)) {
      log.warn('request without a valid token', {
        method: request.method,
        url: redactUrl(request.url),
        ip: request.ip,
      });
      await reply
        .status(401)
        .header('www-authenticate', 'Bearer')
        .type('application/problem+json')
        .send(
          problem(401, 'unauthorized', 'a valid bearer token is required (Authorization: Bearer <token>)'),
        );
      return;
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

  const handlers: Partial<AgentHandlers> = vmHandlers(core);
  for (const plugin of options.routePlugins) Object.assign(handlers, await plugin(app, core));
  const unserved = serveRoutes(app, agentRoutes, handlers, contract);
  // An agent started without some plugin (tests do) answers those routes 404 route-not-found.
  if (unserved.length) log.debug('routes without a handler', { routes: unserved });
  return app;
}

import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { z } from 'zod';
import { Name } from '../api/index.js';
import { problem, problemFor } from './http-errors.js';
import type { Logger } from './logger.js';
import { METRICS_CONTENT_TYPE } from './metrics.js';
import type { AgentCore } from './core.js';

/*
 * The agent's HTTP API: /v1 (the routes AgentClient calls) and /metrics, all behind the bearer
 * token. Handlers validate their input with zod and leave every failure to the one error handler.
 */

/** Extra routes (e.g. migration) mounted on the same server, behind the same token and error mapping. */
export type AgentRoutePlugin = (app: FastifyInstance, core: AgentCore) => void | Promise<void>;

const VmParams = z.object({ name: Name });

function tokenMatches(header: string | undefined, token: string): boolean {
  const expected = Buffer.from(`Bearer ${token}`);
  const given = Buffer.from(header ?? '');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export async function buildServer(
  core: AgentCore,
  options: { token: string; log: Logger; routePlugins: readonly AgentRoutePlugin[] },
): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  const { log } = options;

  app.addHook('onRequest', async (request, reply) => {
    if (tokenMatches(request.headers.authorization, options.token)) return;
    log.warn('request without a valid token', { method: request.method, url: request.url, ip: request.ip });
    await reply
      .status(401)
      .header('www-authenticate', 'Bearer')
      .type('application/problem+json')
      .send(problem(401, 'unauthorized', 'a valid bearer token is required (Authorization: Bearer <token>)'));
  });
  app.addHook('onResponse', async (request, reply) => {
    log.info('request', {
      method: request.method,
      url: request.url,
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime),
    });
  });
  app.setErrorHandler(async (error, request, reply) => {
    const body = problemFor(error);
    if (body.status >= 500)
      log.error('request failed', { method: request.method, url: request.url, error: String(error) });
    await reply.status(body.status).type('application/problem+json').send(body);
  });
  app.setNotFoundHandler(async (request, reply) => {
    await reply
      .status(404)
      .type('application/problem+json')
      .send(problem(404, 'route-not-found', `no route ${request.method} ${request.url.split('?')[0]}`));
  });

  const vms = core.vms;
  const vmName = (params: unknown) => VmParams.parse(params).name;

  app.get('/v1/host', () => core.hostInfo());
  app.get('/v1/datastores', () => core.inventory.datastores());
  app.get('/v1/vswitches', () => core.inventory.vswitches());
  app.get('/v1/vms', () => vms.list());
  app.post('/v1/vms', async (request, reply) => reply.status(201).send(await vms.define(request.body)));
  app.get('/v1/vms/:name', (request) => vms.get(vmName(request.params)));
  app.delete('/v1/vms/:name', async (request, reply) => {
    await vms.delete(vmName(request.params), request.query);
    return reply.status(204).send();
  });
  app.post('/v1/vms/:name/start', (request) => vms.start(vmName(request.params)));
  app.post('/v1/vms/:name/shutdown', (request) => vms.shutdown(vmName(request.params), request.body));
  app.post('/v1/vms/:name/stop', (request) => vms.stop(vmName(request.params)));
  app.get('/v1/vms/:name/guest', (request) => vms.guestInfo(vmName(request.params)));
  app.post('/v1/vms/:name/guest-exec', (request) => vms.guestExec(vmName(request.params), request.body));
  app.get('/metrics', async (_request, reply) => reply.type(METRICS_CONTENT_TYPE).send(await core.metrics()));

  for (const plugin of options.routePlugins) await plugin(app, core);
  return app;
}

import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  checkRouteInput,
  type ContractCheck,
  type RouteInput,
  type RouteSpec,
  type RouteTable,
} from '../api/index.js';
import { InvalidInput } from './errors.js';

/*
 * Registers the routes of a table with Fastify. Each request's params, query and body are checked
 * against the route's schemas before its handler runs (a failure is an InvalidInput, so the one
 * error mapping in http-errors.ts answers it), and the reply carries the route's status.
 */

type LooseHandler = (input: RouteInput<RouteSpec> & { caller: unknown }) => unknown;
/** Who sent the request (the server's guard found out before the handler runs). */
type CallerOf = (request: FastifyRequest) => unknown;

/** Serves every route of `table` that has a handler; returns the names of those that have none. */
export function serveRoutes<T extends RouteTable>(
  app: FastifyInstance,
  table: T,
  handlers: { [K in keyof T]?: unknown },
  contract: ContractCheck,
  callerOf: CallerOf,
): string[] {
  const unserved: string[] = [];
  // Indexed by a plain string, each handler loses the tie to its own route's types; the mapped
  // type of `handlers` guaranteed that tie where the handlers were written.
  const byName = handlers as Record<string, LooseHandler | undefined>;
  for (const [name, route] of Object.entries(table)) {
    const handler = byName[name];
    if (handler) serveRoute(app, route, handler, contract, callerOf);
    else unserved.push(name);
  }
  return unserved;
}

function serveRoute(
  app: FastifyInstance,
  route: RouteSpec,
  handler: LooseHandler,
  contract: ContractCheck,
  callerOf: CallerOf,
): void {
  app.route({
    method: route.method,
    url: route.path,
    handler: async (request, reply) => {
      const input = checkRouteInput(route, {
        params: request.params,
        query: request.query,
        body: request.body,
      });
      if (!input.ok) throw new InvalidInput(input.detail, input.field);
      const result = await handler({ ...input.value, caller: callerOf(request) });
      contract.reply(route, result);
      reply.status(route.status);
      if (route.status === 204) return reply.send();
      if (route.produces) reply.type(route.produces);
      return reply.send(result);
    },
  });
}

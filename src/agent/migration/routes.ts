import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { MigrationId, Name } from '../../api/index.js';
import type { AgentCore } from '../core.js';
import { MigrationService, type MigrationServiceOptions } from './service.js';

/*
 * The agent's migration routes (contract: src/api/migration.ts). Mounted as a route plugin, so they
 * sit behind the agent's token check and its one error-to-HTTP mapping.
 */

const IdParams = z.object({ id: MigrationId });
const VmParams = z.object({ name: Name });

export function migrationRoutes(options: MigrationServiceOptions = {}) {
  return (app: FastifyInstance, core: AgentCore): void => {
    const moves = new MigrationService(core, options);
    app.addHook('onReady', () => moves.startHousekeeping(options.housekeeping));
    app.addHook('onClose', () => moves.stopHousekeeping());
    const id = (params: unknown) => IdParams.parse(params).id;

    app.post('/v1/migrations/plan', (request) => moves.plan(request.body));
    app.get('/v1/migrations', () => moves.list());
    // Target side.
    app.post('/v1/migrations/incoming', async (request, reply) =>
      reply.status(201).send(await moves.prepareIncoming(request.body)),
    );
    app.post('/v1/migrations/incoming/:id/abort', (request) => moves.abortIncoming(id(request.params)));
    app.post('/v1/migrations/incoming/:id/finish', (request) => moves.finishIncoming(id(request.params)));
    // Source side.
    app.post('/v1/migrations', async (request, reply) =>
      reply.status(202).send(await moves.startOutgoing(request.body)),
    );
    app.get('/v1/migrations/:id', (request) => moves.status(id(request.params)));
    app.post('/v1/migrations/:id/cancel', (request) => moves.cancel(id(request.params)));
    app.post('/v1/migrations/:id/complete', (request) => moves.complete(id(request.params), request.body));
    // Storage moves on this host.
    app.post('/v1/vms/:name/move-storage', async (request, reply) =>
      reply.status(202).send(await moves.moveStorage(VmParams.parse(request.params).name, request.body)),
    );
  };
}

import type { agentMigrationRoutes, RouteHandlers } from '../../api/index.js';
import type { AgentRoutePlugin } from '../server.js';
import { MigrationService, type MigrationServiceOptions } from './service.js';

/*
 * The agent's move routes (agentMigrationRoutes in src/api/agent-routes.ts). Mounted as a route
 * plugin, so they sit behind the agent's token check and its one error-to-HTTP mapping.
 */

export function migrationRoutes(options: MigrationServiceOptions = {}): AgentRoutePlugin {
  return (app, core): RouteHandlers<typeof agentMigrationRoutes> => {
    const moves = new MigrationService(core, options);
    app.addHook('onReady', () => moves.startHousekeeping());
    app.addHook('onClose', () => moves.stopHousekeeping());
    return {
      planMigration: ({ body }) => moves.plan(body),
      listMigrations: () => moves.list(),
      // Target side.
      prepareIncoming: ({ body }) => moves.prepareIncoming(body),
      abortIncoming: ({ params }) => moves.abortIncoming(params.id),
      finishIncoming: ({ params }) => moves.finishIncoming(params.id),
      // Source side.
      startMigration: ({ body }) => moves.startOutgoing(body),
      getMigration: ({ params }) => moves.status(params.id),
      cancelMigration: ({ params }) => moves.cancel(params.id),
      completeMigration: ({ params, body }) => moves.complete(params.id, body),
      // Storage moves on this host.
      moveStorage: ({ params, body }) => moves.moveStorage(params.name, body),
      // Retained copies (delta return moves).
      listRetained: () => moves.listRetained(),
      releaseRetained: ({ params }) => moves.releaseRetained(params.vmId),
      // Link probes (issue 27).
      openLinkSender: ({ body }) => moves.links.openSender(body),
      probeLink: ({ body }) => moves.links.receive(body),
    };
  };
}

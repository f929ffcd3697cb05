// Test support: the agent's real HTTP server (core, inventory and VM service on a temporary state
// dir, the move plugins mounted) with no QEMU: booting a guest fails. Requests go through
// Fastify's inject, so nothing listens. Shared by server.test.ts and fuzz.test.ts.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { AgentConfig, type ContractBreach } from '../api/index.js';
import { AgentCore } from './core.js';
import { HostInventory } from './host.js';
import { jsonLineLogger, type Logger } from './logger.js';
import { coldMoveRoutes } from './migration/cold.js';
import { migrationRoutes } from './migration/routes.js';
import { buildServer } from './server.js';
import { VmService } from './vm-service.js';

export interface TestAgent {
  /** The temporary directory: the state dir is its `state`. */
  dir: string;
  app: FastifyInstance;
  core: AgentCore;
  /** Serves the API on a loopback port (for a manager to join); its base URL. */
  listen(): Promise<string>;
  /** Every answer the server gave outside its route table (replies checked too): tests expect none. */
  breaches: ContractBreach[];
  /** Closes the server and removes the directory. */
  close(): Promise<void>;
}

/**
 * A ready agent server in a new temp dir named `prefix…`, answering to `token`; its one datastore
 * `ds1` (the default) is `datastoreSubdir` under the dir, or the dir itself.
 */
export async function startTestAgent(options: {
  token: string;
  prefix: string;
  datastoreSubdir?: string;
  /** The host's name (default `unit`). */
  hostName?: string;
  /** The agent's log (default: silent). */
  log?: Logger;
}): Promise<TestAgent> {
  const dir = await mkdtemp(path.join(tmpdir(), options.prefix));
  const config = AgentConfig.parse({
    hostName: options.hostName ?? 'unit',
    listen: { address: '127.0.0.1', port: 1 },
    token: options.token,
    fabricAddress: '127.0.0.1',
    stateDir: path.join(dir, 'state'),
    datastores: [{ name: 'ds1', path: path.join(dir, options.datastoreSubdir ?? ''), default: true }],
    // Its own directory, as the lab gives each host (the state dir inside it stays out of bounds).
    datastoreRoots: [dir],
    vswitches: [{ name: 'sw0', bridge: 'sbunit0' }],
    accelerator: 'tcg',
  });
  const log = options.log ?? jsonLineLogger('silent');
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
  const breaches: ContractBreach[] = [];
  const app = await buildServer(core, {
    token: options.token,
    log,
    routePlugins: [migrationRoutes(), coldMoveRoutes()],
    onContractBreach: (breach) => breaches.push(breach),
  });
  await app.ready();
  return {
    dir,
    app,
    core,
    async listen() {
      await app.listen({ host: '127.0.0.1', port: 0 });
      const address = app.server.address();
      if (typeof address !== 'object' || !address) throw new Error('not listening');
      return `http://127.0.0.1:${address.port}`;
    },
    breaches,
    close: async () => {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

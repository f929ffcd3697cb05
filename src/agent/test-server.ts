// Test support: the agent's real HTTP server (core, inventory and VM service on a temporary state
// dir, the move plugins mounted) with no QEMU: booting a guest fails. Requests go through
// Fastify's inject, so nothing listens. Shared by server.test.ts and fuzz.test.ts.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import http from 'node:http';
import {
  AgentConfig,
  agentSocketPath,
  type AgentConfigInput,
  type ContractBreach,
  type HttpEndpoint,
} from '../api/index.js';
import {
  CA_DAYS,
  certificateRequest,
  generateKey,
  issueCertificate,
  revocationList,
  selfSignedCertificate,
} from '../pki/index.js';
import { AgentCore } from './core.js';
import { HostInventory } from './host.js';
import { jsonLineLogger, type Logger } from './logger.js';
import { coldMoveRoutes } from './migration/cold.js';
import { migrationRoutes } from './migration/routes.js';
import { AgentPki } from './pki.js';
import { buildServer, followEnrollment, serveBreakGlass } from './server.js';
import { VmService } from './vm-service.js';

export interface TestAgent {
  /** The temporary directory: the state dir is its `state`. */
  dir: string;
  app: FastifyInstance;
  core: AgentCore;
  /**
   * Serves the API (HTTPS) on a loopback port for a manager to join: what `host add` takes, the
   * address and the agent's join token.
   */
  listen(): Promise<{ address: string; joinToken: string }>;
  /**
   * Serves the API (HTTPS) and enrolls the agent with a CA of the test's own, as a manager would:
   * the endpoint (mutual TLS, a manager's certificate) that reaches it as the manager does.
   */
  enrolled(): Promise<HttpEndpoint>;
  /** Serves the API on a break-glass unix socket in the dir (the token's way in); its endpoint. */
  listenBreakGlass(): Promise<HttpEndpoint>;
  /** Its enrollment: what the manager installed. */
  pki: AgentPki;
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
  /** The host's upgrade command (AgentConfig.upgrade; default none). */
  upgrade?: AgentConfigInput['upgrade'];
}): Promise<TestAgent> {
  const dir = await mkdtemp(path.join(tmpdir(), options.prefix));
  const config = AgentConfig.parse({
    hostName: options.hostName ?? 'unit',
    listen: { address: '127.0.0.1', port: 1 },
    breakGlassToken: options.token,
    fabricAddress: '127.0.0.1',
    stateDir: path.join(dir, 'state'),
    datastores: [{ name: 'ds1', path: path.join(dir, options.datastoreSubdir ?? ''), default: true }],
    // Its own directory, as the lab gives each host (the state dir inside it stays out of bounds).
    datastoreRoots: [dir],
    vswitches: [{ name: 'sw0', bridge: 'sbunit0' }],
    accelerator: 'tcg',
    ...(options.upgrade ? { upgrade: options.upgrade } : {}),
  });
  const log = options.log ?? jsonLineLogger('silent');
  const inventory = new HostInventory(config);
  await inventory.init();
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
  const pki = await AgentPki.open(config);
  const app = await buildServer(core, {
    token: options.token,
    pki,
    log,
    routePlugins: [migrationRoutes(), coldMoveRoutes()],
    onContractBreach: (breach) => breaches.push(breach),
  });
  followEnrollment(app, pki);
  await app.ready();
  const extraServers: http.Server[] = [];
  async function listen(): Promise<{ address: string; joinToken: string }> {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    if (typeof address !== 'object' || !address) throw new Error('not listening');
    const joinToken = await pki.joinToken();
    if (joinToken === undefined) throw new Error('the test agent is enrolled already');
    return { address: `127.0.0.1:${address.port}`, joinToken };
  }

  return {
    dir,
    app,
    core,
    pki,
    listen,
    async listenBreakGlass() {
      const socketPath = agentSocketPath(config.stateDir);
      extraServers.push(await serveBreakGlass(app, socketPath));
      return { baseUrl: 'http://agent', socketPath, token: options.token };
    },
    async enrolled() {
      const { address, joinToken } = await listen();
      const joinSecret = joinToken.split('.')[0];
      const caKey = await generateKey();
      const ca = {
        keyPem: caKey,
        certPem: await selfSignedCertificate({ keyPem: caKey, role: 'ca', name: 'test CA', days: CA_DAYS }),
      };
      const managerKey = await generateKey();
      const manager = await issueCertificate(ca, {
        csrPem: await certificateRequest(managerKey, 'manager', 'test-manager'),
        role: 'manager',
        name: 'test-manager',
        altNames: [],
      });
      const request = await pki.requestCertificate({ manager: false, joinSecret });
      const host = await issueCertificate(ca, {
        csrPem: request.csr,
        role: 'host',
        name: request.hostName,
        altNames: ['IP:127.0.0.1'],
      });
      await pki.installCertificate(
        { manager: false },
        {
          joinSecret,
          caCertificate: ca.certPem,
          certificate: host.certPem,
          crl: await revocationList(ca, [], 1),
        },
      );
      return {
        baseUrl: `https://${address}`,
        tls: { ca: ca.certPem, cert: manager.certPem, key: managerKey },
      };
    },
    breaches,
    close: async () => {
      for (const s of extraServers) {
        s.close();
        s.closeAllConnections();
      }
      await app.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

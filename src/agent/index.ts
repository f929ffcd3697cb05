// The host agent: one per KVM host. Runs the host's VMs as daemonized QEMU processes, its
// datastores and virtual switches, and serves the agent API (src/api/agent.ts) over HTTP.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { z } from 'zod';
import { describeZodError } from '../api/index.js';
import { startAgent } from './agent.js';
import { coldMoveRoutes } from './migration/cold.js';
import { migrationRoutes } from './migration/routes.js';

export { startAgent, qemuVersion, type AgentOptions, type RunningAgent } from './agent.js';
export type { AgentCore } from './core.js';
export type { AgentRoutePlugin } from './server.js';
export type { VmRuntime, StartOptions } from './vm-runtime.js';
export type { VmService } from './vm-service.js';
export type { VmDefinition } from './definitions.js';
export { chooseAccelerator, probeKvm, type AcceleratorChoice, type KvmProbeResult } from './accelerator.js';
export { problemFor } from './http-errors.js';
export * from './errors.js';
export { vmPaths, buildQemuArgv, MACHINE_TYPE, CPU_MODEL, type VmPaths } from './qemu-argv.js';
export { diskNodeName, diskDeviceId, netdevId, nicDeviceId } from './naming.js';

export { migrationRoutes } from './migration/routes.js';

export function registerAgentCommands(program: Command): void {
  program
    .command('agent')
    .description('run the host agent (as root): VMs, datastores, virtual switches and the agent API')
    .requiredOption('--config <file>', 'agent configuration (JSON, see AgentConfig in src/api/agent.ts)')
    .action(async (opts: { config: string }) => {
      // Everything the agent and its children (qemu-img, QEMU) create is owner-only: images,
      // logs, pidfiles, sockets, definitions (issue 28, row 8).
      process.umask(0o077);
      let raw: unknown;
      try {
        raw = JSON.parse(await readFile(opts.config, 'utf8'));
      } catch (error) {
        console.error(`silobreak agent: cannot read ${opts.config}: ${String(error)}`);
        process.exit(2);
      }
      let agent;
      try {
        agent = await startAgent(raw, {
          configFile: opts.config,
          routePlugins: [migrationRoutes(), coldMoveRoutes()],
        });
      } catch (error) {
        const detail =
          error instanceof z.ZodError ? `config ${describeZodError(error).detail}` : String(error);
        console.error(`silobreak agent: ${detail}`);
        process.exit(error instanceof z.ZodError ? 2 : 1);
      }
      const running = agent;
      // SIGTERM/SIGINT: stop serving and let go of QMP; the VMs keep running.
      const stop = () => {
        void running.close().then(() => process.exit(0));
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
}
export { LAB_BOOT_DEADLINE_MS, startLabAgent, waitForGuestAgent, type LabAgent } from './lab-agent.js';
export { startTestAgent, type TestAgent } from './test-server.js';

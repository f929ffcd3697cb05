// The host agent: one per KVM host. Runs the host's VMs as daemonized QEMU processes, its
// datastores and virtual switches, and serves the agent API (src/api/agent.ts) over HTTP.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { z } from 'zod';
import { describeZodError } from '../api/index.js';
import { AgentConfig } from '../api/index.js';
import { startAgent } from './agent.js';
import { AgentPki } from './pki.js';
import { coldMoveRoutes } from './migration/cold.js';
import { migrationRoutes } from './migration/routes.js';

export { startAgent, type AgentOptions, type RunningAgent } from './agent.js';
export { qemuVersion } from './versions.js';
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

async function readConfig(file: string, command: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    console.error(`silobreak ${command}: cannot read ${file}: ${String(error)}`);
    process.exit(2);
  }
}

export function registerAgentCommands(program: Command): void {
  program
    .command('agent-join-token')
    .description(
      "print this host's one-time join token for `silobreak host add` (as root, on the host; made on first use)",
    )
    .requiredOption('--config <file>', 'the agent configuration (JSON)')
    .option(
      '--leave',
      'drop the fabric certificate first (the host was removed, or joins another manager); restart the agent after',
    )
    .action(async (opts: { config: string; leave?: boolean }) => {
      process.umask(0o077);
      const parsed = AgentConfig.safeParse(await readConfig(opts.config, 'agent-join-token'));
      if (!parsed.success) {
        console.error(`silobreak agent-join-token: config ${describeZodError(parsed.error).detail}`);
        process.exit(2);
      }
      const pki = await AgentPki.open(parsed.data);
      if (opts.leave) await pki.leave();
      const token = await pki.joinToken();
      if (token === undefined) {
        const c = pki.certificate();
        console.error(
          `silobreak agent-join-token: this agent is enrolled (${c?.subject}, serial ${c?.serial}, valid until ${c?.notAfter}); ` +
            'to join it anew: silobreak agent-join-token --config <file> --leave, then restart the agent',
        );
        process.exit(3);
      }
      console.log(token);
    });
  program
    .command('agent')
    .description('run the host agent (as root): VMs, datastores, virtual switches and the agent API')
    .requiredOption('--config <file>', 'agent configuration (JSON, see AgentConfig in src/api/agent.ts)')
    .action(async (opts: { config: string }) => {
      // Everything the agent and its children (qemu-img, QEMU) create is owner-only: images,
      // logs, pidfiles, sockets, definitions (issue 28, row 8).
      process.umask(0o077);
      const raw = await readConfig(opts.config, 'agent');
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

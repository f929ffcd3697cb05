import { chmod, mkdir } from 'node:fs/promises';
import type http from 'node:http';
import { AgentConfig, agentSocketPath } from '../api/index.js';
import { findGuestImage, findToolsDisk, guestKernelCommandLine, GUEST_READY_MARKER } from '../guest/index.js';
import { persistDatastoresIn } from './datastore-admin.js';
import { chooseAccelerator, probeKvm, type AcceleratorChoice } from './accelerator.js';
import { AgentCore } from './core.js';
import { HostInventory } from './host.js';
import { agentVersion, qemuVersion } from './versions.js';
import { jsonLineLogger, type Logger, type LogLevel } from './logger.js';
import { HostLeases } from './leases.js';
import { AgentPki } from './pki.js';
import { buildServer, followEnrollment, serveBreakGlass, type AgentRoutePlugin } from './server.js';
import { VmService } from './vm-service.js';
import type { VmDefinition } from './definitions.js';
import type { GuestBoot } from './qemu-argv.js';

/* Puts one host agent together: configuration, accelerator, switches, VMs, HTTP server. */

export interface AgentOptions {
  logLevel?: LogLevel;
  log?: Logger;
  /** The configuration file: datastores added, changed or removed at runtime are kept in it. */
  configFile?: string;
  /** Extra routes mounted beside /v1 (e.g. the migration routes). */
  routePlugins?: readonly AgentRoutePlugin[];
}

export interface RunningAgent {
  core: AgentCore;
  /** Base URL of the API on the fabric, e.g. https://10.250.0.11:8470 */
  url: string;
  /** The break-glass unix socket (config breakGlassToken), when there is one. */
  socketPath: string | undefined;
  /** Stops serving and closes every QMP connection; the VMs keep running. */
  close(): Promise<void>;
}

const KVM_PROBE_DEADLINE_MS = 15_000;

async function guestBoot(def: Pick<VmDefinition, 'name' | 'guestIp' | 'guestGateway'>): Promise<GuestBoot> {
  const image = await findGuestImage();
  const append = guestKernelCommandLine({
    hostname: def.name,
    ...(def.guestIp === undefined ? {} : { ip: def.guestIp }),
    ...(def.guestGateway === undefined ? {} : { gateway: def.guestGateway }),
  });
  return { kernel: image.kernel, initrd: image.initrd, append };
}

async function pickAccelerator(config: AgentConfig, qemu: string, log: Logger): Promise<AcceleratorChoice> {
  let guestKernelVersion = 'none';
  if (config.accelerator === 'auto') {
    try {
      guestKernelVersion = (await findGuestImage()).kernelVersion;
    } catch (error) {
      // Without a guest image there is nothing to probe with; VMs cannot start either.
      return { accelerator: 'tcg', source: 'probe', warning: `KVM not probed: ${String(error)}` };
    }
  }
  return chooseAccelerator({
    setting: config.accelerator,
    stateDir: config.stateDir,
    qemuVersion: qemu,
    guestKernelVersion,
    probe: async () => {
      log.info('probing KVM with a guest boot', { deadlineMs: KVM_PROBE_DEADLINE_MS });
      const result = await probeKvm({
        boot: await guestBoot({ name: 'kvm-probe' }),
        readyMarker: GUEST_READY_MARKER,
        workDir: config.stateDir,
        deadlineMs: KVM_PROBE_DEADLINE_MS,
      });
      log.info('KVM probe finished', { ...result });
      return result;
    },
  });
}

export async function startAgent(input: unknown, options: AgentOptions = {}): Promise<RunningAgent> {
  const config = AgentConfig.parse(input);
  const log = options.log ?? jsonLineLogger(options.logLevel ?? 'info');
  // Owner-only, also when they existed with a looser mode: definitions, sockets, images.
  await mkdir(config.stateDir, { recursive: true, mode: 0o700 });
  await chmod(config.stateDir, 0o700);
  // A shared datastore is a mount of storage other hosts see: never made here, where a missing
  // mount would become an empty local directory with a storage id of its own.
  for (const d of config.datastores.filter((s) => s.kind === 'local'))
    await mkdir(d.path, { recursive: true, mode: 0o700 });

  const tools = await findToolsDisk();
  const versions = { agent: await agentVersion(), qemu: await qemuVersion(), tools: tools?.version };
  const accelerator = await pickAccelerator(config, versions.qemu, log);
  if (accelerator.warning) log.warn(accelerator.warning, { accelerator: accelerator.accelerator });
  log.info('accelerator chosen', { ...accelerator });

  const inventory = new HostInventory(
    config,
    options.configFile === undefined ? undefined : persistDatastoresIn(options.configFile),
  );
  await inventory.ensureSwitches();
  await inventory.init((msg, fields) => log.warn(msg, fields));
  const leases = config.sanlock
    ? new HostLeases(config.sanlock.runDir, (name) => inventory.datastore(name, 'datastore').path, log)
    : undefined;
  const vms = new VmService(inventory, {
    stateDir: config.stateDir,
    accelerator: accelerator.accelerator,
    boot: guestBoot,
    bridgeOf: (vswitch) => inventory.bridgeOf(vswitch),
    datastoreLimits: (name) => inventory.limitsOf(name),
    log,
    // Looked up at each use: a set-up run may have built a newer disk since the agent started.
    toolsIso: async () => (await findToolsDisk())?.iso,
    ...(leases
      ? { leasesFor: (def) => (leases.leased(def.disks, inventory.configured()) ? leases : undefined) }
      : {}),
  });
  await vms.init();
  const core = new AgentCore(config, inventory, vms, accelerator, versions, log, leases);

  const pki = await AgentPki.open(config);
  const app = await buildServer(core, {
    token: config.breakGlassToken,
    pki,
    log,
    routePlugins: options.routePlugins ?? [],
  });
  followEnrollment(app, pki);
  const socketPath = config.breakGlassToken === undefined ? undefined : agentSocketPath(config.stateDir);
  let breakGlass: http.Server | undefined;
  try {
    await app.listen({ host: config.listen.address, port: config.listen.port });
    if (socketPath !== undefined) breakGlass = await serveBreakGlass(app, socketPath);
  } catch (error) {
    await app.close();
    await vms.close();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.listen.port;
  const url = `https://${config.listen.address.includes(':') ? `[${config.listen.address}]` : config.listen.address}:${port}`;
  log.info('agent listening', {
    url,
    host: config.hostName,
    vms: vms.runtimes().length,
    ...(socketPath === undefined ? {} : { breakGlassSocket: socketPath }),
    ...(pki.enrolled ? { certificate: pki.certificate() } : {}),
  });
  if (!pki.enrolled)
    log.warn(
      'not enrolled in a fabric: print the join token on this host with `silobreak agent join-token --config <file>` and give it to `silobreak host add`',
    );
  return {
    core,
    url,
    socketPath,
    close: async () => {
      breakGlass?.close();
      breakGlass?.closeAllConnections();
      await app.close();
      await vms.close();
      log.info('agent stopped; VMs left running');
    },
  };
}

import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import {
  AgentClient,
  AgentConfig,
  agentSocketPath,
  DEFAULT_DATASTORE_CLASS,
  LAB_CLI_CONFIG_PATH,
  ManagerClient,
  type Vm,
} from '../api/index.js';
import {
  LabAlreadyUp,
  LabInvalidInput,
  LabNeedsRoot,
  LabNotFound,
  LabProcessFailed,
  LabTargetNotFound,
  LabTimeout,
} from './errors.js';
import {
  anyLabLink,
  anyLabNamespace,
  CLIENT_IF,
  HOST_FABRIC_IF,
  HOST_UPLINK_IF,
  HOST_VSWITCH,
  LabName,
  labTag,
  linkPattern,
  MAX_HOSTS,
  namespacePattern,
  planLab,
  PlanInput,
  vmAddress,
  type HostPlan,
  type LabPlan,
} from './plan.js';
import {
  joinHosts,
  managerAnswers,
  reconcileHosts,
  removeCliConfig,
  spawnManager,
  startAnotherManager,
  startManager,
  writeCliConfig,
  type LabManagerProcess,
} from './manager-process.js';
import { findLabProcesses, isAlive, spawnDetached, terminate, waitUntilAnswers } from './processes.js';
import {
  mountSharedStorage,
  remountSharedStorage,
  sanlockRunDir,
  sharedMountPath,
  startSanlock,
  startLabWatchdog,
  startStorageServer,
  unmountLabStorage,
} from './shared-storage.js';
import {
  claimIndex,
  indexClaims,
  labDir,
  labDirNames,
  readState,
  removeLabFiles,
  removeUnownedClaims,
  writeState,
  type LabHostState,
  type LabState,
} from './store.js';
import {
  check,
  ip,
  listLinks,
  listNamespaces,
  nsIp,
  pingFrom,
  run,
  sleep,
  type RunResult,
} from './system.js';

/** The name of the lab's shared datastore on every host (`lab up --shared-storage`). */
export const SHARED_DATASTORE = 'shared';
const BIN = path.resolve(import.meta.dirname, '..', '..', 'bin', 'silobreak.js');
/** Agents may run a KVM boot probe before they answer; TCG guests on 2 busy cores boot slowly. */
const AGENT_READY_TIMEOUT_MS = 180_000;
const VM_PING_TIMEOUT_MS = 300_000;
const GiB = 1024 ** 3;

export type LabHost = LabHostState;

/** A lab as `labUp` and `labStatus` give it: its state plus a helper to pick VM addresses. */
export interface Lab extends LabState {
  /** The n-th VM address (from 1) on the lab's VM segment: 10.251.<index>.(100+n). */
  vmAddress(n: number): { ip: string; cidr: string };
}

const toLab = (state: LabState): Lab => ({ ...state, vmAddress: (n) => vmAddress(state.index, n) });

export const LabUpOptions = z
  .object({
    name: LabName.default('lab'),
    hosts: z
      .number({ error: 'must be a number' })
      .int('must be a whole number')
      .min(1, 'must be at least 1')
      .max(MAX_HOSTS, `must be at most ${MAX_HOSTS}`)
      .default(3),
    demo: z.boolean().default(true),
    accelerator: z.enum(['auto', 'kvm', 'tcg']).default('auto'),
    /** More datastores on every host besides the default `local` (e.g. for storage moves). */
    extraDatastores: z.array(LabName).default([]),
    /**
     * Shared datastores (kind `shared`): one directory of the lab's, `shared-<name>`, that every
     * host configures under that name. All lab namespaces see one filesystem, so it stands in for
     * network storage every host mounts (moves between the hosts leave such disks in place).
     */
    sharedDatastores: z.array(LabName).default([]),
    /** The host with fast storage (class `fast`, no limits); every other host's datastores are limited. */
    beast: PlanInput.shape.beast,
    /**
     * A storage server on the fabric that every host mounts as its `shared` datastore, and a
     * sanlock daemon per host (issue 30: clusters; see shared-storage.ts).
     */
    sharedStorage: z.boolean().default(false),
    /** With sharedStorage: only the first this many hosts mount it (the others stay standalone); all by default. */
    sharedStorageHosts: z.number().int().min(1).max(MAX_HOSTS).optional(),
    /** Start the lab's manager on 127.0.0.1 and join the hosts to it. */
    manager: z.boolean().default(true),
    /**
     * The database of the lab's managers, as their `--database` (issue 31: a postgres:// URL, or a
     * primary's and its standbys' joined by commas); absent: the SQLite file in the manager's data dir.
     */
    managerDatabase: z.string().min(1).optional(),
    /** Point the CLI at this lab's manager (LAB_CLI_CONFIG_PATH); the `lab up` command does. */
    cliConfig: z.boolean().default(false),
    /** Aborting stops `labUp` at its next step, and it removes what it created (Ctrl-C in the CLI). */
    signal: z.instanceof(AbortSignal).optional(),
    /** Progress lines for people; silent when absent. */
    log: z.custom<(line: string) => void>((v) => typeof v === 'function').optional(),
  })
  .superRefine((o, ctx) => {
    if (o.beast !== undefined && Number(o.beast.slice('host'.length)) > o.hosts)
      ctx.addIssue({
        code: 'custom',
        path: ['beast'],
        message: `the lab has host1 to host${o.hosts}, not ${o.beast}`,
      });
  });
export type LabUpOptions = z.input<typeof LabUpOptions>;

/** Validates input; `field` names a bare value, whose zod issues carry no path. */
function parse<T extends z.ZodType>(schema: T, input: unknown, field?: string): z.output<T> {
  const result = schema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.map(String).join('.');
    throw new LabInvalidInput(where || field, issue?.message ?? 'invalid input');
  }
  return result.data;
}

function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new LabNeedsRoot();
}

/**
 * The storage namespace on the fabric with its file server; each host's mount of it and its
 * sanlock daemon (shared-storage.ts). Mounted before the agents start: an agent's namespace gets a
 * copy of the mounts that exist when it starts.
 */
async function buildSharedStorage(state: LabState, plan: LabPlan, hostCount: number): Promise<void> {
  const { namespace, veth, address } = plan.storage;
  await ip('netns', 'add', namespace);
  await nsIp(namespace, 'link', 'set', 'lo', 'up');
  await ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', HOST_FABRIC_IF, 'netns', namespace);
  if (existsSync('/proc/sys/net/ipv6')) await writeFile(`/proc/sys/net/ipv6/conf/${veth}/disable_ipv6`, '1');
  await ip('link', 'set', veth, 'master', plan.fabric.bridge, 'up');
  await nsIp(namespace, 'addr', 'add', `${address}/${plan.fabric.prefixLength}`, 'dev', HOST_FABRIC_IF);
  await nsIp(namespace, 'link', 'set', HOST_FABRIC_IF, 'up');
  const exportDir = path.join(state.dir, 'storage', 'export');
  const pid = await startStorageServer({
    namespace,
    address,
    exportDir,
    logPath: path.join(state.dir, 'storage', 'server.log'),
  });
  state.storage = { namespace, veth, address, exportDir, pid };
  for (const host of state.hosts.slice(0, hostCount)) {
    await mkdir(host.dir, { recursive: true });
    const mountPath = sharedMountPath(state.name, host.name);
    await mountSharedStorage({ namespace: host.namespace, serverAddress: address, exportDir, mountPath });
    const runDir = sanlockRunDir(host.dir);
    const sanlockPid = await startSanlock({
      namespace: host.namespace,
      host: host.name,
      runDir,
      logPath: path.join(host.dir, 'sanlock.log'),
    });
    startLabWatchdog({
      host: host.name,
      runDir,
      mountPath,
      logPath: path.join(host.dir, 'watchdog.log'),
    });
    host.shared = { mountPath, sanlockRunDir: runDir, sanlockPid };
  }
}

/** Builds the lab's bridges, namespaces and veths (see plan.ts for the names). */
async function buildNetwork(plan: LabPlan): Promise<void> {
  // The root namespace gets the fabric address only: no IPv6 link-local addresses on any lab link
  // (unless the kernel has no IPv6 at all).
  const ipv6 = existsSync('/proc/sys/net/ipv6');
  const rootLink = async (name: string, ...add: string[]) => {
    await ip('link', 'add', name, ...add);
    if (ipv6) await writeFile(`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`, '1');
  };
  await rootLink(plan.fabric.bridge, 'type', 'bridge');
  await ip(
    'addr',
    'add',
    `${plan.fabric.rootAddress}/${plan.fabric.prefixLength}`,
    'dev',
    plan.fabric.bridge,
  );
  await ip('link', 'set', plan.fabric.bridge, 'up');
  await rootLink(plan.vmNet.bridge, 'type', 'bridge');
  await ip('link', 'set', plan.vmNet.bridge, 'up');

  const addNamespace = async (namespace: string) => {
    await ip('netns', 'add', namespace);
    await nsIp(namespace, 'link', 'set', 'lo', 'up');
  };
  /** A veth from a root bridge into a namespace, with an optional address on the inner end. */
  const connect = async (
    rootEnd: string,
    bridge: string,
    namespace: string,
    inner: string,
    address?: string,
  ) => {
    await rootLink(rootEnd, 'type', 'veth', 'peer', 'name', inner, 'netns', namespace);
    await ip('link', 'set', rootEnd, 'master', bridge, 'up');
    if (address) await nsIp(namespace, 'addr', 'add', address, 'dev', inner);
    await nsIp(namespace, 'link', 'set', inner, 'up');
  };

  for (const host of plan.hosts) {
    await addNamespace(host.namespace);
    const fabricCidr = `${host.fabricAddress}/${plan.fabric.prefixLength}`;
    await connect(host.fabricVeth, plan.fabric.bridge, host.namespace, HOST_FABRIC_IF, fabricCidr);
    // The inner end becomes the uplink of the agent's vmsw0 bridge: no address of its own.
    await connect(host.uplinkVeth, plan.vmNet.bridge, host.namespace, HOST_UPLINK_IF);
    if (ipv6) {
      await check([
        'ip',
        'netns',
        'exec',
        host.namespace,
        'sysctl',
        '-qw',
        `net.ipv6.conf.${HOST_UPLINK_IF}.disable_ipv6=1`,
      ]);
    }
  }
  await addNamespace(plan.client.namespace);
  const clientCidr = `${plan.client.address}/${plan.vmNet.prefixLength}`;
  await connect(plan.client.veth, plan.vmNet.bridge, plan.client.namespace, CLIENT_IF, clientCidr);
}

function hostState(dir: string, token: string, host: LabPlan['hosts'][number]): LabHostState {
  const hostDir = path.join(dir, host.name);
  return {
    name: host.name,
    namespace: host.namespace,
    fabricAddress: host.fabricAddress,
    agentUrl: host.agentUrl,
    token,
    fabricVeth: host.fabricVeth,
    uplinkVeth: host.uplinkVeth,
    dir: hostDir,
    configPath: path.join(hostDir, 'agent.json'),
    logPath: path.join(hostDir, 'agent.log'),
    datastorePath: path.join(hostDir, 'datastore'),
    stateDir: path.join(hostDir, 'state'),
  };
}

async function startAgent(
  host: LabHostState,
  accelerator: LabState['accelerator'],
  extraDatastores: string[],
  storage: HostPlan['storage'],
  shared: { name: string; path: string }[] = [],
): Promise<number> {
  const extra = extraDatastores.map((name) => ({
    name,
    path: path.join(host.dir, `datastore-${name}`),
    ...storage,
  }));
  const config: AgentConfig = AgentConfig.parse({
    hostName: host.name,
    listen: { address: host.fabricAddress, port: Number(new URL(host.agentUrl).port) },
    // The lab reaches its agents on their break-glass sockets too (status, demo VMs, tests).
    breakGlassToken: host.token,
    fabricAddress: host.fabricAddress,
    stateDir: host.stateDir,
    datastores: [
      { name: 'local', path: host.datastorePath, default: true, ...storage },
      ...extra,
      ...shared.map((d) => ({ ...d, kind: 'shared' as const })),
      // `lab up --shared-storage`: the storage every host mounts (shared-storage.ts).
      ...(host.shared
        ? [{ name: SHARED_DATASTORE, path: host.shared.mountPath, kind: 'shared' as const }]
        : []),
    ],
    ...(host.shared ? { sanlock: { runDir: host.shared.sanlockRunDir } } : {}),
    // The host's own directory: `datastore add` may make datastores there, beside its state dir.
    datastoreRoots: [host.dir],
    vswitches: [{ name: HOST_VSWITCH, bridge: HOST_VSWITCH, uplink: HOST_UPLINK_IF }],
    accelerator,
  } satisfies z.input<typeof AgentConfig>);
  for (const dir of [host.datastorePath, ...extra.map((d) => d.path)]) await mkdir(dir, { recursive: true });
  await mkdir(host.stateDir, { recursive: true });
  await writeFile(host.configPath, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  return spawnAgent(host);
}

/**
 * `silobreak`'s arguments that run an agent on `configPath`: the lab's hosts and the shipped
 * systemd unit (deploy/silobreak-agent.service, checked by src/deploy.test.ts) start it alike.
 */
export const agentArgs = (configPath: string): string[] => ['agent', '--config', configPath];

/** The host's agent in its namespace, on its config, logging beside it; returns its pid. */
function spawnAgent(host: Pick<LabHostState, 'namespace' | 'configPath' | 'logPath'>): number {
  const command = [
    'ip',
    'netns',
    'exec',
    host.namespace,
    process.execPath,
    BIN,
    ...agentArgs(host.configPath),
  ];
  return spawnDetached(command, host.logPath);
}

/**
 * Starts a lab host's agent again after it was killed (fault tests), as `lab up` started it; the
 * host's pid is updated. `lab down` finds it by its config path like the first one.
 */
export function restartLabAgent(host: LabHost): number {
  host.pid = spawnAgent(host);
  return host.pid;
}

/**
 * A lab host back from a reset (its storage client killed by the lab's watchdog): its storage is
 * mounted again and its agent restarted on it, as a rebooted host comes up.
 */
export async function rebootLabHostStorage(lab: Lab, host: LabHost): Promise<void> {
  if (!host.shared || !lab.storage) throw new LabInvalidInput('host', `${host.name} has no shared storage`);
  if (host.pid !== undefined) await terminate([host.pid]);
  await remountSharedStorage({
    namespace: host.namespace,
    serverAddress: lab.storage.address,
    exportDir: lab.storage.exportDir,
    mountPath: host.shared.mountPath,
  });
  // A host that lost power lost its sanlock daemon too: it starts again with the host.
  if (!(await isAlive(host.shared.sanlockPid)))
    host.shared.sanlockPid = await startSanlock({
      namespace: host.namespace,
      host: host.name,
      runDir: host.shared.sanlockRunDir,
      logPath: path.join(host.dir, 'sanlock.log'),
    });
  restartLabAgent(host);
}

/** Starts a lab's manager again on its data after it was killed (fault tests); returns its pid. */
export function restartLabManager(lab: Lab): number {
  if (!lab.manager) throw new LabInvalidInput('manager', 'this lab has no manager');
  lab.manager.pid = spawnManager(lab.manager, BIN);
  return lab.manager.pid;
}

/**
 * Starts another manager process on the lab manager's database (issue 31: several managers, one
 * leader), named `name`, on its own loopback port; resolves once it answers.
 */
export function startLabManager(lab: Lab, name: string): Promise<LabManagerProcess> {
  return startAnotherManager(lab, name, BIN);
}

/**
 * A lab host's agent on its break-glass socket (the lab's token): the lab's own way in, and its
 * tests'. The manager, as everywhere, calls agents over mutual TLS.
 */
export const breakGlassClient = (
  host: Pick<LabHostState, 'stateDir' | 'token'>,
  timeoutMs?: number,
): AgentClient =>
  new AgentClient(
    { baseUrl: 'http://agent', socketPath: agentSocketPath(host.stateDir), token: host.token },
    timeoutMs,
  );

/** Waits until the agent answers GET /v1/host (an agent may first run a KVM boot probe). */
function waitForAgent(host: LabHostState, signal: AbortSignal | undefined) {
  const client = breakGlassClient(host, 3000);
  return waitUntilAnswers({
    what: `agent of ${host.name}`,
    pid: host.pid,
    logPath: host.logPath,
    timeoutMs: AGENT_READY_TIMEOUT_MS,
    probe: () => client.host(),
    signal,
  });
}

/** Waits until `address` answers ping from the lab's client namespace. */
export async function waitForPing(
  lab: Pick<LabState, 'client'>,
  address: string,
  timeoutMs = VM_PING_TIMEOUT_MS,
  signal?: AbortSignal,
) {
  const deadline = Date.now() + timeoutMs;
  while (!(await pingFrom(lab.client.namespace, address))) {
    signal?.throwIfAborted();
    if (Date.now() > deadline)
      throw new LabTimeout(`ping of ${address} from the client namespace`, timeoutMs / 1000);
  }
}

async function startDemoVm(
  state: LabState,
  host: LabHostState,
  n: number,
): Promise<LabState['demoVms'][number]> {
  const address = vmAddress(state.index, n);
  const name = `demo-${n}`;
  const spec = {
    name,
    vcpus: 1,
    memoryMiB: 256,
    disks: [{ sizeBytes: 1 * GiB }],
    nics: [{ vswitch: HOST_VSWITCH }],
    guestIp: address.cidr,
    start: true,
  };
  if (state.manager) {
    // Through the manager, as a user makes a VM: made behind its back, it would be drift.
    const api = new ManagerClient(state.manager.url, state.manager.token, 60_000);
    const { job } = await api.createVm({ host: host.name, spec });
    const done = await api.waitForJob(job.id, 300_000);
    if (done.state !== 'succeeded')
      throw new LabProcessFailed(`demo VM ${name} on ${host.name}:`, done.error?.detail ?? done.state, '');
  } else await breakGlassClient(host).createVm(spec);
  return { name, host: host.name, ip: address.ip };
}

/**
 * Brings a lab up: network, one agent per host, and (unless `demo: false`) one small VM per host
 * that answers ping from the client namespace. Leftovers of a crashed lab of the same name are
 * removed first; on failure everything created is removed again and the error rethrown.
 */
export async function labUp(options: LabUpOptions = {}): Promise<Lab> {
  const opts = parse(LabUpOptions, options);
  requireRoot();
  const started = Date.now();
  // Each line says how far in it is, so slow steps show (and lab up is measured step by step).
  const log = (line: string) =>
    opts.log?.(`lab ${opts.name} [${((Date.now() - started) / 1000).toFixed(1)} s]: ${line}`);
  const existing = await readState(opts.name);
  if (existing) {
    const alive = await Promise.all(existing.hosts.map((h) => (h.pid ? isAlive(h.pid) : false)));
    if (alive.includes(true)) throw new LabAlreadyUp(opts.name);
  }
  await labDown({ name: opts.name });

  const index = await claimIndex(opts.name);
  const plan = planLab({ name: opts.name, index, hosts: opts.hosts, beast: opts.beast });
  const dir = labDir(opts.name);
  const token = randomBytes(24).toString('hex');
  const state: LabState = {
    version: 1,
    name: plan.name,
    index,
    tag: plan.tag,
    dir,
    token,
    createdAt: new Date().toISOString(),
    accelerator: opts.accelerator,
    fabric: { bridge: plan.fabric.bridge, subnet: plan.fabric.subnet, rootAddress: plan.fabric.rootAddress },
    vmNet: { bridge: plan.vmNet.bridge, subnet: plan.vmNet.subnet },
    client: plan.client,
    hosts: plan.hosts.map((h) => hostState(dir, token, h)),
    demoVms: [],
    hostAccelerators: {},
  };
  try {
    await writeState(state);
    log(`network (fabric ${plan.fabric.subnet}, VM segment ${plan.vmNet.subnet})`);
    await buildNetwork(plan);
    opts.signal?.throwIfAborted();
    if (opts.sharedStorage) {
      log(`shared storage on ${plan.storage.address}, mounted by every host, and a sanlock daemon per host`);
      await buildSharedStorage(state, plan, opts.sharedStorageHosts ?? state.hosts.length);
      await writeState(state);
    }

    log(`starting ${state.hosts.length} agents`);
    if (opts.beast) log(`${opts.beast} is the Beast; the other hosts' datastores are limited`);
    // Made here, once: an agent never makes a shared datastore (a missing mount is an error).
    const shared = opts.sharedDatastores.map((name) => ({ name, path: path.join(dir, `shared-${name}`) }));
    for (const d of shared) await mkdir(d.path, { recursive: true, mode: 0o700 });
    if (shared.length) log(`shared datastores ${shared.map((d) => d.name).join(', ')} on every host`);
    for (const [i, host] of state.hosts.entries()) {
      await mkdir(host.dir, { recursive: true });
      const storage = plan.hosts[i]?.storage ?? { class: DEFAULT_DATASTORE_CLASS };
      host.pid = await startAgent(host, opts.accelerator, opts.extraDatastores, storage, shared);
    }
    if (opts.manager) {
      log(`starting the manager on ${plan.managerUrl}`);
      state.manager = await startManager(state, plan.managerUrl, BIN, opts.managerDatabase);
    }
    await writeState(state);
    const infos = await Promise.all(state.hosts.map((h) => waitForAgent(h, opts.signal)));
    for (const info of infos) {
      state.hostAccelerators[info.name] = {
        accelerator: info.accelerator,
        ...(info.acceleratorWarning ? { warning: info.acceleratorWarning } : {}),
      };
    }
    await writeState(state);
    log(`agents answer (accelerator: ${[...new Set(infos.map((i) => i.accelerator))].join(', ')})`);
    if (state.manager) {
      await joinHosts(state, state.manager, BIN, opts.signal);
      log(`hosts joined to the manager`);
    }

    if (opts.demo) {
      opts.signal?.throwIfAborted();
      log(`starting ${state.hosts.length} demo VMs`);
      state.demoVms = await Promise.all(state.hosts.map((h, i) => startDemoVm(state, h, i + 1)));
      await writeState(state);
      log('waiting until the demo VMs answer ping from the client namespace');
      await Promise.all(
        state.demoVms.map((vm) => waitForPing(state, vm.ip, VM_PING_TIMEOUT_MS, opts.signal)),
      );
      if (state.manager) await reconcileHosts(state, state.manager);
    }
    if (state.manager && opts.cliConfig) {
      const labs = await writeCliConfig(state.name, state.manager);
      log(
        labs.length > 1
          ? `the CLI now uses this lab's manager (labs up: ${labs.join(', ')}; --lab <lab> or silobreak lab use <lab> picks another)`
          : `the CLI uses this lab's manager (${LAB_CLI_CONFIG_PATH})`,
      );
    }
    log('up');
    return toLab(state);
  } catch (error) {
    log(`failed, removing what was created`);
    await labDown({ name: opts.name });
    throw error;
  }
}

export const LabDownOptions = z
  .object({ name: LabName.optional(), all: z.boolean().default(false) })
  .refine((o) => !(o.all && o.name !== undefined), { message: 'give either name or all, not both' });
export type LabDownOptions = z.input<typeof LabDownOptions>;

export interface LabDownReport {
  name: string;
  killedPids: number[];
  namespaces: string[];
  links: string[];
}

/** Deletes the root-namespace links matching `pattern`, waiting for veths the kernel removes itself. */
async function removeLinks(pattern: RegExp): Promise<string[]> {
  const removed = new Set<string>();
  const deadline = Date.now() + 15_000;
  for (;;) {
    const left = (await listLinks()).filter((l) => pattern.test(l));
    if (left.length === 0) return [...removed];
    if (Date.now() > deadline) throw new LabTimeout(`removal of links ${left.join(', ')}`, 15);
    for (const link of left) {
      // A veth whose namespace end was just destroyed may vanish between listing and deleting.
      await run(['ip', 'link', 'delete', link]);
      removed.add(link);
    }
    await sleep(100);
  }
}

async function downOne(name: string): Promise<LabDownReport> {
  const state = await readState(name);
  const dir = labDir(name);
  const namespaces = (await listNamespaces()).filter((ns) => namespacePattern(name).test(ns));
  const knownPids = [...(state?.hosts ?? []).map((h) => h.pid), state?.manager?.pid].filter(
    (pid): pid is number => pid !== undefined,
  );
  // Mounts first: a process blocked on a mount whose host link is cut dies only once it is detached.
  await unmountLabStorage(name);
  const killedPids = await findLabProcesses({ namespaces, dir, knownPids });
  await terminate(killedPids);
  await removeCliConfig(name);
  for (const ns of namespaces) await ip('netns', 'delete', ns);
  const links = await removeLinks(linkPattern(labTag(name)));
  await removeLabFiles(name);
  return { name, killedPids, namespaces, links };
}

/** Names of all labs with any trace: a directory, an index claim or a namespace. */
export async function discoverLabs(): Promise<string[]> {
  const names = new Set(await labDirNames());
  for (const owner of (await indexClaims()).values()) if (LabName.safeParse(owner).success) names.add(owner);
  for (const ns of await listNamespaces()) {
    const m = anyLabNamespace.exec(ns);
    if (m?.[1]) names.add(m[1]);
  }
  return [...names].sort();
}

/**
 * Removes a lab (or with `all`, every lab): its processes (agents, QEMU, manager), namespaces,
 * bridges, veths and files. Works from the names alone when the state file is missing or stale,
 * and does nothing when there is nothing left, so it can run any number of times.
 */
export async function labDown(options: LabDownOptions = {}): Promise<LabDownReport[]> {
  const opts = parse(LabDownOptions, options);
  requireRoot();
  if (!opts.all) return [await downOne(opts.name ?? 'lab')];
  const reports: LabDownReport[] = [];
  for (const name of await discoverLabs()) reports.push(await downOne(name));
  await removeUnownedClaims();
  // Links whose lab name cannot be recovered (hashed tags of long names whose state is gone).
  const orphans = await removeLinks(anyLabLink);
  if (orphans.length) reports.push({ name: '(unknown)', killedPids: [], namespaces: [], links: orphans });
  return reports;
}

export interface LabVmStatus {
  name: string;
  state: Vm['state'];
  ip: string | undefined;
}
export interface LabHostStatus extends LabHost {
  agentUp: boolean;
  accelerator: string | undefined;
  acceleratorWarning: string | undefined;
  error: string | undefined;
  vms: LabVmStatus[];
}
export interface LabStatus {
  lab: Lab;
  hosts: LabHostStatus[];
  /** Whether the lab's manager answers (false when the lab has none). */
  managerUp: boolean;
}

async function hostStatus(host: LabHost): Promise<LabHostStatus> {
  const client = breakGlassClient(host, 3000);
  try {
    const [info, vms] = await Promise.all([client.host(), client.listVms()]);
    return {
      ...host,
      agentUp: true,
      accelerator: info.accelerator,
      acceleratorWarning: info.acceleratorWarning,
      error: undefined,
      vms: vms.map((vm) => ({ name: vm.name, state: vm.state, ip: vm.guestIp?.split('/')[0] })),
    };
  } catch (error) {
    return {
      ...host,
      agentUp: false,
      accelerator: undefined,
      acceleratorWarning: undefined,
      error: error instanceof Error ? error.message : String(error),
      vms: [],
    };
  }
}

/** The lab's hosts, whether their agents answer, and the VMs they run. */
export async function labStatus(name = 'lab'): Promise<LabStatus> {
  parse(LabName, name, 'name');
  const state = await readState(name);
  if (!state) throw new LabNotFound(name);
  const [hosts, managerUp] = await Promise.all([
    Promise.all(state.hosts.map(hostStatus)),
    state.manager ? managerAnswers(state.manager) : Promise.resolve(false),
  ]);
  return { lab: toLab(state), hosts, managerUp };
}

export interface LabSummary {
  name: string;
  /** Null for the traces of a lab without a readable state file (`lab down` removes them). */
  index: number | null;
  hosts: number;
  agentsRunning: number;
  managerUrl: string | null;
}

/** Every lab on this machine, including the leftovers of crashed ones. */
export async function labList(): Promise<LabSummary[]> {
  return Promise.all(
    (await discoverLabs()).map(async (name) => {
      const state = await readState(name);
      const running = await Promise.all((state?.hosts ?? []).map((h) => (h.pid ? isAlive(h.pid) : false)));
      return {
        name,
        index: state?.index ?? null,
        hosts: state?.hosts.length ?? 0,
        agentsRunning: running.filter(Boolean).length,
        managerUrl: state?.manager?.url ?? null,
      };
    }),
  );
}

export const LabExecTarget = z
  .string()
  .regex(/^(client|host[0-9]+)$/, "must be 'client' or a host name like 'host1'");

/**
 * Runs a command inside one of the lab's namespaces. With `inherit` the command shares our stdio
 * (for people); otherwise its output is captured and returned.
 */
export async function labExec(options: {
  name?: string;
  target: string;
  command: string[];
  inherit?: boolean;
}): Promise<RunResult> {
  const name = parse(LabName, options.name ?? 'lab', 'name');
  const target = parse(LabExecTarget, options.target, 'target');
  if (options.command.length === 0) throw new LabInvalidInput('command', 'must name a command to run');
  requireRoot();
  const namespace = `sb-${name}-${target}`;
  if (!(await listNamespaces()).includes(namespace)) throw new LabTargetNotFound(name, target);
  return run(['ip', 'netns', 'exec', namespace, ...options.command], { inherit: options.inherit ?? false });
}

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  addContext,
  CliConfigFile,
  LAB_CLI_CONFIG_PATH,
  ManagerClient,
  removeContext,
} from '../api/index.js';
import { spawnDetached, waitUntilAnswers } from './processes.js';
import type { LabState } from './store.js';

const run = promisify(execFile);

/*
 * The lab's manager: `silobreak manager` in the root namespace on 127.0.0.1 (it reaches the agents
 * through the fabric bridge's root address), data and log in the lab directory, with an admin
 * token the lab generates so it can join the hosts and hand the token to people.
 */

const MANAGER_READY_TIMEOUT_MS = 120_000;

type ManagerState = NonNullable<LabState['manager']>;

export async function startManager(
  state: LabState,
  url: string,
  bin: string,
  database?: string,
): Promise<ManagerState> {
  const dataDir = path.join(state.dir, 'manager');
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const token = `sb_${randomBytes(32).toString('base64url')}`;
  const tokenFile = path.join(dataDir, 'lab-admin-token');
  await writeFile(tokenFile, token + '\n', { mode: 0o600 });
  const logPath = path.join(state.dir, 'manager.log');
  const manager = { url, dataDir, logPath, ...(database !== undefined ? { database } : {}) };
  const pid = spawnManager(manager, bin);
  return { ...manager, token, pid };
}

/**
 * `silobreak manager` on the lab's data and token file, logging to `logPath`. `as` starts another
 * manager of the same database (issue 31): its own name and listening address.
 */
export function spawnManager(
  manager: Pick<ManagerState, 'url' | 'dataDir' | 'logPath' | 'database'>,
  bin: string,
  as?: { name: string; listen: string },
): number {
  const tokenFile = path.join(manager.dataDir, 'lab-admin-token');
  const listen = as?.listen ?? new URL(manager.url).host;
  // A short reconcile interval: people watch the lab change while they work with it.
  const command = [process.execPath, bin, 'manager', '--data-dir', manager.dataDir, '--listen', listen];
  if (manager.database !== undefined) command.push('--database', manager.database);
  if (as) command.push('--name', as.name);
  return spawnDetached([...command, '--token-file', tokenFile, '--reconcile-interval', '5'], manager.logPath);
}

/** Another manager process of a lab (issue 31: several managers on one database, one leading). */
export interface LabManagerProcess {
  name: string;
  url: string;
  pid: number;
  logPath: string;
}

/**
 * Starts another manager on the lab manager's database and data dir (its CA and admin token),
 * named `name`, on a free loopback port; resolves once it answers. `lab down` stops it with the
 * lab's other processes (its command line names the lab's directory).
 */
export async function startAnotherManager(
  state: LabState,
  name: string,
  bin: string,
): Promise<LabManagerProcess> {
  const manager = state.manager;
  if (!manager) throw new Error('the lab has no manager whose database another could share');
  const logPath = path.join(state.dir, `manager-${name}.log`);
  // Appended to (an earlier run's lines stay for a look after a failure): this run's start on.
  const from = await stat(logPath).then(
    (s) => s.size,
    () => 0,
  );
  const pid = spawnManager({ ...manager, logPath }, bin, { name, listen: '127.0.0.1:0' });
  const url = await waitUntilAnswers({
    what: `manager ${name}`,
    pid,
    logPath,
    timeoutMs: MANAGER_READY_TIMEOUT_MS,
    probe: async () => {
      // Its port is known once it says where it listens.
      const m = /listening on (http:\/\/\S+)\/api\/v1/.exec(
        (await readFile(logPath)).subarray(from).toString(),
      );
      if (!m?.[1]) throw new Error('not listening yet');
      await new ManagerClient(m[1], manager.token, 3000).info();
      return m[1];
    },
  });
  return { name, url, pid, logPath };
}

/** Waits for the manager's API, then joins every host of the lab into a pool named after the lab. */
/**
 * A host's join token, as a user gets it on the host: `silobreak agent-join-token --config`.
 */
async function joinTokenOf(bin: string, configPath: string): Promise<string> {
  const { stdout } = await run(process.execPath, [bin, 'agent-join-token', '--config', configPath]);
  return stdout.trim();
}

export async function joinHosts(
  state: LabState,
  manager: ManagerState,
  bin: string,
  signal?: AbortSignal,
): Promise<void> {
  const client = new ManagerClient(manager.url, manager.token, 5000);
  await waitUntilAnswers({
    what: 'the manager',
    pid: manager.pid,
    logPath: manager.logPath,
    timeoutMs: MANAGER_READY_TIMEOUT_MS,
    probe: () => client.info(),
    signal,
  });
  await client.createPool({ name: state.name, description: `hosts of lab ${state.name}` });
  for (const host of state.hosts) {
    // Enrolled as on real hosts (README "Your own hosts"): the token from the host, host add.
    const joinToken = await joinTokenOf(bin, host.configPath);
    await client.addHost({ address: new URL(host.agentUrl).host, joinToken, pool: state.name });
  }
}

export async function managerAnswers(manager: ManagerState): Promise<boolean> {
  try {
    await new ManagerClient(manager.url, manager.token, 3000).info();
    return true;
  } catch {
    return false;
  }
}

/** Makes the manager pick up VMs created through the agents now, not at its next poll. */
export async function reconcileHosts(state: LabState, manager: ManagerState): Promise<void> {
  const client = new ManagerClient(manager.url, manager.token, 30_000);
  for (const host of state.hosts) await client.reconcileHost(host.name);
}

/** The lab CLI file as it is now (an unreadable one counts as none: it is rewritten). */
export async function readCliConfig(): Promise<CliConfigFile | undefined> {
  try {
    return CliConfigFile.parse(JSON.parse(await readFile(LAB_CLI_CONFIG_PATH, 'utf8')));
  } catch {
    return undefined;
  }
}

/** Writes the lab CLI file whole (tmp + rename; it holds admin tokens, hence mode 0600), or removes it. */
async function saveCliConfig(config: CliConfigFile | undefined): Promise<void> {
  if (config === undefined) {
    await rm(LAB_CLI_CONFIG_PATH, { force: true });
    return;
  }
  await mkdir(path.dirname(LAB_CLI_CONFIG_PATH), { recursive: true });
  const tmp = `${LAB_CLI_CONFIG_PATH}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, LAB_CLI_CONFIG_PATH);
}

/**
 * Adds this lab's manager to the CLI's lab contexts and makes it current (as kind and minikube
 * switch kubectl's context); returns the labs whose contexts the file now holds.
 */
export async function writeCliConfig(lab: string, manager: ManagerState): Promise<string[]> {
  const next = addContext(await readCliConfig(), lab, { url: manager.url, token: manager.token });
  await saveCliConfig(next);
  return Object.keys(next.contexts ?? {}).sort();
}

/** Removes this lab's context (only its own: another lab's stays, and stays current). */
export async function removeCliConfig(lab: string): Promise<boolean> {
  const config = await readCliConfig();
  if (!config?.contexts?.[lab]) return false;
  await saveCliConfig(removeContext(config, lab));
  return true;
}

/** Makes `lab` the CLI's current lab (`silobreak lab use`); false when no context of that name exists. */
export async function useCliContext(lab: string): Promise<boolean> {
  const config = await readCliConfig();
  if (!config?.contexts?.[lab]) return false;
  await saveCliConfig({ ...config, current: lab });
  return true;
}

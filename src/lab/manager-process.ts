import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
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

export async function startManager(state: LabState, url: string, bin: string): Promise<ManagerState> {
  const dataDir = path.join(state.dir, 'manager');
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const token = `sb_${randomBytes(32).toString('base64url')}`;
  const tokenFile = path.join(dataDir, 'lab-admin-token');
  await writeFile(tokenFile, token + '\n', { mode: 0o600 });
  const logPath = path.join(state.dir, 'manager.log');
  const pid = spawnManager({ url, dataDir, logPath }, bin);
  return { url, token, pid, dataDir, logPath };
}

/** `silobreak manager` on the lab's data and token file, logging to the lab's manager log. */
export function spawnManager(
  manager: Pick<ManagerState, 'url' | 'dataDir' | 'logPath'>,
  bin: string,
): number {
  const tokenFile = path.join(manager.dataDir, 'lab-admin-token');
  const listen = new URL(manager.url).host;
  // A short reconcile interval: people watch the lab change while they work with it.
  const command = [process.execPath, bin, 'manager', '--data-dir', manager.dataDir, '--listen', listen];
  return spawnDetached([...command, '--token-file', tokenFile, '--reconcile-interval', '5'], manager.logPath);
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

// What lab tests look at on a lab host from outside (its namespace's processes, sockets and
// qdisc) and the few things they do to one as an admin would: shared by the fault, cold-fault and
// orphan tests.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ManagerClient } from '../api/index.js';
import { restartLabAgent, restartLabManager, type Lab, type LabHost } from './lab.js';
import { isAlive } from './processes.js';
import { within } from './test-kit.js';

/**
 * A slow fabric link out of `host` (tc tbf), so a copy lasts long enough to be struck; undefined
 * puts the default qdisc back.
 */
export function slowFabricLink(host: LabHost, rate: string | undefined): void {
  const args = ['-n', host.namespace, 'qdisc', rate ? 'replace' : 'del', 'dev', 'fabric0', 'root'];
  if (rate) execFileSync('tc', [...args, 'tbf', 'rate', rate, 'burst', '64kb', 'latency', '50ms']);
  else spawnSync('tc', args, { stdio: 'ignore' });
}

export async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function namespacePids(host: LabHost): number[] {
  return execFileSync('ip', ['netns', 'pids', host.namespace], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map(Number);
}

/** Processes in a host's namespace whose command (comm) matches `name`. */
export function processesIn(host: LabHost, name: RegExp): number[] {
  return namespacePids(host).filter((pid) => {
    try {
      return name.test(readFileSync(`/proc/${pid}/comm`, 'utf8').trim());
    } catch {
      return false; // gone meanwhile
    }
  });
}

/** QEMU system emulators in a host's namespace, each with the VM name of its command line. */
export function qemusIn(host: LabHost): Map<number, string> {
  const out = new Map<number, string>();
  for (const pid of namespacePids(host)) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (!path.basename(argv[0] ?? '').startsWith('qemu-system')) continue;
      out.set(pid, argv[argv.indexOf('-name') + 1]?.replace(/^guest=/, '') ?? '');
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Listening TCP ports in a host's namespace other than its agent's. */
export function listenersIn(host: LabHost): string[] {
  const agentPort = `:${new URL(host.agentUrl).port}`;
  const out = execFileSync('ip', ['netns', 'exec', host.namespace, 'ss', '-ltnH'], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => l.trim().split(/\s+/)[3] ?? '')
    .filter((addr) => !addr.endsWith(agentPort));
}

/** The agent's state directory, from its configuration file. */
export async function agentStateDir(host: LabHost): Promise<string> {
  return (JSON.parse(await readFile(host.configPath, 'utf8')) as { stateDir: string }).stateDir;
}

/**
 * Starts a host's agent again with its configuration file changed as a user would edit it, and
 * waits until the manager sees the host connected again.
 */
export async function setLabAgentConfig(
  api: ManagerClient,
  host: LabHost,
  change: Record<string, unknown>,
): Promise<void> {
  const config = JSON.parse(await readFile(host.configPath, 'utf8')) as Record<string, unknown>;
  await writeFile(host.configPath, JSON.stringify({ ...config, ...change }, null, 2) + '\n');
  if (host.pid) process.kill(host.pid, 'SIGTERM');
  await sleep(1000);
  restartLabAgent(host);
  await within(60_000, async () => assert.equal((await api.reconcileHost(host.name)).state, 'connected'));
}

/** The change records of a VM after record `sinceId`, as "field:after" strings per record. */
export async function vmChangesSince(api: ManagerClient, vm: string, sinceId: number): Promise<string[]> {
  const { id } = await api.getVm(vm);
  const records = (await api.listChanges({ objectId: id, limit: 1000 })).items;
  return records
    .filter((r) => r.id > sinceId)
    .map((r) => r.changes.map((c) => `${c.field}:${String(c.after)}`).join(' '));
}

/** The newest change record's id (0 when none). */
export const lastChangeId = async (api: ManagerClient): Promise<number> =>
  (await api.listChanges({ limit: 1 })).items[0]?.id ?? 0;

/**
 * After a case that may have failed half-way: fabric links up with the default qdisc, every agent
 * and the manager running (started again if a case killed them and it failed before it did), the
 * hosts connected, and no job left running. Nothing to do after a case that passed.
 */
export async function restoreLabFabric(
  lab: Lab,
  api: ManagerClient,
  hosts: readonly LabHost[],
  jobWaitMs: number,
): Promise<void> {
  for (const host of hosts) {
    spawnSync('ip', ['-n', host.namespace, 'link', 'set', 'fabric0', 'up'], { stdio: 'ignore' });
    slowFabricLink(host, undefined);
    if (!(host.pid && (await isAlive(host.pid)))) restartLabAgent(host);
  }
  const manager = lab.manager?.pid;
  if (!(manager && (await isAlive(manager)))) restartLabManager(lab);
  await within(60_000, async () => void (await api.info()));
  for (const host of hosts)
    await within(60_000, async () => assert.equal((await api.reconcileHost(host.name)).state, 'connected'));
  for (const job of (await api.listJobs({ state: 'running' })).items) {
    await api.cancelJob(job.id).catch(() => undefined);
    await api.waitForJob(job.id, jobWaitMs).catch(() => undefined);
  }
}

/** What an agent's API answered over HTTPS: status and problem code, or the connection's error (the TLS handshake's). */
export interface AgentTlsAnswer {
  status?: number;
  code?: string;
  error?: string;
}

/**
 * GET /v1/host at an agent's HTTPS address (`host:port`) with a client identity (or none) and a
 * bearer token (or none), trusting `ca`; `anyServer` also takes an unenrolled agent's self-signed
 * bootstrap certificate. The server's name is not checked: the client's side is what is tested.
 */
export function callAgentTls(
  address: string,
  ca: string,
  identity: { cert?: string; key?: string; token?: string; anyServer?: boolean } = {},
): Promise<AgentTlsAnswer> {
  const url = new URL(`https://${address}`);
  return new Promise((resolve) => {
    const request = httpsRequest(
      {
        host: url.hostname,
        port: url.port,
        path: '/v1/host',
        ca,
        ...(identity.anyServer ? { rejectUnauthorized: false } : {}),
        ...(identity.cert ? { cert: identity.cert, key: identity.key } : {}),
        checkServerIdentity: () => undefined,
        headers: identity.token ? { authorization: `Bearer ${identity.token}` } : {},
        agent: false,
      },
      (response) => {
        let text = '';
        response.on('data', (c: Buffer) => (text += c.toString()));
        response.on('end', () => {
          const code = text ? (JSON.parse(text) as { code?: string }).code : undefined;
          resolve({ status: response.statusCode, ...(code ? { code } : {}) });
        });
      },
    );
    request.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
    request.end();
  });
}

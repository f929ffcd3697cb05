// Test support for the agent's lab tests: a `silobreak agent` child process on 127.0.0.1 with its
// own temporary state directory and datastore `ds1`, booting real (TCG) guests; closing it kills
// the agent and whatever VMs a failed test left running, and removes the directory (kept with
// SB_KEEP_LAB=1).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  AgentClient,
  agentSocketPath,
  type AddHostRequest,
  type AgentConfigInput,
  type DatastoreLimits,
  type GuestInfo,
} from '../api/index.js';

const root = path.resolve(import.meta.dirname, '..', '..');
/** How long a TCG guest may take to boot on this 2-core machine, with other tests running. */
export const LAB_BOOT_DEADLINE_MS = 240_000;

export interface LabAgent {
  dir: string;
  /** On the break-glass socket (the test's token). */
  client: AgentClient;
  /** What `host add` takes: the API's address and a join token from `silobreak agent-join-token`. */
  join(): Promise<Pick<AddHostRequest, 'address' | 'joinToken'>>;
  process: ChildProcess;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || !address) throw new Error('no free port');
  return address.port;
}

export async function startLabAgent(options: {
  prefix: string;
  hostName: string;
  token: string;
  /** Limits of the agent's datastore ds1 (none when absent). */
  datastoreLimits?: DatastoreLimits;
}): Promise<LabAgent> {
  const dir = await mkdtemp(path.join(tmpdir(), options.prefix));
  await mkdir(path.join(dir, 'ds1'));
  const port = await freePort();
  const config: AgentConfigInput = {
    hostName: options.hostName,
    listen: { address: '127.0.0.1', port },
    breakGlassToken: options.token,
    fabricAddress: '127.0.0.1',
    stateDir: path.join(dir, 'state'),
    datastores: [
      {
        name: 'ds1',
        path: path.join(dir, 'ds1'),
        default: true,
        ...(options.datastoreLimits ? { limits: options.datastoreLimits } : {}),
      },
    ],
    datastoreRoots: [dir],
    vswitches: [],
    accelerator: 'tcg',
  };
  await writeFile(path.join(dir, 'agent.json'), JSON.stringify(config));
  const log = openSync(path.join(dir, 'agent.log'), 'a', 0o600);
  const child = spawn(
    process.execPath,
    [path.join(root, 'bin/silobreak.js'), 'agent', '--config', path.join(dir, 'agent.json')],
    { stdio: ['ignore', log, log] },
  );
  closeSync(log);
  // The test's own way in is the break-glass socket; a manager joins it with join().
  const stateDir = path.join(dir, 'state');
  const client = new AgentClient(
    { baseUrl: 'http://agent', socketPath: agentSocketPath(stateDir), token: options.token },
    120_000,
  );
  for (const deadline = Date.now() + 60_000; ; await sleep(200)) {
    const up = await client.host().then(
      () => true,
      () => false,
    );
    if (up) break;
    if (child.exitCode !== null || Date.now() > deadline)
      throw new Error(`agent did not come up: ${await readFile(path.join(dir, 'agent.log'), 'utf8')}`);
  }
  const configPath = path.join(dir, 'agent.json');
  return {
    dir,
    client,
    async join() {
      const { stdout } = await promisify(execFile)(process.execPath, [
        path.join(root, 'bin/silobreak.js'),
        'agent-join-token',
        '--config',
        configPath,
      ]);
      return { address: `127.0.0.1:${port}`, joinToken: stdout.trim() };
    },
    process: child,
    async close() {
      child.kill('SIGKILL');
      // VMs outlive the agent by design: stop whatever a failed test left running.
      const state = path.join(dir, 'state');
      for (const file of (await readdir(state).catch(() => [])).filter((f) => f.endsWith('.pid'))) {
        try {
          process.kill(Number(await readFile(path.join(state, file), 'utf8')), 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await sleep(500);
      if (!process.env.SB_KEEP_LAB) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The guest agent's answer once the guest has booted. */
export async function waitForGuestAgent(client: AgentClient, vm: string): Promise<GuestInfo> {
  const deadline = Date.now() + LAB_BOOT_DEADLINE_MS;
  for (;;) {
    try {
      return await client.guestInfo(vm);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(1000);
    }
  }
}

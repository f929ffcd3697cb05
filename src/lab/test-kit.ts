// What lab tests do as a user would: run the `silobreak` CLI against the lab's manager, and run
// commands in a guest through the agent of the host it is on.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentClient, type GuestExecResult } from '../api/index.js';
import type { Lab, LabHost } from './lab.js';

const BIN = path.resolve(import.meta.dirname, '..', '..', 'bin', 'silobreak.js');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `silobreak ...args` against the lab's manager, with no user config; resolves with code and output. */
export function labCli(lab: Lab, args: string[], timeoutMs = 600_000): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      {
        timeout: timeoutMs,
        maxBuffer: 16 * 1024 * 1024,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: lab.dir,
          NO_COLOR: '1',
          SILOBREAK_CONFIG: path.join(lab.dir, 'no-cli-config.json'),
          SILOBREAK_URL: lab.manager?.url ?? '',
          SILOBREAK_TOKEN: lab.manager?.token ?? '',
        },
      },
      (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}

export const labAgent = (host: LabHost): AgentClient => new AgentClient(host.agentUrl, host.token, 180_000);

/** A command in the guest of `vm` on `host` (retried while its guest agent starts). */
export async function inGuest(
  host: LabHost,
  vm: string,
  command: string[],
  options: { detach?: boolean; timeoutSeconds?: number } = {},
): Promise<GuestExecResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await labAgent(host).guestExec(
        vm,
        command,
        options.timeoutSeconds ?? 300,
        options.detach ?? false,
      );
    } catch (error) {
      if (attempt >= 40) throw error;
      await sleep(3000);
    }
  }
}

import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { z } from 'zod';
import { LabCommandFailed } from './errors.js';

/*
 * Thin wrappers over the system commands the lab drives (iproute2 mostly). Arguments are always
 * passed as arrays, never through a shell.
 */

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; output captured, or inherited when `inherit` is set. */
export function run(command: string[], options: { inherit?: boolean } = {}): Promise<RunResult> {
  const [file, ...args] = command;
  if (file === undefined) throw new RangeError('empty command');
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: options.inherit ? 'inherit' : ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    // A command killed by a signal reports 128 + signal number, as a shell would.
    child.on('close', (code, signal) =>
      resolve({ exitCode: code ?? 128 + (signal ? constants.signals[signal] : 0), stdout, stderr }),
    );
  });
}

/** Runs a command and throws LabCommandFailed unless it exits 0; returns its stdout. */
export async function check(command: string[]): Promise<string> {
  const result = await run(command);
  if (result.exitCode !== 0) throw new LabCommandFailed(command, result.exitCode, result.stderr);
  return result.stdout;
}

export function ip(...args: string[]): Promise<string> {
  return check(['ip', ...args]);
}

/** `ip ...` inside a namespace. */
export function nsIp(namespace: string, ...args: string[]): Promise<string> {
  return check(['ip', '-n', namespace, ...args]);
}

export async function listNamespaces(): Promise<string[]> {
  const out = await ip('netns', 'list');
  // Lines look like "name (id: 3)" or just "name".
  return out
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.length > 0);
}

const LinkList = z.array(z.object({ ifname: z.string() }));

/** Names of the links in the root namespace. */
export async function listLinks(): Promise<string[]> {
  return LinkList.parse(JSON.parse(await ip('-j', 'link', 'show'))).map((l) => l.ifname);
}

/** One ping from inside a namespace; true when answered within a second. */
export async function pingFrom(namespace: string, address: string): Promise<boolean> {
  const result = await run(['ip', 'netns', 'exec', namespace, 'ping', '-c', '1', '-W', '1', '-q', address]);
  return result.exitCode === 0;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

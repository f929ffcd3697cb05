import { execFile } from 'node:child_process';
import { HostCommandFailed } from './errors.js';

/** Runs a host program and returns its stdout; a non-zero exit becomes HostCommandFailed. */
export function run(file: string, args: readonly string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new HostCommandFailed(`${file} ${args.join(' ')}`, stderr || error.message));
      else resolve(stdout);
    });
  });
}

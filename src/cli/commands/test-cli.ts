// Test support for the CLI's command tests: a stand-in manager (a plain HTTP server answering as
// the test's handler says) and the real `silobreak` bin run against it as its own process.
import { execFile } from 'node:child_process';
import { createServer, type RequestListener, type Server } from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';

const bin = path.join(import.meta.dirname, '../../../bin/silobreak.js');

export interface StandInManager {
  url: string;
  server: Server;
  close: () => Promise<void>;
}

/** A stand-in manager on a free loopback port, answering with `handler`. */
export async function standInManager(handler: RequestListener): Promise<StandInManager> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return { url, server, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** `silobreak ...args --url <url> --token …` as a user runs it; resolves with exit code and output. */
export async function cliAt(
  url: string,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [bin, ...args, '--url', url, '--token', 'sb_test-token'],
      { env: { ...process.env, NO_COLOR: '1' } },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

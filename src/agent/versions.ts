import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { run } from './host-exec.js';

/** The agent's version as its package on disk says (a package upgrade replaces it in place). */
export async function agentVersion(): Promise<string> {
  const pkg = path.resolve(import.meta.dirname, '..', '..', 'package.json');
  return z.object({ version: z.string() }).parse(JSON.parse(await readFile(pkg, 'utf8'))).version;
}

/** The version of the QEMU on this host's PATH, as `qemu-system-x86_64 --version` gives it. */
export async function qemuVersion(): Promise<string> {
  const out = await run('qemu-system-x86_64', ['--version']);
  return /version (\S+)/.exec(out)?.[1] ?? out.split('\n')[0]?.trim() ?? 'unknown';
}

/** What is installed on the host now (after an upgrade: what the agent reports once restarted). */
export async function installedVersions(): Promise<{ agent: string; qemu: string }> {
  const [agent, qemu] = await Promise.all([agentVersion(), qemuVersion()]);
  return { agent, qemu };
}

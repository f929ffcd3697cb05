import { spawn } from 'node:child_process';
import { closeSync, fchmodSync, openSync } from 'node:fs';
import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import { LabProcessFailed } from './errors.js';
import { sleep } from './system.js';

/*
 * Processes of a lab: started detached (their own session, logs in the lab directory) and found
 * again without trusting pid numbers alone, since a recorded pid may have been reused.
 */

/**
 * Starts a long-lived process in its own session with stdout and stderr appended to `logPath`,
 * which only its owner may read (an agent's or a manager's log names hosts, VMs and requests).
 */
export function spawnDetached(command: string[], logPath: string): number {
  const [file, ...args] = command;
  if (file === undefined) throw new RangeError('empty command');
  const log = openSync(logPath, 'a', 0o600);
  fchmodSync(log, 0o600);
  try {
    const child = spawn(file, args, { detached: true, stdio: ['ignore', log, log] });
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${file}`);
    return child.pid;
  } finally {
    closeSync(log);
  }
}

/** True when the process exists and is not a zombie waiting to be reaped. */
export async function isAlive(pid: number): Promise<boolean> {
  try {
    const statLine = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The state follows the parenthesised command name, which may itself contain spaces.
    const state = statLine.slice(statLine.lastIndexOf(')') + 2, statLine.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

async function netnsInode(pid: number): Promise<string | undefined> {
  try {
    return await readlink(`/proc/${pid}/ns/net`);
  } catch {
    return undefined;
  }
}

async function cmdline(pid: number): Promise<string[]> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** `net:[<inode>]` of each named namespace that still exists, as /proc/<pid>/ns/net reads. */
export async function namespaceIds(namespaces: string[]): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const ns of namespaces) {
    try {
      ids.add(`net:[${(await stat(`/run/netns/${ns}`)).ino}]`);
    } catch {
      // Already gone: nothing can be found through it.
    }
  }
  return ids;
}

/** Pids from every `*.pid` file below `dir`. */
async function pidfilePids(dir: string): Promise<number[]> {
  const pids: number[] = [];
  let entries;
  try {
    entries = await readdir(dir, { recursive: true, withFileTypes: true });
  } catch {
    return pids;
  }
  for (const entry of entries) {
    if (!entry.isFile() || !entry.name.endsWith('.pid')) continue;
    const pid = Number(
      (await readFile(path.join(entry.parentPath, entry.name), 'utf8').catch(() => '')).trim(),
    );
    if (Number.isInteger(pid) && pid > 1) pids.push(pid);
  }
  return pids;
}

/** Our own process and its ancestors: never killed, even when run from inside a lab namespace. */
async function selfAndAncestors(): Promise<Set<number>> {
  const pids = new Set<number>([process.pid]);
  let pid = process.ppid;
  while (pid > 1 && !pids.has(pid)) {
    pids.add(pid);
    const statLine = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    pid = Number(statLine.slice(statLine.lastIndexOf(')') + 2).split(' ')[1]);
  }
  return pids;
}

/**
 * The processes that belong to a lab: those living in one of its namespaces, or whose command
 * line names a path inside its directory (agents' configs, QEMU disks and pidfiles, the manager's
 * data). Recorded pids and pidfiles are candidates too, but are killed only if they pass the same
 * test, so a reused pid never hits a stranger.
 */
export async function findLabProcesses(options: {
  namespaces: string[];
  dir: string;
  knownPids?: number[];
}): Promise<number[]> {
  const ids = await namespaceIds(options.namespaces);
  const spared = await selfAndAncestors();
  const dirPrefix = options.dir.endsWith('/') ? options.dir : options.dir + '/';
  const fromProc = (await readdir('/proc')).filter((e) => /^\d+$/.test(e)).map(Number);
  const candidates = new Set([
    ...fromProc,
    ...(await pidfilePids(options.dir)),
    ...(options.knownPids ?? []),
  ]);
  const found: number[] = [];
  for (const pid of candidates) {
    if (spared.has(pid) || !(await isAlive(pid))) continue;
    const ns = await netnsInode(pid);
    const inLabNs = ns !== undefined && ids.has(ns);
    const args = inLabNs ? [] : await cmdline(pid);
    if (inLabNs || args.some((a) => a === options.dir || a.includes(dirPrefix))) found.push(pid);
  }
  return found;
}

/** SIGTERM, then SIGKILL whatever is still alive after `graceMs`; resolves once all are gone. */
export async function terminate(pids: number[], graceMs = 5000): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    for (const pid of pids) {
      try {
        process.kill(pid, sig);
      } catch {
        // Already gone.
      }
    }
  };
  const waitGone = async (ms: number) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const alive = await Promise.all(pids.map(isAlive));
      if (!alive.includes(true)) return true;
      await sleep(100);
    }
    return false;
  };
  if (pids.length === 0) return;
  signal('SIGTERM');
  if (await waitGone(graceMs)) return;
  signal('SIGKILL');
  await waitGone(5000);
}

async function logTail(file: string, lines = 15): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * Polls `probe` until it resolves; fails early, with the tail of the process's log, when the
 * process has exited, and after `timeoutMs`. Stops at once when `signal` is aborted.
 */
export async function waitUntilAnswers<T>(options: {
  what: string;
  pid: number | undefined;
  logPath: string;
  timeoutMs: number;
  probe: () => Promise<T>;
  signal?: AbortSignal | undefined;
}): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      return await options.probe();
    } catch (error) {
      if (options.pid === undefined || !(await isAlive(options.pid))) {
        throw new LabProcessFailed(options.what, 'exited before answering', await logTail(options.logPath));
      }
      if (Date.now() > deadline) {
        const detail = `did not answer within ${options.timeoutMs / 1000} s (${String(error)})`;
        throw new LabProcessFailed(options.what, detail, await logTail(options.logPath));
      }
      await sleep(500);
    }
  }
}

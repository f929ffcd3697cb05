import { spawn } from 'node:child_process';
import path from 'node:path';
import { SHARED_STORAGE_MARKER, type DatastoreLost } from '../api/index.js';
import type { DatastoreSpace } from './datastores.js';

/*
 * Whether this host reaches a shared datastore (issue 30: a host losing it is a Storage Explorer
 * issue). A network mount whose server or link is gone does not fail a syscall: statfs(2) on it
 * waits, for ever on a hard NFS mount, for minutes on the lab's sshfs. In the agent that would be a
 * libuv thread lost per call and GET /v1/stats never answering; so the check runs in a child
 * process group (statfs of the directory, then a read of its storage marker) that is killed when it
 * does not answer within SHARED_CHECK_TIMEOUT_MS. The marker read proves the directory still is
 * that storage: a mount that vanished leaves the empty local directory under it, which statfs
 * would happily describe.
 */

/**
 * How long a shared datastore may take to answer. sanlock's I/O timeout for leases on it is 2 s
 * (DEFAULT_LEASE_IO_TIMEOUT_SECONDS: a LAN file server answers within that or is gone); 5 s leaves
 * room for a busy server without letting GET /v1/stats wait long on a dead one.
 */
export const SHARED_CHECK_TIMEOUT_MS = 5_000;

export type SharedCheck =
  { ok: true; space: DatastoreSpace; storageId: string } | { ok: false; lost: DatastoreLost };

// statfs: total and available blocks in fundamental blocks (f_frsize, %S), then the marker.
const SCRIPT = 'stat -f -c "%b %a %S" -- "$1" && cat -- "$2"';

/**
 * One bounded check of the shared datastore at `dir`. `storageId` is the id its marker had when the
 * agent first read it (undefined: never read; any valid marker is then accepted).
 */
export function checkSharedDatastore(
  dir: string,
  storageId: string | undefined,
  timeoutMs = SHARED_CHECK_TIMEOUT_MS,
): Promise<SharedCheck> {
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', SCRIPT, 'sh', dir, path.join(dir, SHARED_STORAGE_MARKER)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own group: the whole group is killed, `stat` or `cat` waiting on the mount included.
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    let done = false;
    const finish = (result: SharedCheck) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(result);
    };
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
      finish({
        ok: false,
        lost: {
          cause: 'no-answer',
          detail: `${dir} did not answer within ${timeoutMs / 1000} s (a hung network mount: server or link gone)`,
        },
      });
    }, timeoutMs);
    child.once('error', (error) =>
      finish({ ok: false, lost: { cause: 'error', detail: `cannot check ${dir}: ${error.message}` } }),
    );
    child.once('close', (code) => finish(interpretCheck(dir, code, stdout, stderr, storageId)));
  });
}

/** What the check's output says (pure, for the tests). */
export function interpretCheck(
  dir: string,
  exitCode: number | null,
  stdout: string,
  stderr: string,
  storageId: string | undefined,
): SharedCheck {
  const [first = '', ...rest] = stdout.split('\n');
  const numbers = first.trim().split(/\s+/).map(Number);
  const statOk = numbers.length === 3 && numbers.every((n) => Number.isFinite(n) && n >= 0);
  if (!statOk)
    return {
      ok: false,
      lost: { cause: 'error', detail: `${dir}: ${firstLine(stderr) || `stat exited with ${exitCode}`}` },
    };
  const [blocks = 0, available = 0, frsize = 0] = numbers;
  if (exitCode !== 0)
    return {
      ok: false,
      lost: {
        cause: 'not-the-storage',
        detail: `${dir} has no readable ${SHARED_STORAGE_MARKER} (${firstLine(stderr) || `exit ${exitCode}`}): the storage is not mounted there`,
      },
    };
  const found = /"storageId"\s*:\s*"([^"]+)"/.exec(rest.join('\n'))?.[1];
  if (found === undefined || (storageId !== undefined && found !== storageId))
    return {
      ok: false,
      lost: {
        cause: 'not-the-storage',
        detail:
          found === undefined
            ? `${dir}: ${SHARED_STORAGE_MARKER} is not a storage marker: the storage is not mounted there`
            : `${dir} holds storage ${found}, not ${storageId}: another storage is mounted there`,
      },
    };
  return {
    ok: true,
    space: { capacityBytes: blocks * frsize, freeBytes: available * frsize },
    storageId: found,
  };
}

const firstLine = (text: string) => text.trim().split('\n')[0]?.trim() ?? '';

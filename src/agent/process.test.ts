import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { isAlive, readCmdline, runDaemonizing, signal, waitForExit } from './process.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-process-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('a live process is seen with its argv; a finished one is not', async () => {
  assert.equal(await isAlive(process.pid), true);
  assert.equal((await readCmdline(process.pid))[0], process.execPath);
  const child = spawn('sleep', ['30']);
  const pid = child.pid ?? 0;
  assert.deepEqual(await readCmdline(pid), ['sleep', '30']);
  assert.equal(await waitForExit(pid, 100), false, 'still running');
  signal(pid, 'SIGKILL');
  assert.equal(await waitForExit(pid, 5_000), true);
  assert.equal(await isAlive(pid), false);
  assert.deepEqual(await readCmdline(pid), []);
  signal(pid, 'SIGKILL'); // a second signal to a gone process is not an error
});

test('a program that daemonizes is done when its foreground parent exits 0', async () => {
  const pidfile = path.join(dir, 'daemon.pid');
  // Like QEMU -daemonize: leave a background process behind, write its pid, exit.
  await runDaemonizing(
    'sh',
    ['-c', `setsid sleep 30 </dev/null >/dev/null 2>&1 & echo $! > ${pidfile}`],
    10_000,
  );
  const pid = Number(await readFile(pidfile, 'utf8'));
  assert.equal(await isAlive(pid), true);
  signal(pid, 'SIGKILL');
  assert.equal(await waitForExit(pid, 5_000), true);
});

test('a failing start rejects with what the program printed on stderr', async () => {
  await assert.rejects(
    runDaemonizing('sh', ['-c', 'echo "could not open tap" >&2; exit 1'], 10_000),
    (error) => {
      assert.equal((error as { stderr?: string }).stderr, 'could not open tap\n');
      return true;
    },
  );
});

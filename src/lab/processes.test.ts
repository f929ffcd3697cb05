import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { findLabProcesses, isAlive, terminate } from './processes.js';

/*
 * Which processes `lab down` would stop, tested on real (idle) node processes: the
 * ones naming the lab directory in their command line are found; a process of a lab whose name
 * merely extends this one's, and a stranger whose pid sits in a pidfile, are not.
 */

let root: string;
let labDirPath: string;
const started: number[] = [];

/** An idle node process with `arg` in its command line. */
function sleeper(arg: string): number {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)', arg], { stdio: 'ignore' });
  assert.ok(child.pid);
  started.push(child.pid);
  return child.pid;
}

before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'sb-lab-proc-'));
  labDirPath = path.join(root, 'ab');
  await mkdir(path.join(labDirPath, 'host1'), { recursive: true });
});

after(async () => {
  await terminate(started, 1000);
  await rm(root, { recursive: true, force: true });
});

test('finds processes naming the lab directory, not those of a lab whose name extends it', async () => {
  const own = sleeper(path.join(labDirPath, 'host1', 'agent.json'));
  const neighbour = sleeper(path.join(root, 'ab-c', 'host1', 'agent.json'));
  const stranger = sleeper('unrelated');
  // A pidfile in the lab directory naming a process that is not the lab's (a reused pid).
  await writeFile(path.join(labDirPath, 'host1', 'vm.pid'), `${stranger}\n`);

  const found = await findLabProcesses({ namespaces: [], dir: labDirPath, knownPids: [neighbour] });
  assert.ok(found.includes(own), 'the lab process is found');
  assert.equal(found.includes(neighbour), false, 'a neighbouring lab is left alone');
  assert.equal(found.includes(stranger), false, 'a pidfile alone does not condemn a process');
  assert.equal(found.includes(process.pid), false, 'never the caller itself');
});

test('terminate stops the processes and waits until they are gone', async () => {
  const pid = sleeper(path.join(labDirPath, 'host1', 'x'));
  assert.equal(await isAlive(pid), true);
  await terminate([pid], 2000);
  assert.equal(await isAlive(pid), false);
  assert.equal((await findLabProcesses({ namespaces: [], dir: labDirPath })).includes(pid), false);
});

// Return moves that send only the delta (issue 17), on a real 2-host lab, the way a user does
// them: moves with the CLI while the guest writes records with fsync and dirties memory, every
// record verified in the guest after each leg. Out with --retain and back: the return sends the
// changed clusters only; a second round trip is a delta again; a retained copy touched behind the
// manager's back is refused with the reason (the move copies everything); a delta move cut by a
// link fault rolls back with the copy intact and a retry is a delta; `vm retained release` frees it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { open, readdir, stat, utimes } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { AgentMigrationClient, ManagerClient, type Job, type RetainedCopyView } from './api/index.js';
import { GUEST_WORKLOADS } from './guest/index.js';
import {
  createBusyVm,
  fabricLink,
  guestUptime,
  inGuest,
  labAgent,
  labCli,
  labDown,
  labWithManager,
  startGuestWorkloads,
  verifyGuestRecords,
  within,
  type Lab,
  type LabHost,
} from './lab/index.js';

const LAB = 'dltest';
const VM = 'roamer';
const MiB = 1024 * 1024;

let lab: Lab;
let api: ManagerClient;
let h1: LabHost;
let h2: LabHost;
let vmId: string;
let diskId: string;
const written: string[] = [];

const guest = (host: LabHost, command: string[], detach = false) => inGuest(host, VM, command, { detach });
const cli = (args: string[]) => labCli(lab, args);

async function startWorkloads(host: LabHost, file: string): Promise<void> {
  written.push(file);
  await startGuestWorkloads(host, VM, file);
}

/** Stops the workloads and verifies every record the guest wrote so far, in every file. */
const verifyRecords = (host: LabHost) => verifyGuestRecords(host, VM, written);

/** A move with the CLI (detached, as a script would), followed to its end. */
async function moveWithCli(to: LabHost, ...flags: string[]): Promise<Job> {
  const r = await cli(['vm', 'move', VM, '--to', to.name, '--detach', '--json', ...flags]);
  assert.equal(r.code, 0, r.stderr);
  const job = await api.waitForJob((JSON.parse(r.stdout) as Job).id, 600_000);
  return job;
}

interface Moved {
  diskBytes: number;
  deltaBytes: number | undefined;
  totalTimeMs: number;
}

function movedFigures(job: Job): Moved {
  assert.equal(job.state, 'succeeded', JSON.stringify(job.error));
  const result = job.result as { totalTimeMs: number; stats: { diskBytes?: number; deltaBytes?: number } };
  return {
    diskBytes: result.stats.diskBytes ?? 0,
    deltaBytes: result.stats.deltaBytes,
    totalTimeMs: result.totalTimeMs,
  };
}

async function retained(): Promise<RetainedCopyView[]> {
  const r = await cli(['vm', 'retained', 'list', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as RetainedCopyView[];
}

const retainedDir = (host: LabHost) => path.join(host.datastorePath, '.retained');
const copyFiles = async (host: LabHost) => readdir(path.join(retainedDir(host), vmId)).catch(() => []);

const uptime = (host: LabHost) => guestUptime(host, VM);
const linkOf = fabricLink;

before(
  async () => {
    let hosts: LabHost[];
    ({ lab, api, hosts } = await labWithManager(LAB));
    [h1, h2] = hosts as [LabHost, LabHost];
    await createBusyVm(lab, h1, VM, 200);
    const vm = await api.getVm(VM);
    vmId = vm.id;
    diskId = vm.disks[0]?.id ?? '';
    written.push('/data/before');
    const before = await guest(h1, [
      GUEST_WORKLOADS.diskWriter,
      'write',
      '--file',
      '/data/before',
      '--rate-kib',
      '0',
      '--count',
      '500',
    ]);
    assert.equal(before.exitCode, 0, before.stderr);
    await guest(h1, ['/bin/sync']);
  },
  { timeout: 900_000 },
);

after(
  async () => {
    for (const host of [h1, h2]) {
      if (host) spawnSync('ip', ['-n', host.namespace, 'link', 'set', 'fabric0', 'up'], { stdio: 'ignore' });
    }
    if (!process.env.SB_KEEP_LAB) await labDown({ name: LAB });
  },
  { timeout: 300_000 },
);

test(
  'out with --retain and back while the guest writes: the return sends only the delta, and so does a second round trip',
  { timeout: 1_800_000 },
  async () => {
    await startWorkloads(h1, '/data/out1');
    const out = movedFigures(await moveWithCli(h2, '--retain'));
    assert.equal(out.deltaBytes, undefined, 'the first move copies everything');
    assert.ok(out.diskBytes > 200 * MiB, `full copy: ${out.diskBytes} bytes`);
    await verifyRecords(h2);
    const kept = await retained();
    assert.deepEqual(
      kept.map((c) => [c.vm.name, c.host, c.state]),
      [[VM, h1.name, 'usable']],
    );
    assert.deepEqual(await copyFiles(h1), [`${diskId}.qcow2`, 'meta.json'].sort());
    assert.ok((kept[0]?.allocatedBytes ?? 0) > 200 * MiB, 'the copy counts as used space');
    const shown = await cli(['datastore', 'show', `${h1.name}/local`]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /Retained copies:\s+\d+(\.\d+)? MiB/);

    await startWorkloads(h2, '/data/back1');
    const dry = await cli(['vm', 'move', VM, '--to', h1.name, '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /Disk copy: delta: [\d.]+ MiB to send \(retained copy from \d{4}-/);
    const back = movedFigures(await moveWithCli(h1));
    assert.ok(back.deltaBytes !== undefined, 'the return is a delta');
    assert.ok(
      back.diskBytes < out.diskBytes / 4,
      `delta ${back.diskBytes} bytes against ${out.diskBytes} full`,
    );
    await verifyRecords(h1);
    // The host left behind keeps its own copy for the next round trip; host1's went into the VM.
    assert.deepEqual(
      (await retained()).map((c) => [c.host, c.state]),
      [[h2.name, 'usable']],
    );
    assert.deepEqual(await copyFiles(h1), []);
    console.log(
      `# leg 1: full ${(out.diskBytes / MiB).toFixed(0)} MiB in ${out.totalTimeMs} ms; back: ${(back.diskBytes / MiB).toFixed(1)} MiB (delta ${((back.deltaBytes ?? 0) / MiB).toFixed(1)} MiB) in ${back.totalTimeMs} ms`,
    );

    await startWorkloads(h1, '/data/out2');
    const out2 = movedFigures(await moveWithCli(h2));
    assert.ok(out2.deltaBytes !== undefined, 'the second trip out is a delta onto host2 copy');
    await verifyRecords(h2);
    await startWorkloads(h2, '/data/back2');
    const back2 = movedFigures(await moveWithCli(h1));
    assert.ok(back2.deltaBytes !== undefined, 'and so is the second return');
    await verifyRecords(h1);
    console.log(
      `# round trip 2: out ${(out2.diskBytes / MiB).toFixed(1)} MiB in ${out2.totalTimeMs} ms, back ${(back2.diskBytes / MiB).toFixed(1)} MiB in ${back2.totalTimeMs} ms`,
    );
  },
);

test(
  "a retained copy touched behind the manager's back is refused with the reason: the move copies everything",
  { timeout: 900_000 },
  async () => {
    const file = path.join(retainedDir(h2), vmId, `${diskId}.qcow2`);
    const before = await stat(file);
    // Inside the image's first cluster (checked by the content sample), its time put back.
    const handle = await open(file, 'r+');
    await handle.write(Buffer.alloc(512, 0xa5), 0, 512, 60_000);
    await handle.close();
    await utimes(file, before.atime, before.mtime);
    const dry = await cli(['vm', 'move', VM, '--to', h2.name, '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(
      dry.stdout,
      /Disk copy: full copy: the retained copy on host2 cannot be used: the image of disk \w+ differs from when it was kept \(sampled content\)/,
    );
    await startWorkloads(h1, '/data/tampered');
    const moved = movedFigures(await moveWithCli(h2, '--retain'));
    assert.equal(moved.deltaBytes, undefined, 'a full copy');
    assert.ok(moved.diskBytes > 200 * MiB);
    await verifyRecords(h2);
    // The touched copy is stale now and goes with the next reconciliation; host1 keeps the new one.
    await within(60_000, async () => {
      assert.deepEqual(await copyFiles(h2), []);
      assert.deepEqual(
        (await retained()).map((c) => [c.host, c.state]),
        [[h1.name, 'usable']],
      );
    });
  },
);

test(
  'a delta move cut by a link fault rolls back: the VM runs on, the retained copy stays usable, a retry is a delta',
  { timeout: 900_000 },
  async () => {
    await startWorkloads(h2, '/data/cut');
    const upBefore = await uptime(h2);
    // A 50 Mbit/s policy keeps the memory copy going long enough to cut the link in it.
    let job = (await api.moveVm(VM, { to: h1.name, policy: { linkBitsPerSecond: 50e6 } })).job;
    for await (const j of api.watchJob(job.id, 600_000)) {
      job = j;
      if (j.progress.phase === 'copy-memory' || !['queued', 'running'].includes(j.state)) break;
    }
    assert.equal(job.progress.phase, 'copy-memory', `job got to ${job.state}/${job.progress.phase}`);
    assert.match(JSON.stringify((await api.getJob(job.id)).progress), /copying memory|delta/);
    await sleep(2000);
    linkOf(h1, 'down');
    const failed = await api.waitForJob(job.id, 300_000);
    assert.equal(failed.state, 'failed');
    assert.equal((await api.getVm(VM)).host, h2.name);
    assert.ok((await uptime(h2)) > upBefore, 'the guest kept running');
    linkOf(h1, 'up');
    await within(90_000, async () => {
      assert.deepEqual(await labAgent(h1).listVms(), [], 'the half-made VM went');
      const copies = await new AgentMigrationClient(labAgent(h1).http).listRetained();
      assert.deepEqual(
        copies.map((c) => [c.vmId, c.check.valid]),
        [[vmId, true]],
      );
    });
    const retry = movedFigures(await moveWithCli(h1));
    assert.ok(retry.deltaBytes !== undefined, 'the retry is a delta onto the same copy');
    await verifyRecords(h1);
    console.log(
      `# retry after the cut: ${(retry.diskBytes / MiB).toFixed(1)} MiB in ${retry.totalTimeMs} ms`,
    );
  },
);

test('vm retained release frees the space', { timeout: 300_000 }, async () => {
  const copies = await retained();
  assert.deepEqual(
    copies.map((c) => c.host),
    [h2.name],
  );
  const released = await cli(['vm', 'retained', 'release', VM]);
  assert.equal(released.code, 0, released.stderr);
  assert.match(released.stdout, /Released the retained copy of roamer on host2 \(\d+/);
  assert.deepEqual(await copyFiles(h2), []);
  assert.deepEqual(await retained(), []);
  const again = await cli(['vm', 'retained', 'release', VM]);
  assert.equal(again.code, 2, 'nothing left to release: a usage error naming the argument');
  assert.match(again.stderr, /copy: no retained copy/);
});

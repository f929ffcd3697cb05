// Return moves that send only the delta (issue 17), on a real 2-host lab, the way a user does
// them: moves with the CLI while the guest writes records with fsync and dirties memory, every
// record verified in the guest after each leg, read from its disk (caches dropped), and none lost
// since the leg before; after every delta move the data written on the host it left reads back
// the same. Out with --retain and back: the return sends the changed clusters only; a second
// round trip is a delta again; a retained copy touched behind the manager's back is refused with
// the reason (the move copies everything); a delta move cut by a link fault in a verified phase
// rolls back (the guest runs on in the same QEMU, nothing of the move left in it) with the copy
// intact, and a retry is a delta; `vm retained release` frees it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { open, readdir, stat, utimes } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { AgentMigrationClient, ManagerClient, type Job, type RetainedCopyView } from './api/index.js';
import { GUEST_WORKLOADS } from './guest/index.js';
import {
  assertGuestDataUnchanged,
  assertGuestKeptRunning,
  createBusyVm,
  fabricLink,
  guestDataChecksums,
  guestLife,
  guestRecordCount,
  inGuest,
  labAgent,
  labCli,
  labDown,
  labWithManager,
  startGuestWorkloads,
  strikeInPhase,
  verifyGuestRecords,
  within,
  type GuestDataChecksums,
  type Lab,
  type LabHost,
} from './lab/index.js';
import { assertNoMoveLeftovers } from './qemu-leftovers.js';

const LAB = 'dltest';
const VM = 'roamer';
const MiB = 1024 * 1024;

let lab: Lab;
let api: ManagerClient;
let h1: LabHost;
let h2: LabHost;
let vmId: string;
let diskId: string;
/** Each records file the guest wrote, and how many records it must hold at least. */
const written = new Map<string, number>();
/** The records file the guest writes now (its count is read before each move). */
let writing: { host: LabHost; file: string } | undefined;

const guest = (host: LabHost, command: string[], detach = false) => inGuest(host, VM, command, { detach });
const cli = (args: string[]) => labCli(lab, args);

async function startWorkloads(host: LabHost, file: string): Promise<void> {
  written.set(file, 0);
  writing = { host, file };
  await startGuestWorkloads(host, VM, file);
}

/** How far the writer got, read before a move or a strike: the file must hold that many after it. */
async function noteRecordsWritten(): Promise<void> {
  if (writing) written.set(writing.file, await guestRecordCount(writing.host, VM, writing.file));
}

/**
 * Stops the workloads and verifies every record the guest wrote so far, in every file, from its
 * disk: none bad, and none lost since the count read before the move or the last verification.
 */
async function verifyRecords(host: LabHost): Promise<void> {
  const verified = await verifyGuestRecords(
    host,
    VM,
    [...written].map(([file, atLeast]) => ({ file, atLeast })),
  );
  for (const [file, records] of verified.counts) written.set(file, records);
  writing = undefined;
}

let dataTag = 0;
/**
 * Before a move from `host`: 8 MiB of random data written there (fsync'd: clusters the move's
 * delta must carry) and its checksum as read from the disk; assertGuestDataUnchanged reads it
 * back after the move, from the disk the move built.
 */
async function dataBeforeMove(host: LabHost): Promise<GuestDataChecksums> {
  const file = `/data/left-${(dataTag += 1)}`;
  const wrote = await guest(host, [
    '/bin/dd',
    'if=/dev/urandom',
    `of=${file}`,
    'bs=1M',
    'count=8',
    'conv=fsync',
  ]);
  assert.equal(wrote.exitCode, 0, wrote.stderr);
  return guestDataChecksums(host, VM, [{ file }]);
}

/** A move with the CLI (detached, as a script would), followed to its end. */
async function moveWithCli(to: LabHost, ...flags: string[]): Promise<Job> {
  await noteRecordsWritten();
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
    written.set('/data/before', 500);
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
    const data1 = await dataBeforeMove(h2);
    const back = movedFigures(await moveWithCli(h1));
    assert.ok(back.deltaBytes !== undefined, 'the return is a delta');
    assert.ok(
      back.diskBytes < out.diskBytes / 4,
      `delta ${back.diskBytes} bytes against ${out.diskBytes} full`,
    );
    await assertGuestDataUnchanged(h1, VM, data1);
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
    const data2 = await dataBeforeMove(h1);
    const out2 = movedFigures(await moveWithCli(h2));
    assert.ok(out2.deltaBytes !== undefined, 'the second trip out is a delta onto host2 copy');
    await assertGuestDataUnchanged(h2, VM, data2);
    await verifyRecords(h2);
    await startWorkloads(h2, '/data/back2');
    const data3 = await dataBeforeMove(h2);
    const back2 = movedFigures(await moveWithCli(h1));
    assert.ok(back2.deltaBytes !== undefined, 'and so is the second return');
    await assertGuestDataUnchanged(h1, VM, data3);
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
    const before = await guestLife(h2, VM);
    // A 50 Mbit/s policy keeps the memory copy going long enough to cut the link in it.
    const { job } = await api.moveVm(VM, { to: h1.name, policy: { linkBitsPerSecond: 50e6 } });
    await strikeInPhase(api, h2, job.id, 'copy-memory', async () => {
      await noteRecordsWritten();
      linkOf(h1, 'down');
    });
    const failed = await api.waitForJob(job.id, 300_000);
    assert.equal(failed.state, 'failed');
    assert.match(failed.error?.detail ?? '', /during copy-memory/);
    assert.equal((await api.getVm(VM)).host, h2.name);
    // It rolled back on host2: the same guest in the same QEMU, nothing of the delta move left.
    await assertGuestKeptRunning(h2, VM, before);
    await assertNoMoveLeftovers(h2, VM);
    linkOf(h1, 'up');
    await within(90_000, async () => {
      assert.deepEqual(await labAgent(h1).listVms(), [], 'the half-made VM went');
      const copies = await new AgentMigrationClient(labAgent(h1).http).listRetained();
      assert.deepEqual(
        copies.map((c) => [c.vmId, c.check.valid]),
        [[vmId, true]],
      );
    });
    const data = await dataBeforeMove(h2);
    const retry = movedFigures(await moveWithCli(h1));
    assert.ok(retry.deltaBytes !== undefined, 'the retry is a delta onto the same copy');
    await assertGuestDataUnchanged(h1, VM, data);
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

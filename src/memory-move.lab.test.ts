// Memory-only moves (issue 30) on a real 2-host lab whose hosts both configure one shared
// datastore at the same directory (all lab namespaces see one filesystem: it stands in for network
// storage), done the way a user does them: `silobreak vm move <vm> --to <host>` while the guest
// writes records with fsync and dirties memory. A guest whose disk is on the shared datastore, with
// eight times its RAM in data on it: the dry run says "memory only"; the bytes its source sends on
// the fabric link (the kernel's counters) from the end of the move's validation (whose link probe
// fills the link for 300 ms by design, whatever the disks) to its end are QEMU's memory stream and
// little else, far below its disk's data; the disk file is the same one after the move and after
// the move back (no copy, nothing deleted); the guest kept running (same boot) and every record
// verifies from its disk. The control: the same guest moved with --datastore local is mirrored, and
// the same counter sees its data cross. A mixed guest (one disk shared, one local) mirrors only its
// local disk, whose data arrives intact.
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { ManagerClient, type Job, type MoveResult } from './api/index.js';
import {
  assertGuestDataUnchanged,
  assertGuestKeptRunning,
  fabricLinkBytes,
  guestDataChecksums,
  guestLife,
  guestRecordCount,
  inGuest,
  labAgent,
  labCli,
  labDown,
  labUp,
  startGuestWorkloads,
  verifyGuestRecords,
  waitForPing,
  type Lab,
  type LabHost,
} from './lab/index.js';

const LAB = 'mmtest';
const SAN = 'san';
const MiB = 1024 * 1024;
/** The guest's memory, and twice that in random data on its shared disk. */
const MEMORY_MIB = 256;
const DATA_MIB = 2048;
/** sb-dirty's rate in startGuestWorkloads: what the guest re-dirties while its memory is sent. */
const DIRTY_MIB_PER_S = 64;

let lab: Lab;
let api: ManagerClient;
let h1: LabHost;
let h2: LabHost;
let sanDir: string;

before(
  async () => {
    lab = await labUp({ name: LAB, hosts: 2, demo: false, accelerator: 'tcg', sharedDatastores: [SAN] });
    if (!lab.manager) throw new Error('the lab started no manager');
    api = new ManagerClient(lab.manager.url, lab.manager.token, 120_000);
    [h1, h2] = lab.hosts as [LabHost, LabHost];
    sanDir = path.join(lab.dir, `shared-${SAN}`);
  },
  { timeout: 600_000 },
);

after(
  async () => {
    if (!process.env.SB_KEEP_LAB) await labDown({ name: LAB });
  },
  { timeout: 300_000 },
);

const cli = async (args: string[]) => {
  const r = await labCli(lab, args);
  assert.equal(r.code, 0, `silobreak ${args.join(' ')}: ${r.stderr}${r.stdout}`);
  return r.stdout;
};

/** `vm create` with the CLI, as a user does, then `fillMiB` of random data in /data (fsync'd). */
async function createVm(vm: string, n: number, disks: string[], fillMiB: number): Promise<void> {
  const address = lab.vmAddress(n);
  await cli([
    'vm',
    'create',
    vm,
    '--host',
    h1.name,
    '--memory',
    `${MEMORY_MIB}M`,
    ...disks.flatMap((d) => ['--disk', d]),
    '--nic',
    'vmsw0',
    '--ip',
    address.cidr,
    '--start',
  ]);
  await waitForPing(lab, address.ip);
  const fill = await inGuest(h1, vm, [
    '/bin/dd',
    'if=/dev/urandom',
    'of=/data/fill',
    'bs=1M',
    `count=${fillMiB}`,
    'conv=fsync',
  ]);
  assert.equal(fill.exitCode, 0, fill.stderr);
}

/** The VM's most recent move job (the plain CLI followed it to its end). */
async function lastMove(vm: string): Promise<Job & { result: MoveResult }> {
  const id = (await api.getVm(vm)).id;
  const jobs = await api.listJobs({ kind: 'vm-move', targetId: id, limit: 100 });
  const job = jobs.items.sort((a, b) => b.createdAt.localeCompare(a.createdAt))[0];
  assert.equal(job?.state, 'succeeded', JSON.stringify(job?.error));
  return job as Job & { result: MoveResult };
}

interface MoveFigures {
  /**
   * What the source sent on its fabric link from the move's prepare-target phase to its end: the
   * disk mirror and the memory stream (after validate, whose link probe is no part of the copy).
   */
  sentBytes: number;
  /** The same over the whole move, its link probe included. */
  sentWithProbeBytes: number;
  job: Job & { result: MoveResult };
}

/**
 * `vm move <vm> --to <host>` with the plain CLI; the source's fabric counter is read before it,
 * when the job is seen in prepare-target (its target's QEMU starting: a second or so) and after it.
 */
function moveWithCli(vm: string, from: LabHost, to: LabHost): Promise<MoveFigures> {
  return moveWithCliArgs(vm, from, to, []);
}

async function moveWithCliArgs(
  vm: string,
  from: LabHost,
  to: LabHost,
  flags: string[],
): Promise<MoveFigures> {
  const id = (await api.getVm(vm)).id;
  const before = fabricLinkBytes(from).tx;
  const moving = cli(['vm', 'move', vm, '--to', to.name, ...flags]);
  let atPrepare: number | undefined;
  let seen = 'not seen';
  const done = moving.then(() => true);
  while (atPrepare === undefined && !(await Promise.race([done, sleep(50).then(() => false)]))) {
    const job = (await api.listJobs({ kind: 'vm-move', targetId: id, state: 'running', limit: 10 })).items[0];
    if (job === undefined) continue;
    seen = job.progress.phase;
    if (seen === 'prepare-target') atPrepare = fabricLinkBytes(from).tx;
    else if (seen !== 'validate' && seen !== '') break;
  }
  await moving;
  const after = fabricLinkBytes(from).tx;
  if (atPrepare === undefined)
    throw new Error(`the move was not caught in prepare-target (last seen: ${seen})`);
  return { sentBytes: after - atPrepare, sentWithProbeBytes: after - before, job: await lastMove(vm) };
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

/** A VM's images in a datastore directory (a copy of a disk would be one more). */
const images = async (dir: string, vm: string) =>
  (await readdir(dir)).filter((f) => f.startsWith(`${vm}-`) && f.endsWith('.qcow2')).sort();

test(
  'a VM whose disk is on shared storage moves by its memory alone, there and back, while it writes',
  { timeout: 1_800_000 },
  async () => {
    const VM = 'shared1';
    await createVm(VM, 1, [`4G@${SAN}`], DATA_MIB);
    const vm = await api.getVm(VM);
    const disk = vm.disks[0];
    assert.ok(disk, 'the VM has its disk');
    assert.equal(path.dirname(disk.path), sanDir, 'the disk lives on the shared datastore');
    const allocated = (await stat(disk.path)).blocks * 512;
    assert.ok(allocated > DATA_MIB * MiB, `the disk holds ${mib(allocated)}`);
    const inode = (await stat(disk.path)).ino;
    assert.deepEqual(await images(sanDir, VM), [path.basename(disk.path)]);

    // The datastore as both hosts report it: one storage.
    const stores = await api.listDatastores({ limit: 100 });
    const san = stores.items.filter((d) => d.name === SAN);
    assert.deepEqual(
      san.map((d) => [d.host, d.kind]),
      [
        [h1.name, 'shared'],
        [h2.name, 'shared'],
      ],
    );
    assert.equal(new Set(san.map((d) => d.storageId)).size, 1, 'the same storage id on both hosts');
    const listed = await cli(['datastore', 'list']);
    assert.match(listed, new RegExp(`${h2.name}\\s+${SAN}\\s+shared`));

    const dry = await cli(['vm', 'move', VM, '--to', h2.name, '--dry-run']);
    assert.match(
      dry,
      new RegExp(`^Memory only: disk ${disk.id} stays on shared datastore ${SAN} \\(memory-only\\)`, 'm'),
    );
    assert.match(dry, /none: stays on shared storage/);
    assert.doesNotMatch(dry, /Disk copy:/);

    let file = '/data/out';
    await startGuestWorkloads(h1, VM, file);
    const records = new Map<string, number>();
    for (const [from, to, next] of [
      [h1, h2, '/data/back'],
      [h2, h1, undefined],
    ] as const) {
      records.set(file, await guestRecordCount(from, VM, file));
      const life = await guestLife(from, VM);
      const moved = await moveWithCli(VM, from, to);
      const stats = moved.job.result.stats;
      const memory = stats.memoryBytes ?? 0;
      console.log(
        `${from.name} -> ${to.name}: sent ${mib(moved.sentBytes)} on the fabric after validate (${mib(moved.sentWithProbeBytes)} with the link probe), memory stream ${mib(memory)} in ${stats.iterations ?? '?'} passes over ${stats.memoryTimeMs ?? '?'} ms, disk ${mib(stats.diskBytes ?? 0)}, ${moved.job.result.totalTimeMs} ms, downtime ${stats.downtimeMs ?? '?'} ms; disk holds ${mib(allocated)}`,
      );
      assert.equal(stats.diskBytes ?? 0, 0, 'no disk byte mirrored');
      assert.ok(memory > 0, 'the memory went');
      // All that crossed the link is the memory stream and a little of the agents' API.
      assert.ok(
        moved.sentBytes < memory + 32 * MiB,
        `sent ${mib(moved.sentBytes)}, QEMU's memory stream ${mib(memory)}`,
      );
      // The stream is the guest's RAM once, plus the pages it dirtied again while they were sent.
      const redirtied = (DIRTY_MIB_PER_S * MiB * (stats.memoryTimeMs ?? 0)) / 1000;
      assert.ok(
        moved.sentBytes < MEMORY_MIB * MiB + redirtied + 64 * MiB,
        `sent ${mib(moved.sentBytes)}: more than the guest's ${MEMORY_MIB} MiB of RAM and the ${mib(redirtied)} it could dirty meanwhile`,
      );
      assert.ok(
        moved.sentBytes < allocated / 2,
        `sent ${mib(moved.sentBytes)}: far below the ${mib(allocated)} its disk holds`,
      );
      // The same file, where it was: no copy, nothing deleted.
      assert.deepEqual(await images(sanDir, VM), [path.basename(disk.path)]);
      assert.equal((await stat(disk.path)).ino, inode);
      assert.deepEqual(await images(to.datastorePath, VM), [], `nothing on ${to.name}'s local datastore`);
      assert.deepEqual(await images(from.datastorePath, VM), []);
      const here = await api.getVm(VM);
      assert.deepEqual([here.host, here.disks[0]?.path, here.disks[0]?.datastore], [to.name, disk.path, SAN]);
      await assert.rejects(labAgent(from).getVm(VM), /no VM named/);
      await assertGuestKeptRunning(to, VM, life);
      const verified = await verifyGuestRecords(
        to,
        VM,
        [...records].map(([f, atLeast]) => ({ file: f, atLeast })),
      );
      for (const [f, n] of verified.counts) records.set(f, n);
      console.log(`records on ${to.name}: ${verified.summary}`);
      if (next !== undefined) {
        file = next;
        await startGuestWorkloads(to, VM, file);
      }
    }

    // The control: asked onto host2's local datastore, the disk is mirrored (shared-nothing), and
    // the same counter sees its data cross; the image it left on the shared storage goes, as any
    // source's disk does after a move.
    const life = await guestLife(h1, VM);
    const copied = await moveWithCliArgs(VM, h1, h2, ['--datastore', 'local']);
    console.log(
      `control, --datastore local: sent ${mib(copied.sentBytes)} after validate, mirror ${mib(copied.job.result.stats.diskBytes ?? 0)}, memory ${mib(copied.job.result.stats.memoryBytes ?? 0)}`,
    );
    assert.ok(copied.sentBytes > DATA_MIB * MiB, `sent ${mib(copied.sentBytes)}: the disk's data crossed`);
    assert.deepEqual(await images(sanDir, VM), []);
    assert.deepEqual(await images(h2.datastorePath, VM), [path.basename(disk.path)]);
    await assertGuestKeptRunning(h2, VM, life);
    await cli(['vm', 'stop', VM]);
    await cli(['vm', 'delete', VM]);
  },
);

test(
  'a VM with one disk on shared storage and one local mirrors only the local one',
  { timeout: 1_800_000 },
  async () => {
    const VM = 'mixed1';
    await createVm(VM, 2, [`2G@${SAN}`, '256M'], 512);
    const vm = await api.getVm(VM);
    const [shared, local] = vm.disks;
    assert.ok(shared && local, 'two disks');
    assert.equal(path.dirname(local.path), h1.datastorePath);
    // 64 MiB of random data on the local disk (raw, no filesystem), read back after the move.
    const wrote = await inGuest(h1, VM, [
      '/bin/dd',
      'if=/dev/urandom',
      'of=/dev/vdb',
      'bs=1M',
      'count=64',
      'oflag=direct',
    ]);
    assert.equal(wrote.exitCode, 0, wrote.stderr);
    const localData = await guestDataChecksums(h1, VM, [{ device: '/dev/vdb', offsetMiB: 0, mib: 64 }]);
    const sharedAllocated = (await stat(shared.path)).blocks * 512;

    const dry = await cli(['vm', 'move', VM, '--to', h2.name, '--dry-run']);
    assert.match(
      dry,
      new RegExp(
        `^Shared storage: disk ${shared.id} stays on shared datastore ${SAN} \\(memory-only\\); only the other disks are mirrored\\.$`,
        'm',
      ),
    );
    assert.match(dry, new RegExp(`${local.id}\\s+${h1.name}:local\\s+${h2.name}:local\\s+mirror`));
    assert.doesNotMatch(dry, /^Memory only/m);

    const file = '/data/mixed';
    await startGuestWorkloads(h1, VM, file);
    const life = await guestLife(h1, VM);
    const atLeast = await guestRecordCount(h1, VM, file);
    const moved = await moveWithCli(VM, h1, h2);
    const stats = moved.job.result.stats;
    console.log(
      `mixed ${h1.name} -> ${h2.name}: sent ${mib(moved.sentBytes)} after validate (${mib(moved.sentWithProbeBytes)} with the link probe), memory ${mib(stats.memoryBytes ?? 0)}, mirror ${mib(stats.diskBytes ?? 0)} (the local disk's length), shared disk holds ${mib(sharedAllocated)}`,
    );
    // The mirror covered the local disk alone (its job's length is that disk's virtual size).
    assert.equal(stats.diskBytes, local.virtualSizeBytes);
    // The memory stream and the local disk's 64 MiB of data crossed; the shared disk's did not.
    assert.ok(
      moved.sentBytes > (stats.memoryBytes ?? 0) + 60 * MiB,
      `sent ${mib(moved.sentBytes)}: the local disk's 64 MiB went with the memory`,
    );
    assert.ok(
      moved.sentBytes < (stats.memoryBytes ?? 0) + 64 * MiB + 32 * MiB,
      `sent ${mib(moved.sentBytes)}: the memory stream and the local disk's 64 MiB, not the shared disk's ${mib(sharedAllocated)}`,
    );
    const here = await api.getVm(VM);
    assert.deepEqual(
      here.disks.map((d) => [d.id, d.datastore, path.dirname(d.path)]),
      [
        [shared.id, SAN, sanDir],
        [local.id, 'local', h2.datastorePath],
      ],
    );
    assert.equal(here.disks[0]?.path, shared.path, 'the shared disk is the same file');
    assert.deepEqual(await images(sanDir, VM), [path.basename(shared.path)]);
    assert.deepEqual(await images(h1.datastorePath, VM), [], 'the local disk left the source');
    await assertGuestKeptRunning(h2, VM, life);
    const verified = await verifyGuestRecords(h2, VM, [{ file, atLeast }]);
    console.log(`records on ${h2.name}: ${verified.summary}`);
    await assertGuestDataUnchanged(h2, VM, localData);
    await cli(['vm', 'stop', VM]);
    await cli(['vm', 'delete', VM]);
  },
);

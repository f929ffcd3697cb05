import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { type AgentClient, type DiskStats, type HostStats } from '../api/index.js';
import { LATENCY_BOUNDS_NS } from '../api/index.js';
import { GUEST_DATA_MOUNT, GUEST_WORKLOADS } from '../guest/index.js';
import { LAB_BOOT_DEADLINE_MS, startLabAgent, type LabAgent } from './lab-agent.js';

/*
 * The host's storage statistics (GET /v1/stats and /metrics) against real QEMU and a real (TCG)
 * guest: a guest writing to its disk shows growing counters and filled latency histograms, an
 * old qcow2 (compat 0.10) says so whether its VM runs or not, guest filesystems show their used
 * bytes, a silent guest agent makes the guest's figures unknown without holding up the poll, and
 * a new QEMU starts a new counter epoch. One agent process (like agent.lab.test.ts) and one
 * booted guest for the whole file; everything is removed afterwards.
 */

const MiB = 2 ** 20;
/** A poll with every guest answering; the goal is well under a second, TCG on 2 cores gets slack. */
const POLL_ANSWERING_MS = 2_000;
/** A poll with a silent guest: its agent's deadline (~1.2 s) and no more. */
const POLL_SILENT_MS = 3_000;

let lab: LabAgent;
let client: AgentClient;

before(async () => {
  lab = await startLabAgent({
    prefix: 'sb-stats-lab-',
    hostName: 'stats-a',
    token: 'stats-lab-token-0123456789',
  });
  ({ client } = lab);
});

after(() => lab.close());

/** A poll and how long it took. */
async function poll(): Promise<{ stats: HostStats; ms: number }> {
  const started = performance.now();
  const stats = await client.stats();
  return { stats, ms: performance.now() - started };
}

const diskOf = (stats: HostStats, vm: string): DiskStats => {
  const disk = stats.disks.find((d) => d.vm === vm);
  assert.ok(disk, `${vm} has a disk in ${JSON.stringify(stats.disks)}`);
  return disk;
};
const guestOf = (stats: HostStats, vm: string) => {
  const guest = stats.guests.find((g) => g.vm === vm);
  assert.ok(guest, `${vm} is among the guests`);
  return guest;
};
const dataFs = (stats: HostStats, vm: string) =>
  guestOf(stats, vm).filesystems?.find((f) => f.mountpoint === GUEST_DATA_MOUNT);
const sum = (bins: number[]) => bins.reduce((a, b) => a + b, 0);

/** Defines a stopped VM with one disk, optionally made again as an old qcow2 (compat 0.10). */
async function defineVm(name: string, sizeBytes: number, compat?: '0.10') {
  const vm = await client.createVm({ name, vcpus: 1, memoryMiB: 256, disks: [{ sizeBytes }], nics: [] });
  const [disk] = vm.disks;
  assert.ok(disk);
  if (compat) {
    await rm(disk.path);
    execFileSync('qemu-img', [
      ...`create -q -f qcow2 -o compat=${compat}`.split(' '),
      disk.path,
      `${sizeBytes}`,
    ]);
  }
  return vm;
}

let epochBefore: string | null = null;
let writtenBefore = 0;

test('stopped VMs: format version and sizes from the images, datastore sums, no counters, guests unknown', async () => {
  await defineVm('idle', 64 * MiB);
  await defineVm('writer', 512 * MiB, '0.10');
  const { stats } = await poll();
  const idle = diskOf(stats, 'idle');
  const writer = diskOf(stats, 'writer');
  assert.deepEqual(
    [
      idle.format,
      idle.formatVersion,
      idle.virtualSizeBytes,
      idle.counterEpoch,
      idle.counters,
      idle.histograms,
    ],
    ['qcow2', '1.1', 64 * MiB, null, null, null],
  );
  assert.deepEqual([writer.formatVersion, writer.virtualSizeBytes], ['0.10', 512 * MiB]);
  const [ds] = stats.datastores;
  assert.ok(ds);
  assert.equal(ds.provisionedBytes, 576 * MiB);
  assert.equal(ds.allocatedBytes, idle.allocatedBytes + writer.allocatedBytes);
  assert.ok(ds.allocatedBytes > 0 && ds.allocatedBytes < ds.provisionedBytes, 'thin images');
  assert.notEqual(ds.fsType, 'unknown');
  assert.deepEqual(guestOf(stats, 'idle'), {
    vm: 'idle',
    vmId: idle.vmId,
    agentVersion: null,
    filesystems: null,
  });
});

test('a guest writing to its disk: growing counters, filled histograms, used bytes in the guest', async (t) => {
  await client.startVm('writer');
  let answered: HostStats | undefined;
  for (const deadline = Date.now() + LAB_BOOT_DEADLINE_MS; !answered; await sleep(2_000)) {
    const { stats } = await poll();
    if (dataFs(stats, 'writer') !== undefined) answered = stats;
    else
      assert.ok(
        Date.now() < deadline,
        `no filesystems from the guest: ${JSON.stringify(guestOf(stats, 'writer'))}`,
      );
  }
  assert.match(guestOf(answered, 'writer').agentVersion ?? '', /^\d+\.\d+/);
  const first = diskOf(answered, 'writer');
  assert.equal(first.formatVersion, '0.10', 'the running image reports its compat level too');
  assert.ok(first.counterEpoch && first.counters);
  const usedBefore = dataFs(answered, 'writer')?.usedBytes ?? 0;

  const records = await client.guestExec(
    'writer',
    [
      GUEST_WORKLOADS.diskWriter,
      'write',
      '--file',
      `${GUEST_DATA_MOUNT}/records`,
      '--rate-kib',
      '0',
      '--count',
      '200',
      '--batch',
      '10',
    ],
    120,
  );
  assert.equal(records.exitCode, 0, records.stderr);
  const blob = await client.guestExec(
    'writer',
    ['/bin/dd', 'if=/dev/urandom', `of=${GUEST_DATA_MOUNT}/blob`, 'bs=1M', 'count=24', 'conv=fsync'],
    120,
  );
  assert.equal(blob.exitCode, 0, blob.stderr);

  const { stats, ms } = await poll();
  t.diagnostic(`poll with one answering guest: ${ms.toFixed(0)} ms`);
  assert.ok(ms < POLL_ANSWERING_MS, `poll took ${ms} ms`);
  const now = diskOf(stats, 'writer');
  assert.ok(now.counters && now.histograms, JSON.stringify(now));
  assert.equal(now.counterEpoch, first.counterEpoch, 'same QEMU, same epoch');
  assert.ok(now.counters.writeOps > first.counters.writeOps);
  assert.ok(now.counters.writeBytes - first.counters.writeBytes >= 24 * MiB);
  assert.ok(now.counters.flushOps > first.counters.flushOps, 'fsync reaches the disk as flushes');
  assert.ok(now.counters.writeTotalNs > first.counters.writeTotalNs);
  assert.deepEqual(now.histograms.boundariesNs, [...LATENCY_BOUNDS_NS]);
  assert.equal(now.histograms.write.length, LATENCY_BOUNDS_NS.length + 1);
  assert.ok(sum(now.histograms.write) > 0 && sum(now.histograms.flush) > 0, JSON.stringify(now.histograms));
  assert.ok(sum(now.histograms.write) <= now.counters.writeOps, 'the bins count no more than the requests');

  const used = dataFs(stats, 'writer');
  assert.ok(used, JSON.stringify(guestOf(stats, 'writer')));
  assert.ok(used.usedBytes - usedBefore >= 20 * MiB, `used ${usedBefore} -> ${used.usedBytes}`);
  assert.ok(used.totalBytes > used.usedBytes && used.type === 'ext4');

  const metrics = await client.metrics();
  const d = 'host="stats-a",vm="writer",disk="disk0"';
  const inf = new RegExp(
    `^silobreak_disk_latency_seconds_bucket\\{${d},op="write",le="\\+Inf"\\} (\\d+)$`,
    'm',
  ).exec(metrics);
  assert.ok(inf && Number(inf[1]) > 0, 'the write latency histogram is exposed');
  assert.match(metrics, new RegExp(`^silobreak_disk_flush_operations_total\\{${d}\\} [1-9]\\d*$`, 'm'));
  assert.match(
    metrics,
    new RegExp(`^silobreak_disk_info\\{${d},datastore="ds1",format="qcow2",format_version="0.10"\\} 1$`, 'm'),
  );
  assert.match(
    metrics,
    /^silobreak_guest_filesystem_used_bytes\{host="stats-a",vm="writer",mountpoint="\/data",fstype="ext4"\} [1-9]\d*$/m,
  );
  assert.match(
    metrics,
    /^silobreak_guest_agent_info\{host="stats-a",vm="writer",version="\d+\.\d+[^"]*"\} 1$/m,
  );
  epochBefore = now.counterEpoch;
  writtenBefore = now.counters.writeBytes;
});

test('a silent guest agent: its figures are unknown, and the poll does not wait long for it', async (t) => {
  const kill = await client.guestExec(
    'writer',
    ['/bin/sh', '-c', 'sleep 1; kill $(cat /run/qemu-ga.pid)'],
    30,
    true,
  );
  assert.ok(kill.pid > 0);
  // A fixed wait for the kill (1 s after the exec returned): asking the guest agent whether it is
  // gone would itself be the first poll of a silent guest, the one this test times.
  await sleep(3_000);
  const silent = await poll();
  t.diagnostic(`poll with a silent guest: ${silent.ms.toFixed(0)} ms`);
  assert.ok(silent.ms < POLL_SILENT_MS, `poll took ${silent.ms} ms`);
  const { vmId } = diskOf(silent.stats, 'writer');
  assert.deepEqual(guestOf(silent.stats, 'writer'), {
    vm: 'writer',
    vmId,
    agentVersion: null,
    filesystems: null,
  });
  assert.ok(diskOf(silent.stats, 'writer').counters, 'the disk figures come from QEMU, not from the guest');
  const again = await poll();
  t.diagnostic(`next poll, the silent guest remembered: ${again.ms.toFixed(0)} ms`);
  assert.ok(again.ms < POLL_ANSWERING_MS, `poll took ${again.ms} ms`);
  assert.equal(guestOf(again.stats, 'writer').agentVersion, null);
  assert.doesNotMatch(await client.metrics(), /^silobreak_guest_\w+\{[^}]*vm="writer"/m);
});

test('a new QEMU starts a new counter epoch; a stopped VM keeps its sizes and loses its counters', async () => {
  assert.ok(epochBefore, 'the writing test ran');
  await client.stopVm('writer');
  const stopped = diskOf((await poll()).stats, 'writer');
  assert.deepEqual([stopped.counterEpoch, stopped.counters, stopped.histograms], [null, null, null]);
  assert.equal(stopped.formatVersion, '0.10');
  assert.ok(stopped.allocatedBytes >= 24 * MiB, 'what the guest wrote is allocated in the image');

  await client.startVm('writer');
  const restarted = diskOf((await poll()).stats, 'writer');
  assert.ok(
    restarted.counterEpoch && restarted.counterEpoch !== epochBefore,
    restarted.counterEpoch ?? 'null',
  );
  assert.ok((restarted.counters?.writeBytes ?? 0) < writtenBefore, 'counters start again from zero');
  await client.stopVm('writer');
  for (const vm of ['writer', 'idle']) await client.deleteVm(vm, true);
  assert.deepEqual((await poll()).stats.disks, []);
});

// The migration engine's QMP sequences against two real QEMUs of the guest image on loopback:
// faults and cancels first (the source must come out of each unharmed), then a full live move
// of a guest that writes checksummed records to its disk and dirties memory meanwhile.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkMovedGuest, GUEST_WORKLOADS } from '../../guest/index.js';
import { MigrationCancelled, MigrationFailed } from './errors.js';
import { StatusInfo } from './qemu-replies.js';
import { MigrationRig, SLOW_MEMORY_COPY, type Qemu } from './test-rig.js';

const rig = new MigrationRig([47200, 47299]);
const mounted: string[] = [];
let source: Qemu;

before(async () => {
  source = await rig.bootSource('source');
});

after(async () => {
  for (const m of mounted) execFileSync('umount', [m]);
  await rig.close();
  await source?.qmp.close();
});

test(
  'cancel during the disk mirror: source unharmed, mirrors and NBD nodes gone',
  { timeout: 300_000 },
  async () => {
    const a = await rig.attempt(source);
    try {
      await rig.waitPhase(a.outgoing, 'mirror-disks');
      await sleep(300);
      a.outgoing.cancel();
      a.outgoing.cancel(); // twice is harmless
      await assert.rejects(a.done, MigrationCancelled);
      await rig.assertSourceUnharmed(source);
    } finally {
      await rig.kill(a.target);
      a.release();
    }
  },
);

test('target QEMU killed mid-mirror: the move fails, the source runs on', { timeout: 300_000 }, async () => {
  const a = await rig.attempt(source);
  try {
    await rig.waitPhase(a.outgoing, 'mirror-disks');
    await sleep(300);
    await rig.kill(a.target);
    await assert.rejects(a.done, MigrationFailed);
    await rig.assertSourceUnharmed(source);
  } finally {
    a.release();
  }
});

test(
  'target datastore full during the mirror: the move fails, the source runs on',
  { timeout: 300_000 },
  async () => {
    // A 48 MiB tmpfs as the target's datastore: the mirror's ~100 MiB of data cannot fit.
    const full = path.join(rig.dir, 'full');
    mkdirSync(full);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', full]);
    mounted.push(full);
    const a = await rig.attempt(source, { targetDiskDir: full });
    try {
      const error = await a.done.then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(error instanceof MigrationFailed, String(error));
      assert.equal(error.phase, 'mirror-disks');
      assert.match(error.message, /space|I\/O|error/i);
      await rig.assertSourceUnharmed(source);
    } finally {
      await rig.kill(a.target);
      a.release();
    }
  },
);

test(
  'target QEMU killed mid-memory-copy: the move fails, the source runs on',
  { timeout: 300_000 },
  async () => {
    const dirtier = await rig.guest(
      source,
      [GUEST_WORKLOADS.dirty, '--rate-mib', '0', '--size-mib', '64'],
      true,
    );
    const a = await rig.attempt(source, SLOW_MEMORY_COPY);
    try {
      await rig.waitPhase(a.outgoing, 'copy-memory', 120_000);
      await sleep(1500);
      assert.equal(a.outgoing.phase, 'copy-memory', 'the fault lands in the memory copy');
      await rig.kill(a.target);
      await assert.rejects(a.done, (e: unknown) => e instanceof MigrationFailed && e.phase === 'copy-memory');
      await rig.assertSourceUnharmed(source);
    } finally {
      a.release();
      await rig.guest(source, ['/bin/kill', String(dirtier.pid)]);
    }
  },
);

test('cancel during the memory copy: source resumed, nothing left', { timeout: 300_000 }, async () => {
  const a = await rig.attempt(source, SLOW_MEMORY_COPY);
  try {
    await rig.waitPhase(a.outgoing, 'copy-memory', 120_000);
    await sleep(1500);
    assert.equal(a.outgoing.phase, 'copy-memory', 'the cancel lands in the memory copy');
    a.outgoing.cancel();
    await assert.rejects(
      a.done,
      (e: unknown) => e instanceof MigrationCancelled && e.phase === 'copy-memory',
    );
    await rig.assertSourceUnharmed(source);
  } finally {
    await rig.kill(a.target);
    a.release();
  }
});

test(
  'live move with disk writes and memory dirtying: data verifies, uptime continues',
  { timeout: 600_000 },
  async () => {
    await rig.guest(
      source,
      [GUEST_WORKLOADS.diskWriter, 'write', '--file', '/data/during', '--rate-kib', '256'],
      true,
    );
    await rig.guest(source, [GUEST_WORKLOADS.dirty, '--rate-mib', '0', '--size-mib', '128'], true);
    await sleep(2000);
    const upBefore = await rig.uptime(source);
    const a = await rig.attempt(source);
    try {
      await a.done;
      const resumeMs = await a.incoming.resumed(60_000);
      const stats = a.outgoing.stats;
      console.log(
        `# move: total ${stats.totalTimeMs} ms, mirror ${stats.mirrorTimeMs} ms (${stats.diskBytes} B), memory ` +
          `${stats.memoryTimeMs} ms (${stats.memoryBytes} B), downtime ${stats.downtimeMs} ms (QEMU), ` +
          `target resume ${resumeMs} ms after completion, ${stats.iterations} passes, dirty before ` +
          `${Math.round((stats.dirtyRateBeforeBytesPerSecond ?? 0) / 1e6)} MB/s, peak ` +
          `${Math.round((stats.dirtyRatePeakBytesPerSecond ?? 0) / 1e6)} MB/s, throttle ${stats.throttlePeakPercent} % ` +
          `for ${stats.throttleSeconds} s; policy: ${JSON.stringify(a.outgoing.policyLog)}`,
      );
      assert.equal(a.outgoing.phase, 'done');
      assert.ok((stats.downtimeMs ?? Infinity) < 1000);
      const srcStatus = await source.qmp.execute('query-status', undefined, { schema: StatusInfo });
      assert.equal(srcStatus.status, 'postmigrate');
      const tgtStatus = await a.target.qmp.execute('query-status', undefined, { schema: StatusInfo });
      assert.equal(tgtStatus.status, 'running');
      await rig.kill(source);
      // The writer runs on in the guest, now on the target; stop it and check every record.
      await checkMovedGuest(rig.consoleFile(a.target), async () => {
        await sleep(1000);
        await rig.guest(a.target, ['/usr/bin/killall', 'sb-diskwriter']);
        await rig.guest(a.target, ['/usr/bin/killall', 'sb-dirty']);
        await sleep(500);
        for (const file of ['/data/before', '/data/during']) {
          const verify = await rig.guest(a.target, [GUEST_WORKLOADS.diskWriter, 'verify', '--file', file]);
          assert.equal(verify.exitCode, 0, `${file}: ${verify.stdout} ${verify.stderr}`);
          assert.match(verify.stdout ?? '', /verified [1-9]\d* records/);
          console.log(`# ${file}: ${verify.stdout?.trim()}`);
        }
        assert.ok((await rig.uptime(a.target)) > upBefore, 'guest uptime continues on the target');
      });
    } finally {
      await rig.kill(a.target);
      a.release();
    }
  },
);

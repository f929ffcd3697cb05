// The migration engine's QMP sequences against two real QEMUs of the guest image on loopback:
// faults and cancels first, each struck in a verified phase (the source must come out of each
// unharmed), then a full live move of a guest that writes checksummed records to its disk and
// dirties memory meanwhile, its QEMU downtime within the policy's maximum.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkMovedGuest, GUEST_WORKLOADS } from '../../guest/index.js';
import { DEFAULT_CONVERGENCE } from './convergence.js';
import { MigrationCancelled, MigrationFailed } from './errors.js';
import { StatusInfo } from './qemu-replies.js';
import { MigrationRig, SLOW_MEMORY_COPY, SLOW_MIRROR, type Qemu } from './test-rig.js';

const rig = new MigrationRig([47200, 47299]);
const mounted: string[] = [];
let source: Qemu;

/** The size of a guest file in bytes (0 while it does not exist). */
async function bytesIn(q: Qemu, file: string): Promise<number> {
  const r = await rig.guest(q, ['/bin/stat', '-c', '%s', file]);
  return r.exitCode === 0 ? Number(r.stdout?.trim()) : 0;
}

/** Polls `probe` every 100 ms until it returns a value (at most 60 s). */
async function until<T>(probe: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  for (const deadline = Date.now() + ms; ; await sleep(100)) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out');
  }
}

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
    const a = await rig.attempt(source, SLOW_MIRROR);
    try {
      const struck = await rig.strikeInPhase(a.outgoing, 'mirror-disks', () => {
        a.outgoing.cancel();
        a.outgoing.cancel(); // twice is harmless
      });
      assert.equal(struck, 'mirror-disks');
      await assert.rejects(
        a.done,
        (e: unknown) => e instanceof MigrationCancelled && e.phase === 'mirror-disks',
      );
      await rig.assertSourceUnharmed(source);
    } finally {
      await rig.kill(a.target);
      a.release();
    }
  },
);

test('target QEMU killed mid-mirror: the move fails, the source runs on', { timeout: 300_000 }, async () => {
  const a = await rig.attempt(source, SLOW_MIRROR);
  try {
    const struck = await rig.strikeInPhase(a.outgoing, 'mirror-disks', () => rig.kill(a.target));
    assert.equal(struck, 'mirror-disks');
    await assert.rejects(a.done, (e: unknown) => e instanceof MigrationFailed && e.phase === 'mirror-disks');
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
      const struck = await rig.strikeInPhase(a.outgoing, 'copy-memory', () => rig.kill(a.target));
      assert.equal(struck, 'copy-memory', 'the fault lands in the memory copy');
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
    const struck = await rig.strikeInPhase(a.outgoing, 'copy-memory', () => a.outgoing.cancel());
    assert.equal(struck, 'copy-memory', 'the cancel lands in the memory copy');
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
    // The writer is under way before the move starts; what it wrote by then must all be there after.
    const writtenBefore = await until(async () => (await bytesIn(source, '/data/during')) || undefined);
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
      // The full link (loopback): QEMU's downtime within the policy's maximum.
      assert.ok(
        (stats.downtimeMs ?? Infinity) <= DEFAULT_CONVERGENCE.maxDowntimeMs,
        `QEMU downtime ${stats.downtimeMs} ms > ${DEFAULT_CONVERGENCE.maxDowntimeMs} ms`,
      );
      const srcStatus = await source.qmp.execute('query-status', undefined, { schema: StatusInfo });
      assert.equal(srcStatus.status, 'postmigrate');
      const tgtStatus = await a.target.qmp.execute('query-status', undefined, { schema: StatusInfo });
      assert.equal(tgtStatus.status, 'running');
      await rig.kill(source);
      // The writer runs on in the guest, now on the target; once it wrote more there, stop it
      // (waiting for its last record), drop the guest's caches and check every record from the
      // disk the move built: none bad, none lost.
      await checkMovedGuest(rig.consoleFile(a.target), async () => {
        const atMove = await bytesIn(a.target, '/data/during');
        await until(async () => ((await bytesIn(a.target, '/data/during')) > atMove ? true : undefined));
        const stop =
          'killall sb-diskwriter sb-dirty; while pidof sb-diskwriter >/dev/null; do sleep 0.05; done';
        await rig.guest(a.target, ['/bin/sh', '-c', `${stop}; sync && echo 3 > /proc/sys/vm/drop_caches`]);
        assert.ok((await bytesIn(a.target, '/data/during')) >= writtenBefore, 'no record lost');
        // bootSource wrote 2000 records to /data/before.
        for (const [file, records] of [
          ['/data/before', /verified 2000 records/],
          ['/data/during', /verified [1-9]\d* records/],
        ] as const) {
          const verify = await rig.guest(a.target, [GUEST_WORKLOADS.diskWriter, 'verify', '--file', file]);
          assert.equal(verify.exitCode, 0, `${file}: ${verify.stdout} ${verify.stderr}`);
          assert.match(verify.stdout ?? '', records);
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

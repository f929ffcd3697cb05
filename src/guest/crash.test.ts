import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { checkMovedGuest, GuestKernelDied, kernelCrashLine } from './crash.js';

const dir = mkdtempSync(path.join(tmpdir(), 'sb-crash-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a console with a kernel oops gives its first crash line', () => {
  const console = [
    '[    6.609955] kernel tried to execute NX-protected page - exploit attempt? (uid: 0)',
    '[    6.623707] BUG: unable to handle page fault for address: ffffc900005eff58',
    '[    6.628608] Oops: 0011 [#1] PREEMPT SMP NOPTI',
    '[    6.643483] Kernel panic - not syncing: Fatal exception in interrupt',
  ].join('\n');
  assert.equal(
    kernelCrashLine(console),
    '[    6.623707] BUG: unable to handle page fault for address: ffffc900005eff58',
  );
  assert.match(
    kernelCrashLine('[ 41.2] watchdog: BUG: soft lockup - CPU#0 stuck for 22s!') ?? '',
    /soft lockup/,
  );
});

test('a healthy boot log has no crash line', () => {
  const console = [
    'sb-guest: formatting blank /dev/vda as ext4',
    'SILOBREAK-GUEST-READY hostname=mig ip=none qga=yes data=yes init=2.24 uptime=4.43',
  ].join('\n');
  assert.equal(kernelCrashLine(console), undefined);
  assert.equal(kernelCrashLine(''), undefined);
});

test('checkMovedGuest says the kernel died when a failed check meets a crashed console', async () => {
  const crashed = path.join(dir, 'c.console.log');
  writeFileSync(crashed, 'sb-guest: up\n[ 9.1] Oops: 0011 [#1] PREEMPT SMP NOPTI\n');
  const fail = async (): Promise<number> => {
    throw new Error('guest agent silent');
  };
  await assert.rejects(checkMovedGuest(crashed, fail), (error: unknown) => {
    assert.ok(error instanceof GuestKernelDied);
    assert.equal(error.crashLine, '[ 9.1] Oops: 0011 [#1] PREEMPT SMP NOPTI');
    assert.match(error.message, /kernel died after the move .*Oops: 0011.*failed check: guest agent silent$/);
    return true;
  });
  assert.equal(await checkMovedGuest(crashed, async () => 7), 7);
  const healthy = path.join(dir, 'healthy.console.log');
  writeFileSync(healthy, 'SILOBREAK-GUEST-READY hostname=mig\n');
  for (const file of [healthy, path.join(dir, 'absent.console.log')])
    await assert.rejects(checkMovedGuest(file, fail), (error: unknown) => {
      assert.ok(!(error instanceof GuestKernelDied));
      assert.match(String(error), /guest agent silent/);
      return true;
    });
});

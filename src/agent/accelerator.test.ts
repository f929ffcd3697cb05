import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chooseAccelerator, type KvmProbeResult } from './accelerator.js';

let stateDir: string;
let kvmDevice: string;
before(async () => {
  stateDir = await mkdtemp(path.join(tmpdir(), 'sb-accel-'));
  // Any readable and writable file stands in for a /dev/kvm that opens.
  kvmDevice = path.join(stateDir, 'kvm');
  await writeFile(kvmDevice, '');
});
after(async () => {
  await rm(stateDir, { recursive: true, force: true });
});

function countingProbe(result: KvmProbeResult) {
  const probe = async () => {
    probe.calls++;
    return result;
  };
  probe.calls = 0;
  return probe;
}
const hung: KvmProbeResult = { works: false, detail: 'the guest printed nothing', elapsedMs: 15_000 };
const booted: KvmProbeResult = {
  works: true,
  detail: 'the guest kernel printed to its console',
  elapsedMs: 900,
};

test('the configuration can force either accelerator without probing', async () => {
  const probe = countingProbe(booted);
  const base = { stateDir, qemuVersion: '7.2.22', guestKernelVersion: '6.1', probe, kvmDevice };
  const tcg = await chooseAccelerator({ ...base, setting: 'tcg' });
  assert.equal(tcg.accelerator, 'tcg');
  assert.equal(tcg.source, 'config');
  assert.deepEqual(await chooseAccelerator({ ...base, setting: 'kvm' }), {
    accelerator: 'kvm',
    source: 'config',
  });
  assert.equal(probe.calls, 0);
});

test('auto without a KVM device falls back to TCG with a warning and no probe', async () => {
  const probe = countingProbe(booted);
  const choice = await chooseAccelerator({
    setting: 'auto',
    stateDir,
    qemuVersion: '7.2.22',
    guestKernelVersion: '6.1',
    probe,
    kvmDevice: path.join(stateDir, 'no-such-device'),
  });
  assert.equal(choice.accelerator, 'tcg');
  assert.equal(choice.source, 'no-kvm-device');
  assert.match(choice.warning ?? '', /kvm/);
  assert.equal(probe.calls, 0);
});

test('a hung probe means TCG with the reason; the verdict is cached per QEMU and kernel', async () => {
  const probe = countingProbe(hung);
  const input = {
    setting: 'auto' as const,
    stateDir,
    qemuVersion: '7.2.22',
    guestKernelVersion: '6.1',
    probe,
    kvmDevice,
  };
  const first = await chooseAccelerator(input);
  assert.equal(first.accelerator, 'tcg');
  assert.equal(first.source, 'probe');
  assert.match(first.warning ?? '', /the guest printed nothing/);
  const second = await chooseAccelerator(input);
  assert.deepEqual(second, { ...first, source: 'cache' });
  assert.equal(probe.calls, 1);
  const cache = JSON.parse(await readFile(path.join(stateDir, 'kvm-probe.json'), 'utf8')) as { key: string };
  assert.match(cache.key, /qemu 7\.2\.22; host kernel .+; guest kernel 6\.1/);

  // Another QEMU version is another question: probed again, and here KVM works.
  const upgraded = countingProbe(booted);
  const third = await chooseAccelerator({ ...input, qemuVersion: '8.2.0', probe: upgraded });
  assert.deepEqual(third, { accelerator: 'kvm', source: 'probe' });
  assert.equal(upgraded.calls, 1);
});

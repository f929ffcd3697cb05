import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { findGuestImage, guestKernelCommandLine, GUEST_READY_MARKER } from '../guest/index.js';
import { probeKvm, type KvmProbeResult } from './accelerator.js';
import { startAgent } from './agent.js';

/*
 * The KVM boot probe against the real QEMU and guest image. Whether KVM works depends on the
 * machine, so the expected verdict comes from what is known of it, not from the probe itself: no
 * /dev/kvm, or the nested PVM flavour of KVM (/sys/module/kvm_pvm: guests hang right after the
 * kernel is decompressed, lab-facts.md), means TCG; an ordinary KVM host boots the guest. The tests
 * also check that the probe ends within its deadline and cleans up.
 */

/** What the probe must find here, known without booting anything. */
const KVM_DEVICE = existsSync('/dev/kvm');
const KVM_EXPECTED = KVM_DEVICE && !existsSync('/sys/module/kvm_pvm');

const DEADLINE_MS = 15_000;
let dir: string;
let realProbe: KvmProbeResult;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-accel-lab-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const qemuProcessesUsing = (needle: string) => {
  try {
    return execFileSync('pgrep', ['-f', needle], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
};

test('the probe boots the guest under KVM and decides within its deadline, leaving nothing behind', async () => {
  const image = await findGuestImage();
  const workDir = path.join(dir, 'probe');
  realProbe = await probeKvm({
    boot: {
      kernel: image.kernel,
      initrd: image.initrd,
      append: guestKernelCommandLine({ hostname: 'kvm-probe' }),
    },
    readyMarker: GUEST_READY_MARKER,
    workDir,
    deadlineMs: DEADLINE_MS,
  });
  assert.ok(realProbe.elapsedMs <= DEADLINE_MS + 5_000, `took ${realProbe.elapsedMs} ms`);
  assert.equal(realProbe.works, KVM_EXPECTED, `probe: ${realProbe.detail}`);
  if (realProbe.works) assert.match(realProbe.detail, /guest/);
  else assert.match(realProbe.detail, /printed nothing|exited/);
  assert.deepEqual(await readdir(workDir), [], 'the console log is removed');
  assert.equal(qemuProcessesUsing(workDir), '', 'the probe QEMU is gone');
});

test('a QEMU that cannot boot at all fails the probe at once with its error', async () => {
  const result = await probeKvm({
    boot: { kernel: path.join(dir, 'no-such-kernel'), initrd: path.join(dir, 'no-such-initrd'), append: '' },
    readyMarker: GUEST_READY_MARKER,
    workDir: path.join(dir, 'bad'),
    deadlineMs: DEADLINE_MS,
  });
  assert.equal(result.works, false);
  // Without /dev/kvm QEMU stops at `-accel kvm`, before it looks for the kernel.
  assert.match(
    result.detail,
    KVM_DEVICE ? /QEMU exited with code 1: .*no-such-kernel/s : /QEMU exited with code 1: .*KVM/s,
  );
  assert.ok(result.elapsedMs < 10_000);
});

test('an agent on auto uses the probe verdict, reports it, and reuses the cached verdict', async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  assert.ok(typeof address === 'object' && address);
  const config = {
    hostName: 'probe-host',
    listen: { address: '127.0.0.1', port: address.port },
    breakGlassToken: 'probe-test-token-0123456789',
    fabricAddress: '127.0.0.1',
    stateDir: path.join(dir, 'state'),
    datastores: [{ name: 'ds1', path: path.join(dir, 'ds1') }],
    vswitches: [],
    accelerator: 'auto',
  };
  const expected = KVM_EXPECTED ? 'kvm' : 'tcg';

  if (!KVM_DEVICE) {
    // No device at all (e.g. a container): TCG at once, no probe, nothing cached.
    const agent = await startAgent(config, { logLevel: 'silent' });
    try {
      assert.equal(agent.core.accelerator.source, 'no-kvm-device');
      assert.equal((await agent.core.hostInfo()).accelerator, 'tcg');
      assert.match((await agent.core.hostInfo()).acceleratorWarning ?? '', /no usable \/dev\/kvm/);
    } finally {
      await agent.close();
    }
    assert.equal(existsSync(path.join(dir, 'state', 'kvm-probe.json')), false);
    return;
  }
  const first = await startAgent(config, { logLevel: 'silent' });
  try {
    assert.equal(first.core.accelerator.source, 'probe');
    const host = await first.core.hostInfo();
    assert.equal(host.accelerator, expected);
    if (expected === 'tcg') assert.match(host.acceleratorWarning ?? '', /KVM does not work on this host/);
    const metrics = await first.core.metrics();
    assert.match(
      metrics,
      new RegExp(`^silobreak_accelerator_info\\{host="probe-host",accelerator="${expected}"\\} 1$`, 'm'),
    );
  } finally {
    await first.close();
  }
  const cache = JSON.parse(await readFile(path.join(dir, 'state', 'kvm-probe.json'), 'utf8')) as {
    works: boolean;
  };
  assert.equal(cache.works, realProbe.works);

  const started = Date.now();
  const second = await startAgent(config, { logLevel: 'silent' });
  try {
    assert.equal(second.core.accelerator.source, 'cache');
    assert.equal((await second.core.hostInfo()).accelerator, expected);
    assert.ok(Date.now() - started < 5_000, 'no second probe');
  } finally {
    await second.close();
  }
});

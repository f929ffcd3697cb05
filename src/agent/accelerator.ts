import { spawn } from 'node:child_process';
import { access, constants, mkdir, readFile, rm } from 'node:fs/promises';
import { release } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { Accelerator, type AgentConfig } from '../api/index.js';
import { writeFileAtomic } from './definitions.js';
import { CPU_MODEL, MACHINE_TYPE, qemuOptValue, type GuestBoot } from './qemu-argv.js';

/*
 * KVM or TCG. A /dev/kvm that opens is not proof that KVM works (a nested hypervisor may hang every
 * guest), so "auto" boots the guest kernel under KVM once with a deadline and keeps TCG unless the
 * guest shows signs of life. The verdict is cached per QEMU + host kernel + guest kernel.
 */

export interface AcceleratorChoice {
  accelerator: Accelerator;
  /** Why KVM is not used, when it is not. */
  warning?: string;
  /** How the choice was made. */
  source: 'config' | 'probe' | 'cache' | 'no-kvm-device';
}

export interface KvmProbeResult {
  works: boolean;
  detail: string;
  elapsedMs: number;
}

const ProbeCache = z.object({
  key: z.string(),
  works: z.boolean(),
  detail: z.string(),
  probedAt: z.iso.datetime(),
});

/** Kernel console output that only a booting kernel prints. */
const KERNEL_SIGN_OF_LIFE = /Linux version|Booting paravirtualized kernel|Command line:/;

export interface ProbeInput {
  boot: GuestBoot;
  /** Printed on the serial console when the guest is up: the probe stops as soon as it appears. */
  readyMarker: string;
  workDir: string;
  deadlineMs: number;
}

/** Boots the guest under KVM; it works when the guest gets ready, or at least the kernel talks. */
export async function probeKvm(input: ProbeInput): Promise<KvmProbeResult> {
  await mkdir(input.workDir, { recursive: true });
  const log = path.join(input.workDir, `kvm-probe-${process.pid}.log`);
  await rm(log, { force: true });
  const started = Date.now();
  const child = spawn(
    'qemu-system-x86_64',
    [
      '-accel',
      'kvm',
      '-machine',
      MACHINE_TYPE,
      '-cpu',
      CPU_MODEL,
      '-m',
      '256M',
      '-no-user-config',
      '-nodefaults',
      '-display',
      'none',
      '-no-reboot',
      '-kernel',
      input.boot.kernel,
      '-initrd',
      input.boot.initrd,
      '-append',
      input.boot.append,
      '-chardev',
      `file,id=serial0,path=${qemuOptValue(log)}`,
      '-serial',
      'chardev:serial0',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));
  const consoleText = () => readFile(log, 'utf8').catch(() => '');
  try {
    while (Date.now() - started < input.deadlineMs) {
      if ((await consoleText()).includes(input.readyMarker))
        return {
          works: true,
          detail: 'the guest booted to its ready marker',
          elapsedMs: Date.now() - started,
        };
      if (exitCode !== undefined)
        return {
          works: false,
          detail: `QEMU exited with code ${exitCode}: ${stderr.trim() || 'no error output'}`,
          elapsedMs: Date.now() - started,
        };
      await sleep(200);
    }
    const output = await consoleText();
    const elapsedMs = Date.now() - started;
    return KERNEL_SIGN_OF_LIFE.test(output)
      ? { works: true, detail: 'the guest kernel printed to its console', elapsedMs }
      : {
          works: false,
          detail: `the guest printed nothing on its console within ${Math.round(input.deadlineMs / 1000)} s under KVM`,
          elapsedMs,
        };
  } finally {
    if (exitCode === undefined) child.kill('SIGKILL');
    await exited;
    await rm(log, { force: true });
  }
}

export interface ChooseInput {
  setting: AgentConfig['accelerator'];
  stateDir: string;
  qemuVersion: string;
  guestKernelVersion: string;
  probe: () => Promise<KvmProbeResult>;
  kvmDevice?: string;
}

export async function chooseAccelerator(input: ChooseInput): Promise<AcceleratorChoice> {
  if (input.setting === 'tcg')
    return {
      accelerator: 'tcg',
      source: 'config',
      warning: 'TCG set in the configuration: guests are emulated (slow)',
    };
  if (input.setting === 'kvm') return { accelerator: 'kvm', source: 'config' };
  try {
    await access(input.kvmDevice ?? '/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return {
      accelerator: 'tcg',
      source: 'no-kvm-device',
      warning: 'no usable /dev/kvm: guests are emulated (TCG)',
    };
  }
  const cacheFile = path.join(input.stateDir, 'kvm-probe.json');
  const key = `qemu ${input.qemuVersion}; host kernel ${release()}; guest kernel ${input.guestKernelVersion}`;
  const cached = await readFile(cacheFile, 'utf8')
    .then((text) => ProbeCache.parse(JSON.parse(text)))
    .catch(() => undefined);
  const verdict = (works: boolean, detail: string, source: AcceleratorChoice['source']): AcceleratorChoice =>
    works
      ? { accelerator: 'kvm', source }
      : {
          accelerator: 'tcg',
          source,
          warning: `KVM does not work on this host (${detail}): guests are emulated (TCG)`,
        };
  if (cached?.key === key) return verdict(cached.works, cached.detail, 'cache');
  const result = await input.probe();
  await writeFileAtomic(
    cacheFile,
    `${JSON.stringify({ key, works: result.works, detail: result.detail, probedAt: new Date().toISOString() }, null, 2)}\n`,
  );
  return verdict(result.works, result.detail, 'probe');
}

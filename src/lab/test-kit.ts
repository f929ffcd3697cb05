// What lab tests do as a user would: run the `silobreak` CLI against the lab's manager, and run
// commands in a guest through the agent of the host it is on.
import { execFile, execFileSync } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentClient, ManagerClient, type GuestExecResult } from '../api/index.js';
import { GUEST_WORKLOADS } from '../guest/index.js';
import { labUp, waitForPing, type Lab, type LabHost } from './lab.js';

const BIN = path.resolve(import.meta.dirname, '..', '..', 'bin', 'silobreak.js');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `silobreak ...args` against the lab's manager, with no user config; resolves with code and output. */
export function labCli(lab: Lab, args: string[], timeoutMs = 600_000): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      {
        timeout: timeoutMs,
        maxBuffer: 16 * 1024 * 1024,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: lab.dir,
          NO_COLOR: '1',
          SILOBREAK_CONFIG: path.join(lab.dir, 'no-cli-config.json'),
          SILOBREAK_URL: lab.manager?.url ?? '',
          SILOBREAK_TOKEN: lab.manager?.token ?? '',
        },
      },
      (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}

export const labAgent = (host: LabHost): AgentClient => new AgentClient(host.agentUrl, host.token, 180_000);

/** A command in the guest of `vm` on `host` (retried while its guest agent starts). */
export async function inGuest(
  host: LabHost,
  vm: string,
  command: string[],
  options: { detach?: boolean; timeoutSeconds?: number } = {},
): Promise<GuestExecResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await labAgent(host).guestExec(
        vm,
        command,
        options.timeoutSeconds ?? 300,
        options.detach ?? false,
      );
    } catch (error) {
      if (attempt >= 40) throw error;
      await sleep(3000);
    }
  }
}

/** Waits until `check` passes (it throws until then), at most `ms`; returns how long it took. */
export async function within(ms: number, check: () => Promise<void>): Promise<number> {
  const started = Date.now();
  for (;;) {
    try {
      await check();
      return Date.now() - started;
    } catch (error) {
      if (Date.now() - started > ms) throw error;
      await sleep(1000);
    }
  }
}

/** Polls `probe` every second until it returns a value, at most `ms`; fails naming `what`. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 300_000): Promise<T> {
  for (const deadline = Date.now() + ms; ; await sleep(1000)) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

/** Takes a lab host's fabric link down or up (a cut cable, as the fault tests strike it). */
export function fabricLink(host: LabHost, state: 'up' | 'down'): void {
  execFileSync('ip', ['-n', host.namespace, 'link', 'set', 'fabric0', state]);
}

/** The guest's uptime in seconds (a guest restarted from its disk starts again near 0). */
export async function guestUptime(host: LabHost, vm: string): Promise<number> {
  return Number((await inGuest(host, vm, ['/bin/cat', '/proc/uptime'])).stdout?.split(' ')[0]);
}

/**
 * A busy guest's workloads, as the fault tests run them while they strike: records with fsync at
 * 1 MiB/s into `file` (sb-diskwriter) and 64 MiB/s of memory dirtied (sb-dirty).
 */
export async function startGuestWorkloads(host: LabHost, vm: string, file: string): Promise<void> {
  await inGuest(host, vm, [GUEST_WORKLOADS.diskWriter, 'write', '--file', file, '--rate-kib', '1024'], {
    detach: true,
  });
  await inGuest(host, vm, [GUEST_WORKLOADS.dirty, '--rate-mib', '64', '--size-mib', '128'], { detach: true });
}

/** Stops the workloads and verifies every record of each file; returns each file's verdict line. */
export async function verifyGuestRecords(host: LabHost, vm: string, files: string[]): Promise<string> {
  await inGuest(host, vm, ['/usr/bin/killall', 'sb-diskwriter', 'sb-dirty']);
  const out: string[] = [];
  for (const file of files) {
    const verify = await inGuest(host, vm, [GUEST_WORKLOADS.diskWriter, 'verify', '--file', file]);
    if (verify.exitCode !== 0) throw new Error(`${file}: ${verify.stdout ?? ''} ${verify.stderr ?? ''}`);
    out.push(`${file}: ${verify.stdout?.split('\n')[0] ?? ''}`);
  }
  return out.join(', ');
}

/**
 * `silobreak vm create <vm> --start` on `host` (384 MiB, a 2 GiB disk, the lab's first VM address)
 * as a user does it, then `fillMiB` of random data in /data for a move to carry.
 */
export async function createBusyVm(lab: Lab, host: LabHost, vm: string, fillMiB = 200): Promise<void> {
  const created = await labCli(lab, [
    'vm',
    'create',
    vm,
    '--host',
    host.name,
    '--memory',
    '384M',
    '--disk',
    '2G',
    '--nic',
    'vmsw0',
    '--ip',
    lab.vmAddress(1).cidr,
    '--start',
  ]);
  if (created.code !== 0) throw new Error(`vm create: ${created.stderr}`);
  await waitForPing(lab, lab.vmAddress(1).ip);
  const fill = await inGuest(host, vm, [
    '/bin/dd',
    'if=/dev/urandom',
    'of=/data/fill',
    'bs=1M',
    `count=${fillMiB}`,
  ]);
  if (fill.exitCode !== 0) throw new Error(`fill: ${fill.stderr ?? ''}`);
  await inGuest(host, vm, ['/bin/sync']);
}

/** A TCG lab of `hosts` hosts with its manager, and an admin client of that manager. */
export async function labWithManager(
  name: string,
  hosts = 2,
): Promise<{ lab: Lab; api: ManagerClient; hosts: LabHost[] }> {
  const lab = await labUp({ name, hosts, demo: false, accelerator: 'tcg' });
  if (!lab.manager) throw new Error('the lab started no manager');
  return { lab, api: new ManagerClient(lab.manager.url, lab.manager.token, 120_000), hosts: lab.hosts };
}

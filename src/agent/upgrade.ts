/*
 * The host's side of a rolling upgrade (POST /v1/host/upgrade): with no VM running or starting
 * here, and none allowed to start meanwhile, run the configured upgrade command (a program and
 * its arguments, no shell), capture its output into the answer and the log, and say which
 * versions the host has afterwards. The new QEMU is what VMs start on from then on, so the agent
 * reports it at once; a new agent package needs the agent restarted, which the command does
 * (detached: the answer goes out first) or the operator.
 */
import { spawn } from 'node:child_process';
import type { AgentConfig, HostUpgradeResult } from '../api/index.js';
import { UpgradeFailed, UpgradeUnavailable, VmsRunning } from './errors.js';
import type { Logger } from './logger.js';
import type { VmService } from './vm-service.js';

/** Of each output stream, the last this many bytes are kept. */
export const UPGRADE_OUTPUT_BYTES = 64 * 1024;
/** After the command's timeout: SIGTERM, then SIGKILL this much later. */
const KILL_GRACE_MS = 10_000;
/** How long after the command exits its output may still arrive (a detached child may hold it). */
const OUTPUT_DRAIN_MS = 1000;

export interface HostUpgradeDeps {
  config: AgentConfig['upgrade'];
  vms: Pick<VmService, 'holdStarts'>;
  /** The versions the agent reports (the QEMU one is updated after an upgrade). */
  versions: { agent: string; qemu: string };
  /** What is installed now (versions.ts). */
  installed: () => Promise<{ agent: string; qemu: string }>;
  log: Logger;
}

/** The last `max` bytes of what was written, as text. */
class Tail {
  #chunks: Buffer[] = [];
  #bytes = 0;
  constructor(private readonly max: number) {}
  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    while (this.#bytes - (this.#chunks[0]?.length ?? 0) >= this.max)
      this.#bytes -= this.#chunks.shift()?.length ?? 0;
  }
  text(): string {
    const all = Buffer.concat(this.#chunks);
    return all.subarray(Math.max(0, all.length - this.max)).toString('utf8');
  }
}

export interface Finished {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** Runs `command` (no shell) to its end or `timeoutMs`, keeping the tail of its output. */
export function runCommand(
  command: readonly string[],
  timeoutMs: number,
): Promise<Finished | { error: Error }> {
  const [file, ...args] = command;
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(file ?? '', args, { shell: false, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = new Tail(UPGRADE_OUTPUT_BYTES);
    const err = new Tail(UPGRADE_OUTPUT_BYTES);
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    let timedOut = false;
    let kill: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      kill = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ error });
    });
    child.on('exit', (exitCode, signal) => {
      clearTimeout(timer);
      clearTimeout(kill);
      // The output that is still on its way; a child the command left behind may hold the pipes.
      const done = () =>
        resolve({
          exitCode,
          signal,
          timedOut,
          stdout: out.text(),
          stderr: err.text(),
          durationMs: Date.now() - started,
        });
      const drained = Promise.all(
        [child.stdout, child.stderr].map(
          (s) => new Promise((r) => (s.readableEnded ? r(0) : s.once('close', r))),
        ),
      );
      const late = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        done();
      }, OUTPUT_DRAIN_MS);
      void drained.then(() => {
        clearTimeout(late);
        done();
      });
    });
  });
}

export class HostUpgrade {
  constructor(private readonly deps: HostUpgradeDeps) {}

  async run(): Promise<HostUpgradeResult> {
    const { config, log } = this.deps;
    if (!config) throw new UpgradeUnavailable();
    const hold = this.deps.vms.holdStarts('another upgrade');
    if ('running' in hold) throw new VmsRunning(hold.running);
    try {
      const before = { agentVersion: this.deps.versions.agent, qemuVersion: this.deps.versions.qemu };
      log.info('host upgrade: running the upgrade command', { command: config.command, before });
      const finished = await runCommand(config.command, config.timeoutSeconds * 1000);
      if ('error' in finished) {
        log.error('host upgrade: the command did not start', {
          command: config.command,
          error: String(finished.error),
        });
        throw new UpgradeFailed(
          `the upgrade command ${config.command[0]} could not start: ${finished.error.message}`,
        );
      }
      const { exitCode, signal, timedOut, stdout, stderr, durationMs } = finished;
      const ok = exitCode === 0 && !timedOut;
      log[ok ? 'info' : 'error']('host upgrade: the command ended', {
        command: config.command,
        exitCode,
        signal,
        timedOut,
        durationMs,
        stdout,
        stderr,
      });
      if (!ok) {
        const how = timedOut
          ? `did not end within ${config.timeoutSeconds} s (stopped)`
          : signal
            ? `was killed by ${signal}`
            : `exited with ${exitCode}`;
        const tail = (stderr.trim() || stdout.trim()).split('\n').slice(-10).join('\n');
        throw new UpgradeFailed(
          `the upgrade command ${config.command.join(' ')} ${how} after ${(durationMs / 1000).toFixed(1)} s${tail ? `: ${tail}` : ''}`,
        );
      }
      const installed = await this.deps.installed();
      // VMs start on the new QEMU from now on: the host reports it at once.
      this.deps.versions.qemu = installed.qemu;
      const after = { agentVersion: installed.agent, qemuVersion: installed.qemu };
      const agentRestartNeeded = installed.agent !== before.agentVersion;
      log.info('host upgrade: done', { before, after, agentRestartNeeded });
      return {
        command: [...config.command],
        exitCode: 0,
        durationMs,
        stdout,
        stderr,
        before,
        after,
        agentRestartNeeded,
      };
    } finally {
      hold.release();
    }
  }
}

import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { GuestExecResult, GuestInfo } from '../api/index.js';
import { GuestCommandFailed, GuestExecTimeout } from './errors.js';
import type { QgaClient } from './qga.js';

/* What the agent asks of a guest through qemu-ga: its identity, filesystems, and running programs. */

const COMMAND_TIMEOUT_MS = 10_000;

const QgaInfo = z.object({ version: z.string() });
const QgaOsInfo = z.record(z.string(), z.unknown());
const QgaFsInfo = z.array(
  z.object({
    mountpoint: z.string(),
    type: z.string(),
    'total-bytes': z.number().optional(),
    'used-bytes': z.number().optional(),
  }),
);
const QgaExec = z.object({ pid: z.number().int() });
const QgaExecStatus = z.object({
  exited: z.boolean(),
  exitcode: z.number().int().optional(),
  'out-data': z.string().optional(),
  'err-data': z.string().optional(),
});

/** Optional parts of the answer: a guest whose agent lacks a command just leaves the field out. */
async function optional<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof GuestCommandFailed) return undefined;
    throw error;
  }
}

export interface GuestReply {
  version: string;
  fsinfo: unknown[] | undefined;
}

/**
 * What the statistics poll asks of a guest, within `deadline` (epoch ms): the agent's version, and
 * the raw guest-get-fsinfo list (undefined when that command failed or did not answer in time).
 */
export async function readGuestUsage(qga: QgaClient, deadline: number): Promise<GuestReply> {
  const left = () => Math.max(1, deadline - Date.now());
  const { version } = await qga.execute('guest-info', undefined, QgaInfo, left());
  const fsinfo = await qga
    .execute('guest-get-fsinfo', undefined, z.array(z.unknown()), left())
    .catch(() => undefined);
  return { version, fsinfo };
}

export async function readGuestInfo(qga: QgaClient): Promise<GuestInfo> {
  const info = await qga.execute('guest-info', undefined, QgaInfo, COMMAND_TIMEOUT_MS);
  const osInfo = await optional(() =>
    qga.execute('guest-get-osinfo', undefined, QgaOsInfo, COMMAND_TIMEOUT_MS),
  );
  const fs = await optional(() => qga.execute('guest-get-fsinfo', undefined, QgaFsInfo, COMMAND_TIMEOUT_MS));
  return {
    agentVersion: info.version,
    ...(osInfo === undefined ? {} : { osInfo }),
    ...(fs === undefined
      ? {}
      : {
          filesystems: fs.map((f) => ({
            mountpoint: f.mountpoint,
            type: f.type,
            ...(f['total-bytes'] === undefined ? {} : { totalBytes: f['total-bytes'] }),
            ...(f['used-bytes'] === undefined ? {} : { usedBytes: f['used-bytes'] }),
          })),
        }),
  };
}

const decode = (data: string | undefined): string | undefined =>
  data === undefined ? undefined : Buffer.from(data, 'base64').toString('utf8');

export interface GuestExecOptions {
  vm: string;
  command: string[];
  timeoutSeconds: number;
  detach: boolean;
}

/** Starts a program in the guest; unless detached, polls until it exits and returns its output. */
export async function guestExec(qga: QgaClient, o: GuestExecOptions): Promise<GuestExecResult> {
  const [path, ...arg] = o.command;
  const { pid } = await qga.execute(
    'guest-exec',
    { path, arg, 'capture-output': !o.detach },
    QgaExec,
    COMMAND_TIMEOUT_MS,
  );
  if (o.detach) return { pid };
  const deadline = Date.now() + o.timeoutSeconds * 1000;
  for (let pause = 20; ; pause = Math.min(pause * 2, 500)) {
    const status = await qga.execute('guest-exec-status', { pid }, QgaExecStatus, COMMAND_TIMEOUT_MS);
    if (status.exited) {
      const stdout = decode(status['out-data']);
      const stderr = decode(status['err-data']);
      return {
        pid,
        ...(status.exitcode === undefined ? {} : { exitCode: status.exitcode }),
        stdout: stdout ?? '',
        stderr: stderr ?? '',
      };
    }
    if (Date.now() >= deadline) throw new GuestExecTimeout(o.vm, pid, o.timeoutSeconds);
    await sleep(pause);
  }
}

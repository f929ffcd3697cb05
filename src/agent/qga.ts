import { connect, type Socket } from 'node:net';
import { randomInt } from 'node:crypto';
import { z } from 'zod';
import { GuestAgentUnavailable, GuestCommandFailed } from './errors.js';

/*
 * A client of the QEMU guest agent (qemu-ga) over the VM's virtio-serial unix socket: one JSON
 * object per line each way, one command at a time. The channel may hold replies to an earlier
 * client's commands, so every session begins with guest-sync-delimited: the guest answers with a
 * 0xFF byte before its reply, and everything before that marker (and any reply with another id)
 * is stale and dropped.
 */

const SYNC_MARKER = 0xff;
const Reply = z.union([
  z.object({ return: z.unknown() }),
  z.object({ error: z.object({ class: z.string(), desc: z.string() }) }),
]);

export class QgaClient {
  private buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private closedError: Error | undefined;

  private constructor(
    private readonly socket: Socket,
    private readonly vm: string,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closedError ??= new GuestAgentUnavailable(vm, 'the guest agent socket closed');
      this.waiter?.();
    });
    socket.on('error', (error) => {
      this.closedError = new GuestAgentUnavailable(vm, error.message);
    });
  }

  /** Connects and synchronises; throws GuestAgentUnavailable when the guest does not answer in time. */
  static async open(socketPath: string, vm: string, timeoutMs: number): Promise<QgaClient> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect(socketPath);
      s.once('connect', () => resolve(s));
      s.once('error', (error) => reject(new GuestAgentUnavailable(vm, error.message)));
    });
    const client = new QgaClient(socket, vm);
    try {
      await client.sync(timeoutMs);
      return client;
    } catch (error) {
      client.close();
      throw error;
    }
  }

  close(): void {
    this.socket.destroy();
  }

  /** Runs one command and validates its `return` value. */
  async execute<T extends z.ZodType>(
    command: string,
    args: Record<string, unknown> | undefined,
    schema: T,
    timeoutMs: number,
  ): Promise<z.infer<T>> {
    this.send(command, args);
    const reply = Reply.parse(await this.readJsonLine(Date.now() + timeoutMs, command));
    if ('error' in reply)
      throw new GuestCommandFailed(this.vm, command, `${reply.error.class}: ${reply.error.desc}`);
    const parsed = schema.safeParse(reply.return);
    if (!parsed.success)
      throw new GuestCommandFailed(this.vm, command, `unexpected reply: ${parsed.error.message}`);
    return parsed.data;
  }

  private async sync(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const id = randomInt(1, 2 ** 31);
    // A lone 0xFF makes the guest drop any half-received command left by an earlier client.
    this.socket.write(Buffer.from([SYNC_MARKER]));
    this.send('guest-sync-delimited', { id });
    for (;;) {
      const marker = this.buffer.indexOf(SYNC_MARKER);
      if (marker >= 0) {
        this.buffer = this.buffer.subarray(marker + 1);
        break;
      }
      this.buffer = Buffer.alloc(0);
      await this.waitForData(deadline, 'guest-sync-delimited');
    }
    for (;;) {
      const reply = await this.readJsonLine(deadline, 'guest-sync-delimited');
      if (z.object({ return: z.literal(id) }).safeParse(reply).success) return;
    }
  }

  private send(command: string, args: Record<string, unknown> | undefined): void {
    if (this.closedError) throw this.closedError;
    this.socket.write(
      `${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`,
    );
  }

  private async readJsonLine(deadline: number, command: string): Promise<unknown> {
    for (;;) {
      const newline = this.buffer.indexOf(0x0a);
      if (newline >= 0) {
        const line = this.buffer.subarray(0, newline).toString('utf8').trim();
        this.buffer = this.buffer.subarray(newline + 1);
        if (line.length === 0) continue;
        try {
          return JSON.parse(line);
        } catch {
          continue; // noise from a half-written earlier reply; the next line is whole
        }
      }
      await this.waitForData(deadline, command);
    }
  }

  private waitForData(deadline: number, command: string): Promise<void> {
    if (this.closedError) return Promise.reject(this.closedError);
    const left = deadline - Date.now();
    if (left <= 0)
      return Promise.reject(new GuestAgentUnavailable(this.vm, `no reply to ${command} in time`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new GuestAgentUnavailable(this.vm, `no reply to ${command} in time`));
      }, left);
      this.waiter = () => {
        clearTimeout(timer);
        this.waiter = undefined;
        if (this.closedError) reject(this.closedError);
        else resolve();
      };
    });
  }
}

import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { StringDecoder } from 'node:string_decoder';
import { z } from 'zod';
import { QmpClosedError, QmpConnectError, QmpError, QmpProtocolError, QmpTimeoutError } from './errors.js';

/** The first line QEMU sends on a QMP connection. */
export const QmpGreeting = z.looseObject({
  QMP: z.looseObject({
    version: z.looseObject({
      qemu: z.looseObject({
        major: z.number().int(),
        minor: z.number().int(),
        micro: z.number().int(),
      }),
      package: z.string(),
    }),
    capabilities: z.array(z.string()),
  }),
});
export type QmpGreeting = z.infer<typeof QmpGreeting>;

/** An asynchronous event (STOP, RESUME, MIGRATION, JOB_STATUS_CHANGE, SHUTDOWN, ...). */
export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}
export const QmpEvent = z.object({
  event: z.string(),
  // QEMU omits `data` for events without payload (e.g. STOP).
  data: z.record(z.string(), z.unknown()).default({}),
  timestamp: z.object({ seconds: z.number(), microseconds: z.number() }),
});

const ErrorBody = z.looseObject({ class: z.string(), desc: z.string() });

export interface QmpConnectOptions {
  /** Deadline for the greeting and capability negotiation once the socket is open (default 10 s). */
  timeoutMs?: number;
  /**
   * Absolute time (epoch ms, as `Date.now()`) until which a missing socket (ENOENT) or a refused
   * connection (ECONNREFUSED) is retried, because QEMU is still starting. Default: no retries.
   */
  retryUntilMs?: number;
}

export interface QmpExecuteOptions {
  /** Deadline for the reply (default 60 s: a loaded TCG host can be slow to answer). */
  timeoutMs?: number;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_COMMAND_TIMEOUT_MS = 60_000;
const CONNECT_RETRY_INTERVAL_MS = 50;

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * A client for one QMP monitor socket. Commands are correlated with replies by a unique `id`;
 * events are handed to subscribers synchronously, in the order QEMU sent them, so an event that
 * QEMU sent before a command's reply is seen before that command's promise settles.
 */
export class QmpClient {
  readonly #socket: net.Socket;
  readonly #decoder = new StringDecoder('utf8');
  #buffer = '';
  #greeting: QmpGreeting | undefined;
  #onGreeting: ((greeting: QmpGreeting) => void) | undefined;
  #nextId = 1;
  readonly #pending = new Map<string, Pending>();
  readonly #eventListeners = new Set<(event: QmpEvent) => void>();
  readonly #closeListeners = new Set<(error?: Error) => void>();
  #closed = false;
  #closeRequested = false;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => this.#receive(this.#decoder.write(chunk)));
    // A reset (QEMU exiting with our bytes unread) is the same event as a close: the connection is gone.
    socket.on('error', (error) =>
      this.#shutdown(new QmpClosedError(`connection lost: ${error.message}`, undefined, { cause: error })),
    );
    socket.on('close', () =>
      this.#shutdown(this.#closeRequested ? undefined : new QmpClosedError('connection closed by QEMU')),
    );
  }

  /** Opens the socket, reads the greeting and leaves capability-negotiation mode. */
  static async connect(socketPath: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const socket = await openSocket(socketPath, options.retryUntilMs);
    const client = new QmpClient(socket);
    try {
      await client.#handshake(timeoutMs);
      return client;
    } catch (error) {
      await client.close();
      throw error;
    }
  }

  /** The greeting QEMU sent (QEMU version and offered capabilities). */
  get greeting(): QmpGreeting {
    if (this.#greeting === undefined) throw new Error('QMP greeting not received yet');
    return this.#greeting;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Runs a command and resolves with its `return` value, validated by `schema` when given.
   * Rejects with QmpError (QEMU's error reply), QmpTimeoutError, QmpClosedError or
   * QmpProtocolError (the reply does not match `schema`).
   */
  execute<S extends z.ZodType>(
    command: string,
    args: Record<string, unknown> | undefined,
    options: QmpExecuteOptions & { schema: S },
  ): Promise<z.infer<S>>;
  execute(command: string, args?: Record<string, unknown>, options?: QmpExecuteOptions): Promise<unknown>;
  async execute(
    command: string,
    args?: Record<string, unknown>,
    options: QmpExecuteOptions & { schema?: z.ZodType } = {},
  ): Promise<unknown> {
    const value = await this.#send(command, args, options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS);
    if (options.schema === undefined) return value;
    const parsed = options.schema.safeParse(value);
    if (!parsed.success) {
      throw new QmpProtocolError(`unexpected reply: ${z.prettifyError(parsed.error)}`, command, {
        cause: parsed.error,
      });
    }
    return parsed.data;
  }

  /** Subscribes to every event; returns the unsubscribe function. */
  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.#eventListeners.add(listener);
    return () => this.#eventListeners.delete(listener);
  }

  /**
   * Resolves with the next event called `name` (and accepted by `match`). Call it before running
   * the command that causes the event, or the event may already have passed.
   */
  waitForEvent(
    name: string,
    options: { timeoutMs?: number; match?: (event: QmpEvent) => boolean } = {},
  ): Promise<QmpEvent> {
    const label = `event:${name}`;
    if (this.#closed) return Promise.reject(new QmpClosedError('connection is closed', label));
    const timeoutMs = options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(timer);
        unsubscribeEvent();
        unsubscribeClose();
      };
      const timer = setTimeout(() => {
        finish();
        reject(new QmpTimeoutError(label, timeoutMs));
      }, timeoutMs);
      const unsubscribeEvent = this.onEvent((event) => {
        if (event.event !== name || (options.match && !options.match(event))) return;
        finish();
        resolve(event);
      });
      const unsubscribeClose = this.onClose((error) => {
        finish();
        reject(new QmpClosedError('connection closed', label, { cause: error }));
      });
    });
  }

  /**
   * Called once when the connection ends: without an error after `close()`, with one when QEMU
   * closed the socket (e.g. after `quit` or a crash) or the socket failed.
   */
  onClose(listener: (error?: Error) => void): () => void {
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }

  /** Closes the connection; commands still waiting reject with QmpClosedError. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closeRequested = true;
    const closedEvent = new Promise<void>((resolve) => this.#socket.once('close', () => resolve()));
    this.#socket.destroy();
    await closedEvent;
  }

  async #handshake(timeoutMs: number): Promise<void> {
    const started = Date.now();
    const greeting = new Promise<QmpGreeting>((resolve, reject) => {
      const timer = setTimeout(() => {
        unsubscribeClose();
        reject(new QmpTimeoutError('connect', timeoutMs));
      }, timeoutMs);
      const unsubscribeClose = this.onClose((error) => {
        clearTimeout(timer);
        reject(new QmpClosedError('connection closed before the greeting', 'connect', { cause: error }));
      });
      this.#onGreeting = (value) => {
        clearTimeout(timer);
        unsubscribeClose();
        resolve(value);
      };
    });
    await greeting;
    const remaining = Math.max(1, timeoutMs - (Date.now() - started));
    await this.execute('qmp_capabilities', undefined, { timeoutMs: remaining });
  }

  #send(command: string, args: Record<string, unknown> | undefined, timeoutMs: number): Promise<unknown> {
    if (this.#closed) return Promise.reject(new QmpClosedError('connection is closed', command));
    const id = `sb-${this.#nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // A late reply is then dropped: its id is no longer pending.
        this.#pending.delete(id);
        reject(new QmpTimeoutError(command, timeoutMs));
      }, timeoutMs);
      this.#pending.set(id, { command, resolve, reject, timer });
      const message =
        args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
      this.#socket.write(`${JSON.stringify(message)}\n`);
    });
  }

  #receive(text: string): void {
    this.#buffer += text;
    let newline = this.#buffer.indexOf('\n');
    while (newline !== -1 && !this.#closed) {
      const line = this.#buffer.slice(0, newline).trim();
      this.#buffer = this.#buffer.slice(newline + 1);
      if (line !== '') this.#handleLine(line);
      newline = this.#buffer.indexOf('\n');
    }
  }

  #handleLine(line: string): void {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch (error) {
      this.#protocolFailure(`QEMU sent invalid JSON: ${line.slice(0, 200)}`, error);
      return;
    }
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      this.#protocolFailure(`QEMU sent a non-object message: ${line.slice(0, 200)}`);
      return;
    }
    if ('QMP' in message) this.#handleGreeting(message);
    else if ('event' in message) this.#handleEvent(message);
    else if ('return' in message || 'error' in message) this.#handleReply(message);
    else this.#protocolFailure(`QEMU sent an unknown message: ${line.slice(0, 200)}`);
  }

  #handleGreeting(message: object): void {
    const parsed = QmpGreeting.safeParse(message);
    if (!parsed.success || this.#greeting !== undefined) {
      this.#protocolFailure('QEMU sent an unexpected or malformed greeting', parsed.error);
      return;
    }
    this.#greeting = parsed.data;
    this.#onGreeting?.(parsed.data);
  }

  #handleEvent(message: object): void {
    const parsed = QmpEvent.safeParse(message);
    if (!parsed.success) {
      this.#protocolFailure('QEMU sent a malformed event', parsed.error);
      return;
    }
    for (const listener of [...this.#eventListeners]) callSafely(listener, parsed.data);
  }

  #handleReply(message: object & ({ return: unknown } | { error: unknown })): void {
    const id = 'id' in message ? message.id : undefined;
    // QEMU answers in order; a reply without id (e.g. to a request it could not parse) belongs to
    // the oldest command still waiting.
    const key = typeof id === 'string' ? id : this.#pending.keys().next().value;
    const pending = key === undefined ? undefined : this.#pending.get(key);
    if (key === undefined || pending === undefined) return; // answer to a command that timed out
    this.#pending.delete(key);
    clearTimeout(pending.timer);
    if ('error' in message) {
      const body = ErrorBody.safeParse(message.error);
      pending.reject(
        body.success
          ? new QmpError(pending.command, body.data.class, body.data.desc)
          : new QmpProtocolError('malformed error reply', pending.command, { cause: body.error }),
      );
    } else {
      pending.resolve(message.return);
    }
  }

  #protocolFailure(message: string, cause?: unknown): void {
    const error = new QmpProtocolError(message, undefined, { cause });
    this.#socket.destroy(error);
    this.#shutdown(error);
  }

  /** Runs once: rejects everything still waiting and tells the close listeners. */
  #shutdown(error: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.destroy();
    for (const [id, pending] of this.#pending) {
      this.#pending.delete(id);
      clearTimeout(pending.timer);
      pending.reject(
        new QmpClosedError(
          error === undefined ? 'connection closed by close()' : `connection lost (${error.message})`,
          pending.command,
          { cause: error },
        ),
      );
    }
    for (const listener of [...this.#closeListeners]) callSafely(listener, error);
    this.#closeListeners.clear();
    this.#eventListeners.clear();
  }
}

/**
 * A throwing listener must not break the parser, the other listeners or the process (a stray
 * event must not take an agent down); its error is reported as a process warning instead.
 */
function callSafely<T>(listener: (value: T) => void, value: T): void {
  try {
    listener(value);
  } catch (error) {
    process.emitWarning(error instanceof Error ? error : new Error(String(error)), 'QmpListenerError');
  }
}

async function openSocket(socketPath: string, retryUntilMs: number | undefined): Promise<net.Socket> {
  for (;;) {
    try {
      return await connectOnce(socketPath);
    } catch (error) {
      const cause = error as NodeJS.ErrnoException;
      const retryable = cause.code === 'ENOENT' || cause.code === 'ECONNREFUSED';
      if (!retryable || retryUntilMs === undefined || Date.now() + CONNECT_RETRY_INTERVAL_MS > retryUntilMs) {
        throw new QmpConnectError(socketPath, cause);
      }
      await sleep(CONNECT_RETRY_INTERVAL_MS);
    }
  }
}

function connectOnce(socketPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    const onError = (error: Error): void => reject(error);
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

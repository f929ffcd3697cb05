/*
 * The link probe (issue 27): how fast the fabric carries bytes from this host to another, measured
 * by the agents themselves so that every move plan has a link rate (src/api/links.ts has the
 * calls). The source opens a one-shot sender; the target connects to it and presents the secret;
 * the sender fills the connection for a bounded time and closes it. The target counts what
 * arrives from its first to its last read, so the rate is the receiver's: the sender's own count
 * would include what still sits in its socket buffer and the link's queue when it stops.
 *
 * The receiver connects (not the other way round) so that it reads into one reused buffer with
 * `onread`, which only net.connect takes: a socket accepted by net.Server reads each chunk into a
 * new 64 KiB buffer, and that churn (with the GC behind it) cost about half of what a busy 2-core
 * host received. Over loopback at a load of ~7: median 8.0 Gbit/s accepted, 7.5 with the server's
 * highWaterMark raised to 4 MiB (it does not change the reads), 19-22 with one reused buffer.
 *
 * The sender listens on the fabric address, on a port of the migration range (the same allocator
 * as NBD and the memory stream, so they never collide), and fills exactly one connection: the
 * first to present its one-time secret; any other connection is dropped. Unused, it closes at its
 * expiry; a transfer that runs far past the announced duration is cut at both ends.
 *
 * The sender writes one large random buffer over and over (allocated once per process, reused:
 * no per-write allocation or copy), so a fast link reads fast even beside a busy guest.
 */
import { once } from 'node:events';
import net from 'node:net';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { LinkProbeRequest, LinkProbeResult, LinkSender, LinkSenderRequest } from '../../api/index.js';
import type { z } from 'zod';
import { AgentError, InvalidInput } from '../errors.js';
import type { Logger } from '../logger.js';
import { PortsExhausted, type PortAllocator } from './ports.js';

/** A probe failed: the sender could not be opened or reached, or too little arrived to tell a rate. */
export class LinkProbeFailed extends AgentError {
  readonly code = 'link-probe-failed';
}

const SECRET_BYTES = 32;
/** A fresh one-time secret (PeerSecret in hex): a link probe's, a cold move's exports'. */
export const newPeerSecret = (): Buffer => randomBytes(SECRET_BYTES);
/** An unused sender closes after this long (the target connects within a second of its opening). */
export const SENDER_EXPIRY_MS = 10_000;
/** A transfer may run this much past its announced duration (the link's queue draining) before it is cut. */
const TRANSFER_SLACK_MS = 10_000;
const CONNECT_TIMEOUT_MS = 5_000;
/** Large enough that one write keeps a 20 Gbit/s link busy for ~1.6 ms, small beside host memory. */
const SEND_BUFFER_BYTES = 4 * 1024 * 1024;
/** One read takes at most this much; the same size as a send. */
const RECEIVE_BUFFER_BYTES = SEND_BUFFER_BYTES;

let sendBuffer: Buffer | undefined;
/** Random (incompressible) bytes, made once: every probe of this process sends the same buffer. */
function payload(): Buffer {
  return (sendBuffer ??= randomBytes(SEND_BUFFER_BYTES));
}

let receiveBuffer: Buffer | undefined;
/**
 * Where every probe of this process reads into. Only the number of bytes of each read counts, never
 * their content, so two probes received at once may share it.
 */
function readInto(): Buffer {
  return (receiveBuffer ??= Buffer.allocUnsafe(RECEIVE_BUFFER_BYTES));
}

/** What the receiver counted after its first read, and over how long. */
export interface ReceivedSpan {
  spanBytes: number;
  spanMicros: number;
}

/** bits/s from what a receiver counted; undefined when too little arrived to tell a rate. */
export function rateOf(span: ReceivedSpan): number | undefined {
  if (span.spanBytes <= 0 || span.spanMicros <= 0) return undefined;
  return (span.spanBytes * 8) / (span.spanMicros / 1e6);
}

/** A socket error as people read it, without anything of this host's internals. */
function reason(error: unknown): string {
  if (error instanceof Error && (error.name === 'AbortError' || error.name === 'TimeoutError'))
    return 'timed out';
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  return 'connection failed';
}

export class LinkProbes {
  constructor(
    private readonly ports: PortAllocator,
    private readonly address: () => string,
    private readonly log: Logger,
  ) {}

  /** Source: opens the sender and answers where it listens and the secret it expects. */
  async openSender(request: z.output<typeof LinkSenderRequest>): Promise<LinkSender> {
    const address = this.address();
    const secret = newPeerSecret();
    const expiresAt = Date.now() + SENDER_EXPIRY_MS;
    let opened;
    try {
      opened = await this.ports.withPort(
        address,
        (lease) => listen(address, lease.port),
        (error) => (error as { code?: unknown }).code === 'EADDRINUSE',
      );
    } catch (error) {
      if (error instanceof PortsExhausted)
        throw new LinkProbeFailed(`no free port for a link probe sender: ${error.message}`);
      throw new LinkProbeFailed(`cannot open a link probe sender on ${address}: ${reason(error)}`);
    }
    const { lease, result: server } = opened;
    let taken = false;
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      clearTimeout(expiry);
      if (server.listening) server.close();
      lease.release();
    };
    const expiry = setTimeout(() => {
      if (!taken) {
        this.log.info('link probe sender expired unused', { port: lease.port });
        close();
      }
    }, SENDER_EXPIRY_MS);
    expiry.unref();
    server.on('connection', (socket) => {
      if (taken) {
        socket.destroy();
        return;
      }
      void this.#serve(socket, secret, request.durationMs, () => {
        taken = true;
        // No other connection from here on; the one taken runs to its end.
        if (server.listening) server.close();
        clearTimeout(expiry);
      }).then((used) => {
        if (used) close();
      });
    });
    server.on('error', (error) => {
      this.log.warn('link probe sender failed', { port: lease.port, error: reason(error) });
      close();
    });
    return {
      address,
      port: lease.port,
      secret: secret.toString('hex'),
      expiresAt: new Date(expiresAt).toISOString(),
    };
  }

  /**
   * One connection to the sender: the secret first (else reset, and the sender waits on), then
   * the payload for `durationMs` and the close. Resolves whether this was the probe's connection.
   */
  #serve(socket: net.Socket, secret: Buffer, durationMs: number, accept: () => void): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      let head = Buffer.alloc(0);
      let taken = false;
      let cut: NodeJS.Timeout | undefined;
      const gone = new AbortController();
      socket.setNoDelay(true);
      // A stranger that sends nothing must not hold the connection open.
      socket.setTimeout(CONNECT_TIMEOUT_MS, () => socket.destroy());
      socket.on('data', (chunk: Buffer) => {
        // Nothing is expected after the secret: anything more is dropped unread.
        if (taken || head.length >= SECRET_BYTES) return;
        head = Buffer.concat([head, chunk]);
        if (head.length < SECRET_BYTES) return;
        if (!timingSafeEqual(head.subarray(0, SECRET_BYTES), secret)) {
          // A reset, so a receiver with a wrong secret reads ECONNRESET, not an empty transfer.
          socket.resetAndDestroy();
          return;
        }
        taken = true;
        accept();
        socket.setTimeout(0);
        cut = setTimeout(() => socket.destroy(), durationMs + TRANSFER_SLACK_MS);
        cut.unref();
        void fill(socket, durationMs, gone.signal).then(
          (sent) => this.log.info('link probe sent', { port: socket.localPort, ...sent }),
          (error: unknown) =>
            this.log.warn('link probe sender cut', { port: socket.localPort, error: reason(error) }),
        );
      });
      socket.on('error', () => socket.destroy());
      socket.on('close', () => {
        clearTimeout(cut);
        gone.abort();
        resolve(taken);
      });
    });
  }

  /** Target: receives from the source's sender and returns the rate it arrived at here. */
  async receive(request: z.output<typeof LinkProbeRequest>): Promise<LinkProbeResult> {
    const { sender, durationMs } = request;
    const [low, high] = this.ports.range;
    // Only a sender as the agents open them: this call must not become a way to connect anywhere.
    if (sender.port < low || sender.port > high)
      throw new InvalidInput(
        `sender.port: a link probe sender listens on a port of the migration range ${low}-${high}`,
        'sender.port',
      );
    const from = `${sender.address}:${sender.port}`;
    let bytes = 0;
    let spanBytes = 0;
    let first: bigint | undefined;
    let last: bigint | undefined;
    const buffer = readInto();
    const socket = net.connect({
      host: sender.address,
      port: sender.port,
      noDelay: true,
      onread: {
        buffer,
        callback: (n) => {
          const now = process.hrtime.bigint();
          if (first === undefined) first = now;
          else spanBytes += n;
          last = now;
          bytes += n;
          return true;
        },
      },
    });
    // The awaits below read its errors; this keeps one coming between them from crashing the agent.
    socket.on('error', () => undefined);
    try {
      try {
        await once(socket, 'connect', { signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS) });
      } catch (error) {
        throw new LinkProbeFailed(`cannot reach the link probe sender at ${from}: ${reason(error)}`);
      }
      const started = process.hrtime.bigint();
      try {
        socket.write(Buffer.from(sender.secret, 'hex'));
        // The transfer is cut when it runs far past its duration, like the sender cuts it.
        await once(socket, 'end', { signal: AbortSignal.timeout(durationMs + TRANSFER_SLACK_MS) });
      } catch (error) {
        throw new LinkProbeFailed(`the link probe from ${from} failed: ${reason(error)}`);
      }
      const spanMicros = first !== undefined && last !== undefined ? Number(last - first) / 1000 : 0;
      const bitsPerSecond = rateOf({ spanBytes, spanMicros });
      if (bitsPerSecond === undefined)
        throw new LinkProbeFailed(`too little arrived from the link probe sender at ${from} to tell a rate`);
      const result: LinkProbeResult = {
        bitsPerSecond,
        receivedBytes: bytes,
        spanMs: spanMicros / 1000,
        durationMs: Math.round(Number(process.hrtime.bigint() - started) / 1e6),
      };
      this.log.info('link probe', { from, ...result });
      return result;
    } finally {
      socket.destroy();
    }
  }
}

/** Writes the payload until `durationMs` has passed, then closes; what was sent, over how long. */
async function fill(
  socket: net.Socket,
  durationMs: number,
  gone: AbortSignal,
): Promise<{ sentBytes: number; sentMs: number }> {
  const data = payload();
  let sentBytes = 0;
  const started = Date.now();
  while (Date.now() - started < durationMs) {
    sentBytes += data.length;
    if (!socket.write(data)) await once(socket, 'drain', { signal: gone });
  }
  socket.end();
  return { sentBytes, sentMs: Date.now() - started };
}

/** Listens on address:port (exclusive), resolving once bound. */
function listen(address: string, port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ host: address, port, exclusive: true }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/*
 * The link probe (issue 27): how fast the fabric carries bytes from this host to another, measured
 * by the agents themselves so that every move plan has a link rate (src/api/links.ts has the
 * calls). The target opens a one-shot sink; the source sends to it for a bounded time and
 * half-closes; the sink answers with what it received and over how long, so the rate is the
 * receiver's: the sender's own count would include what still sits in its socket buffer and the
 * link's queue when it stops.
 *
 * The sink listens on the fabric address, on a port of the migration range (the same allocator
 * as NBD and the memory stream, so they never collide), and takes exactly one connection that
 * presents its one-time secret first; any other connection is dropped. Unused, it closes at its
 * expiry; a transfer that runs far past the announced duration is cut.
 *
 * The sender writes one large random buffer over and over (allocated once per process, reused:
 * no per-write allocation or copy), so a fast link reads fast even beside a busy guest.
 */
import { once } from 'node:events';
import net from 'node:net';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import {
  LinkSinkReport,
  type LinkProbeRequest,
  type LinkProbeResult,
  type LinkSink,
  type LinkSinkRequest,
} from '../../api/index.js';
import type { z } from 'zod';
import { AgentError, InvalidInput } from '../errors.js';
import type { Logger } from '../logger.js';
import { PortsExhausted, type PortAllocator } from './ports.js';

/** A probe failed: the sink could not be opened or reached, or did not answer as it should. */
export class LinkProbeFailed extends AgentError {
  readonly code = 'link-probe-failed';
}

const SECRET_BYTES = 32;
/** An unused sink closes after this long (the source connects within a second of its opening). */
export const SINK_EXPIRY_MS = 10_000;
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

/** bits/s from a sink's report; undefined when too little arrived to tell a rate. */
export function rateOf(report: LinkSinkReport): number | undefined {
  if (report.spanBytes <= 0 || report.spanMicros <= 0) return undefined;
  return (report.spanBytes * 8) / (report.spanMicros / 1e6);
}

/** A socket error as people read it, without anything of this host's internals. */
function reason(error: unknown): string {
  if (error instanceof Error && error.name === 'AbortError') return 'timed out';
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  return error instanceof LinkProbeFailed ? error.message : 'connection failed';
}

export class LinkProbes {
  constructor(
    private readonly ports: PortAllocator,
    private readonly address: () => string,
    private readonly log: Logger,
  ) {}

  /** Target: opens the sink and answers where it listens and the secret it expects. */
  async openSink(request: z.output<typeof LinkSinkRequest>): Promise<LinkSink> {
    const address = this.address();
    const secret = randomBytes(SECRET_BYTES);
    const expiresAt = Date.now() + SINK_EXPIRY_MS;
    let opened;
    try {
      opened = await this.ports.withPort(
        address,
        (lease) => listen(address, lease.port),
        (error) => (error as { code?: unknown }).code === 'EADDRINUSE',
      );
    } catch (error) {
      if (error instanceof PortsExhausted)
        throw new LinkProbeFailed(`no free port for a link probe sink: ${error.message}`);
      throw new LinkProbeFailed(`cannot open a link probe sink on ${address}: ${reason(error)}`);
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
        this.log.info('link probe sink expired unused', { port: lease.port });
        close();
      }
    }, SINK_EXPIRY_MS);
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
      this.log.warn('link probe sink failed', { port: lease.port, error: reason(error) });
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
   * One connection to the sink: the secret first (else dropped, and the sink waits on), then data
   * counted as it arrives, and at the sender's half-close the report.
   */
  #serve(accepted: net.Socket, secret: Buffer, durationMs: number, accept: () => void): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      let head = Buffer.alloc(0);
      let taken = false;
      let bytes = 0;
      let spanBytes = 0;
      let first: bigint | undefined;
      let last: bigint | undefined;
      let cut: NodeJS.Timeout | undefined;
      const count = (n: number) => {
        if (n === 0) return;
        const now = process.hrtime.bigint();
        if (first === undefined) first = now;
        else spanBytes += n;
        last = now;
        bytes += n;
      };
      const socket = readingIntoOneBuffer(accepted, (n, buffer) => {
        if (taken) {
          count(n);
          return;
        }
        // The buffer is overwritten by the next read: the head is copied out.
        head = Buffer.concat([head, buffer.subarray(0, n)]);
        if (head.length < SECRET_BYTES) return;
        if (!timingSafeEqual(head.subarray(0, SECRET_BYTES), secret)) {
          socket.destroy();
          return;
        }
        taken = true;
        accept();
        socket.setTimeout(0);
        cut = setTimeout(() => socket.destroy(), durationMs + TRANSFER_SLACK_MS);
        cut.unref();
        count(head.length - SECRET_BYTES);
        head = Buffer.alloc(0);
      });
      // A stranger that sends nothing must not hold the connection open.
      socket.setTimeout(CONNECT_TIMEOUT_MS, () => socket.destroy());
      socket.on('end', () => {
        if (!taken) {
          socket.destroy();
          return;
        }
        const spanMicros = first !== undefined && last !== undefined ? Number(last - first) / 1000 : 0;
        const report: LinkSinkReport = { bytes, spanBytes, spanMicros };
        socket.end(`${JSON.stringify(report)}\n`);
      });
      socket.on('error', () => socket.destroy());
      // Resolves whether this was the probe's connection (the sink then closes) or a stranger's.
      socket.on('close', () => {
        clearTimeout(cut);
        resolve(taken);
      });
    });
  }

  /** Source: sends to the sink for `durationMs` and returns the rate it received at. */
  async send(request: z.output<typeof LinkProbeRequest>): Promise<LinkProbeResult> {
    const { sink, durationMs } = request;
    const [low, high] = this.ports.range;
    // Only a sink as the agents open them: this call must not become a way to send anywhere.
    if (sink.port < low || sink.port > high)
      throw new InvalidInput(
        `sink.port: a link probe sink listens on a port of the migration range ${low}-${high}`,
        'sink.port',
      );
    const target = `${sink.address}:${sink.port}`;
    const socket = net.connect({ host: sink.address, port: sink.port, noDelay: true });
    const deadline = AbortSignal.timeout(durationMs + TRANSFER_SLACK_MS + CONNECT_TIMEOUT_MS);
    try {
      await once(socket, 'connect', { signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS) });
    } catch (error) {
      socket.destroy();
      throw new LinkProbeFailed(`cannot reach the link probe sink at ${target}: ${reason(error)}`);
    }
    let reply = '';
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      if (reply.length < 4096) reply += text;
    });
    const ended = once(socket, 'end', { signal: deadline });
    ended.catch(() => undefined);
    const data = payload();
    let sentBytes = 0;
    const started = Date.now();
    try {
      socket.write(Buffer.from(sink.secret, 'hex'));
      while (Date.now() - started < durationMs) {
        sentBytes += data.length;
        if (!socket.write(data)) await once(socket, 'drain', { signal: deadline });
      }
      const sentMs = Date.now() - started;
      socket.end();
      await ended;
      const parsed = LinkSinkReport.safeParse(JSON.parse(reply.split('\n')[0] || 'null'));
      if (!parsed.success) throw new LinkProbeFailed(`the sink at ${target} did not report what it received`);
      const bitsPerSecond = rateOf(parsed.data);
      if (bitsPerSecond === undefined)
        throw new LinkProbeFailed(`too little reached the sink at ${target} to tell a rate`);
      const result: LinkProbeResult = {
        bitsPerSecond,
        receivedBytes: parsed.data.bytes,
        spanMs: parsed.data.spanMicros / 1000,
        sentBytes,
        durationMs: sentMs,
      };
      this.log.info('link probe', { target, ...result });
      return result;
    } catch (error) {
      if (error instanceof LinkProbeFailed) throw error;
      if (error instanceof SyntaxError)
        throw new LinkProbeFailed(`the sink at ${target} did not report what it received`);
      throw new LinkProbeFailed(`the link probe to ${target} failed: ${reason(error)}`);
    } finally {
      socket.destroy();
    }
  }
}

let receiveBuffer: Buffer | undefined;

/**
 * The accepted connection, re-built to read into one reused buffer (`onread`). Node reads an
 * accepted socket into a new 64 KiB buffer per read, and that churn (with the GC behind it) cost
 * half of what a busy 2-core host received: over loopback at a load of 7, median 2.9 Gbit/s
 * against 9.5 with one reused buffer. net.Server takes no `onread`, so the accepted handle moves
 * to a socket built with it; the server pauses connections on accept, so nothing was read before.
 */
function readingIntoOneBuffer(accepted: net.Socket, onData: (n: number, buffer: Buffer) => void): net.Socket {
  const holder = accepted as unknown as { _handle: unknown };
  const handle = holder._handle;
  holder._handle = null;
  const buffer = (receiveBuffer ??= Buffer.allocUnsafe(RECEIVE_BUFFER_BYTES));
  const options: net.SocketConstructorOpts & net.ConnectOpts & { handle: unknown } = {
    handle,
    allowHalfOpen: true,
    readable: true,
    writable: true,
    onread: {
      buffer,
      callback: (n) => {
        onData(n, buffer);
        return true;
      },
    },
  };
  const socket = new net.Socket(options);
  // The empty shell goes (its server counts it as a connection until then); the handle lives on.
  accepted.destroy();
  return socket;
}

/** Listens on address:port (exclusive), resolving once bound; connections arrive paused. */
function listen(address: string, port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer({ pauseOnConnect: true });
    server.once('error', reject);
    server.listen({ host: address, port, exclusive: true }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

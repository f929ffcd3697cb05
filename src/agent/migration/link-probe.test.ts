// The link probe between two agent servers (real cores, Fastify's inject for the calls) over
// loopback TCP, the agents' fabric address here: the source opens a sender, the target connects
// and receives, and the rate is the receiver's; the sender fills only the connection with its
// secret and is gone afterwards, and every failure is a typed problem naming the field or the
// sender without anything of the host's internals.
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { LinkProbeResult, LinkSender, type Problem } from '../../api/index.js';
import { startTestAgent, type TestAgent } from '../test-server.js';
import { rateOf } from './link-probe.js';

const TOKEN = 'link-probe-test-token-0123';
let source: TestAgent;
let target: TestAgent;

before(async () => {
  source = await startTestAgent({ token: TOKEN, prefix: 'sb-link-src-' });
  target = await startTestAgent({ token: TOKEN, prefix: 'sb-link-tgt-' });
});

after(async () => {
  await source.close();
  await target.close();
});

async function post(agent: TestAgent, url: string, body: unknown) {
  const reply = await agent.app.inject({
    method: 'POST',
    url,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    payload: JSON.stringify(body),
  });
  return { status: reply.statusCode, json: () => reply.json<unknown>() };
}

/** The sender's whole payload buffer: it writes only whole ones, then closes. */
const SEND_BUFFER_BYTES = 4 * 1024 * 1024;

const openSender = async (durationMs = 100) => {
  const reply = await post(source, '/v1/link-probe/sender', { durationMs });
  assert.equal(reply.status, 201);
  return LinkSender.parse(reply.json());
};
const receive = (
  { address, port, secret }: { address: string; port: number; secret: string },
  durationMs = 100,
) => post(target, '/v1/link-probe', { sender: { address, port, secret }, durationMs });
const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });

/** Listens on the first free loopback port of the range's top end (other tests use its bottom). */
async function listenInRange(server: net.Server): Promise<number> {
  for (let port = 49999; port > 49900; port--) {
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen({ host: '127.0.0.1', port, exclusive: true }, () => resolve(true));
    });
    if (bound) return port;
  }
  throw new Error('no free port in 49901-49999');
}

test('the rate is what the receiver counted after its first read over its first-to-last-read time', () => {
  assert.equal(rateOf({ spanBytes: 1_000_000, spanMicros: 8000 }), 1e9);
  assert.equal(rateOf({ spanBytes: 0, spanMicros: 0 }), undefined);
  assert.equal(rateOf({ spanBytes: 64, spanMicros: 0 }), undefined);
});

test("a probe: the target receives from the source's sender and answers the rate it received at", async () => {
  const sender = await openSender();
  assert.equal(sender.address, '127.0.0.1');
  assert.match(sender.secret, /^[0-9a-f]{64}$/);
  assert.ok(Date.parse(sender.expiresAt) > Date.now());
  // A stranger without the secret is reset, and gets nothing; the sender waits on for the probe.
  const stranger = net.connect({ host: sender.address, port: sender.port });
  let strangerGot = 0;
  stranger.on('data', (chunk: Buffer) => (strangerGot += chunk.length));
  const strangerClosed = new Promise<string>((resolve) => {
    stranger.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
    stranger.on('close', () => resolve('closed'));
  });
  stranger.write(Buffer.alloc(32));
  assert.equal(await strangerClosed, 'ECONNRESET');
  assert.equal(strangerGot, 0);
  const reply = await receive(sender);
  assert.equal(reply.status, 200, JSON.stringify(reply.json()));
  const result = LinkProbeResult.parse(reply.json());
  assert.ok(result.bitsPerSecond > 0);
  // Everything the sender wrote arrived: whole buffers, at least one per write it made.
  assert.ok(result.receivedBytes >= SEND_BUFFER_BYTES, `${result.receivedBytes} bytes`);
  assert.equal(result.receivedBytes % SEND_BUFFER_BYTES, 0, `${result.receivedBytes} bytes`);
  assert.ok(result.durationMs >= 100 && result.durationMs < 2000, `${result.durationMs} ms`);
  assert.ok(result.spanMs > 0 && result.spanMs <= result.durationMs);
  await sleep(50);
  assert.equal(await listening(sender.port), false, 'the sender is gone after its one probe');
});

test('a receiver with the wrong secret is refused: 502 link-probe-failed naming the sender', async () => {
  const sender = await openSender();
  const reply = await receive({ ...sender, secret: 'f'.repeat(64) }, 50);
  const problem = reply.json() as Problem;
  assert.deepEqual([reply.status, problem.code], [502, 'link-probe-failed']);
  assert.equal(problem.detail, `the link probe from 127.0.0.1:${sender.port} failed: ECONNRESET`);
  // The sender waits on for the one with its secret.
  const probed = await receive(sender, 50);
  assert.equal(probed.status, 200, JSON.stringify(probed.json()));
});

test('no sender there: 502 with the socket code only', async () => {
  const sender = await openSender();
  // A port of the range where nothing listens: the one after the sender's (the allocator hands
  // ports out in turn; that one is probed free before use).
  const free = sender.port === 49999 ? 49998 : sender.port + 1;
  const reply = await receive({ address: '127.0.0.1', port: free, secret: sender.secret }, 50);
  const problem = reply.json() as Problem;
  assert.deepEqual([reply.status, problem.code], [502, 'link-probe-failed']);
  assert.equal(problem.detail, `cannot reach the link probe sender at 127.0.0.1:${free}: ECONNREFUSED`);
  // The sender itself is untouched by that and still takes its probe.
  assert.equal((await receive(sender, 50)).status, 200);
});

test('a sender that closes without sending: 502, too little to tell a rate', async () => {
  // A listener on a port of the range that takes the connection and closes it at once.
  const server = net.createServer((socket) => socket.end());
  const port = await listenInRange(server);
  try {
    const reply = await receive({ address: '127.0.0.1', port, secret: 'a'.repeat(64) }, 50);
    const problem = reply.json() as Problem;
    assert.deepEqual([reply.status, problem.code], [502, 'link-probe-failed']);
    assert.equal(
      problem.detail,
      `too little arrived from the link probe sender at 127.0.0.1:${port} to tell a rate`,
    );
  } finally {
    server.close();
  }
});

test('bad input is 400 naming the field, and no connection is made', async () => {
  const secret = 'a'.repeat(64);
  // Something listening outside the range: a connection to it would show.
  let connections = 0;
  const outside = net.createServer((socket) => (connections++, socket.destroy()));
  await new Promise<void>((resolve) => outside.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const port = (outside.address() as net.AddressInfo).port;
  const cases: [TestAgent, string, unknown, string][] = [
    [target, '/v1/link-probe', { sender: { address: '127.0.0.1', port, secret } }, 'sender.port'],
    [
      target,
      '/v1/link-probe',
      { sender: { address: '127.0.0.1', port: 49152, secret: 'x' } },
      'sender.secret',
    ],
    [
      target,
      '/v1/link-probe',
      { sender: { address: '127.0.0.1', port: 49152, secret }, durationMs: 49 },
      'durationMs',
    ],
    [target, '/v1/link-probe', { sender: { address: '127.0.0.1', port: 49152, secret }, extra: 1 }, 'extra'],
    [source, '/v1/link-probe/sender', { durationMs: 5001 }, 'durationMs'],
    [source, '/v1/link-probe/sender', { durationMs: 100, port: 22 }, 'port'],
  ];
  try {
    for (const [agent, url, body, field] of cases) {
      const reply = await post(agent, url, body);
      const problem = reply.json() as Problem;
      assert.deepEqual(
        [reply.status, problem.code, problem.field],
        [400, 'invalid-input', field],
        problem.detail,
      );
    }
    await sleep(50);
    assert.equal(connections, 0);
  } finally {
    outside.close();
  }
});

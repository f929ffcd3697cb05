// The link probe between two agent servers (real cores, Fastify's inject for the calls) over
// loopback TCP, the agents' fabric address here: the rate is the receiver's, the sink takes only
// the connection with its secret and is gone afterwards, and every failure is a typed problem
// naming the field or the sink without anything of the host's internals.
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { LinkProbeResult, LinkSink, type Problem } from '../../api/index.js';
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

const openSink = async (durationMs = 100) => {
  const reply = await post(target, '/v1/link-probe/sink', { durationMs });
  assert.equal(reply.status, 201);
  return LinkSink.parse(reply.json());
};
const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });

test('the rate is what the sink received over its first-to-last-byte time', () => {
  assert.equal(rateOf({ bytes: 1_000_064, spanBytes: 1_000_000, spanMicros: 8000 }), 1e9);
  assert.equal(rateOf({ bytes: 64, spanBytes: 0, spanMicros: 0 }), undefined);
});

test("a probe: the source sends to the target's sink and answers the rate it received at", async () => {
  const sink = await openSink();
  assert.equal(sink.address, '127.0.0.1');
  assert.match(sink.secret, /^[0-9a-f]{64}$/);
  // A stranger without the secret is dropped; the sink waits on for the probe.
  const stranger = net.connect({ host: sink.address, port: sink.port });
  stranger.on('error', () => undefined);
  stranger.write(Buffer.alloc(32));
  await sleep(100);
  const reply = await post(source, '/v1/link-probe', {
    sink: { address: sink.address, port: sink.port, secret: sink.secret },
    durationMs: 100,
  });
  assert.equal(reply.status, 200, JSON.stringify(reply.json()));
  const result = LinkProbeResult.parse(reply.json());
  assert.ok(result.bitsPerSecond > 0);
  assert.equal(result.receivedBytes, result.sentBytes, 'everything sent arrived');
  assert.ok(result.durationMs >= 100 && result.durationMs < 2000);
  assert.ok(result.spanMs > 0);
  await sleep(50);
  assert.equal(await listening(sink.port), false, 'the sink is gone after its one probe');
});

test('a sender with the wrong secret is refused: 502 link-probe-failed naming the sink', async () => {
  const sink = await openSink();
  const reply = await post(source, '/v1/link-probe', {
    sink: { address: sink.address, port: sink.port, secret: 'f'.repeat(64) },
    durationMs: 50,
  });
  const problem = reply.json() as Problem;
  assert.deepEqual([reply.status, problem.code], [502, 'link-probe-failed']);
  assert.match(
    problem.detail,
    new RegExp(`^the link probe to 127\\.0\\.0\\.1:${sink.port} failed: E[A-Z]+$`),
  );
});

test('no sink there: 502 with the socket code only', async () => {
  const sink = await openSink();
  // A port of the range where nothing listens: the sink's own, once it is closed unused.
  const free = sink.port === 49999 ? 49998 : sink.port + 1;
  const reply = await post(source, '/v1/link-probe', {
    sink: { address: '127.0.0.1', port: free, secret: sink.secret },
    durationMs: 50,
  });
  const problem = reply.json() as Problem;
  assert.deepEqual([reply.status, problem.code], [502, 'link-probe-failed']);
  assert.equal(problem.detail, `cannot reach the link probe sink at 127.0.0.1:${free}: ECONNREFUSED`);
});

test('bad input is 400 naming the field, and no connection is made', async () => {
  const secret = 'a'.repeat(64);
  const cases: [string, unknown, string][] = [
    ['/v1/link-probe', { sink: { address: '127.0.0.1', port: 22, secret } }, 'sink.port'],
    ['/v1/link-probe', { sink: { address: '127.0.0.1', port: 49152, secret: 'x' } }, 'sink.secret'],
    ['/v1/link-probe', { sink: { address: '127.0.0.1', port: 49152, secret }, durationMs: 49 }, 'durationMs'],
    ['/v1/link-probe', { sink: { address: '127.0.0.1', port: 49152, secret }, extra: 1 }, 'extra'],
    ['/v1/link-probe/sink', { durationMs: 5001 }, 'durationMs'],
  ];
  for (const [url, body, field] of cases) {
    const reply = await post(url.endsWith('sink') ? target : source, url, body);
    const problem = reply.json() as Problem;
    assert.deepEqual(
      [reply.status, problem.code, problem.field],
      [400, 'invalid-input', field],
      problem.detail,
    );
  }
});

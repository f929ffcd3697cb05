import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import {
  QmpClient,
  QmpClosedError,
  QmpConnectError,
  QmpError,
  QmpProtocolError,
  QmpTimeoutError,
  type QmpEvent,
} from './index.js';

const GREETING = {
  QMP: { version: { qemu: { major: 7, minor: 2, micro: 9 }, package: 'fake' }, capabilities: ['oob'] },
};

interface Command {
  execute: string;
  arguments?: Record<string, unknown>;
  id: unknown;
}

/** Answers qmp_capabilities itself and hands every other command to the test's handler. */
type Handler = (command: Command, socket: net.Socket) => void | Promise<void>;

const line = (message: unknown): string => `${JSON.stringify(message)}\r\n`;
const event = (name: string, data?: Record<string, unknown>): string =>
  line({ event: name, ...(data ? { data } : {}), timestamp: { seconds: 1, microseconds: 2 } });

/** Writes the pieces as separate socket writes, far enough apart to arrive as separate chunks. */
async function writeInPieces(socket: net.Socket, text: string, size: number): Promise<void> {
  for (let i = 0; i < text.length; i += size) {
    socket.write(text.slice(i, i + size));
    await sleep(5);
  }
}

let dir: string;
let socketPath: string;
let server: net.Server | undefined;
let serverSockets: net.Socket[];
let received: Command[];
let clients: QmpClient[];

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'silobreak-qmp-'));
  socketPath = path.join(dir, 'qmp.sock');
  serverSockets = [];
  received = [];
  clients = [];
});

afterEach(async () => {
  await Promise.all(clients.map((c) => c.close()));
  for (const s of serverSockets) s.destroy();
  if (server) await new Promise((resolve) => server?.close(resolve));
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

function startFake(
  handler: Handler,
  greeting: (socket: net.Socket) => Promise<void> | void = (s) => void s.write(line(GREETING)),
): Promise<void> {
  server = net.createServer((socket) => {
    serverSockets.push(socket);
    let buffer = '';
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      buffer += chunk.toString();
      let nl;
      while ((nl = buffer.indexOf('\n')) !== -1) {
        const command = JSON.parse(buffer.slice(0, nl)) as Command;
        buffer = buffer.slice(nl + 1);
        received.push(command);
        if (command.execute === 'qmp_capabilities') socket.write(line({ return: {}, id: command.id }));
        else void handler(command, socket);
      }
    });
    void greeting(socket);
  });
  return new Promise((resolve) => server?.listen(socketPath, resolve));
}

async function connect(options?: Parameters<typeof QmpClient.connect>[1]): Promise<QmpClient> {
  const client = await QmpClient.connect(socketPath, options);
  clients.push(client);
  return client;
}

const echo: Handler = (command, socket) =>
  void socket.write(
    line({ return: { echoed: command.execute, args: command.arguments ?? null }, id: command.id }),
  );

test('handshake: a greeting split across chunks is read, then capabilities are negotiated', async () => {
  await startFake(echo, (socket) => writeInPieces(socket, line(GREETING), 7));
  const client = await connect();
  assert.deepEqual(client.greeting, GREETING);
  assert.equal(received[0]?.execute, 'qmp_capabilities');
  assert.equal(client.closed, false);
});

test('replies split across chunks, with a multi-byte character cut in half, are reassembled', async () => {
  await startFake(async (command, socket) => {
    const text = line({ return: { note: 'größe ✓ 迁移' }, id: command.id });
    const bytes = Buffer.from(text);
    for (let i = 0; i < bytes.length; i += 3) {
      socket.write(bytes.subarray(i, i + 3));
      await sleep(2);
    }
  });
  const client = await connect();
  assert.deepEqual(await client.execute('query-note'), { note: 'größe ✓ 迁移' });
});

test('several messages in one chunk: events and replies are all delivered, events in order', async () => {
  await startFake((command, socket) => {
    socket.write(
      event('A', { n: 1 }) + event('B') + line({ return: 42, id: command.id }) + event('C', { n: 3 }),
    );
  });
  const client = await connect();
  const seen: QmpEvent[] = [];
  client.onEvent((e) => seen.push(e));
  const c = client.waitForEvent('C');
  assert.equal(await client.execute('anything'), 42);
  // Events sent before the reply were delivered before the command's promise settled.
  assert.deepEqual(
    seen.map((e) => e.event),
    ['A', 'B', 'C'],
  );
  assert.deepEqual(seen[1]?.data, {}, 'an event without data gets an empty object');
  assert.deepEqual(seen[0]?.timestamp, { seconds: 1, microseconds: 2 });
  assert.deepEqual((await c).data, { n: 3 });
});

test('replies are matched by id, also when they come back out of order', async () => {
  const held: Command[] = [];
  await startFake((command, socket) => {
    held.push(command);
    if (held.length < 2) return;
    for (const c of held.reverse()) socket.write(line({ return: c.execute, id: c.id }) + event('BETWEEN'));
  });
  const client = await connect();
  const events: string[] = [];
  client.onEvent((e) => events.push(e.event));
  const [first, second] = await Promise.all([client.execute('first'), client.execute('second')]);
  assert.equal(first, 'first');
  assert.equal(second, 'second');
  assert.equal(events.length, 2);
  const ids = received.map((c) => c.id);
  assert.equal(new Set(ids).size, ids.length, 'every command carries a unique id');
});

test('arguments are sent as given', async () => {
  await startFake(echo);
  const client = await connect();
  assert.deepEqual(await client.execute('migrate', { uri: 'tcp:10.0.0.1:4444' }), {
    echoed: 'migrate',
    args: { uri: 'tcp:10.0.0.1:4444' },
  });
  assert.deepEqual(received.at(-1)?.arguments, { uri: 'tcp:10.0.0.1:4444' });
});

test('an error reply rejects with QmpError carrying command, class and desc', async () => {
  await startFake(
    (command, socket) =>
      void socket.write(
        line({ error: { class: 'DeviceNotFound', desc: "Device 'x' not found" }, id: command.id }),
      ),
  );
  const client = await connect();
  const error = await client.execute('device_del', { id: 'x' }).catch((e: unknown) => e);
  assert.ok(error instanceof QmpError);
  assert.equal(error.command, 'device_del');
  assert.equal(error.errorClass, 'DeviceNotFound');
  assert.equal(error.desc, "Device 'x' not found");
  assert.match(error.message, /device_del.*DeviceNotFound/);
  assert.equal(client.closed, false, 'an error reply leaves the connection usable');
});

test('the schema option validates the return value', async () => {
  await startFake(
    (command, socket) =>
      void socket.write(
        line({ return: command.execute === 'good' ? { n: 5 } : { n: 'five' }, id: command.id }),
      ),
  );
  const client = await connect();
  const schema = z.object({ n: z.number() });
  const good: { n: number } = await client.execute('good', undefined, { schema });
  assert.equal(good.n, 5);
  const bad = await client.execute('bad', undefined, { schema }).catch((e: unknown) => e);
  assert.ok(bad instanceof QmpProtocolError);
  assert.equal(bad.command, 'bad');
  assert.match(bad.message, /n/);
});

test('a command without reply times out with QmpTimeoutError; a late reply is ignored', async () => {
  const late: Command[] = [];
  await startFake((command, socket) => {
    if (command.execute === 'slow') late.push(command);
    else {
      for (const c of late.splice(0)) socket.write(line({ return: 'late', id: c.id }));
      socket.write(line({ return: 'fresh', id: command.id }));
    }
  });
  const client = await connect();
  const started = Date.now();
  const error = await client.execute('slow', undefined, { timeoutMs: 150 }).catch((e: unknown) => e);
  assert.ok(error instanceof QmpTimeoutError);
  assert.equal(error.command, 'slow');
  assert.equal(error.timeoutMs, 150);
  assert.ok(Date.now() - started >= 140);
  assert.equal(await client.execute('next'), 'fresh');
});

test('a socket that closes mid-reply rejects pending commands with QmpClosedError', async () => {
  await startFake((command, socket) => {
    if (command.execute === 'hang') return;
    socket.end(`{"return": {"half": tr`);
  });
  const client = await connect();
  const closed = new Promise<Error | undefined>((resolve) => client.onClose(resolve));
  const hanging = client.execute('hang').catch((e: unknown) => e);
  const cut = client.execute('cut').catch((e: unknown) => e);
  const [hangError, cutError] = await Promise.all([hanging, cut]);
  for (const [error, name] of [
    [hangError, 'hang'],
    [cutError, 'cut'],
  ] as const) {
    assert.ok(error instanceof QmpClosedError, String(error));
    assert.equal(error.command, name);
  }
  const closeError = await closed;
  assert.ok(closeError instanceof QmpClosedError, 'an unrequested close is reported with an error');
  assert.equal(client.closed, true);
  const after = await client.execute('after').catch((e: unknown) => e);
  assert.ok(after instanceof QmpClosedError);
});

test('a connection reset by QEMU is reported as QmpClosedError, with the socket error as cause', async () => {
  // A unix socket closed with bytes unread gives its peer ECONNRESET, as when QEMU quits.
  await startFake((command, socket) => {
    if (command.execute !== 'reset') return;
    socket.pause();
    setTimeout(() => socket.destroy(), 100);
  });
  const client = await connect();
  const closed = new Promise<Error | undefined>((resolve) => client.onClose(resolve));
  const reset = client.execute('reset').catch((e: unknown) => e);
  // More than the paused peer reads ahead, so some of it is still in the kernel when it closes.
  const blob = 'x'.repeat(8 * 1024 * 1024);
  setTimeout(() => void client.execute('unread', { blob }).catch(() => undefined), 20);
  assert.ok((await reset) instanceof QmpClosedError);
  const closeError = await closed;
  assert.ok(closeError instanceof QmpClosedError, String(closeError));
  assert.ok(closeError.cause instanceof Error);
  assert.equal(client.closed, true);
});

test('close() is clean: pending commands and event waits reject, onClose gets no error', async () => {
  await startFake(() => {});
  const client = await connect();
  const closeArgs: unknown[][] = [];
  client.onClose((...args) => closeArgs.push(args));
  const pending = client.execute('never').catch((e: unknown) => e);
  const waiting = client.waitForEvent('NEVER').catch((e: unknown) => e);
  await client.close();
  assert.equal(client.closed, true);
  const error = await pending;
  assert.ok(error instanceof QmpClosedError);
  assert.equal(error.command, 'never');
  assert.ok((await waiting) instanceof QmpClosedError);
  assert.deepEqual(closeArgs, [[undefined]]);
  await client.close(); // idempotent
  assert.equal(closeArgs.length, 1);
  await assert.rejects(client.waitForEvent('X'), QmpClosedError);
});

test('waitForEvent filters by name and match, and times out', async () => {
  await startFake(
    (command, socket) =>
      void socket.write(
        event('JOB_STATUS_CHANGE', { id: 'other', status: 'ready' }) +
          event('JOB_STATUS_CHANGE', { id: 'mirror0', status: 'running' }) +
          event('JOB_STATUS_CHANGE', { id: 'mirror0', status: 'ready' }) +
          line({ return: {}, id: command.id }),
      ),
  );
  const client = await connect();
  const ready = client.waitForEvent('JOB_STATUS_CHANGE', {
    match: (e) => e.data.id === 'mirror0' && e.data.status === 'ready',
  });
  await client.execute('blockdev-mirror');
  assert.deepEqual((await ready).data, { id: 'mirror0', status: 'ready' });
  const timedOut = await client.waitForEvent('SHUTDOWN', { timeoutMs: 50 }).catch((e: unknown) => e);
  assert.ok(timedOut instanceof QmpTimeoutError);
  assert.equal(timedOut.command, 'event:SHUTDOWN');
});

test('unsubscribing stops event delivery; a throwing listener does not stop the others', async () => {
  await startFake((command, socket) => void socket.write(event('E') + line({ return: {}, id: command.id })));
  const client = await connect();
  let count = 0;
  const unsubscribe = client.onEvent(() => count++);
  const warnings: Error[] = [];
  const onWarning = (warning: Error): void => void warnings.push(warning);
  process.on('warning', onWarning);
  try {
    client.onEvent(() => {
      throw new Error('listener bug');
    });
    let after = 0;
    client.onEvent(() => after++);
    await client.execute('one');
    unsubscribe();
    await client.execute('two');
    await sleep(10);
    assert.equal(count, 1);
    assert.equal(after, 2);
    assert.deepEqual(
      warnings.map((w) => w.message),
      ['listener bug', 'listener bug'],
      'the listener error still surfaces, as a warning',
    );
  } finally {
    process.off('warning', onWarning);
  }
});

test('invalid JSON from QEMU closes the connection with QmpProtocolError', async () => {
  await startFake((_command, socket) => void socket.write('this is not json\n'));
  const client = await connect();
  const closed = new Promise<Error | undefined>((resolve) => client.onClose(resolve));
  const error = await client.execute('x').catch((e: unknown) => e);
  assert.ok(error instanceof QmpClosedError);
  assert.ok((await closed) instanceof QmpProtocolError);
});

test('connect: a missing socket fails with QmpConnectError, or is retried until retryUntilMs', async () => {
  const missing = await QmpClient.connect(socketPath).catch((e: unknown) => e);
  assert.ok(missing instanceof QmpConnectError);
  assert.equal(missing.code, 'ENOENT');
  assert.equal(missing.socketPath, socketPath);

  const late = sleep(300).then(() => startFake(echo));
  const client = await connect({ retryUntilMs: Date.now() + 5_000 });
  await late;
  assert.equal(client.greeting.QMP.version.qemu.major, 7);

  const expired = await QmpClient.connect(path.join(dir, 'nobody.sock'), {
    retryUntilMs: Date.now() + 200,
  }).catch((e: unknown) => e);
  assert.ok(expired instanceof QmpConnectError);
});

test('connect: no greeting within timeoutMs gives QmpTimeoutError', async () => {
  await startFake(echo, () => {});
  const error = await QmpClient.connect(socketPath, { timeoutMs: 100 }).catch((e: unknown) => e);
  assert.ok(error instanceof QmpTimeoutError);
  assert.equal(error.command, 'connect');
});

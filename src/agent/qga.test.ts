import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import { GuestAgentUnavailable, GuestCommandFailed, GuestExecTimeout } from './errors.js';
import { guestExec, readGuestInfo } from './guest-ops.js';
import { QgaClient } from './qga.js';

/*
 * A stand-in for qemu-ga on a unix socket, speaking its wire protocol: it answers
 * guest-sync-delimited with 0xFF before the reply, and `handle` answers everything else.
 */
type Handler = (command: string, args: Record<string, unknown>) => unknown;

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-qga-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fakeAgent(
  name: string,
  handle: Handler,
  greet = '',
): Promise<{ socket: string; server: Server }> {
  const socket = path.join(dir, name);
  const server = createServer((conn: Socket) => {
    // Leftovers of an earlier session that a new client must not mistake for its replies.
    if (greet) conn.write(greet);
    let buffer = '';
    conn.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1').replaceAll('\xff', '');
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const { execute, arguments: args = {} } = JSON.parse(buffer.slice(0, nl)) as {
          execute: string;
          arguments?: Record<string, unknown>;
        };
        buffer = buffer.slice(nl + 1);
        if (execute === 'guest-sync-delimited') {
          conn.write(
            Buffer.concat([Buffer.from([0xff]), Buffer.from(`${JSON.stringify({ return: args.id })}\n`)]),
          );
          continue;
        }
        const reply = handle(execute, args);
        if (reply !== undefined) conn.write(`${JSON.stringify(reply)}\n`);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return { socket, server };
}

test('stale replies before the sync marker are dropped; replies are validated', async () => {
  const { socket, server } = await fakeAgent(
    'stale.sock',
    (command) => (command === 'guest-info' ? { return: { version: '7.2.22' } } : undefined),
    '{"return": {"version": "stale"}}\n{"return": 12345}\n{"retu',
  );
  const qga = await QgaClient.open(socket, 'vm1', 2000);
  try {
    const info = await qga.execute('guest-info', undefined, z.object({ version: z.string() }), 2000);
    assert.equal(info.version, '7.2.22');
  } finally {
    qga.close();
    server.close();
  }
});

test('an error reply becomes GuestCommandFailed; silence becomes GuestAgentUnavailable', async () => {
  const { socket, server } = await fakeAgent('errors.sock', (command) =>
    command === 'guest-get-fsinfo'
      ? { error: { class: 'CommandNotFound', desc: 'not supported' } }
      : undefined,
  );
  const qga = await QgaClient.open(socket, 'vm1', 2000);
  try {
    await assert.rejects(qga.execute('guest-get-fsinfo', undefined, z.unknown(), 2000), (e) => {
      assert.ok(e instanceof GuestCommandFailed);
      assert.match(e.message, /CommandNotFound: not supported/);
      return true;
    });
    const started = Date.now();
    await assert.rejects(qga.execute('guest-info', undefined, z.unknown(), 300), GuestAgentUnavailable);
    assert.ok(Date.now() - started < 2000);
  } finally {
    qga.close();
    server.close();
  }
});

test('a socket nobody listens on is GuestAgentUnavailable', async () => {
  await assert.rejects(QgaClient.open(path.join(dir, 'missing.sock'), 'vm1', 500), GuestAgentUnavailable);
});

test('guest info leaves out what the guest cannot tell', async () => {
  const { socket, server } = await fakeAgent('info.sock', (command) => {
    if (command === 'guest-info') return { return: { version: '7.2.22', supported_command: [] } };
    if (command === 'guest-get-osinfo')
      return { return: { id: 'silobreak-guest', 'kernel-release': '6.1.0' } };
    if (command === 'guest-get-fsinfo')
      return {
        return: [
          { name: 'vda', mountpoint: '/data', type: 'ext4', 'total-bytes': 1000, 'used-bytes': 10, disk: [] },
          { name: 'vdb', mountpoint: '/scratch', type: 'ext4', disk: [] },
        ],
      };
    return undefined;
  });
  const qga = await QgaClient.open(socket, 'vm1', 2000);
  try {
    assert.deepEqual(await readGuestInfo(qga), {
      agentVersion: '7.2.22',
      osInfo: { id: 'silobreak-guest', 'kernel-release': '6.1.0' },
      filesystems: [
        { mountpoint: '/data', type: 'ext4', totalBytes: 1000, usedBytes: 10 },
        { mountpoint: '/scratch', type: 'ext4' },
      ],
    });
  } finally {
    qga.close();
    server.close();
  }
});

test('guest-exec polls until exit and decodes output; detach returns the pid at once', async () => {
  let polls = 0;
  const { socket, server } = await fakeAgent('exec.sock', (command, args) => {
    if (command === 'guest-exec') return { return: { pid: args['capture-output'] ? 41 : 42 } };
    if (command === 'guest-exec-status' && args.pid === 41)
      return ++polls < 3
        ? { return: { exited: false } }
        : {
            return: {
              exited: true,
              exitcode: 3,
              'out-data': Buffer.from('hi\n').toString('base64'),
              'err-data': Buffer.from('oops\n').toString('base64'),
            },
          };
    if (command === 'guest-exec-status') return { return: { exited: false } };
    return undefined;
  });
  const qga = await QgaClient.open(socket, 'vm1', 2000);
  try {
    const done = await guestExec(qga, {
      vm: 'vm1',
      command: ['/bin/sh', '-c', 'x'],
      timeoutSeconds: 5,
      detach: false,
    });
    assert.deepEqual(done, { pid: 41, exitCode: 3, stdout: 'hi\n', stderr: 'oops\n' });
    assert.equal(polls, 3);
    assert.deepEqual(
      await guestExec(qga, { vm: 'vm1', command: ['/bin/true'], timeoutSeconds: 5, detach: true }),
      {
        pid: 42,
      },
    );
  } finally {
    qga.close();
    server.close();
  }
});

test('guest-exec that outlives its timeout is GuestExecTimeout', async () => {
  const { socket, server } = await fakeAgent('slow.sock', (command) =>
    command === 'guest-exec' ? { return: { pid: 7 } } : { return: { exited: false } },
  );
  const qga = await QgaClient.open(socket, 'vm1', 2000);
  try {
    await assert.rejects(
      guestExec(qga, { vm: 'vm1', command: ['/bin/sleep', '100'], timeoutSeconds: 1, detach: false }),
      GuestExecTimeout,
    );
  } finally {
    qga.close();
    server.close();
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { PortAllocator, PortsExhausted } from './ports.js';

// Loopback only; a high range unlikely to be used by the other engineers' tests.
const range = [47100, 47139] as const;

test('concurrent allocations never share a port; released ports come back', async () => {
  const ports = new PortAllocator(range);
  const leases = await Promise.all(Array.from({ length: 20 }, () => ports.allocate('127.0.0.1')));
  const numbers = leases.map((l) => l.port);
  assert.equal(new Set(numbers).size, 20);
  for (const n of numbers) assert.ok(n >= range[0] && n <= range[1]);
  assert.equal(ports.leasedCount, 20);
  for (const l of leases) l.release();
  leases[0]?.release(); // twice is harmless
  assert.equal(ports.leasedCount, 0);
});

test('a port another program holds is skipped', async () => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen({ host: '127.0.0.1', port: 47140 }, resolve));
  try {
    const ports = new PortAllocator([47140, 47141]);
    const lease = await ports.allocate('127.0.0.1');
    assert.equal(lease.port, 47141);
    await assert.rejects(ports.allocate('127.0.0.1'), PortsExhausted);
    lease.release();
  } finally {
    await new Promise((resolve) => blocker.close(resolve));
  }
});

test('withPort retries on a lost bind and releases the lost lease', async () => {
  const ports = new PortAllocator([47142, 47145]);
  const tried: number[] = [];
  const { lease, result } = await ports.withPort(
    '127.0.0.1',
    async (l) => {
      tried.push(l.port);
      if (tried.length === 1) throw new Error('Address already in use');
      return 'bound';
    },
    (e) => e instanceof Error && /in use/.test(e.message),
  );
  assert.equal(result, 'bound');
  assert.equal(tried.length, 2);
  assert.notEqual(tried[0], tried[1]);
  assert.equal(lease.port, tried[1]);
  assert.equal(ports.leasedCount, 1);
  lease.release();
  await assert.rejects(
    ports.withPort(
      '127.0.0.1',
      async () => {
        throw new Error('disk full');
      },
      () => false,
    ),
    /disk full/,
  );
  assert.equal(ports.leasedCount, 0);
});

test('a bad range is refused with the rule', () => {
  assert.throws(() => new PortAllocator([5000, 4000]), /within 1-65535, low to high/);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HostSlots } from './slots.js';

const settled = async <T>(p: Promise<T>) => {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return done;
};

test('two moves per host run at once, the third waits until one ends', async () => {
  const slots = new HostSlots(2);
  const r1 = await slots.acquire(['a', 'b']);
  await slots.acquire(['a', 'c']);
  assert.deepEqual(slots.full(['a', 'b', 'c']), ['a']);
  const third = slots.acquire(['a', 'd']);
  assert.equal(await settled(third), false);
  r1();
  assert.equal(await settled(third), true);
  assert.equal(slots.inUse('a'), 2);
  assert.equal(slots.inUse('b'), 0);
});

test('a release twice frees the slot once', async () => {
  const slots = new HostSlots(1);
  const r = await slots.acquire(['a']);
  await slots.acquire(['b']);
  r();
  r();
  assert.equal(slots.inUse('a'), 0);
  assert.equal(slots.inUse('b'), 1);
});

test('waiters go in arrival order on the same host; unrelated hosts are not held up', async () => {
  const slots = new HostSlots(1);
  const order: string[] = [];
  const r = await slots.acquire(['a']);
  const first = slots.acquire(['a', 'b']).then((rel) => (order.push('first'), rel));
  // b is free but the first waiter wants it too: a later move on b waits behind it.
  const second = slots.acquire(['b']).then((rel) => (order.push('second'), rel));
  // c has nothing to do with them: it goes at once.
  await slots.acquire(['c']);
  assert.deepEqual(order, []);
  r();
  (await first)();
  await second;
  assert.deepEqual(order, ['first', 'second']);
});

test('an aborted wait leaves the queue and lets the next one in', async () => {
  const slots = new HostSlots(1);
  const r = await slots.acquire(['a']);
  const controller = new AbortController();
  const cancelled = slots.acquire(['a'], controller.signal);
  const next = slots.acquire(['a']);
  controller.abort(new Error('cancelled on request'));
  await assert.rejects(cancelled, /cancelled on request/);
  r();
  assert.equal(await settled(next), true);
});

test('force takes the slots at once (a move that held them before a restart)', async () => {
  const slots = new HostSlots(1);
  await slots.acquire(['a']);
  await slots.acquire(['a'], undefined, true);
  assert.equal(slots.inUse('a'), 2);
});

// The lab CLI file's contexts: `lab up` adds its lab and makes it current; `lab down` removes its
// own, the current one passing to the only lab left, or to none while several are.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addContext, CliConfigFile, removeContext } from './cli-config.js';

const a = { url: 'http://127.0.0.1:18000', token: 'a-token' };
const b = { url: 'http://127.0.0.1:18001', token: 'b-token' };
const c = { url: 'http://127.0.0.1:18002', token: 'c-token' };

test('lab up adds its context and makes it current; an older single-lab file is replaced', () => {
  const one = addContext(undefined, 'a', a);
  assert.deepEqual(one, { contexts: { a }, current: 'a' });
  assert.deepEqual(addContext(one, 'b', b), { contexts: { a, b }, current: 'b' });
  assert.deepEqual(addContext({ url: a.url, token: a.token }, 'b', b), { contexts: { b }, current: 'b' });
  assert.ok(CliConfigFile.safeParse(addContext(one, 'b', b)).success);
});

test('lab down removes its own; the current lab passes to the only one left, or to none', () => {
  const three = { contexts: { a, b, c }, current: 'c' };
  assert.deepEqual(removeContext(three, 'a'), { contexts: { b, c }, current: 'c' });
  assert.deepEqual(removeContext(three, 'c'), { contexts: { a, b } });
  assert.deepEqual(removeContext({ contexts: { a, b }, current: 'b' }, 'b'), {
    contexts: { a },
    current: 'a',
  });
  assert.equal(removeContext({ contexts: { a }, current: 'a' }, 'a'), undefined);
  assert.deepEqual(removeContext(three, 'x'), three);
});

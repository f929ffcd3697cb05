import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeCursor, encodeCursor, pageOf } from './cursor.js';
import { InvalidInput } from './errors.js';

test('a cursor round-trips its sort key', () => {
  const key = ['vm-ünïcode', 'a0c2e7b4-0000-4000-8000-000000000001', 42];
  assert.deepEqual(decodeCursor(encodeCursor(key), ['string', 'string', 'int']), key);
});

test('a foreign or mangled cursor is invalid input naming the cursor field', () => {
  for (const bad of ['not-base64-json!', encodeCursor(['a']), Buffer.from('{"a":1}').toString('base64url')]) {
    assert.throws(
      () => decodeCursor(bad, ['string', 'string']),
      (e: unknown) => e instanceof InvalidInput && e.field === 'cursor' && /cursor/.test(e.message),
    );
  }
});

test('a cursor whose slots do not fit the list is invalid: a string for a number, Infinity, a wrong arity', () => {
  const b64 = (json: string) => Buffer.from(json).toString('base64url');
  const cases: [string, readonly ('string' | 'int')[]][] = [
    ['WyJ4Il0', ['int']], // ["x"] for the change list's numeric id
    [b64('[1e999]'), ['int']], // Infinity
    [b64('[1.5]'), ['int']],
    [b64(`[${2 ** 53}]`), ['int']],
    ['WzEsMl0', ['string', 'string']], // [1,2] for the job list's [createdAt, id]
    [b64(JSON.stringify(['x'.repeat(257)])), ['string']],
    [`${encodeCursor(['a'])}=`, ['string']], // padding: not what nextCursor gives
  ];
  for (const [cursor, shape] of cases) {
    assert.throws(
      () => decodeCursor(cursor, shape),
      (e: unknown) => e instanceof InvalidInput && e.field === 'cursor',
      cursor,
    );
  }
  assert.deepEqual(decodeCursor(encodeCursor([42]), ['int']), [42]);
});

test('pageOf gives a cursor only when a row beyond the limit was fetched', () => {
  const rows = [{ n: 'a' }, { n: 'b' }, { n: 'c' }];
  const full = pageOf(
    rows,
    2,
    (r) => [r.n],
    (r) => r.n.toUpperCase(),
  );
  assert.deepEqual(full.items, ['A', 'B']);
  assert.deepEqual(decodeCursor(full.nextCursor ?? '', ['string']), ['b']);
  const last = pageOf(
    rows.slice(0, 2),
    2,
    (r) => [r.n],
    (r) => r.n,
  );
  assert.deepEqual(last, { items: ['a', 'b'], nextCursor: null });
});

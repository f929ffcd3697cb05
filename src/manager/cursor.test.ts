import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeCursor, encodeCursor, pageOf } from './cursor.js';
import { InvalidInput } from './errors.js';

test('a cursor round-trips its sort key', () => {
  const key = ['vm-ünïcode', 'a0c2e7b4-0000-4000-8000-000000000001', 42];
  assert.deepEqual(decodeCursor(encodeCursor(key), 3), key);
});

test('a foreign or mangled cursor is invalid input naming the cursor field', () => {
  for (const bad of ['not-base64-json!', encodeCursor(['a']), Buffer.from('{"a":1}').toString('base64url')]) {
    assert.throws(
      () => decodeCursor(bad, 2),
      (e: unknown) => e instanceof InvalidInput && e.field === 'cursor' && /cursor/.test(e.message),
    );
  }
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
  assert.deepEqual(decodeCursor(full.nextCursor ?? '', 1), ['b']);
  const last = pageOf(
    rows.slice(0, 2),
    2,
    (r) => [r.n],
    (r) => r.n,
  );
  assert.deepEqual(last, { items: ['a', 'b'], nextCursor: null });
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allPages } from './program.js';

/** A list of `n` numbers served in pages the way the manager serves them. */
function pagedSource(n: number) {
  const calls: { limit: number; cursor?: string }[] = [];
  const fetchPage = async (q: { limit: number; cursor?: string }) => {
    calls.push(q);
    const start = q.cursor ? Number(q.cursor) : 0;
    const end = Math.min(n, start + Math.min(q.limit, 3));
    const items = Array.from({ length: end - start }, (_, i) => start + i);
    return { items, nextCursor: end < n ? String(end) : null };
  };
  return { calls, fetchPage };
}

test('allPages follows the cursor to the end', async () => {
  const source = pagedSource(8);
  assert.deepEqual(await allPages(source.fetchPage), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(
    source.calls.map((c) => c.cursor),
    [undefined, '3', '6'],
  );
});

test('allPages stops at the limit and asks for no more than it needs', async () => {
  const source = pagedSource(100);
  assert.deepEqual(await allPages(source.fetchPage, 5), [0, 1, 2, 3, 4]);
  assert.deepEqual(
    source.calls.map((c) => c.limit),
    [5, 2],
  );
});

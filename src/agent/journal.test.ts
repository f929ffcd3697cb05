// The agent's journal of what appeared and vanished (GET /v1/journal): in order after a cursor,
// the last JOURNAL_ENTRIES kept, and a reader whose cursor fell out of it is told.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JOURNAL_ENTRIES } from '../api/index.js';
import { ChangeJournal } from './journal.js';

test('entries after a cursor, in order; a cursor older than what is kept reads as incomplete', () => {
  const journal = new ChangeJournal();
  assert.deepEqual(journal.since(0), { bootId: journal.bootId, next: 0, complete: true, entries: [] });
  journal.record({ kind: 'vm', action: 'created', name: 'a', id: '00000000-0000-4000-8000-000000000001' });
  journal.record({ kind: 'datastore', action: 'deleted', name: 'fast' });
  const all = journal.since(0);
  assert.deepEqual(
    all.entries.map((e) => `${e.seq} ${e.kind} ${e.action} ${e.name}`),
    ['1 vm created a', '2 datastore deleted fast'],
  );
  assert.deepEqual([all.next, all.complete], [2, true]);
  assert.deepEqual(
    journal.since(1).entries.map((e) => e.seq),
    [2],
  );
  assert.deepEqual(journal.since(2).entries, []);
  for (let i = 0; i < JOURNAL_ENTRIES; i++)
    journal.record({ kind: 'datastore', action: 'created', name: `d${i}` });
  const late = journal.since(1);
  assert.equal(late.complete, false, 'entry 2 was dropped');
  assert.equal(late.entries.length, JOURNAL_ENTRIES);
  assert.equal(journal.since(2).complete, true, 'everything after 2 is kept');
  assert.notEqual(new ChangeJournal().bootId, journal.bootId);
});

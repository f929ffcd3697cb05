import assert from 'node:assert/strict';
import { test } from 'node:test';
import { choosePrimary, parseDatabaseUrls, serverFailure } from './db-primary.js';

test('parseDatabaseUrls: one URL, or several joined by commas; a comma inside a URL stays', () => {
  assert.deepEqual(parseDatabaseUrls('postgres://m@db1/s'), ['postgres://m@db1/s']);
  assert.deepEqual(parseDatabaseUrls('postgres://m@db1/s,postgresql://m@db2:5433/s'), [
    'postgres://m@db1/s',
    'postgresql://m@db2:5433/s',
  ]);
  // Spaces after a comma are dropped; a comma in a query (options=-c a=b,c=d) does not split.
  assert.deepEqual(parseDatabaseUrls('postgres://m@db1/s?options=-c%20x=1,y, postgres://m@db2/s'), [
    'postgres://m@db1/s?options=-c%20x=1,y',
    'postgres://m@db2/s',
  ]);
  // Unix sockets, as the tests reach their clusters.
  const socket = 'postgres://postgres@localhost/t?host=%2Ftmp%2Fpg-a&port=5432';
  assert.deepEqual(parseDatabaseUrls(`${socket},${socket.replace('pg-a', 'pg-b')}`).length, 2);
});

test('parseDatabaseUrls: each URL is checked, the one at fault named by its place', () => {
  const cases: [string, RegExp][] = [
    ['', /^Error: must be a postgres:\/\/ or postgresql:\/\/ URL/],
    ['mysql://m@db/s', /^Error: must be a postgres:\/\//],
    ['postgres://m@db1/s,mysql://m@db2/s', /^Error: URL 2 of 2 must be a postgres:\/\//],
    ['postgres://m@db1/s,postgres://m@db1/s', /^Error: URL 2 of 2 is given twice$/],
    ['postgres://m@db1/s,postgres://m@[bad/s', /^Error: URL 2 of 2 must be a valid URL/],
    ['postgres://m@db1,db2/s', /^Error: names several hosts in one URL \(libpq's form\)/],
  ];
  for (const [value, rule] of cases) assert.throws(() => parseDatabaseUrls(value), rule, value);
});

test('choosePrimary: the server that takes writes; of several, the newest timeline, else the first listed', () => {
  assert.equal(
    choosePrimary([
      { url: 'a', state: 'unreachable' },
      { url: 'b', state: 'standby' },
      { url: 'c', state: 'primary', timeline: 1 },
    ]),
    'c',
  );
  // The old primary started again (timeline 1) beside the promoted standby (timeline 2).
  assert.equal(
    choosePrimary([
      { url: 'a', state: 'primary', timeline: 1 },
      { url: 'b', state: 'primary', timeline: 2 },
    ]),
    'b',
  );
  assert.equal(
    choosePrimary([
      { url: 'a', state: 'primary', timeline: 3 },
      { url: 'b', state: 'primary', timeline: 3 },
    ]),
    'a',
  );
  assert.equal(
    choosePrimary([
      { url: 'a', state: 'unreachable' },
      { url: 'b', state: 'standby' },
    ]),
    undefined,
  );
  assert.equal(choosePrimary([]), undefined);
});

test('serverFailure: a server gone or read-only, told apart from a statement that failed', () => {
  const withCode = (code: string, message = 'x') => Object.assign(new Error(message), { code });
  assert.equal(
    serverFailure(withCode('25006', 'cannot execute INSERT in a read-only transaction')),
    'read-only',
  );
  for (const code of ['ECONNREFUSED', 'ENOENT', 'ECONNRESET', '57P01', '57P02', '57P03', '08006', '08001'])
    assert.equal(serverFailure(withCode(code)), 'lost', code);
  assert.equal(serverFailure(new Error('Connection terminated unexpectedly')), 'lost');
  assert.equal(serverFailure(new Error('Connection terminated due to connection timeout')), 'lost');
  // A unique violation, a syntax error, a serialization failure: the server is fine.
  for (const code of ['23505', '42601', '40001'])
    assert.equal(serverFailure(withCode(code)), undefined, code);
  assert.equal(serverFailure('not an error'), undefined);
});

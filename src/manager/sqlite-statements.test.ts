import assert from 'node:assert/strict';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { Kysely, sql, SqliteDialect } from 'kysely';
import { reusingStatements } from './sqlite-statements.js';

/** A better-sqlite3 database in memory whose prepare calls are counted. */
function counted(): { sqlite: Database.Database; prepared: string[] } {
  const sqlite = new Database(':memory:');
  const prepared: string[] = [];
  const prepare = sqlite.prepare.bind(sqlite);
  sqlite.prepare = ((text: string) => {
    prepared.push(text);
    return prepare(text);
  }) as typeof sqlite.prepare;
  return { sqlite, prepared };
}

test('a statement is prepared once and reused; the least recently used go beyond the bound', () => {
  const { sqlite, prepared } = counted();
  const db = reusingStatements(sqlite, 2);
  const one = db.prepare('select 1 as n');
  assert.equal(db.prepare('select 1 as n'), one, 'the same statement again');
  assert.deepEqual(one.all([]), [{ n: 1 }]);
  db.prepare('select 2 as n');
  db.prepare('select 1 as n'); // used again: now the most recent
  db.prepare('select 3 as n'); // over the bound: `select 2` goes
  assert.equal(db.prepare('select 1 as n'), one);
  db.prepare('select 2 as n');
  assert.deepEqual(prepared, ['select 1 as n', 'select 2 as n', 'select 3 as n', 'select 2 as n']);
  db.close();
  assert.equal(sqlite.open, false);
});

test('a statement still iterating (a stream) is not handed out again: a fresh one is', () => {
  const { sqlite } = counted();
  const db = reusingStatements(sqlite);
  const text = 'select value from json_each(?)';
  const first = db.prepare(text);
  const rows = first.iterate(['[1,2,3]']);
  assert.deepEqual(rows.next().value, { value: 1 });
  const second = db.prepare(text);
  assert.notEqual(second, first);
  assert.deepEqual(second.all(['[4]']), [{ value: 4 }]);
  assert.deepEqual([...rows], [{ value: 2 }, { value: 3 }]);
  db.close();
});

test('through Kysely: repeated queries, writes and a schema change run on kept statements', async () => {
  const { sqlite, prepared } = counted();
  const db = new Kysely<Record<string, never>>({
    dialect: new SqliteDialect({ database: reusingStatements(sqlite) }),
  });
  try {
    await sql`create table t (n integer)`.execute(db);
    for (let i = 0; i < 5; i++) await sql`insert into t (n) values (${i})`.execute(db);
    const all = () => sql<Record<string, number>>`select * from t where n = ${4}`.execute(db);
    assert.deepEqual((await all()).rows, [{ n: 4 }]);
    const read = () => sql<{ total: number }>`select sum(n) as total from t`.execute(db);
    assert.equal((await read()).rows[0]?.total, 10);
    assert.equal((await read()).rows[0]?.total, 10);
    assert.equal(prepared.filter((text) => text.startsWith('insert')).length, 1, 'the insert prepared once');
    assert.equal(
      prepared.filter((text) => text.startsWith('select sum')).length,
      1,
      'the read prepared once',
    );
    await sql`alter table t add column m integer default 7`.execute(db);
    assert.deepEqual((await all()).rows, [{ n: 4, m: 7 }], 'the new column is there');
    await sql`alter table t rename column m to k`.execute(db);
    assert.deepEqual((await all()).rows, [{ n: 4, k: 7 }], 'the renamed column by its new name');
    assert.equal((await read()).rows[0]?.total, 10);
    // The schema changed: kept statements are prepared again, once.
    assert.equal(prepared.filter((text) => text.startsWith('select *')).length, 3);
  } finally {
    await db.destroy();
  }
});

test('rows are the objects better-sqlite3 makes: every column, repeated names, nulls, blobs, big integers, no rows', () => {
  const sqlite = new Database(':memory:');
  const db = reusingStatements(sqlite);
  const text = `select 1 as a, 'x' as b, null as c, x'0102' as d, 9007199254740993 as e, 2 as a
    union all select 3, 'y', 4.5, null, 0, 5`;
  const own = sqlite.prepare(text).all();
  const rows = db.prepare(text).all([]);
  assert.deepEqual(rows, own);
  assert.deepEqual(rows[0], { a: 2, b: 'x', c: null, d: Buffer.from([1, 2]), e: 2 ** 53 });
  assert.deepEqual(Object.keys(rows[0] as object), ['a', 'b', 'c', 'd', 'e']);
  assert.deepEqual(db.prepare('select 1 as n where 0').all([]), []);
  // A column named __proto__: left to better-sqlite3, whatever it makes of it.
  const proto = 'select 1 as "__proto__", 2 as n';
  assert.deepEqual(db.prepare(proto).all([]), sqlite.prepare(proto).all());
  db.close();
});

test('a read that fails leaves its kept statement making objects (a stream of it gets rows as objects)', () => {
  const sqlite = new Database(':memory:');
  const db = reusingStatements(sqlite);
  sqlite.exec('create table t (n integer)');
  sqlite.exec('insert into t values (1), (2)');
  // Fails at its second row: abs() of the smallest integer overflows.
  const text = 'select abs(case when n = 2 then -9223372036854775808 else n end) as n from t';
  assert.throws(() => db.prepare(text).all([]), /overflow/);
  const rows = db.prepare(text).iterate([]);
  assert.deepEqual(rows.next().value, { n: 1 });
  rows.return?.();
  db.close();
});

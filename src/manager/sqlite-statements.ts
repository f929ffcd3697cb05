import type Database from 'better-sqlite3';
import type { SqliteDatabase, SqliteStatement } from 'kysely';

/*
 * The SQLite handle as the manager's Kysely uses it, cheaper per query than better-sqlite3's own:
 * - Statements are prepared once. Kysely's driver prepares every statement it runs afresh:
 *   compiling the joined select of a 100-VM page costs ~0.2 ms, a tenth of the page's CPU, on
 *   every request. The manager's SQL comes from a few hundred shapes (an IN list of n values is its
 *   own shape), kept by their text, the least recently used dropped beyond a bound. SQLite
 *   recompiles a kept statement itself when the schema changes under it (a migration).
 * - Rows are read as arrays and made into objects here. better-sqlite3 builds each row object
 *   property by property from C++, which for a VM row (27 columns) costs 3-4 times more than the
 *   query itself: 0.8-1.2 ms of a 100-VM page's 101 rows, against 0.3-0.5 ms this way.
 */

/** Statements kept; more shapes than this (long IN lists of many lengths) evict the oldest. */
export const STATEMENTS_KEPT = 500;

/** A statement's result columns, read once: the keys of its row objects. */
function columnNames(statement: Database.Statement): readonly string[] | undefined {
  const names = statement.columns().map((column) => column.name);
  // `__proto__` would set a literal's prototype: such rows are left to better-sqlite3.
  return names.includes('__proto__') ? undefined : names;
}

/** One kept statement, with its rows made into objects from arrays (readers). */
function keptStatement(statement: Database.Statement): SqliteStatement {
  if (!statement.reader) return statement;
  let names: readonly string[] | undefined;
  return {
    reader: true,
    all(parameters) {
      names ??= columnNames(statement);
      if (names === undefined) return statement.all(parameters);
      let rows: unknown[][];
      try {
        rows = statement.raw(true).all(parameters) as unknown[][];
      } finally {
        // Back to objects even when it threw: a stream (iterate) of the same text gets objects.
        statement.raw(false);
      }
      // Columns changed under the statement (a schema change it was not told of): read them again.
      if (rows[0] !== undefined && rows[0].length !== names.length) names = columnNames(statement) ?? [];
      const keys = names;
      return rows.map((values) => {
        // Same keys in the same order for every row of a statement: one hidden class, and a
        // repeated name keeps its last column's value, as better-sqlite3's own objects do.
        const row: Record<string, unknown> = {};
        for (let i = 0; i < keys.length; i++) row[keys[i]!] = values[i];
        return row;
      });
    },
    run: (parameters) => statement.run(parameters),
    iterate: (parameters) => statement.iterate(parameters),
  };
}

/** A schema change: the columns of a kept `select *` may have changed with it. */
const DDL = /^\s*(create|alter|drop)\b/i;

/** `sqlite` as Kysely's SqliteDialect takes it, with its prepared statements reused. */
export function reusingStatements(sqlite: Database.Database, kept = STATEMENTS_KEPT): SqliteDatabase {
  const statements = new Map<string, { raw: Database.Statement; kept: SqliteStatement }>();
  return {
    close: () => {
      statements.clear();
      sqlite.close();
    },
    prepare(sql: string): SqliteStatement {
      let entry = statements.get(sql);
      if (entry === undefined || entry.raw.busy) {
        // New, or still iterating for a stream (a busy statement cannot run again): a fresh one.
        const raw = sqlite.prepare(sql);
        entry = { raw, kept: keptStatement(raw) };
      } else statements.delete(sql);
      if (DDL.test(sql)) {
        // Every kept statement's columns are read again (the change runs as this is returned).
        statements.clear();
        return entry.kept;
      }
      statements.set(sql, entry);
      if (statements.size > kept) statements.delete(statements.keys().next().value ?? sql);
      return entry.kept;
    },
  };
}

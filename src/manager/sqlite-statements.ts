import type Database from 'better-sqlite3';
import type { SqliteDatabase, SqliteStatement } from 'kysely';

/*
 * Kysely's SQLite driver prepares every statement it runs afresh: compiling the joined select of a
 * 100-VM page costs ~0.2 ms, a tenth of the page's CPU, on every request (10-14 % of the manager's
 * CPU in bench/api's 16-way rows). The manager's SQL comes from a few hundred shapes (an IN list of
 * n values is its own shape), so its statements are kept by their text, the least recently used
 * dropped beyond a bound. SQLite recompiles a kept statement itself when the schema changes under
 * it (a migration).
 */

/** Statements kept; more shapes than this (long IN lists of many lengths) evict the oldest. */
export const STATEMENTS_KEPT = 500;

/** `sqlite` as Kysely's SqliteDialect takes it, with its prepared statements reused. */
export function reusingStatements(sqlite: Database.Database, kept = STATEMENTS_KEPT): SqliteDatabase {
  const statements = new Map<string, Database.Statement>();
  return {
    close: () => {
      statements.clear();
      sqlite.close();
    },
    prepare(sql: string): SqliteStatement {
      let statement = statements.get(sql);
      if (statement === undefined || statement.busy) {
        // New, or still iterating for a stream (a busy statement cannot run again): a fresh one.
        statement = sqlite.prepare(sql);
      } else statements.delete(sql);
      statements.set(sql, statement);
      if (statements.size > kept) statements.delete(statements.keys().next().value ?? sql);
      return statement;
    },
  };
}

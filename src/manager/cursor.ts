import { InvalidInput } from './errors.js';

/*
 * Pagination cursors: the sort key of the last item of a page, opaque to clients (base64url JSON),
 * so a page boundary stays stable while rows are added or removed before it.
 */

export type CursorKey = readonly (string | number)[];

export function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

/** Decodes a cursor that must hold `arity` strings/numbers; anything else is the client's error. */
export function decodeCursor(cursor: string, arity: number): CursorKey {
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    key = undefined;
  }
  if (
    !Array.isArray(key) ||
    key.length !== arity ||
    !key.every((v) => typeof v === 'string' || typeof v === 'number')
  ) {
    throw new InvalidInput('cursor: is not a cursor this list returned (use nextCursor as given)', 'cursor');
  }
  return key as CursorKey;
}

/** Splits rows fetched with limit+1 into the page and the next cursor. */
export function pageOf<Row, Item>(
  rows: Row[],
  limit: number,
  keyOf: (row: Row) => CursorKey,
  toItem: (row: Row) => Item,
): { items: Item[]; nextCursor: string | null } {
  const more = rows.length > limit;
  const pageRows = more ? rows.slice(0, limit) : rows;
  const last = pageRows[pageRows.length - 1];
  return {
    items: pageRows.map(toItem),
    nextCursor: more && last !== undefined ? encodeCursor(keyOf(last)) : null,
  };
}

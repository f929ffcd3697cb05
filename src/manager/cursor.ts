import { InvalidInput } from './errors.js';

/*
 * Pagination cursors: the sort key of the last item of a page, opaque to clients (base64url JSON),
 * so a page boundary stays stable while rows are added or removed before it.
 */

export type CursorKey = readonly (string | number)[];

export function encodeCursor(key: CursorKey): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

/** What each slot of a cursor holds: text, or a safe integer. */
export type CursorSlot = 'string' | 'int';
type KeyOf<S extends readonly CursorSlot[]> = { [I in keyof S]: S[I] extends 'int' ? number : string };

/**
 * Decodes a cursor whose key must match `shape` slot by slot; anything else (a cursor of another
 * list, a non-finite or fractional number) is the client's error, never a query on a bad key.
 */
export function decodeCursor<const S extends readonly CursorSlot[]>(cursor: string, shape: S): KeyOf<S> {
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    key = undefined;
  }
  const fits = (v: unknown, slot: CursorSlot) =>
    slot === 'int' ? Number.isSafeInteger(v) : typeof v === 'string' && v.length <= 256;
  if (
    !/^[A-Za-z0-9_-]+$/.test(cursor) ||
    !Array.isArray(key) ||
    key.length !== shape.length ||
    !shape.every((slot, i) => fits(key[i], slot))
  ) {
    throw new InvalidInput('cursor: is not a cursor this list returned (use nextCursor as given)', 'cursor');
  }
  return key as KeyOf<S>;
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

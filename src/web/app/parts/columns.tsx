// Column shapes the pages' tables share (parts/data-table.tsx's Column).
import type { ReactNode } from 'react';
import type { Column } from './data-table.js';

/**
 * A numeric column: sorted and searched by the figure, shown through `format` (bytes, percent,
 * rate…). `key` is a server's sort name where the table sorts server-side.
 */
export function figureColumn<T>(
  key: string,
  label: string,
  figure: (row: T) => number | null | undefined,
  format: (n: number | null | undefined) => string,
): Column<T> {
  return { key, label, value: figure, render: (row) => format(figure(row)), numeric: true };
}

/**
 * The row actions column, for a token that may write (none for a read-only one: it sees no
 * write action at all). Not sortable.
 */
export function actionColumns<T>(canWrite: boolean, render: (row: T) => ReactNode): Column<T>[] {
  return canWrite ? [{ key: 'actions', label: 'Actions', fixed: true, value: () => '', render }] : [];
}

// A table that sorts by any column (click or Enter on its header) and filters by a search box.
// Sorting and searching run here for lists the page already holds; a page whose server sorts
// (the Storage Explorer) passes `sort` and `onSort` and gives rows in order.
import { useMemo, useState, type ReactNode } from 'react';

export interface Column<T> {
  key: string;
  label: string;
  /** What the column sorts and searches by. */
  value: (row: T) => string | number | undefined | null;
  render?: (row: T) => ReactNode;
  numeric?: boolean;
  /** Not sortable (actions). */
  fixed?: boolean;
}

export interface SortState {
  key: string;
  desc: boolean;
}

export function DataTable<T>({
  rows,
  columns,
  rowKey,
  caption,
  search,
  initialSort,
  sort: controlledSort,
  onSort,
  rowClass,
  empty = 'Nothing here yet.',
}: {
  rows: readonly T[];
  columns: readonly Column<T>[];
  rowKey: (row: T) => string;
  caption: string;
  /** A search box over every column's text. */
  search?: boolean;
  initialSort?: SortState;
  sort?: SortState;
  onSort?: (sort: SortState) => void;
  rowClass?: (row: T) => string | undefined;
  empty?: ReactNode;
}) {
  const [ownSort, setOwnSort] = useState<SortState | undefined>(initialSort);
  const [text, setText] = useState('');
  const sort = controlledSort ?? ownSort;
  const shown = useMemo(() => {
    const needle = text.trim().toLowerCase();
    let out = needle
      ? rows.filter((row) =>
          columns.some((c) =>
            String(c.value(row) ?? '')
              .toLowerCase()
              .includes(needle),
          ),
        )
      : [...rows];
    if (sort && !onSort) {
      const column = columns.find((c) => c.key === sort.key);
      if (column) {
        out = out.sort((a, b) => {
          const x = column.value(a);
          const y = column.value(b);
          const order =
            x === y
              ? 0
              : x === undefined || x === null
                ? 1
                : y === undefined || y === null
                  ? -1
                  : typeof x === 'number' && typeof y === 'number'
                    ? x - y
                    : String(x).localeCompare(String(y), undefined, { numeric: true });
          return sort.desc ? -order : order;
        });
      }
    }
    return out;
  }, [rows, columns, sort, onSort, text]);

  const toggle = (key: string) => {
    const next = { key, desc: sort?.key === key ? !sort.desc : false };
    if (onSort) onSort(next);
    else setOwnSort(next);
  };

  return (
    <div className="table-wrap">
      {search && (
        <input
          type="search"
          className="table-search"
          aria-label={`Search ${caption}`}
          placeholder="Search…"
          value={text}
          onChange={(e) => setText(e.target.value)}
        />
      )}
      <table>
        <caption>{caption}</caption>
        <thead>
          <tr>
            {columns.map((c) => (
              <th
                key={c.key}
                scope="col"
                className={c.numeric ? 'num' : undefined}
                aria-sort={sort?.key === c.key ? (sort.desc ? 'descending' : 'ascending') : undefined}
              >
                {c.fixed ? (
                  c.label
                ) : (
                  <button type="button" className="sort" onClick={() => toggle(c.key)}>
                    {c.label}
                    <span aria-hidden="true">{sort?.key === c.key ? (sort.desc ? ' ▼' : ' ▲') : ''}</span>
                  </button>
                )}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {shown.length === 0 ? (
            <tr>
              <td colSpan={columns.length} className="state empty">
                {text ? `Nothing matches “${text}”.` : empty}
              </td>
            </tr>
          ) : (
            shown.map((row) => (
              <tr key={rowKey(row)} className={rowClass?.(row)}>
                {columns.map((c) => (
                  <td key={c.key} className={c.numeric ? 'num' : undefined}>
                    {c.render ? c.render(row) : (c.value(row) ?? '—')}
                  </td>
                ))}
              </tr>
            ))
          )}
        </tbody>
      </table>
    </div>
  );
}

// Cursor paging of a list the server pages: the cursors of the pages before this one, so
// "Previous page" goes back, and a fresh start whenever the list's query (sort, search, window) changes.
import { useEffect, useState } from 'react';
import './pager.css';

export interface Pager {
  /** The cursor of the page shown (undefined: the first). */
  cursor: string | undefined;
  page: number;
  next: (cursor: string) => void;
  previous: () => void;
}

/** `resetKey`: what the list shows (its query without the cursor); a new one starts at page 1. */
export function usePager(resetKey: string): Pager {
  const [state, setState] = useState<{ key: string; stack: string[] }>({ key: resetKey, stack: [] });
  const stack = state.key === resetKey ? state.stack : [];
  return {
    cursor: stack.at(-1),
    page: stack.length + 1,
    next: (cursor) => setState({ key: resetKey, stack: [...stack, cursor] }),
    previous: () => setState({ key: resetKey, stack: stack.slice(0, -1) }),
  };
}

/** "Previous page" / "Next page" under a list; `of` names the list when a page has several. */
export function PagerControls({
  pager,
  nextCursor,
  of,
}: {
  pager: Pager;
  nextCursor: string | null | undefined;
  of?: string;
}) {
  if (pager.page === 1 && !nextCursor) return null;
  const suffix = of ? ` of ${of}` : '';
  return (
    <nav className="pager" aria-label={`Pages${suffix}`}>
      <button type="button" disabled={pager.page === 1} onClick={pager.previous}>
        Previous page{suffix}
      </button>
      <span>Page {pager.page}</span>
      <button type="button" disabled={!nextCursor} onClick={() => nextCursor && pager.next(nextCursor)}>
        Next page{suffix}
      </button>
    </nav>
  );
}

/** A value that follows `value` once it has stayed the same for `ms` (a search box's text). */
export function useDebounced<T>(value: T, ms = 300): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}

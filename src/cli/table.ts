// Aligned plain-text tables, the default output of every list command.
import { terminalSafe, visibleLength } from './output.js';

export interface Column<T> {
  header: string;
  value: (row: T) => string;
  /** Numbers and sizes read best right-aligned. */
  align?: 'left' | 'right';
}

/**
 * Renders rows under upper-case headers, columns separated by two spaces, no trailing blanks.
 * Widths count visible code points (not colour codes) so cells stay aligned in common terminals.
 */
export function renderTable<T>(columns: readonly Column<T>[], rows: readonly T[]): string {
  const cells = rows.map((row) => columns.map((c) => oneLine(c.value(row))));
  const headers = columns.map((c) => c.header.toUpperCase());
  const widths = headers.map((h, i) => Math.max(width(h), ...cells.map((r) => width(r[i] ?? ''))));
  const line = (values: string[]) =>
    values
      .map((v, i) => {
        const pad = ' '.repeat((widths[i] ?? 0) - width(v));
        return columns[i]?.align === 'right' ? pad + v : v + pad;
      })
      .join('  ')
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n');
}

/** Label/value pairs of one object (the `show` commands), labels aligned. */
export function renderDetails(pairs: readonly (readonly [string, string])[]): string {
  const labelWidth = Math.max(0, ...pairs.map(([label]) => width(label)));
  return pairs
    .map(([label, value]) => `${label}:${' '.repeat(labelWidth - width(label) + 1)}${terminalSafe(value)}`)
    .join('\n');
}

function width(text: string): number {
  return visibleLength(text);
}

// A newline inside a cell would break every column after it; other controls are shown escaped.
function oneLine(text: string): string {
  return terminalSafe(text.replace(/[\r\n\t]+/g, ' '));
}

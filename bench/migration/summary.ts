// Medians with min-max of the runs of one policy in one benchmark row (pure).

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** Median, min and max of the defined values; undefined when there are none. */
export function spread(values: readonly (number | undefined)[]): Spread | undefined {
  const sorted = values
    .filter((v): v is number => v !== undefined && Number.isFinite(v))
    .sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return undefined;
  const mid = Math.floor(n / 2);
  const median =
    n % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return { median, min: sorted[0] as number, max: sorted[n - 1] as number, n };
}

/** `12.3 (11.0–14.1)`, or just the value for a single run; `—` when nothing was measured. */
export function formatSpread(s: Spread | undefined, format: (v: number) => string): string {
  if (s === undefined) return '—';
  if (s.n === 1 || s.min === s.max) return format(s.median);
  return `${format(s.median)} (${format(s.min)}–${format(s.max)})`;
}

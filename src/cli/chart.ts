// A change timeline drawn in the terminal: one row of Unicode block bars per series, the columns
// merged so the chart fits the width. Pure, so scaling and merging are unit-tested.
import type { ChangeTimeline } from '../api/index.js';

/** Eight bar heights; a bucket with any change gets at least the lowest, an empty one a dot. */
const BLOCKS = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
const EMPTY = '·';

/** `counts` summed in runs of `per` (the last run may be shorter). */
export function mergeBuckets(counts: readonly number[], per: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < counts.length; i += per) out.push(counts.slice(i, i + per).reduce((a, b) => a + b, 0));
  return out;
}

/** A bar of `count` against the chart's largest column `max`. */
export function block(count: number, max: number): string {
  if (count <= 0 || max <= 0) return EMPTY;
  const level = Math.ceil((count / max) * BLOCKS.length) - 1;
  return BLOCKS[Math.min(BLOCKS.length - 1, Math.max(0, level))] ?? EMPTY;
}

const BUCKET_HOURS = { hour: 1, day: 24 } as const;

/** `2026-11-24 18:00` (UTC) for hours, `2026-11-24` for days. */
function label(iso: string, bucket: ChangeTimeline['bucket']): string {
  return bucket === 'day' ? iso.slice(0, 10) : `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
}

/**
 * The timeline as text, at most `columns` wide: a title with the window and what a column holds,
 * a row per series (name, bars, total and busiest column), and the time axis's two ends.
 */
export function renderTimeline(t: ChangeTimeline, columns = 80): string {
  const nameWidth = Math.max(4, ...t.series.map((s) => [...s.name].length));
  const totals = t.series.map((s) => s.counts.reduce((a, b) => a + b, 0));
  const tail = (i: number, peak: number) => `${totals[i] ?? 0} (peak ${peak})`;
  const tailWidth = Math.max(...t.series.map((s, i) => tail(i, Math.max(0, ...s.counts)).length), 0);
  const room = Math.max(8, columns - nameWidth - tailWidth - 4);
  const per = Math.max(1, Math.ceil(t.buckets.length / room));
  // Few buckets (a week by the day) get wider columns, so the chart stays readable.
  const cell = per === 1 ? Math.min(4, Math.max(1, Math.floor(room / Math.max(1, t.buckets.length)))) : 1;
  const merged = t.series.map((s) => mergeBuckets(s.counts, per));
  const max = Math.max(0, ...merged.flat());
  const hours = per * BUCKET_HOURS[t.bucket];
  const span =
    hours % 24 === 0
      ? `${hours / 24} day${hours === 24 ? '' : 's'}`
      : `${hours} hour${hours === 1 ? '' : 's'}`;
  const lines = [
    `${t.total} changes by ${t.by}, ${label(t.start, t.bucket)} to ${label(t.end, 'hour')} UTC, ${span} a step`,
  ];
  if (!t.series.length) return [...lines, 'No changes.'].join('\n');
  merged.forEach((counts, i) => {
    const name = t.series[i]?.name ?? '';
    const bars = counts.map((c) => block(c, max).repeat(cell)).join('');
    lines.push(`${name.padEnd(nameWidth)}  ${bars}  ${tail(i, Math.max(0, ...counts))}`);
  });
  const width = (merged[0]?.length ?? 0) * cell;
  const from = label(t.start, t.bucket);
  const to = label(t.buckets[t.buckets.length - 1] ?? t.end, t.bucket);
  const gap = width - from.length - to.length;
  lines.push(
    `${' '.repeat(nameWidth + 2)}${gap >= 1 ? `${from}${' '.repeat(gap)}${to}` : `${from} … ${to}`}`,
  );
  return lines.join('\n');
}

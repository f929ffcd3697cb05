// The Change Explorer's pure half: the chart option of a timeline (stacked bars per kind or risk),
// the time range of a bucket (a click on a bar narrows the list to it), and how that range reads.
import type { ChangeTimeline } from '../../../api/browser.js';

/** Risk colours that read as low/medium/high; the legend and tooltip name each series too. */
const RISK_COLOURS: Record<string, string> = { low: '#2e7d32', medium: '#c77700', high: '#b3261e' };
/** Distinct colours for kinds (ECharts' default palette is too light on white for some). */
const KIND_COLOURS = ['#0b5cad', '#6a1b9a', '#00796b', '#ad1457', '#5d4037', '#455a64', '#827717', '#283593'];

/** One bucket's label on the axis: the hour or the day, in the viewer's time zone. */
export function bucketLabel(iso: string, bucket: ChangeTimeline['bucket']): string {
  const d = new Date(iso);
  const day = `${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  return bucket === 'day' ? day : `${day} ${String(d.getHours()).padStart(2, '0')}:00`;
}

/** The ECharts option of a timeline: one stacked bar series per kind or risk, empty series left out. */
export function timelineOption(timeline: ChangeTimeline): Record<string, unknown> {
  const series = timeline.series.filter((s) => s.counts.some((c) => c > 0));
  return {
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
    legend: { top: 0, data: series.map((s) => s.name) },
    grid: { left: 40, right: 16, top: 32, bottom: 28, containLabel: true },
    xAxis: {
      type: 'category',
      data: timeline.buckets.map((b) => bucketLabel(b, timeline.bucket)),
      axisLabel: { color: '#1b1f24' },
    },
    yAxis: { type: 'value', minInterval: 1, name: 'changes', axisLabel: { color: '#1b1f24' } },
    series: series.map((s, i) => ({
      name: s.name,
      type: 'bar',
      stack: 'changes',
      barMaxWidth: 40,
      data: s.counts,
      itemStyle: {
        color:
          timeline.by === 'risk'
            ? (RISK_COLOURS[s.name] ?? KIND_COLOURS[i % KIND_COLOURS.length])
            : KIND_COLOURS[i % KIND_COLOURS.length],
      },
      emphasis: { focus: 'series' },
    })),
  };
}

export interface TimeRange {
  since: string;
  until: string;
}

/** The time a bucket covers: from its start to the next one's (the last one ends at the window's end). */
export function bucketRange(timeline: ChangeTimeline, index: number): TimeRange | undefined {
  const since = timeline.buckets[index];
  if (since === undefined) return undefined;
  return { since, until: timeline.buckets[index + 1] ?? timeline.end };
}

/** The buckets that hold changes, with their totals over every series: what a bar stands for. */
export function busyBuckets(timeline: ChangeTimeline): { index: number; count: number }[] {
  return timeline.buckets
    .map((_, index) => ({
      index,
      count: timeline.series.reduce((sum, s) => sum + (s.counts[index] ?? 0), 0),
    }))
    .filter((b) => b.count > 0);
}

/** How a range reads: `05-02 14:00 to 15:00`, or with both dates when it spans days. */
export function rangeText(range: TimeRange): string {
  const from = new Date(range.since);
  const to = new Date(range.until);
  const date = (d: Date) =>
    `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  const time = (d: Date) =>
    `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
  return date(from) === date(to)
    ? `${date(from)} ${time(from)} to ${time(to)}`
    : `${date(from)} ${time(from)} to ${date(to)} ${time(to)}`;
}

/** A `datetime-local` input's text (local time) as the API's ISO time; undefined when empty or not a time. */
export function isoOfLocal(text: string): string | undefined {
  if (!text) return undefined;
  const d = new Date(text);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** A value of a change's before/after as text: strings as they are, the rest as JSON; absent as —. */
export function valueText(value: unknown): string {
  if (value === undefined || value === null) return '—';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

// The report's charts: ECharts rendered on the server to SVG strings (no DOM, no script in the
// page), so the report opens offline and prints as drawn.
import * as chartsModule from 'echarts/charts';
import * as componentsModule from 'echarts/components';
import * as coreModule from 'echarts/core';
import * as renderersModule from 'echarts/renderers';
import type * as Charts from 'echarts/types/dist/charts';
import type * as Components from 'echarts/types/dist/components';
import type * as Core from 'echarts/types/dist/core';
import type * as Renderers from 'echarts/types/dist/renderers';
import {
  DAYS_UNTIL_FULL_BANDS,
  type ChangeTimeline,
  type DatastoreFill,
  type MoveFigures,
  type Severity,
  type StorageIssue,
} from './schema.js';

/** Calm, amber, red for low, medium, high; grey for what has no rating. */
export const RISK_COLORS: Record<string, string> = {
  low: '#5b8a72',
  medium: '#d99a1e',
  high: '#c8102e',
  unrated: '#8a8f98',
};
export const SEVERITY_COLORS: Record<Severity, string> = {
  critical: '#c8102e',
  warning: '#d99a1e',
  info: '#5b7fa6',
};
const BAND_COLORS = ['#c8102e', '#d99a1e', '#c9b458'];
const OTHER_COLORS = ['#5b7fa6', '#7a5ba6', '#5ba69a', '#a65b7f', '#a6875b'];
// ECharts' entry .d.ts files re-export without file extensions, which NodeNext resolution does not
// follow (the modules look empty to tsc): the same modules, typed by the declarations they re-export.
const echarts = coreModule as unknown as typeof Core;
const { BarChart } = chartsModule as unknown as typeof Charts;
const { GridComponent, LegendComponent, MarkLineComponent } =
  componentsModule as unknown as typeof Components;
const { SVGRenderer } = renderersModule as unknown as typeof Renderers;

// Only what the report draws is loaded (ECharts' modular build): bars, grid, legend, marker lines.
echarts.use([BarChart, GridComponent, LegendComponent, MarkLineComponent, SVGRenderer]);
type ChartOption = Core.ComposeOption<
  Charts.BarSeriesOption | Components.GridComponentOption | Components.LegendComponentOption
>;

const TEXT = { color: '#222', fontFamily: 'sans-serif', fontSize: 11 };

/**
 * One chart as an SVG element. Animation off (the first frame is the only frame), and without the
 * xmlns attributes: inline SVG in HTML needs none, and the page then names no URL at all.
 */
export function svgChart(option: ChartOption, width: number, height: number): string {
  const chart = echarts.init(null, null, { renderer: 'svg', ssr: true, width, height });
  try {
    chart.setOption({ animation: false, textStyle: TEXT, ...option });
    return chart
      .renderToSVGString()
      .replace(/ xmlns(:xlink)?="[^"]*"/g, '')
      .replace('<svg ', '<svg role="img" ');
  } finally {
    chart.dispose();
  }
}

const colorOf = (name: string, i: number) =>
  RISK_COLORS[name] ?? OTHER_COLORS[i % OTHER_COLORS.length] ?? '#888';

/** `2026-11-24T00:00:00Z` as `11-24` (days) or `11-24 13h` (hours). */
function bucketLabel(iso: string, bucket: ChangeTimeline['bucket']): string {
  const day = iso.slice(5, 10);
  return bucket === 'day' ? day : `${day} ${iso.slice(11, 13)}h`;
}

/** Changes per bucket, stacked by risk (or by kind: `by` picks the series). */
export function timelineChart(timeline: ChangeTimeline, by: 'risk' | 'kind' = 'risk'): string {
  const series = by === 'risk' ? timeline.series : (timeline.byKind ?? []);
  return svgChart(
    {
      legend: { top: 0, textStyle: TEXT },
      grid: { left: 40, right: 16, top: 32, bottom: 28 },
      xAxis: { type: 'category', data: timeline.buckets.map((b) => bucketLabel(b, timeline.bucket)) },
      yAxis: { type: 'value', name: 'changes', minInterval: 1 },
      series: series.map((s, i) => ({
        type: 'bar',
        name: s.name,
        stack: 'changes',
        data: s.counts,
        itemStyle: { color: colorOf(s.name, i) },
      })),
    },
    720,
    260,
  );
}

/** The chart shows this many datastores at most (the soonest full); the table lists them all. */
export const DAYS_UNTIL_FULL_CHART_ROWS = 25;

/** Datastores by days until full (those with a figure), soonest on top, the bands marked. */
export function daysUntilFullChart(rows: DatastoreFill[]): string {
  // ECharts draws a category axis bottom-up: the soonest full last, so it is on top.
  const ranked = rows
    .filter((r): r is DatastoreFill & { daysUntilFull: number } => r.daysUntilFull !== null)
    .sort((a, b) => a.daysUntilFull - b.daysUntilFull)
    .slice(0, DAYS_UNTIL_FULL_CHART_ROWS)
    .reverse();
  const widest = DAYS_UNTIL_FULL_BANDS[DAYS_UNTIL_FULL_BANDS.length - 1] ?? 120;
  // A datastore years from full would squash the bands into a sliver: the axis stops at a year.
  const axisMax = Math.ceil(Math.min(365, Math.max(widest * 1.1, ...ranked.map((r) => r.daysUntilFull))));
  return svgChart(
    {
      grid: { left: 160, right: 56, top: 24, bottom: 40 },
      xAxis: { type: 'value', name: 'days until full', nameLocation: 'middle', nameGap: 24, max: axisMax },
      yAxis: { type: 'category', data: ranked.map((r) => `${r.host}/${r.datastore}`) },
      series: [
        {
          type: 'bar',
          data: ranked.map((r) => ({
            value: Math.min(r.daysUntilFull, axisMax),
            itemStyle: { color: bandColor(r.daysUntilFull) },
          })),
          label: {
            show: true,
            position: 'right',
            formatter: (p: { dataIndex: number }) => daysText(ranked[p.dataIndex]),
          },
          markLine: {
            symbol: 'none',
            silent: true,
            lineStyle: { type: 'dashed', color: '#555' },
            label: { formatter: '{b}', color: '#555' },
            data: DAYS_UNTIL_FULL_BANDS.map((days) => ({ name: `${days} d`, xAxis: days })),
          },
        },
      ],
    },
    720,
    Math.max(130, 72 + ranked.length * 24),
  );
}

const daysText = (row: { daysUntilFull: number } | undefined) =>
  row ? `${Math.round(row.daysUntilFull)} d` : '';

function bandColor(days: number): string {
  const i = DAYS_UNTIL_FULL_BANDS.findIndex((limit) => days < limit);
  return i === -1 ? RISK_COLORS.low! : (BAND_COLORS[i] ?? '#888');
}

/** Each live move's switchover downtime: QEMU's figure and, where measured, the guest's. */
export function downtimeChart(moves: MoveFigures[]): string {
  const measured = moves.filter((m) => m.downtimeMs !== null || m.guestDowntimeMs !== null);
  return svgChart(
    {
      legend: { top: 0, textStyle: TEXT },
      grid: { left: 48, right: 16, top: 32, bottom: 56 },
      xAxis: {
        type: 'category',
        data: measured.map((m) => `${m.vm}\n${m.at.slice(5, 16).replace('T', ' ')}`),
        // Every move named while they fit; beyond a dozen ECharts picks which labels to show.
        axisLabel: { interval: measured.length <= 12 ? 0 : 'auto', fontSize: 10 },
      },
      yAxis: { type: 'value', name: 'ms' },
      series: [
        {
          type: 'bar',
          name: 'QEMU downtime',
          data: measured.map((m) => m.downtimeMs),
          itemStyle: { color: SEVERITY_COLORS.info },
        },
        {
          type: 'bar',
          name: 'guest-visible downtime',
          data: measured.map((m) => m.guestDowntimeMs),
          itemStyle: { color: RISK_COLORS.medium! },
        },
      ],
    },
    720,
    260,
  );
}

/** How many storage issues of each severity. */
export function issuesBySeverityChart(issues: StorageIssue[]): string {
  const severities: Severity[] = ['critical', 'warning', 'info'];
  return svgChart(
    {
      grid: { left: 72, right: 32, top: 8, bottom: 24 },
      xAxis: { type: 'value', minInterval: 1 },
      yAxis: { type: 'category', data: severities, inverse: true },
      series: [
        {
          type: 'bar',
          data: severities.map((s) => ({
            value: issues.filter((i) => i.severity === s).length,
            itemStyle: { color: SEVERITY_COLORS[s] },
          })),
          label: { show: true, position: 'right' },
        },
      ],
    },
    360,
    120,
  );
}

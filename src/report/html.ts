// The weekly report as one self-contained HTML page: inline CSS, charts as inline SVG, no script
// and no URL, so it opens offline and prints as shown. Every text from the data is escaped.
import {
  DAYS_UNTIL_FULL_CHART_ROWS,
  daysUntilFullChart,
  downtimeChart,
  issuesBySeverityChart,
  RISK_COLORS,
  SEVERITY_COLORS,
  timelineChart,
} from './charts.js';
import { ReportData, type DatastoreFill, type MoveFigures, type StorageIssue } from './schema.js';

/** Text for HTML content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** `2026-11-24T13:05:09.123Z` -> `2026-11-24 13:05` (the page says once that times are UTC). */
const when = (iso: string) => iso.slice(0, 16).replace('T', ' ');
const GiB = 2 ** 30;
/** Datastores and moves are GiB-sized; one unit keeps a column comparable at a glance. */
const gib = (bytes: number) => `${(bytes / GiB).toFixed(bytes < 10 * GiB ? 2 : 1)} GiB`;
const orDash = (value: number | null, format: (n: number) => string) =>
  value === null ? '-' : format(value);
const ms = (n: number) => `${Math.round(n)} ms`;

interface Column<T> {
  header: string;
  /** Plain text, escaped here. */
  text: (row: T) => string;
  numeric?: boolean;
  /** A CSS colour for a dot before the text. */
  dot?: (row: T) => string | undefined;
}

function table<T>(columns: Column<T>[], rows: T[]): string {
  const head = columns.map((c) => `<th${c.numeric ? ' class="num"' : ''}>${escapeHtml(c.header)}</th>`);
  const body = rows.map((row) => {
    const cells = columns.map((c) => {
      const color = c.dot?.(row);
      const dot = color ? `<span class="dot" style="background:${escapeHtml(color)}"></span>` : '';
      return `<td${c.numeric ? ' class="num"' : ''}>${dot}${escapeHtml(c.text(row))}</td>`;
    });
    return `<tr>${cells.join('')}</tr>`;
  });
  return `<table><thead><tr>${head.join('')}</tr></thead><tbody>\n${body.join('\n')}\n</tbody></table>`;
}

const empty = (text: string) => `<p class="empty">${escapeHtml(text)}</p>`;
const figure = (svg: string, caption: string) =>
  `<figure>${svg}<figcaption>${escapeHtml(caption)}</figcaption></figure>`;
const section = (id: string, title: string, body: string) =>
  `<section id="${id}">\n<h2>${escapeHtml(title)}</h2>\n${body}\n</section>`;

function storageSection(issues: StorageIssue[]): string {
  if (issues.length === 0)
    return section('storage-issues', 'Storage issues', empty('No storage issues this week.'));
  const active = issues.filter((i) => i.endedAt === null).length;
  const columns: Column<StorageIssue>[] = [
    { header: 'Severity', text: (i) => i.severity, dot: (i) => SEVERITY_COLORS[i.severity] },
    { header: 'Rule', text: (i) => i.rule },
    { header: 'Object', text: (i) => `${i.object.kind} ${i.object.name}` },
    { header: 'Host', text: (i) => i.object.host ?? '-' },
    { header: 'Detail', text: (i) => i.detail },
    { header: 'Started', text: (i) => when(i.startedAt) },
    { header: 'Ended', text: (i) => (i.endedAt ? when(i.endedAt) : 'active') },
  ];
  return section(
    'storage-issues',
    'Storage issues',
    [
      `<p>${issues.length} issue${issues.length === 1 ? '' : 's'}, ${active} still active.</p>`,
      figure(issuesBySeverityChart(issues), 'Storage issues by severity'),
      table(columns, issues),
    ].join('\n'),
  );
}

function fillSection(rows: DatastoreFill[]): string {
  const title = 'Days until full';
  if (rows.length === 0) return section('days-until-full', title, empty('No datastore figures this week.'));
  const ranked = [...rows].sort(
    (a, b) => (a.daysUntilFull ?? Infinity) - (b.daysUntilFull ?? Infinity) || a.freeBytes - b.freeBytes,
  );
  const columns: Column<DatastoreFill>[] = [
    { header: 'Datastore', text: (r) => `${r.host}/${r.datastore}` },
    { header: 'Capacity', text: (r) => gib(r.capacityBytes), numeric: true },
    { header: 'Free', text: (r) => gib(r.freeBytes), numeric: true },
    { header: 'Provisioned', text: (r) => gib(r.provisionedBytes), numeric: true },
    { header: 'Allocated', text: (r) => gib(r.allocatedBytes), numeric: true },
    {
      header: 'Over-commitment',
      text: (r) => (r.capacityBytes ? `${(r.provisionedBytes / r.capacityBytes).toFixed(2)}x` : '-'),
      numeric: true,
    },
    {
      header: 'Days until full',
      text: (r) => orDash(r.daysUntilFull, (d) => String(Math.round(d))),
      numeric: true,
    },
    { header: 'Band', text: (r) => r.band },
  ];
  const filling = ranked.some((r) => r.daysUntilFull !== null);
  return section(
    'days-until-full',
    title,
    [
      filling
        ? figure(
            daysUntilFullChart(ranked),
            `Days until full from the growth trend (the ${DAYS_UNTIL_FULL_CHART_ROWS} soonest at most); dashed lines at the bands`,
          )
        : empty('No datastore is filling up this week.'),
      table(columns, ranked),
    ].join('\n'),
  );
}

function changesSection(data: ReportData): string {
  const { changeTimeline: timeline, topChanges } = data;
  const total = timeline.series.reduce((sum, s) => sum + s.counts.reduce((a, b) => a + b, 0), 0);
  const title = 'Changes';
  if (total === 0 && topChanges.length === 0)
    return section('changes', title, empty('No changes this week.'));
  const parts = [
    `<p>${total} change${total === 1 ? '' : 's'} in ${timeline.buckets.length} ${timeline.bucket}s.</p>`,
    figure(timelineChart(timeline, 'risk'), `Changes per ${timeline.bucket}, by risk`),
  ];
  if (timeline.byKind?.length) {
    parts.push(figure(timelineChart(timeline, 'kind'), `Changes per ${timeline.bucket}, by kind of object`));
  }
  parts.push('<h3>High-risk changes</h3>');
  parts.push(
    topChanges.length
      ? table(
          [
            { header: 'When', text: (c) => when(c.at) },
            { header: 'Actor', text: (c) => c.actor },
            { header: 'Object', text: (c) => `${c.object.kind} ${c.object.name}` },
            { header: 'Action', text: (c) => c.action },
            { header: 'Risk', text: (c) => c.risk, dot: (c) => RISK_COLORS[c.risk] },
            { header: 'Rule', text: (c) => c.rule },
          ],
          topChanges,
        )
      : empty('No high-risk changes this week.'),
  );
  return section('changes', title, parts.join('\n'));
}

function movesSection(moves: MoveFigures[]): string {
  if (moves.length === 0) return section('moves', 'Moves', empty('No moves this week.'));
  const failed = moves.filter((m) => m.outcome !== 'succeeded').length;
  const measured = moves.some((m) => m.downtimeMs !== null || m.guestDowntimeMs !== null);
  const columns: Column<MoveFigures>[] = [
    { header: 'When', text: (m) => when(m.at) },
    { header: 'VM', text: (m) => m.vm },
    { header: 'From', text: (m) => m.from ?? '-' },
    { header: 'To', text: (m) => m.to ?? '-' },
    { header: 'Mode', text: (m) => m.mode ?? '-' },
    {
      header: 'Outcome',
      text: (m) => m.outcome,
      dot: (m) => (m.outcome === 'succeeded' ? RISK_COLORS.low : RISK_COLORS.high),
    },
    { header: 'Total', text: (m) => orDash(m.totalSeconds, (s) => `${s.toFixed(1)} s`), numeric: true },
    { header: 'QEMU downtime', text: (m) => orDash(m.downtimeMs, ms), numeric: true },
    { header: 'Guest downtime', text: (m) => orDash(m.guestDowntimeMs, ms), numeric: true },
    { header: 'Data', text: (m) => orDash(m.bytes, gib), numeric: true },
  ];
  return section(
    'moves',
    'Moves',
    [
      `<p>${moves.length} move${moves.length === 1 ? '' : 's'}, ${failed} not completed.</p>`,
      measured
        ? figure(downtimeChart(moves), 'Switchover downtime per move')
        : empty('No move with measured downtime this week.'),
      table(columns, moves),
    ].join('\n'),
  );
}

const CSS = `
body { font: 14px/1.45 system-ui, sans-serif; color: #222; max-width: 1000px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.8em; }
h3 { font-size: 1.05em; }
.meta, figcaption, .empty { color: #555; }
.empty { font-style: italic; }
figure { margin: 0.8em 0; }
figure svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th, td { text-align: left; padding: 0.25em 0.5em; border-bottom: 1px solid #e4e4e4; vertical-align: top; }
th { background: #f4f4f4; }
.num { text-align: right; white-space: nowrap; }
.dot { display: inline-block; width: 0.7em; height: 0.7em; border-radius: 50%; margin-right: 0.4em; }
@media print {
  body { margin: 0; max-width: none; }
  section, figure, tr { break-inside: avoid; }
  .dot { print-color-adjust: exact; -webkit-print-color-adjust: exact; }
}`;

/** The whole page. Throws a ZodError when `data` breaks the ReportData schema. */
export function renderReport(data: ReportData): string {
  const d = ReportData.parse(data);
  const title = `Silobreak — week of ${d.window.from.slice(0, 10)}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${CSS}
</style>
</head>
<body>
<header>
<h1>${escapeHtml(title)}</h1>
<p class="meta">${escapeHtml(
    `${when(d.window.from)} to ${when(d.window.to)} UTC · generated ${when(d.window.generatedAt)} UTC · manager ${d.window.managerVersion}`,
  )}</p>
</header>
<main>
${storageSection(d.storageIssues)}
${fillSection(d.daysUntilFull)}
${changesSection(d)}
${movesSection(d.moves)}
</main>
</body>
</html>
`;
}

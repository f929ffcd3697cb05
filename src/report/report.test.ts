// The report renderer is pure: data in, one HTML page out. These tests read that page as text.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bandOf, escapeHtml, renderReport, ReportData } from './index.js';

const hostile = '<img src=x onerror=alert(1)>&"web\'';

/** A week with something in every section, a hostile VM name among the moves and issues. */
function fullWeek(): ReportData {
  return {
    window: {
      from: '2026-11-24T00:00:00.000Z',
      to: '2026-12-01T00:00:00.000Z',
      generatedAt: '2026-12-01T08:00:00.000Z',
      managerVersion: '0.1.0',
    },
    storageIssues: [
      {
        severity: 'critical',
        rule: 'low-capacity',
        object: { kind: 'datastore', name: 'local', host: 'h1' },
        detail: 'free 4 % of 100 GiB, full in 12 days',
        startedAt: '2026-11-28T10:00:00.000Z',
        endedAt: null,
      },
      {
        severity: 'warning',
        rule: 'vm-low-disk-space',
        object: { kind: 'vm', name: `${hostile}`, host: 'h2' },
        detail: 'used 91 % of 2 GiB',
        startedAt: '2026-11-25T10:00:00.000Z',
        endedAt: '2026-11-26T10:00:00.000Z',
      },
    ],
    daysUntilFull: [
      {
        host: 'h1',
        datastore: 'local',
        capacityBytes: 100 * 2 ** 30,
        freeBytes: 4 * 2 ** 30,
        provisionedBytes: 180 * 2 ** 30,
        allocatedBytes: 90 * 2 ** 30,
        daysUntilFull: 12,
        band: bandOf(12),
      },
      {
        host: 'h2',
        datastore: 'bulk',
        capacityBytes: 500 * 2 ** 30,
        freeBytes: 300 * 2 ** 30,
        provisionedBytes: 100 * 2 ** 30,
        allocatedBytes: 150 * 2 ** 30,
        daysUntilFull: null,
        band: bandOf(null),
      },
    ],
    changeTimeline: {
      bucket: 'day',
      buckets: ['2026-11-29T00:00:00.000Z', '2026-11-30T00:00:00.000Z'],
      series: [
        { name: 'low', counts: [3, 1] },
        { name: 'medium', counts: [0, 2] },
        { name: 'high', counts: [1, 0] },
      ],
      byKind: [
        { name: 'vm', counts: [3, 2] },
        { name: 'host', counts: [1, 1] },
      ],
    },
    topChanges: [
      {
        at: '2026-11-29T09:15:00.000Z',
        actor: 'ops',
        object: { kind: 'host', name: 'h3' },
        action: 'deleted',
        risk: 'high',
        rule: 'host-removed',
      },
    ],
    moves: [
      {
        at: '2026-11-30T12:00:00.000Z',
        vm: hostile,
        from: 'h1',
        to: 'h2',
        mode: 'live',
        outcome: 'succeeded',
        totalSeconds: 42.5,
        downtimeMs: 37,
        guestDowntimeMs: 120,
        bytes: 3 * 2 ** 30,
      },
      {
        at: '2026-11-30T13:00:00.000Z',
        vm: 'db1',
        from: null,
        to: null,
        mode: null,
        outcome: 'failed',
        totalSeconds: null,
        downtimeMs: null,
        guestDowntimeMs: null,
        bytes: null,
      },
    ],
  };
}

function quietWeek(): ReportData {
  const week = fullWeek();
  return {
    ...week,
    storageIssues: [],
    daysUntilFull: [],
    changeTimeline: { bucket: 'day', buckets: week.changeTimeline.buckets, series: [] },
    topChanges: [],
    moves: [],
  };
}

/** The content of the <section id="…"> element. */
function sectionOf(html: string, id: string): string {
  const match = new RegExp(`<section id="${id}">([\\s\\S]*?)</section>`).exec(html);
  assert.ok(match?.[1], `section ${id} is missing`);
  return match[1];
}

test('a full week: every section with its chart as inline SVG, titled with the week', () => {
  const html = renderReport(fullWeek());
  assert.ok(html.startsWith('<!doctype html>'));
  assert.match(html, /<title>Silobreak — week of 2026-11-24<\/title>/);
  assert.match(html, /<h1>Silobreak — week of 2026-11-24<\/h1>/);
  for (const id of ['storage-issues', 'days-until-full', 'changes', 'moves']) {
    assert.match(sectionOf(html, id), /<svg [^>]*role="img"/, `${id} has a chart`);
  }
  // Two timeline charts (by risk, by kind); the legend names each series.
  const changes = sectionOf(html, 'changes');
  assert.equal(changes.match(/<svg /g)?.length, 2);
  for (const name of ['low', 'medium', 'high', 'vm', 'host']) assert.match(changes, new RegExp(`>${name}<`));
  assert.match(changes, /host-removed/);
  // The bands are marked on the days-until-full chart, and the ranking puts the filling one first.
  const fill = sectionOf(html, 'days-until-full');
  for (const band of ['30 d', '60 d', '120 d']) assert.ok(fill.includes(`>${band}<`), band);
  assert.ok(fill.indexOf('h1/local') < fill.indexOf('h2/bulk'));
  assert.match(fill, /1\.80x/, 'over-commitment is provisioned / capacity');
  assert.match(sectionOf(html, 'moves'), /37 ms.*120 ms/s);
});

test('every user string is escaped: no markup of a VM name reaches the page', () => {
  const html = renderReport(fullWeek());
  assert.ok(!html.includes('<img'), 'the hostile name stays text');
  assert.ok(html.includes(escapeHtml(hostile)), 'tables show it escaped');
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62;');
});

test('the page is self-contained: no script, no stylesheet link, no URL at all', () => {
  for (const html of [renderReport(fullWeek()), renderReport(quietWeek())]) {
    assert.doesNotMatch(html, /<script|<link|@import|url\(/i);
    assert.doesNotMatch(html, /\b(src|href)\s*=\s*["']?\s*(https?:)?\/\//i);
    assert.doesNotMatch(html, /https?:\/\//);
  }
});

test('a quiet week: each section says there was nothing instead of drawing an empty chart', () => {
  const html = renderReport(quietWeek());
  assert.doesNotMatch(html, /<svg/);
  assert.match(sectionOf(html, 'storage-issues'), /No storage issues this week\./);
  assert.match(sectionOf(html, 'days-until-full'), /No datastore figures this week\./);
  assert.match(sectionOf(html, 'changes'), /No changes this week\./);
  assert.match(sectionOf(html, 'moves'), /No moves this week\./);
});

test('moves without measured downtime and datastores not filling up get a line, not a chart', () => {
  const week = fullWeek();
  const html = renderReport({
    ...week,
    moves: week.moves.filter((m) => m.outcome === 'failed'),
    daysUntilFull: week.daysUntilFull.filter((d) => d.daysUntilFull === null),
    topChanges: [],
  });
  assert.match(sectionOf(html, 'moves'), /No move with measured downtime this week\./);
  assert.doesNotMatch(sectionOf(html, 'moves'), /<svg/);
  assert.match(sectionOf(html, 'days-until-full'), /No datastore is filling up this week\./);
  assert.match(sectionOf(html, 'changes'), /No high-risk changes this week\./);
});

test('the data schema rejects unknown fields and mismatched timelines, naming the path', () => {
  const week = fullWeek();
  const withExtra = { ...week, moves: [{ ...week.moves[0], secret: 'x' }] };
  const extra = ReportData.safeParse(withExtra);
  assert.equal(extra.success, false);
  assert.deepEqual(extra.error?.issues[0]?.path, ['moves', 0]);
  assert.match(extra.error?.issues[0]?.message ?? '', /secret/);
  assert.equal(ReportData.safeParse({ ...week, extra: 1 }).success, false);
  const short = ReportData.safeParse({
    ...week,
    changeTimeline: { ...week.changeTimeline, series: [{ name: 'low', counts: [1] }] },
  });
  assert.deepEqual(short.error?.issues[0]?.path, ['changeTimeline', 'series', 0, 'counts']);
  assert.throws(() => renderReport(withExtra as ReportData), /secret/);
  assert.ok(ReportData.safeParse(week).success);
});

test('the days-until-full chart shows the 25 soonest, the table every datastore', () => {
  const week = fullWeek();
  const row = week.daysUntilFull[0]!;
  const many = Array.from({ length: 40 }, (_, i) => ({
    ...row,
    datastore: `ds${i}`,
    daysUntilFull: 100 - i,
  }));
  const fill = sectionOf(renderReport({ ...week, daysUntilFull: many }), 'days-until-full');
  const [chart, table] = fill.split('</figure>');
  assert.ok(chart?.includes('>h1/ds39<') && chart.includes('>h1/ds15<'), 'the soonest are drawn');
  assert.ok(!chart?.includes('>h1/ds14<'), 'the 26th is not');
  assert.equal(table?.match(/<tr><td>/g)?.length, 40);
  assert.ok(table!.indexOf('h1/ds39<') < table!.indexOf('h1/ds0<'), 'ranked soonest first');
});

test('bands: under 30, 60, 120 days, else ok (also when not filling up)', () => {
  assert.deepEqual([0, 29.9, 30, 59, 60, 119, 120, 400, null].map(bandOf), [
    'under-30',
    'under-30',
    'under-60',
    'under-60',
    'under-120',
    'under-120',
    'ok',
    'ok',
    'ok',
  ]);
});

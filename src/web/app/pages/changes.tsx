// The Change Explorer: the week's changes as stacked bars per hour or day (by kind or by risk),
// the list below, one set of filters for both; a click on a bar narrows the list to that bucket;
// each change opens to its fields' before and after.
import { keepPreviousData } from '@tanstack/react-query';
import { Fragment, useMemo, useState } from 'react';
import { Link } from 'react-router';
import { CHANGE_WINDOW_DAYS, ObjectKind, type ChangeTimelineQuery } from '../../../api/browser.js';
import type { Output } from '../api.js';
import { when } from '../format.js';
import { useApi } from '../hooks.js';
import { Chart } from '../parts/chart.js';
import { PagerControls, useDebounced, usePager } from '../parts/pager.js';
import { Loaded } from '../parts/states.js';
import {
  bucketRange,
  busyBuckets,
  isoOfLocal,
  rangeText,
  timelineOption,
  valueText,
  type TimeRange,
} from './change-timeline.js';
import './changes.css';

type Change = Output<'listChanges'>['items'][number];

const RISKS = [
  { value: '', label: 'any risk' },
  { value: 'high', label: 'high' },
  { value: 'high,medium', label: 'medium or high' },
  { value: 'medium', label: 'medium' },
  { value: 'low', label: 'low' },
];

/** Changes a page of the list holds. */
const CHANGE_PAGE = 50;

function ObjectName({ change }: { change: Change }) {
  const { kind, name } = change.object;
  if (kind === 'vm') return <Link to={`/vms/${encodeURIComponent(name)}`}>{name}</Link>;
  if (kind === 'host') return <Link to={`/hosts/${encodeURIComponent(name)}`}>{name}</Link>;
  return <>{name}</>;
}

function ChangeDetail({ change }: { change: Change }) {
  return (
    <div className="change-detail">
      {change.changes.length === 0 ? (
        <p>
          {change.object.kind} {change.action}; no field changes recorded.
        </p>
      ) : (
        <table>
          <caption>
            Change #{change.id}: {change.object.kind} {change.object.name}, before and after
          </caption>
          <thead>
            <tr>
              <th scope="col">Field</th>
              <th scope="col">Before</th>
              <th scope="col">After</th>
            </tr>
          </thead>
          <tbody>
            {change.changes.map((f) => (
              <tr key={f.field}>
                <th scope="row">{f.field}</th>
                <td>
                  <code>{valueText(f.before)}</code>
                </td>
                <td>
                  <code>{valueText(f.after)}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p className="hint">
        Risk {change.risk} by rule <code>{change.riskRule}</code>
        {change.jobId ? (
          <>
            {' '}
            · job <code>{change.jobId}</code>
          </>
        ) : null}{' '}
        · object id <code>{change.object.id}</code>
      </p>
    </div>
  );
}

function ChangeList({ page, pageNo }: { page: Output<'listChanges'>; pageNo: number }) {
  const [open, setOpen] = useState<ReadonlySet<number>>(new Set());
  const toggle = (id: number) => {
    const next = new Set(open);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setOpen(next);
  };
  return (
    <div className="table-wrap">
      <table className="changes">
        <caption>Changes, newest first, page {pageNo}</caption>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Kind</th>
            <th scope="col">Object</th>
            <th scope="col">Action</th>
            <th scope="col">Fields</th>
            <th scope="col">Risk</th>
            <th scope="col">Actor</th>
            <th scope="col">Manager</th>
            <th scope="col">Host</th>
            <th scope="col">Before/after</th>
          </tr>
        </thead>
        <tbody>
          {page.items.length === 0 ? (
            <tr>
              <td colSpan={10} className="state empty">
                No change matches these filters.
              </td>
            </tr>
          ) : (
            page.items.map((c) => (
              <Fragment key={c.id}>
                <tr className={`risk-${c.risk}`}>
                  <td>{when(c.at)}</td>
                  <td>{c.object.kind}</td>
                  <td>
                    <ObjectName change={c} />
                  </td>
                  <td>{c.action}</td>
                  <td>{c.changes.map((f) => f.field).join(', ') || '—'}</td>
                  <td>
                    <span className={`badge risk-${c.risk}`}>{c.risk}</span>
                  </td>
                  <td>{c.actor}</td>
                  <td>{c.manager ?? '—'}</td>
                  <td>{c.host ?? '—'}</td>
                  <td>
                    <button
                      type="button"
                      aria-expanded={open.has(c.id)}
                      aria-controls={`change-${c.id}`}
                      aria-label={`${open.has(c.id) ? 'Hide details' : 'Details'} of change ${c.id}`}
                      onClick={() => toggle(c.id)}
                    >
                      {open.has(c.id) ? 'Hide' : 'Details'}
                    </button>
                  </td>
                </tr>
                {open.has(c.id) && (
                  <tr id={`change-${c.id}`} className="detail">
                    <td colSpan={10}>
                      <ChangeDetail change={c} />
                    </td>
                  </tr>
                )}
              </Fragment>
            ))
          )}
        </tbody>
      </table>
    </div>
  );
}

export function ChangesPage() {
  const [text, setText] = useState('');
  const [object, setObject] = useState('');
  const [actor, setActor] = useState('');
  const [manager, setManager] = useState('');
  const [kind, setKind] = useState('');
  const [risk, setRisk] = useState('');
  const [since, setSince] = useState('');
  const [until, setUntil] = useState('');
  const [by, setBy] = useState<'kind' | 'risk'>('risk');
  const [bucket, setBucket] = useState<'hour' | 'day'>('hour');
  const [slice, setSlice] = useState<TimeRange | undefined>(undefined);

  const typed = useDebounced({
    text: text.trim(),
    object: object.trim(),
    actor: actor.trim(),
    manager: manager.trim(),
  });
  const filters = useMemo(() => {
    const parsedKind = ObjectKind.safeParse(kind);
    return {
      ...typed,
      kind: parsedKind.success ? parsedKind.data : undefined,
      risk: risk || undefined,
      since: isoOfLocal(since),
      until: isoOfLocal(until),
    } satisfies ChangeTimelineQuery;
  }, [typed, kind, risk, since, until]);

  const timeline = useApi(
    'changeTimeline',
    { query: { ...filters, by, bucket } },
    { placeholderData: keepPreviousData },
  );
  const listBase = { ...filters, ...(slice ?? {}) };
  const pager = usePager(JSON.stringify(listBase));
  const list = useApi(
    'listChanges',
    { query: { ...listBase, limit: CHANGE_PAGE, cursor: pager.cursor } },
    { placeholderData: keepPreviousData },
  );

  const onBar = (point: { dataIndex: number }) => {
    if (timeline.data) setSlice(bucketRange(timeline.data, point.dataIndex));
  };

  return (
    <section className="changes-page">
      <h1>Change Explorer</h1>
      <form
        className="filters"
        role="search"
        aria-label="Change filters"
        onSubmit={(e) => e.preventDefault()}
      >
        <input
          type="search"
          aria-label="Search changes"
          placeholder="Search changes: a name, field or value…"
          value={text}
          onChange={(e) => setText(e.target.value)}
          size={32}
        />
        <label>
          Kind
          <select value={kind} onChange={(e) => setKind(e.target.value)}>
            <option value="">any kind</option>
            {ObjectKind.options.map((k) => (
              <option key={k} value={k}>
                {k}
              </option>
            ))}
          </select>
        </label>
        <label>
          Risk
          <select value={risk} onChange={(e) => setRisk(e.target.value)}>
            {RISKS.map((r) => (
              <option key={r.value} value={r.value}>
                {r.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Object
          <input
            type="text"
            value={object}
            placeholder="exact name, e.g. web1"
            onChange={(e) => setObject(e.target.value)}
            size={14}
          />
        </label>
        <label>
          Actor
          <input type="text" value={actor} onChange={(e) => setActor(e.target.value)} size={10} />
        </label>
        <label>
          Manager
          <input type="text" value={manager} onChange={(e) => setManager(e.target.value)} size={10} />
        </label>
        <label>
          Since
          <input type="datetime-local" value={since} onChange={(e) => setSince(e.target.value)} />
        </label>
        <label>
          Until
          <input type="datetime-local" value={until} onChange={(e) => setUntil(e.target.value)} />
        </label>
      </form>

      <div className="toolbar">
        <fieldset className="toggle">
          <legend>Bars by</legend>
          {(['risk', 'kind'] as const).map((b) => (
            <label key={b}>
              <input type="radio" name="by" value={b} checked={by === b} onChange={() => setBy(b)} />
              {b}
            </label>
          ))}
        </fieldset>
        <fieldset className="toggle">
          <legend>Bucket</legend>
          {(['hour', 'day'] as const).map((b) => (
            <label key={b}>
              <input
                type="radio"
                name="bucket"
                value={b}
                checked={bucket === b}
                onChange={() => setBucket(b)}
              />
              {b}
            </label>
          ))}
        </fieldset>
        <span className="hint">
          {since ? '' : `The last ${CHANGE_WINDOW_DAYS} days. `}Click a bar (or pick one below the chart) to
          list that {bucket}’s changes.
        </span>
      </div>

      <Loaded query={timeline} what="the timeline">
        {(t) => (
          <>
            <Chart
              option={timelineOption(t)}
              label={`Changes per ${t.bucket} by ${t.by}, ${t.total} in all, from ${when(t.start)} to ${when(t.end)}`}
              height={260}
              onClick={onBar}
            />
            <p className="summary" aria-live="polite">
              {t.total} {t.total === 1 ? 'change' : 'changes'} in the chart’s window.{' '}
              {/* The bars' keyboard twin: the same narrowing as a click on a bar. */}
              <label>
                Narrow to a bar{' '}
                <select
                  value=""
                  onChange={(e) => e.target.value !== '' && onBar({ dataIndex: Number(e.target.value) })}
                >
                  <option value="">choose a {t.bucket}…</option>
                  {busyBuckets(t).map((b) => {
                    const range = bucketRange(t, b.index);
                    return range ? (
                      <option key={b.index} value={b.index}>
                        {rangeText(range)}: {b.count} {b.count === 1 ? 'change' : 'changes'}
                      </option>
                    ) : null;
                  })}
                </select>
              </label>
            </p>
          </>
        )}
      </Loaded>

      {slice && (
        <p className="time-filter" role="status">
          Listing changes from {rangeText(slice)} only.{' '}
          <button type="button" onClick={() => setSlice(undefined)}>
            Clear time filter
          </button>
        </p>
      )}

      <h2>Changes</h2>
      <Loaded query={list} what="changes">
        {(page) => (
          <>
            <ChangeList page={page} pageNo={pager.page} />
            <PagerControls pager={pager} nextCursor={page.nextCursor} />
          </>
        )}
      </Loaded>
    </section>
  );
}

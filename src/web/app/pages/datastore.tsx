// One datastore: its facts (space, class, limits, measured speed), its figures over a window, its
// capacity and latency over time, its disks (sorted by the manager, a page at a time), its issues
// and its storage rule thresholds (editable by admins).
import { keepPreviousData } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useParams } from 'react-router';
import { datastoresOfSubject, type DISK_SORTS } from '../../../api/browser.js';
import { bytes, fixed, percent, rate, seconds, when } from '../format.js';
import { useApi } from '../hooks.js';
import { Chart } from '../parts/chart.js';
import { DataTable } from '../parts/data-table.js';
import { PagerControls, usePager } from '../parts/pager.js';
import { Empty, Loaded } from '../parts/states.js';
import {
  diskMark,
  markClass,
  nextSort,
  sortQuery,
  subjectKey,
  windowText,
  type ServerSort,
} from './explorer.js';
import { diskColumns, EXPLORER_PAGE, IssueMarker, ms, useIssueMarks, WindowSelect } from './storage.js';
import { capacityOption, hasFigures, latencyOption } from './datastore-series.js';
import { ThresholdsEditor } from './thresholds-editor.js';
import './storage.css';

type DiskSort = (typeof DISK_SORTS)[number];

function Facts({ host, datastore }: { host: string; datastore: string }) {
  const query = useApi('getDatastore', { params: { host, datastore } });
  return (
    <Loaded query={query} what="the datastore">
      {(d) => (
        <dl className="facts">
          <dt>Host</dt>
          <dd>
            <Link to={`/hosts/${encodeURIComponent(d.host)}`}>{d.host}</Link>
          </dd>
          <dt>Path</dt>
          <dd>
            <code>{d.path}</code>
            {d.default ? ' (the host’s default)' : ''}
          </dd>
          <dt>Class</dt>
          <dd>
            <span className={`class ${d.class}`}>{d.class}</span>
          </dd>
          <dt>Capacity</dt>
          <dd>{bytes(d.capacityBytes)}</dd>
          <dt>Free</dt>
          <dd>
            {bytes(d.freeBytes)} (
            {percent(d.capacityBytes > 0 ? (d.freeBytes / d.capacityBytes) * 100 : null)})
          </dd>
          {d.retainedBytes !== undefined && (
            <>
              <dt>Retained copies</dt>
              <dd>{bytes(d.retainedBytes)}</dd>
            </>
          )}
          <dt>Limits</dt>
          <dd>
            {d.limits
              ? `${d.limits.iops === undefined ? 'any' : d.limits.iops} IOPS, ${d.limits.bytesPerSecond === undefined ? 'any rate' : rate(d.limits.bytesPerSecond)}`
              : 'none'}
          </dd>
          <dt>Measured speed</dt>
          <dd>
            {d.probe
              ? `${fixed(d.probe.iops, 0)} IOPS, ${rate(d.probe.bytesPerSecond)} (probed ${when(d.probe.probedAt)})`
              : 'not probed'}
          </dd>
        </dl>
      )}
    </Loaded>
  );
}

/** The explorer's row of this datastore: its figures over the window. */
function Figures({ host, datastore, window }: { host: string; datastore: string; window: string }) {
  const query = useApi('listStorageDatastores', { query: { window, host, q: datastore, limit: 100 } });
  return (
    <Loaded query={query} what="figures">
      {(page) => {
        const row = page.items.find((r) => r.name === datastore && r.host === host);
        if (!row) return <Empty>No figures yet: the manager has not sampled this datastore.</Empty>;
        return (
          <dl className="facts">
            <dt>Provisioned</dt>
            <dd>
              {bytes(row.provisionedBytes)} (
              {row.overcommitRatio === null ? '—' : `${fixed(row.overcommitRatio, 2)}×`} of capacity)
            </dd>
            <dt>Allocated</dt>
            <dd>{bytes(row.allocatedBytes)}</dd>
            <dt>Days until full</dt>
            <dd>{row.daysUntilFull === null ? 'not filling up' : `${fixed(row.daysUntilFull, 1)} days`}</dd>
            <dt>IOPS</dt>
            <dd>
              {fixed(row.iops, 0)} (read {fixed(row.read.iops, 0)}, write {fixed(row.write.iops, 0)})
            </dd>
            <dt>Throughput</dt>
            <dd>{rate(row.throughputBytesPerSecond)}</dd>
            <dt>Read latency</dt>
            <dd>
              {ms(row.read.avgLatencyMs)} avg, {ms(row.read.p90LatencyMs)} p90, {ms(row.read.p99LatencyMs)}{' '}
              p99
            </dd>
            <dt>Write latency</dt>
            <dd>
              {ms(row.write.avgLatencyMs)} avg, {ms(row.write.p90LatencyMs)} p90, {ms(row.write.p99LatencyMs)}{' '}
              p99
            </dd>
            <dt>Issues</dt>
            <dd>{row.issues === 0 ? 'none' : <IssueMarker mark={undefined} count={row.issues} />}</dd>
          </dl>
        );
      }}
    </Loaded>
  );
}

/** Capacity and latency over the window, one point per bucket of the store (series route). */
function Charts({ host, datastore, window }: { host: string; datastore: string; window: string }) {
  const query = useApi(
    'getStorageDatastoreSeries',
    { params: { host, datastore }, query: { window } },
    { placeholderData: keepPreviousData },
  );
  return (
    <Loaded query={query} what="capacity and latency over time">
      {(series) =>
        !hasFigures(series.points) ? (
          <Empty>No samples of this datastore in the last {windowText(window)} yet.</Empty>
        ) : (
          <div className="series-charts">
            <figure>
              <figcaption>Space (GiB), one point per {seconds(series.stepSeconds)}</figcaption>
              <Chart
                option={capacityOption(series.points)}
                label={`Used, free and capacity of ${host}/${datastore} over the last ${windowText(window)}`}
              />
            </figure>
            <figure>
              <figcaption>Latency (ms), average and p99 per direction</figcaption>
              <Chart
                option={latencyOption(series.points)}
                label={`Read and write latency of ${host}/${datastore} over the last ${windowText(window)}`}
              />
            </figure>
          </div>
        )
      }
    </Loaded>
  );
}

export function DatastorePage() {
  const params = useParams();
  const host = params.host ?? '';
  const datastore = params.datastore ?? '';
  const [window, setWindow] = useState('1h');
  const { issues, marks } = useIssueMarks();
  const [sort, setSort] = useState<ServerSort>({ key: 'vm', desc: false });
  const base = { window, host, datastore, ...sortQuery(sort as { key: DiskSort; desc: boolean }) };
  const pager = usePager(JSON.stringify(base));
  const disks = useApi(
    'listStorageDisks',
    { query: { ...base, limit: EXPLORER_PAGE, cursor: pager.cursor } },
    { placeholderData: keepPreviousData },
  );
  // Names of VMs are unique in the fabric: a VM's or disk's issue belongs here when the disk is listed.
  const here = new Set((disks.data?.items ?? []).flatMap((d) => [`disk:${d.vm}/${d.disk}`, `vm:${d.vm}`]));
  const own = (issues.data?.items ?? []).filter((i) =>
    i.subject.kind === 'datastore'
      ? datastoresOfSubject(i.subject.name).includes(`${host}/${datastore}`)
      : here.has(subjectKey(i.subject.kind, i.subject.name)),
  );

  return (
    <section className="explorer">
      <p className="crumbs">
        <Link to="/storage">Storage Explorer</Link> /{' '}
        <Link to={`/hosts/${encodeURIComponent(host)}`}>{host}</Link>
      </p>
      <h1>
        Datastore {host}/{datastore}
        {marks.has(subjectKey('datastore', `${host}/${datastore}`)) ? ' ⚠' : ''}
      </h1>
      <div className="explorer-top">
        <section aria-labelledby="facts-title" className="card">
          <h2 id="facts-title">Facts</h2>
          <Facts host={host} datastore={datastore} />
        </section>
        <section aria-labelledby="figures-title" className="card">
          <h2 id="figures-title">Over the last {windowText(window)}</h2>
          <div className="toolbar">
            <WindowSelect value={window} onChange={setWindow} />
          </div>
          <Figures host={host} datastore={datastore} window={window} />
        </section>
      </div>

      <h2>Capacity and latency over the last {windowText(window)}</h2>
      <Charts host={host} datastore={datastore} window={window} />

      <h2 id="ds-issues-title">Active issues</h2>
      {own.length === 0 ? (
        <Empty>No active issue on this datastore or its disks.</Empty>
      ) : (
        <ul aria-labelledby="ds-issues-title">
          {own.map((i) => (
            <li key={i.id}>
              <span className={`badge issue-${i.severity}`}>{i.severity}</span> {i.message}
            </li>
          ))}
        </ul>
      )}

      <h2>Disks</h2>
      <Loaded query={disks} what="disks">
        {(page) => (
          <>
            <DataTable
              rows={page.items}
              rowKey={(d) => `${d.vmId}/${d.disk}`}
              caption={`Disks on ${host}/${datastore} over the last ${windowText(window)}, page ${pager.page}`}
              columns={diskColumns(marks, false)}
              sort={sort}
              onSort={(s) => setSort(nextSort(sort, s.key))}
              rowClass={(d) => markClass(diskMark(marks, d.vm, d.disk))}
              empty="No VM disk lives on this datastore."
            />
            <PagerControls pager={pager} nextCursor={page.nextCursor} of="disks" />
          </>
        )}
      </Loaded>

      <h2>Thresholds</h2>
      <ThresholdsEditor host={host} datastore={datastore} />
    </section>
  );
}

// The Storage Explorer: every datastore and VM disk over a window, sorted and searched by the
// manager (a page at a time, never the whole fabric's disks), active issues marked on their rows
// in text and colour, the datastores that fill up first, and each datastore's thresholds.
import { keepPreviousData } from '@tanstack/react-query';
import { useState } from 'react';
import { Link } from 'react-router';
import type { DATASTORE_SORTS, DISK_SORTS } from '../../../api/browser.js';
import type { Output } from '../api.js';
import { bytes, fixed, percent, rate } from '../format.js';
import { datastorePath } from '../paths.js';
import { useApi } from '../hooks.js';
import { figureColumn } from '../parts/columns.js';
import { DataTable, type Column } from '../parts/data-table.js';
import { PagerControls, useDebounced, usePager } from '../parts/pager.js';
import { Empty, Loaded } from '../parts/states.js';
import { useSession } from '../session.js';
import {
  diskMark,
  issueMarks,
  markClass,
  nextSort,
  sortQuery,
  subjectKey,
  windowText,
  WINDOWS,
  type IssueMark,
  type ServerSort,
} from './explorer.js';
import { ThresholdsDialog } from './thresholds-editor.js';
import './storage.css';

type DatastoreRow = Output<'listStorageDatastores'>['items'][number];
type DiskRow = Output<'listStorageDisks'>['items'][number];
type DatastoreSort = (typeof DATASTORE_SORTS)[number];
type DiskSort = (typeof DISK_SORTS)[number];

/** Page size of the explorer's tables: a screenful or two, each page one cheap query. */
export const EXPLORER_PAGE = 50;

export const ms = (n: number | null | undefined): string =>
  n === null || n === undefined ? '—' : `${fixed(n, n < 10 ? 2 : 1)} ms`;

/** The visible marker of a row with an active issue (text, not colour alone). */
export function IssueMarker({ mark, count }: { mark: IssueMark | undefined; count?: number }) {
  if (!mark && !count) return null;
  const severity = mark?.severity ?? 'warning';
  const n = count ?? mark?.messages.length ?? 0;
  return (
    <span className={`badge issue-${severity}`} title={mark?.messages.join('\n')}>
      ⚠ {n} {mark ? severity : n === 1 ? 'issue' : 'issues'}
    </span>
  );
}

/** The I/O columns both tables have; `key` is the server's sort name. */
function ioColumns<T extends DatastoreRow | DiskRow>(): Column<T>[] {
  return [
    { key: 'iops', label: 'IOPS', value: (r) => r.iops, render: (r) => fixed(r.iops, 0), numeric: true },
    figureColumn('throughput', 'Throughput', (r) => r.throughputBytesPerSecond, rate),
    figureColumn('readLatency', 'Read latency', (r) => r.read.avgLatencyMs, ms),
    figureColumn('writeLatency', 'Write latency', (r) => r.write.avgLatencyMs, ms),
    figureColumn('readP99', 'Read p99', (r) => r.read.p99LatencyMs, ms),
    figureColumn('writeP99', 'Write p99', (r) => r.write.p99LatencyMs, ms),
  ];
}

export function diskColumns(marks: ReadonlyMap<string, IssueMark>, withPlace: boolean): Column<DiskRow>[] {
  const place: Column<DiskRow>[] = withPlace
    ? [
        {
          key: 'datastore',
          label: 'Datastore',
          value: (d) => d.datastore,
          render: (d) => <Link to={datastorePath(d.host, d.datastore)}>{`${d.host}/${d.datastore}`}</Link>,
        },
      ]
    : [];
  return [
    {
      key: 'vm',
      label: 'VM',
      value: (d) => d.vm,
      render: (d) => <Link to={`/vms/${encodeURIComponent(d.vm)}`}>{d.vm}</Link>,
    },
    { key: 'disk', label: 'Disk', value: (d) => d.disk },
    ...place,
    {
      key: 'format',
      label: 'Format',
      value: (d) => d.format,
      render: (d) => (d.formatVersion ? `${d.format} ${d.formatVersion}` : d.format),
    },
    figureColumn('virtualSize', 'Size', (d) => d.virtualSizeBytes, bytes),
    figureColumn('allocated', 'Allocated', (d) => d.allocatedBytes, bytes),
    figureColumn('guestFullestPercent', 'Guest fullest', (d) => d.guestFullestPercent, percent),
    ...ioColumns<DiskRow>(),
    {
      key: 'issues',
      label: 'Issues',
      value: (d) => diskMark(marks, d.vm, d.disk)?.messages.length ?? 0,
      render: (d) => <IssueMarker mark={diskMark(marks, d.vm, d.disk)} />,
      fixed: true,
    },
  ];
}

function datastoreColumns(
  marks: ReadonlyMap<string, IssueMark>,
  editThresholds: ((row: DatastoreRow) => void) | undefined,
): Column<DatastoreRow>[] {
  const columns: Column<DatastoreRow>[] = [
    {
      key: 'name',
      label: 'Datastore',
      value: (d) => d.name,
      render: (d) => <Link to={datastorePath(d.host, d.name)}>{d.name}</Link>,
    },
    { key: 'host', label: 'Host', value: (d) => d.host },
    { key: 'kind', label: 'Kind', value: (d) => d.kind },
    { key: 'fsType', label: 'File system', value: (d) => d.fsType },
    figureColumn('capacity', 'Capacity', (d) => d.capacityBytes, bytes),
    figureColumn('free', 'Free', (d) => d.freeBytes, bytes),
    figureColumn('freePercent', 'Free %', (d) => d.freePercent, percent),
    figureColumn('provisioned', 'Provisioned', (d) => d.provisionedBytes, bytes),
    {
      key: 'overcommit',
      label: 'Over-commit',
      value: (d) => d.overcommitRatio,
      render: (d) => (d.overcommitRatio === null ? '—' : `${fixed(d.overcommitRatio, 2)}×`),
      numeric: true,
    },
    {
      key: 'daysUntilFull',
      label: 'Days until full',
      value: (d) => d.daysUntilFull,
      render: (d) => fixed(d.daysUntilFull, 1),
      numeric: true,
    },
    { key: 'disks', label: 'Disks', value: (d) => d.disks, numeric: true },
    ...ioColumns<DatastoreRow>(),
    {
      key: 'issues',
      label: 'Issues',
      value: (d) => d.issues,
      render: (d) => (
        <IssueMarker mark={marks.get(subjectKey('datastore', `${d.host}/${d.name}`))} count={d.issues} />
      ),
      numeric: true,
    },
  ];
  if (editThresholds)
    columns.push({
      key: 'thresholds',
      label: 'Thresholds',
      value: () => null,
      fixed: true,
      render: (d) => (
        <button
          type="button"
          aria-label={`Edit thresholds of ${d.host}/${d.name}`}
          onClick={() => editThresholds(d)}
        >
          Edit
        </button>
      ),
    });
  return columns;
}

/** The window select both explorer pages show. */
export function WindowSelect({ value, onChange }: { value: string; onChange: (window: string) => void }) {
  return (
    <label>
      Window
      <select value={value} onChange={(e) => onChange(e.target.value)}>
        {WINDOWS.map((w) => (
          <option key={w} value={w}>
            last {windowText(w)}
          </option>
        ))}
      </select>
    </label>
  );
}

/** Active issues by subject (few; the first 1000 mark rows, the datastores' counts are exact). */
export function useIssueMarks() {
  const issues = useApi('listStorageIssues', { query: { state: 'active', limit: 1000 } });
  return { issues, marks: issueMarks(issues.data?.items ?? []) };
}

function DaysUntilFull({ window }: { window: string }) {
  const query = useApi('listStorageDatastores', {
    query: { window, sort: 'daysUntilFull', order: 'asc', limit: 10 },
  });
  return (
    <section aria-labelledby="filling-title" className="card filling">
      <h2 id="filling-title">Filling up first</h2>
      <Loaded query={query} what="days until full">
        {(page) => {
          const filling = page.items.filter((d) => d.daysUntilFull !== null);
          if (filling.length === 0)
            return <Empty>No datastore is filling up: free space does not shrink anywhere.</Empty>;
          return (
            <ol aria-label="Datastores by days until full">
              {filling.map((d) => (
                <li key={`${d.host}/${d.name}`}>
                  <Link to={datastorePath(d.host, d.name)}>{`${d.host}/${d.name}`}</Link>: full in{' '}
                  <strong>{fixed(d.daysUntilFull, 1)} days</strong> ({percent(d.freePercent)} free of{' '}
                  {bytes(d.capacityBytes)})
                </li>
              ))}
            </ol>
          );
        }}
      </Loaded>
    </section>
  );
}

function ActiveIssues({ query }: { query: ReturnType<typeof useIssueMarks>['issues'] }) {
  return (
    <section aria-labelledby="issues-title" className="card issues">
      <h2 id="issues-title">Active issues</h2>
      <Loaded query={query} what="issues">
        {(page) =>
          page.items.length === 0 ? (
            <Empty>No active storage issue.</Empty>
          ) : (
            <ul>
              {page.items.slice(0, 8).map((i) => (
                <li key={i.id}>
                  <span className={`badge issue-${i.severity}`}>{i.severity}</span> {i.message}
                </li>
              ))}
              {page.items.length > 8 && <li>… and {page.items.length - 8} more (marked in the tables)</li>}
            </ul>
          )
        }
      </Loaded>
    </section>
  );
}

function SearchBox({
  label,
  value,
  onChange,
}: {
  label: string;
  value: string;
  onChange: (v: string) => void;
}) {
  return (
    <input
      type="search"
      className="table-search"
      aria-label={label}
      placeholder={`${label}…`}
      value={value}
      onChange={(e) => onChange(e.target.value)}
    />
  );
}

export function StoragePage() {
  const { canWrite } = useSession();
  const [window, setWindow] = useState('1h');
  const { issues, marks } = useIssueMarks();
  const [thresholdsOf, setThresholdsOf] = useState<{ host: string; datastore: string } | undefined>();

  const [dsSort, setDsSort] = useState<ServerSort>({ key: 'name', desc: false });
  const [dsText, setDsText] = useState('');
  const dsSearch = useDebounced(dsText.trim());
  const dsBase = { window, ...sortQuery(dsSort as { key: DatastoreSort; desc: boolean }), q: dsSearch };
  const dsPager = usePager(JSON.stringify(dsBase));
  const datastores = useApi(
    'listStorageDatastores',
    { query: { ...dsBase, limit: EXPLORER_PAGE, cursor: dsPager.cursor } },
    { placeholderData: keepPreviousData },
  );

  const [diskSort, setDiskSort] = useState<ServerSort>({ key: 'vm', desc: false });
  const [diskText, setDiskText] = useState('');
  const diskSearch = useDebounced(diskText.trim());
  const diskBase = { window, ...sortQuery(diskSort as { key: DiskSort; desc: boolean }), q: diskSearch };
  const diskPager = usePager(JSON.stringify(diskBase));
  const disks = useApi(
    'listStorageDisks',
    { query: { ...diskBase, limit: EXPLORER_PAGE, cursor: diskPager.cursor } },
    { placeholderData: keepPreviousData },
  );

  return (
    <section className="explorer">
      <h1>Storage Explorer</h1>
      <div className="toolbar">
        <WindowSelect value={window} onChange={setWindow} />
        <span className="hint">
          Figures over the last {windowText(window)}; rows with an active issue are marked ⚠.
        </span>
      </div>
      <div className="explorer-top">
        <DaysUntilFull window={window} />
        <ActiveIssues query={issues} />
      </div>

      <section aria-labelledby="datastores-title">
        <h2 id="datastores-title">Datastores</h2>
        <SearchBox label="Search datastores" value={dsText} onChange={setDsText} />
        <Loaded query={datastores} what="datastores">
          {(page) => (
            <>
              <DataTable
                rows={page.items}
                rowKey={(d) => `${d.host}/${d.name}`}
                caption={`Datastores over the last ${windowText(window)}, page ${dsPager.page}`}
                columns={datastoreColumns(
                  marks,
                  canWrite ? (d) => setThresholdsOf({ host: d.host, datastore: d.name }) : undefined,
                )}
                sort={dsSort}
                onSort={(s) => setDsSort(nextSort(dsSort, s.key))}
                rowClass={(d) =>
                  d.issues > 0
                    ? (markClass(marks.get(subjectKey('datastore', `${d.host}/${d.name}`))) ?? 'issue')
                    : undefined
                }
                empty={
                  dsSearch ? `No datastore matches “${dsSearch}”.` : 'No datastore has been sampled yet.'
                }
              />
              <PagerControls pager={dsPager} nextCursor={page.nextCursor} of="datastores" />
            </>
          )}
        </Loaded>
      </section>
      <section aria-labelledby="disks-title">
        <h2 id="disks-title">Disks</h2>
        <SearchBox label="Search disks" value={diskText} onChange={setDiskText} />
        <Loaded query={disks} what="disks">
          {(page) => (
            <>
              <DataTable
                rows={page.items}
                rowKey={(d) => `${d.vmId}/${d.disk}`}
                caption={`VM disks over the last ${windowText(window)}, page ${diskPager.page}`}
                columns={diskColumns(marks, true)}
                sort={diskSort}
                onSort={(s) => setDiskSort(nextSort(diskSort, s.key))}
                rowClass={(d) => markClass(diskMark(marks, d.vm, d.disk))}
                empty={diskSearch ? `No disk matches “${diskSearch}”.` : 'No disk has been sampled yet.'}
              />
              <PagerControls pager={diskPager} nextCursor={page.nextCursor} of="disks" />
            </>
          )}
        </Loaded>
      </section>
      {canWrite && <ThresholdsDialog target={thresholdsOf} onClose={() => setThresholdsOf(undefined)} />}
    </section>
  );
}

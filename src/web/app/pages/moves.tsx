// Every move in flight with its live progress (phase, bar, transfer and dirty rate, throttle, time
// left) and, for admins, a cancel; below, the finished moves with what they cost.
import { Link } from 'react-router';
import { MOVE_JOB_KINDS, TERMINAL_JOB_STATES, type Job } from '../../../api/browser.js';
import { useLiveJob } from '../events.js';
import { bytes, seconds, when } from '../format.js';
import { useApi } from '../hooks.js';
import { finishedFigures, isInFlight } from '../move-figures.js';
import { StateBadge } from '../parts/badges.js';
import { figureColumn } from '../parts/columns.js';
import { DataTable, type Column } from '../parts/data-table.js';
import { ProgressBar } from '../parts/progress.js';
import { Empty, Failed, Loading } from '../parts/states.js';
import { useSession } from '../session.js';
import { CancelMoveButton, LiveFigureList } from './vm-move.js';
import './vm.css';
import './moves.css';

const byNewest = (a: Job, b: Job) => (b.finishedAt ?? b.createdAt).localeCompare(a.finishedAt ?? a.createdAt);

const kindText = (j: Job) => (j.kind === 'vm-move-storage' ? 'storage move' : 'host move');

const vmLink = (j: Job) => <Link to={`/vms/${encodeURIComponent(j.target.name)}`}>{j.target.name}</Link>;

const FINISHED_COLUMNS: Column<Job>[] = [
  { key: 'vm', label: 'VM', value: (j) => j.target.name, render: vmLink },
  { key: 'kind', label: 'Kind', value: kindText },
  {
    key: 'route',
    label: 'From → to',
    value: (j) => {
      const f = finishedFigures(j);
      return f.from && f.to ? `${f.from} → ${f.to}` : '—';
    },
  },
  { key: 'state', label: 'Outcome', value: (j) => j.state, render: (j) => <StateBadge state={j.state} /> },
  {
    key: 'finished',
    label: 'Finished',
    value: (j) => j.finishedAt ?? j.updatedAt,
    render: (j) => when(j.finishedAt ?? j.updatedAt),
  },
  figureColumn('total', 'Total time', (j) => finishedFigures(j).totalSeconds, seconds),
  {
    key: 'downtime',
    label: 'Downtime',
    value: (j) => finishedFigures(j).downtimeMs,
    render: (j) => {
      const f = finishedFigures(j);
      if (f.downtimeMs === undefined) return f.mode === 'cold' ? 'cold move' : '—';
      return `${f.downtimeMs.toFixed(0)} ms${f.guestPausedMs !== undefined ? ` (guest paused ${f.guestPausedMs.toFixed(0)} ms)` : ''}`;
    },
    numeric: true,
  },
  {
    key: 'sent',
    label: 'Bytes sent',
    value: (j) => finishedFigures(j).sentBytes,
    render: (j) => {
      const f = finishedFigures(j);
      return `${bytes(f.sentBytes)}${f.delta ? ' (delta)' : ''}`;
    },
    numeric: true,
  },
  {
    key: 'detail',
    label: 'Detail',
    value: (j) =>
      j.error ? `${j.error.code}: ${j.error.detail}` : (finishedFigures(j).note ?? j.progress.message),
  },
];

export function MovesPage() {
  // In flight: each move kind in each state; finished: the newest of each kind.
  const queued = [
    useApi('listJobs', { query: { kind: MOVE_JOB_KINDS[0], state: 'running', limit: 100 } }),
    useApi('listJobs', { query: { kind: MOVE_JOB_KINDS[1], state: 'running', limit: 100 } }),
    useApi('listJobs', { query: { kind: MOVE_JOB_KINDS[0], state: 'queued', limit: 100 } }),
    useApi('listJobs', { query: { kind: MOVE_JOB_KINDS[1], state: 'queued', limit: 100 } }),
  ];
  const recent = [
    useApi('listJobs', { query: { kind: MOVE_JOB_KINDS[0], limit: 50 } }),
    useApi('listJobs', { query: { kind: MOVE_JOB_KINDS[1], limit: 50 } }),
  ];
  const inFlightError = queued.find((q) => q.isError)?.error;
  const recentError = recent.find((q) => q.isError)?.error;
  const inFlight = queued.every((q) => q.data)
    ? queued.flatMap((q) => q.data?.items ?? []).sort((a, b) => a.createdAt.localeCompare(b.createdAt))
    : undefined;
  const finished = recent.every((q) => q.data)
    ? recent
        .flatMap((q) => q.data?.items ?? [])
        .filter((j) => TERMINAL_JOB_STATES.includes(j.state))
        .sort(byNewest)
    : undefined;
  return (
    <section className="moves-page">
      <h1>Moves</h1>
      <h2>In flight</h2>
      {inFlightError ? (
        <Failed error={inFlightError} retry={() => queued.forEach((q) => void q.refetch())} />
      ) : !inFlight ? (
        <Loading what="moves in flight" />
      ) : inFlight.length === 0 ? (
        <Empty>No move is running or queued.</Empty>
      ) : (
        <ul className="move-cards" aria-label="Moves in flight">
          {inFlight.map((j) => (
            <li key={j.id}>
              <LiveMoveCard job={j} />
            </li>
          ))}
        </ul>
      )}
      <h2>Finished</h2>
      {recentError ? (
        <Failed error={recentError} retry={() => recent.forEach((q) => void q.refetch())} />
      ) : !finished ? (
        <Loading what="finished moves" />
      ) : (
        <DataTable
          caption="Finished moves, newest first"
          rows={finished}
          columns={FINISHED_COLUMNS}
          rowKey={(j) => j.id}
          search
          empty="No move has finished yet."
        />
      )}
    </section>
  );
}

/** Each move's card follows its job's progress from the fabric event stream. */
function LiveMoveCard({ job }: { job: Job }) {
  return <MoveCard job={useLiveJob(job)} />;
}

function MoveCard({ job }: { job: Job }) {
  const { canWrite } = useSession();
  const f = finishedFigures(job);
  const name = job.target.name;
  return (
    <article className="card move-card" aria-label={`Move of ${name}`}>
      <header>
        <h3>{vmLink(job)}</h3>
        <span>
          {kindText(job)}
          {f.from && f.to ? ` ${f.from} → ${f.to}` : ''}
          {f.mode ? ` (${f.mode})` : ''}
        </span>
        <StateBadge state={job.state} />
        <span className="hint">
          phase <strong>{job.progress.phase || 'queued'}</strong>, started{' '}
          {when(job.startedAt ?? job.createdAt)}
        </span>
      </header>
      <ProgressBar percent={job.progress.percent} label={`Move progress of ${name}`} />
      <p className="message">{job.progress.message}</p>
      <LiveFigureList job={job} />
      {canWrite && isInFlight(job) && (
        <CancelMoveButton job={job} vmName={name} buttonLabel={`Cancel move of ${name}`} />
      )}
    </article>
  );
}

// One VM: its configuration, state, host, disks, NICs, IP and guest tools; its I/O over time; its
// recent changes and moves; and (admin tokens only) what can be done to it: start, shut down,
// stop, delete, move (with the dry run's checks and plan first), move storage, the tools disk,
// and its placement settings.
import { useEffect, useId, useState } from 'react';
import { Link, useParams } from 'react-router';
import { MOVE_JOB_KINDS, type Job } from '../../../api/browser.js';
import { ApiError, describeError, type Output } from '../api.js';
import { useJobProgress } from '../events.js';
import { bytes, seconds, when } from '../format.js';
import { useAction, useApi } from '../hooks.js';
import { finishedFigures, isInFlight, liveFigures } from '../move-figures.js';
import { StateBadge, ToolsBadge } from '../parts/badges.js';
import { ConfirmDialog } from '../parts/confirm.js';
import { figureColumn } from '../parts/columns.js';
import { DataTable, type Column } from '../parts/data-table.js';
import { ProgressBar } from '../parts/progress.js';
import { Empty, Failed, Loaded, Loading } from '../parts/states.js';
import { useSession } from '../session.js';
import { type SeriesWindow } from '../vm-series.js';
import { VmCharts, WindowPicker } from './vm-charts.js';
import { MovePanel, MoveStoragePanel } from './vm-move.js';
import './vm.css';

type Vm = Output<'getVm'>;
type Disk = Vm['disks'][number];
type Nic = Vm['nics'][number];
type Change = Output<'listChanges'>['items'][number];

const DISK_COLUMNS: Column<Disk>[] = [
  { key: 'id', label: 'Disk', value: (d) => d.id },
  { key: 'datastore', label: 'Datastore', value: (d) => d.datastore },
  { key: 'format', label: 'Format', value: (d) => d.format },
  figureColumn('virtual', 'Size', (d) => d.virtualSizeBytes, bytes),
  figureColumn('allocated', 'Allocated', (d) => d.allocatedBytes, bytes),
  { key: 'path', label: 'Image', value: (d) => d.path, render: (d) => <code>{d.path}</code> },
];

const NIC_COLUMNS: Column<Nic>[] = [
  { key: 'id', label: 'NIC', value: (n) => n.id },
  { key: 'vswitch', label: 'Virtual switch', value: (n) => n.vswitch },
  { key: 'mac', label: 'MAC', value: (n) => n.mac, render: (n) => <code>{n.mac}</code> },
  { key: 'tap', label: 'Tap', value: (n) => n.tap },
];

const CHANGE_COLUMNS: Column<Change>[] = [
  { key: 'at', label: 'When', value: (c) => c.at, render: (c) => when(c.at) },
  { key: 'object', label: 'Object', value: (c) => `${c.object.kind} ${c.object.name}` },
  { key: 'action', label: 'Action', value: (c) => c.action },
  {
    key: 'changes',
    label: 'What changed',
    value: (c) => c.changes.map((f) => `${f.field}: ${show(f.before)} → ${show(f.after)}`).join('; '),
  },
  { key: 'actor', label: 'By', value: (c) => c.actor },
  {
    key: 'risk',
    label: 'Risk',
    value: (c) => c.risk,
    render: (c) => <span className={`badge risk-${c.risk}`}>{c.risk}</span>,
  },
];

function show(value: unknown): string {
  if (value === undefined || value === null) return '—';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** The VM's moves: in flight with their bar, finished with what they cost. */
function moveColumns(): Column<Job>[] {
  return [
    {
      key: 'created',
      label: 'Started',
      value: (j) => j.createdAt,
      render: (j) => when(j.startedAt ?? j.createdAt),
    },
    { key: 'kind', label: 'Kind', value: (j) => (j.kind === 'vm-move' ? 'host move' : 'storage move') },
    {
      key: 'route',
      label: 'From → to',
      value: (j) => {
        const f = finishedFigures(j);
        return f.from && f.to ? `${f.from} → ${f.to}` : '—';
      },
    },
    {
      key: 'state',
      label: 'State',
      value: (j) => j.state,
      render: (j) =>
        isInFlight(j) ? (
          <ProgressBar
            percent={j.progress.percent}
            label={`Progress of the move started ${when(j.createdAt)}`}
          />
        ) : (
          <StateBadge state={j.state} />
        ),
    },
    {
      key: 'total',
      label: 'Total time',
      value: (j) => finishedFigures(j).totalSeconds,
      render: (j) => (isInFlight(j) ? '—' : seconds(finishedFigures(j).totalSeconds)),
      numeric: true,
    },
    {
      key: 'downtime',
      label: 'Downtime',
      value: (j) => finishedFigures(j).downtimeMs,
      render: (j) => {
        const ms = finishedFigures(j).downtimeMs;
        return ms === undefined ? '—' : `${ms.toFixed(0)} ms`;
      },
      numeric: true,
    },
    {
      key: 'sent',
      label: 'Sent',
      value: (j) =>
        isInFlight(j) ? liveFigures(j.progress.details).sentBytes : finishedFigures(j).sentBytes,
      render: (j) =>
        bytes(isInFlight(j) ? liveFigures(j.progress.details).sentBytes : finishedFigures(j).sentBytes),
      numeric: true,
    },
    {
      key: 'outcome',
      label: 'Outcome',
      value: (j) => (j.error ? `${j.error.code}: ${j.error.detail}` : j.progress.message),
    },
  ];
}
const MOVE_COLUMNS = moveColumns();

type Panel = 'move' | 'storage' | undefined;
type Confirm = 'shutdown' | 'stop' | 'delete' | undefined;

export function VmPage() {
  const name = useParams().vm ?? '';
  const vm = useApi('getVm', { params: { vm: name } });
  const [lastJob, setLastJob] = useState<{ label: string; job: Job } | undefined>(undefined);
  const deleted = lastJob?.job.kind === 'vm-delete' && lastJob.job.state === 'succeeded';
  if (vm.isError && vm.error instanceof ApiError && vm.error.code === 'not-found')
    return (
      <section>
        <Crumbs />
        <h1>{name}</h1>
        {deleted ? <p role="status">{name} was deleted.</p> : <Empty>There is no VM named {name}.</Empty>}
        <p>
          <Link to="/">Back to the fabric</Link>
        </p>
      </section>
    );
  return (
    <section className="vm-page">
      <Loaded query={vm} what={`VM ${name}`}>
        {(v) => <VmView vm={v} lastJob={lastJob} setLastJob={setLastJob} />}
      </Loaded>
    </section>
  );
}

function Crumbs({ host }: { host?: string }) {
  return (
    <p className="crumbs">
      <Link to="/">Fabric</Link> ›{' '}
      {host ? (
        <>
          <Link to={`/hosts/${encodeURIComponent(host)}`}>{host}</Link> ›{' '}
        </>
      ) : null}
      VM
    </p>
  );
}

function VmView({
  vm,
  lastJob,
  setLastJob,
}: {
  vm: Vm;
  lastJob: { label: string; job: Job } | undefined;
  setLastJob: (j: { label: string; job: Job } | undefined) => void;
}) {
  const { canWrite } = useSession();
  const [panel, setPanel] = useState<Panel>(undefined);
  return (
    <>
      <Crumbs host={vm.host} />
      <h1>
        {vm.name} <StateBadge state={vm.state} />
      </h1>
      <p className="summary">
        on <Link to={`/hosts/${encodeURIComponent(vm.host)}`}>{vm.host}</Link>
        {vm.pool ? ` (pool ${vm.pool})` : ''} · {vm.vcpus} vCPU · {vm.memoryMiB} MiB
        {vm.guestIp ? ` · ${vm.guestIp}` : ''}
      </p>
      {canWrite && <VmActions vm={vm} panel={panel} setPanel={setPanel} setLastJob={setLastJob} />}
      {lastJob && <ActionJob label={lastJob.label} job={lastJob.job} />}
      {canWrite && panel === 'move' && <MovePanel vm={vm} onClose={() => setPanel(undefined)} />}
      {canWrite && panel === 'storage' && <MoveStoragePanel vm={vm} onClose={() => setPanel(undefined)} />}
      <Facts vm={vm} />
      <h2>Disks</h2>
      <DataTable
        caption={`Disks of ${vm.name}`}
        rows={vm.disks}
        columns={DISK_COLUMNS}
        rowKey={(d) => d.id}
        empty="This VM has no disks."
      />
      <h2>Network</h2>
      <DataTable
        caption={`NICs of ${vm.name}`}
        rows={vm.nics}
        columns={NIC_COLUMNS}
        rowKey={(n) => n.id}
        empty="This VM has no NICs."
      />
      <VmIo vm={vm} />
      <VmMoves vm={vm} />
      <Placement vm={vm} />
      <VmChanges vm={vm} />
    </>
  );
}

function Facts({ vm }: { vm: Vm }) {
  return (
    <>
      <h2>Configuration</h2>
      <dl className="facts wide">
        <dt>State</dt>
        <dd>
          {vm.state}
          {vm.pid ? ` (QEMU pid ${vm.pid})` : ''}
          {vm.startedAt ? `, started ${when(vm.startedAt)}` : ''}
        </dd>
        <dt>Host</dt>
        <dd>
          <Link to={`/hosts/${encodeURIComponent(vm.host)}`}>{vm.host}</Link>
          {vm.pool ? ` (pool ${vm.pool})` : ''}
        </dd>
        <dt>CPUs, memory</dt>
        <dd>
          {vm.vcpus} vCPU · {vm.memoryMiB} MiB
        </dd>
        <dt>Machine</dt>
        <dd>
          {vm.machineType} · CPU {vm.cpuModel} · {vm.accelerator}
        </dd>
        <dt>IP</dt>
        <dd>
          {vm.guestIp ?? '—'}
          {vm.guestGateway ? ` (gateway ${vm.guestGateway})` : ''}
        </dd>
        <dt>Guest tools</dt>
        <dd>
          <ToolsBadge status={vm.tools?.status ?? null} />
          {vm.tools
            ? ` installed ${vm.tools.installed ?? 'none'}, host has ${vm.tools.current ?? 'none'}`
            : ''}
          {vm.toolsDisk ? ' · tools disk inserted' : ''}
        </dd>
        <dt>Id</dt>
        <dd>
          <code>{vm.id}</code>
        </dd>
        <dt>Created, updated</dt>
        <dd>
          {when(vm.createdAt)}, {when(vm.updatedAt)}
        </dd>
        {vm.otherCopies && vm.otherCopies.length > 0 && (
          <>
            <dt>Left behind</dt>
            <dd className="error">
              {vm.otherCopies.map((c) => `${c.host} (${c.state}, seen ${when(c.seenAt)})`).join('; ')}: a
              failed move left these; <code>silobreak vm move --cleanup {vm.name}</code> removes them.
            </dd>
          </>
        )}
      </dl>
    </>
  );
}

const STOPPED = new Set(['stopped', 'crashed']);
const RUNNING = new Set(['running', 'paused']);

function VmActions({
  vm,
  panel,
  setPanel,
  setLastJob,
}: {
  vm: Vm;
  panel: Panel;
  setPanel: (p: Panel) => void;
  setLastJob: (j: { label: string; job: Job }) => void;
}) {
  const start = useAction('startVm');
  const shutdown = useAction('shutdownVm');
  const stop = useAction('stopVm');
  const remove = useAction('deleteVm');
  const insert = useAction('insertVmTools');
  const eject = useAction('ejectVmTools');
  const [confirm, setConfirm] = useState<Confirm>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const params = { vm: vm.id };
  const done = (label: string) => ({
    onSuccess: (reply: { job: Job }) => {
      setError(undefined);
      setLastJob({ label, job: reply.job });
      setConfirm(undefined);
    },
    onError: (e: unknown) => {
      setError(e);
      setConfirm(undefined);
    },
  });
  const busy = [start, shutdown, stop, remove, insert, eject].some((a) => a.isPending);
  const dialog =
    confirm === 'delete'
      ? {
          title: `Delete ${vm.name}?`,
          confirmLabel: `Delete ${vm.name}`,
          body: `${vm.name} is stopped if it runs and deleted from ${vm.host}, with its ${vm.disks.length} disk image${vm.disks.length === 1 ? '' : 's'}. This cannot be undone.`,
          run: () => remove.mutate({ params, query: {} }, done('Delete')),
        }
      : confirm === 'stop'
        ? {
            title: `Stop ${vm.name} now?`,
            confirmLabel: `Stop ${vm.name}`,
            body: `${vm.name} is forced off at once, like pulling the plug: what the guest has not written is lost.`,
            run: () => stop.mutate({ params, body: {} }, done('Stop')),
          }
        : confirm === 'shutdown'
          ? {
              title: `Shut down ${vm.name}?`,
              confirmLabel: `Shut down ${vm.name}`,
              body: `The guest is asked to power off; if it has not within 60 seconds it is forced off.`,
              run: () => shutdown.mutate({ params, body: {} }, done('Shut down')),
            }
          : undefined;
  return (
    <>
      <div className="toolbar" role="group" aria-label="Actions">
        {STOPPED.has(vm.state) && (
          <button
            type="button"
            disabled={busy}
            onClick={() => start.mutate({ params, body: {} }, done('Start'))}
          >
            Start
          </button>
        )}
        {RUNNING.has(vm.state) && (
          <>
            <button type="button" disabled={busy} onClick={() => setConfirm('shutdown')}>
              Shut down
            </button>
            <button type="button" disabled={busy} onClick={() => setConfirm('stop')}>
              Stop
            </button>
          </>
        )}
        <button
          type="button"
          className={panel === 'move' ? 'primary' : undefined}
          aria-expanded={panel === 'move'}
          onClick={() => setPanel(panel === 'move' ? undefined : 'move')}
        >
          Move
        </button>
        <button
          type="button"
          aria-expanded={panel === 'storage'}
          onClick={() => setPanel(panel === 'storage' ? undefined : 'storage')}
        >
          Move storage
        </button>
        {vm.toolsDisk ? (
          <button
            type="button"
            disabled={busy}
            onClick={() => eject.mutate({ params, body: {} }, done('Eject tools disk'))}
          >
            Eject tools disk
          </button>
        ) : (
          <button
            type="button"
            disabled={busy}
            onClick={() => insert.mutate({ params, body: {} }, done('Insert tools disk'))}
          >
            Insert tools disk
          </button>
        )}
        <button type="button" className="danger" disabled={busy} onClick={() => setConfirm('delete')}>
          Delete
        </button>
      </div>
      {error !== undefined && <Failed error={error} />}
      <ConfirmDialog
        open={dialog !== undefined}
        title={dialog?.title ?? ''}
        confirmLabel={dialog?.confirmLabel ?? 'OK'}
        danger
        busy={busy}
        onCancel={() => setConfirm(undefined)}
        onConfirm={() => dialog?.run()}
      >
        <p>{dialog?.body}</p>
      </ConfirmDialog>
    </>
  );
}

/** The last action's job, followed live until it ends. */
function ActionJob({ label, job: accepted }: { label: string; job: Job }) {
  const job = useJobProgress(accepted.id) ?? accepted;
  return (
    <p className={`action-job ${job.state === 'failed' ? 'error' : ''}`} role="status">
      {label}: <StateBadge state={job.state} />
      {job.progress.message ? ` ${job.progress.message}` : ''}
      {job.error ? ` — ${job.error.detail} (${job.error.code})` : ''}
    </p>
  );
}

function VmMoves({ vm }: { vm: Vm }) {
  const hostMoves = useApi('listJobs', { query: { kind: MOVE_JOB_KINDS[0], targetId: vm.id, limit: 20 } });
  const storageMoves = useApi('listJobs', { query: { kind: MOVE_JOB_KINDS[1], targetId: vm.id, limit: 20 } });
  const error = hostMoves.error ?? storageMoves.error;
  return (
    <>
      <h2>Moves</h2>
      {error ? (
        <Failed error={error} retry={() => void Promise.all([hostMoves.refetch(), storageMoves.refetch()])} />
      ) : !hostMoves.data || !storageMoves.data ? (
        <Loading what="moves" />
      ) : (
        <DataTable
          caption={`Moves of ${vm.name}, newest first`}
          rows={[...hostMoves.data.items, ...storageMoves.data.items].sort((a, b) =>
            b.createdAt.localeCompare(a.createdAt),
          )}
          columns={MOVE_COLUMNS}
          rowKey={(j) => j.id}
          empty={`${vm.name} has not moved yet.`}
        />
      )}
      <p className="hint">
        Every move in flight: <Link to="/moves">Moves</Link>.
      </p>
    </>
  );
}

function VmChanges({ vm }: { vm: Vm }) {
  const changes = useApi('listChanges', { query: { object: vm.name, limit: 25 } });
  return (
    <>
      <h2>Recent changes</h2>
      <Loaded query={changes} what="changes">
        {(page) => (
          <DataTable
            caption={`Changes of ${vm.name} and its disks and NICs, last 7 days, newest first`}
            rows={page.items}
            columns={CHANGE_COLUMNS}
            rowKey={(c) => String(c.id)}
            empty={`No changes of ${vm.name} in the last 7 days.`}
          />
        )}
      </Loaded>
      <p className="hint">
        More in the <Link to="/changes">Change Explorer</Link>.
      </p>
    </>
  );
}

function Placement({ vm }: { vm: Vm }) {
  const { canWrite } = useSession();
  const placement = useApi('getVmPlacement', { params: { vm: vm.id } });
  return (
    <>
      <h2>Placement</h2>
      <Loaded query={placement} what="placement settings">
        {(p) => (
          <>
            <dl className="facts wide">
              <dt>Priority</dt>
              <dd>{p.priority}</dd>
              <dt>Pinned</dt>
              <dd>{p.pinned ? 'yes: placement never moves it' : 'no'}</dd>
              <dt>Excluded</dt>
              <dd>{p.excluded ? 'yes: placement ignores it' : 'no'}</dd>
              <dt>Home</dt>
              <dd>{p.home ? `${p.home.host}:${p.home.datastore}` : 'none'}</dd>
              <dt>Placed for</dt>
              <dd>{p.placedFor ?? '—'}</dd>
              <dt>Hot since, cool since</dt>
              <dd>
                {when(p.hotSince)}, {when(p.coolSince)}
              </dd>
            </dl>
            {canWrite && <PlacementForm vm={vm} placement={p} />}
          </>
        )}
      </Loaded>
    </>
  );
}

function PlacementForm({ vm, placement }: { vm: Vm; placement: Output<'getVmPlacement'> }) {
  const save = useAction('patchVmPlacement');
  const [priority, setPriority] = useState(String(placement.priority));
  const [pinned, setPinned] = useState(placement.pinned);
  const [excluded, setExcluded] = useState(placement.excluded);
  const [homeHost, setHomeHost] = useState(placement.home?.host ?? '');
  const [homeStore, setHomeStore] = useState(placement.home?.datastore ?? '');
  const hosts = useApi('listHosts', { query: { limit: 1000 } });
  const stores = useApi(
    'listDatastores',
    { query: { host: homeHost, limit: 1000 } },
    { enabled: homeHost !== '' },
  );
  const ids = { priority: useId(), host: useId(), store: useId() };
  // A new reading of the settings (after a save, or a change elsewhere) resets the form.
  useEffect(() => {
    setPriority(String(placement.priority));
    setPinned(placement.pinned);
    setExcluded(placement.excluded);
    setHomeHost(placement.home?.host ?? '');
    setHomeStore(placement.home?.datastore ?? '');
  }, [placement]);
  const home = homeHost && homeStore ? { host: homeHost, datastore: homeStore } : null;
  const samehome =
    (home === null && placement.home === null) ||
    (home !== null &&
      placement.home !== null &&
      home.host === placement.home.host &&
      home.datastore === placement.home.datastore);
  const patch = {
    ...(priority !== String(placement.priority) ? { priority: Number(priority) } : {}),
    ...(pinned !== placement.pinned ? { pinned } : {}),
    ...(excluded !== placement.excluded ? { excluded } : {}),
    ...(samehome ? {} : { home }),
  };
  const changed = Object.keys(patch).length > 0;
  return (
    <form
      className="placement-form"
      aria-label="Placement settings"
      onSubmit={(e) => {
        e.preventDefault();
        if (changed) save.mutate({ params: { vm: vm.id }, body: patch });
      }}
    >
      <label htmlFor={ids.priority}>Priority (0–100)</label>
      <input
        id={ids.priority}
        type="number"
        min={0}
        max={100}
        step={1}
        value={priority}
        onChange={(e) => setPriority(e.target.value)}
      />
      <label>
        <input type="checkbox" checked={pinned} onChange={(e) => setPinned(e.target.checked)} />
        Pinned
      </label>
      <label>
        <input type="checkbox" checked={excluded} onChange={(e) => setExcluded(e.target.checked)} />
        Excluded
      </label>
      <label htmlFor={ids.host}>Home host</label>
      <select
        id={ids.host}
        value={homeHost}
        onChange={(e) => {
          setHomeHost(e.target.value);
          setHomeStore('');
        }}
      >
        <option value="">No home</option>
        {(hosts.data?.items ?? []).map((h) => (
          <option key={h.id} value={h.name}>
            {h.name}
          </option>
        ))}
      </select>
      <label htmlFor={ids.store}>Home datastore</label>
      <select
        id={ids.store}
        value={homeStore}
        disabled={homeHost === ''}
        onChange={(e) => setHomeStore(e.target.value)}
      >
        <option value="">{homeHost ? 'Choose a datastore…' : '—'}</option>
        {(stores.data?.items ?? []).map((s) => (
          <option key={s.id} value={s.name}>
            {s.name} ({s.class})
          </option>
        ))}
      </select>
      <button
        type="submit"
        className="primary"
        disabled={!changed || save.isPending || (homeHost !== '' && homeStore === '')}
      >
        {save.isPending ? 'Saving…' : 'Save placement'}
      </button>
      {save.isError && (
        <p role="alert" className="error">
          {describeError(save.error)}
        </p>
      )}
      {save.isSuccess && !changed && <p role="status">Saved.</p>}
    </form>
  );
}

function VmIo({ vm }: { vm: Vm }) {
  const [window, setWindow] = useState<SeriesWindow>('1h');
  const series = useApi('getVmSeries', { params: { vm: vm.id }, query: { window } });
  return (
    <>
      <h2>I/O</h2>
      <div className="toolbar">
        <WindowPicker value={window} onChange={setWindow} />
      </div>
      <Loaded query={series} what="I/O figures">
        {(s) => <VmCharts vm={vm.name} series={s} window={window} />}
      </Loaded>
    </>
  );
}

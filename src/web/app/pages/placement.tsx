// Placement (the Beast): the fast class's occupancy against its budget, each VM's demand, the
// recommendations with their reasons (apply or dismiss), schedules, the mode and the settings.
// Write actions only for admin tokens; a read-only token sees the same figures and no control.
import { MarkLineComponent } from 'echarts/components';
import * as echarts from 'echarts/core';
import { useMemo, useState, type FormEvent, type ReactNode } from 'react';
import { Link } from 'react-router';
import { ApiError, describeError, type Input, type Output } from '../api.js';
import { useJobProgress } from '../events.js';
import { ago, bytes, fixed, when } from '../format.js';
import { useAction, useApi } from '../hooks.js';
import { Chart, type ChartOption } from '../parts/chart.js';
import { ConfirmDialog } from '../parts/confirm.js';
import { actionColumns } from '../parts/columns.js';
import { DataTable, type Column } from '../parts/data-table.js';
import { ProgressBar } from '../parts/progress.js';
import { Empty, Loaded } from '../parts/states.js';
import { useSession } from '../session.js';
import {
  durationText,
  fastOccupancy,
  KIND_TEXT,
  occupancyText,
  settingOfField,
  settingRows,
  settingsPatch,
  type FastOccupancy,
} from './placement-figures.js';
import './placement.css';

// The hot and cool thresholds drawn across the demand chart.
echarts.use([MarkLineComponent]);

type Status = Output<'getPlacementStatus'>;
type VmStatus = Status['vms'][number];
type Config = Output<'getPlacementConfig'>;
type Recommendation = Output<'listPlacementRecommendations'>['items'][number];
type Schedule = Output<'listPlacementSchedules'>['items'][number];
type Mode = Config['mode'];

const MODES: { mode: Mode; text: string }[] = [
  { mode: 'off', text: 'off: no recommendations, no moves' },
  { mode: 'recommend', text: 'recommend: recommendations to apply by hand' },
  { mode: 'automatic', text: 'automatic: the manager starts the moves' },
];

const place = (p: { host: string; datastore: string } | null) => (p ? `${p.host}/${p.datastore}` : '—');

/** What the page asks the user to confirm (one dialog for the page). */
interface Confirmation {
  title: string;
  body: ReactNode;
  confirmLabel: string;
  danger?: boolean;
  run: () => Promise<unknown>;
}

export function PlacementPage() {
  const status = useApi('getPlacementStatus', {});
  const { canWrite } = useSession();
  const [confirm, setConfirm] = useState<Confirmation | undefined>();
  const [confirmError, setConfirmError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);

  const ask = (c: Confirmation) => {
    setConfirmError(undefined);
    setConfirm(c);
  };
  const run = async () => {
    if (!confirm) return;
    setBusy(true);
    try {
      await confirm.run();
      setConfirm(undefined);
    } catch (e) {
      setConfirmError(describeError(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="placement">
      <h1>Placement</h1>
      <p className="summary">
        The Beast: a VM that stays busy moves to a datastore of the fast class, and home again when it has
        been quiet for a while.
      </p>
      <Loaded query={status} what="placement status">
        {(s) => (
          <>
            <Overview status={s} canWrite={canWrite} />
            <Occupancy status={s} />
            <Demand status={s} />
            <Recommendations canWrite={canWrite} ask={ask} />
            <Schedules status={s} canWrite={canWrite} ask={ask} />
            <ModeAndSettings canWrite={canWrite} />
          </>
        )}
      </Loaded>
      <ConfirmDialog
        open={confirm !== undefined}
        title={confirm?.title ?? ''}
        confirmLabel={confirm?.confirmLabel ?? 'OK'}
        danger={confirm?.danger ?? false}
        busy={busy}
        onConfirm={() => void run()}
        onCancel={() => setConfirm(undefined)}
      >
        {confirm?.body}
        {confirmError && (
          <p role="alert" className="error">
            {confirmError}
          </p>
        )}
      </ConfirmDialog>
    </section>
  );
}

function Overview({ status, canWrite }: { status: Status; canWrite: boolean }) {
  const evaluate = useAction('evaluatePlacement');
  return (
    <div className="placement-overview">
      <dl className="facts">
        <dt>Mode</dt>
        <dd>
          <span className={`badge mode-${status.mode}`}>{status.mode}</span>
        </dd>
        <dt>Last evaluation</dt>
        <dd>
          {status.lastEvaluatedAt ? (
            <time dateTime={status.lastEvaluatedAt} title={when(status.lastEvaluatedAt)}>
              {ago(status.lastEvaluatedAt)}
            </time>
          ) : (
            'not yet'
          )}{' '}
          (every {status.settings.evaluationIntervalSeconds} s)
        </dd>
        <dt>Pending recommendations</dt>
        <dd>{status.pendingRecommendations}</dd>
        <dt>Placement moves in flight</dt>
        <dd>
          {status.movesInFlight}
          {status.movesInFlight > 0 && (
            <>
              {' '}
              (<Link to="/moves">see Moves</Link>)
            </>
          )}
        </dd>
      </dl>
      {canWrite && (
        <div className="toolbar">
          <button
            type="button"
            onClick={() => evaluate.mutate({ body: {} })}
            disabled={evaluate.isPending || status.mode === 'off'}
            title={status.mode === 'off' ? 'Placement is off' : undefined}
          >
            {evaluate.isPending ? 'Evaluating…' : 'Evaluate now'}
          </button>
          <span role="status" className="hint">
            {evaluate.isSuccess &&
              `Evaluated: ${evaluate.data.length} recommendation${evaluate.data.length === 1 ? '' : 's'} this round.`}
          </span>
          {evaluate.isError && (
            <span role="alert" className="error">
              {describeError(evaluate.error)}
            </span>
          )}
        </div>
      )}
    </div>
  );
}

function Occupancy({ status }: { status: Status }) {
  const datastores = useApi('listDatastores', { query: { limit: 1000 } });
  return (
    <section aria-labelledby="occupancy">
      <h2 id="occupancy">Fast class ({status.settings.fastClass}): occupancy against its budget</h2>
      <Loaded query={datastores} what="datastores">
        {(page) => {
          const rows = fastOccupancy(page.items, status.vms, status.settings);
          if (rows.length === 0)
            return (
              <Empty>
                No datastore of class {status.settings.fastClass}. Give one that class (
                <code>silobreak datastore set HOST/NAME --class {status.settings.fastClass}</code>, or{' '}
                <code>lab up --beast HOST</code> in a lab) and busy VMs can move there.
              </Empty>
            );
          return (
            <div className="occupancy">
              {rows.map((o) => (
                <OccupancyCard key={`${o.host}/${o.datastore}`} o={o} />
              ))}
            </div>
          );
        }}
      </Loaded>
    </section>
  );
}

function OccupancyCard({ o }: { o: FastOccupancy }) {
  const name = `${o.host}/${o.datastore}`;
  return (
    <article className="card" aria-label={`Fast datastore ${name}`}>
      <h3>{name}</h3>
      {o.iopsPercent !== null ? (
        <ProgressBar percent={o.iopsPercent} label={`IOPS of ${name} against its budget`} />
      ) : null}
      <p>{occupancyText(o)}</p>
      {o.budgetSource && (
        <p className="hint">
          Budget: its {o.budgetSource === 'limit' ? 'configured IOPS limit' : 'probed capability'}.
        </p>
      )}
      <ProgressBar
        percent={o.capacityBytes > 0 ? (100 * o.usedBytes) / o.capacityBytes : 0}
        label={`Space used on ${name}`}
      />
      <p>
        {bytes(o.usedBytes)} of {bytes(o.capacityBytes)} used; placement keeps {bytes(o.reservedBytes)} free.
      </p>
      <p>VMs here: {o.vms.length ? o.vms.join(', ') : 'none'}</p>
    </article>
  );
}

const DEMAND_TEXT: Record<VmStatus['demand'], string> = {
  hot: 'hot',
  cool: 'cool',
  between: 'between',
  unknown: 'unknown',
};

function Demand({ status }: { status: Status }) {
  const columns = useMemo<Column<VmStatus>[]>(
    () => [
      {
        key: 'vm',
        label: 'VM',
        value: (v) => v.vm,
        render: (v) => <Link to={`/vms/${encodeURIComponent(v.vm)}`}>{v.vm}</Link>,
      },
      { key: 'on', label: 'On', value: (v) => place(v) },
      {
        key: 'class',
        label: 'Class',
        value: (v) => v.class,
        render: (v) => <span className={`class ${v.class}`}>{v.class}</span>,
      },
      { key: 'iops', label: 'IOPS', value: (v) => v.iops, render: (v) => fixed(v.iops, 0), numeric: true },
      {
        key: 'latency',
        label: `Latency ${status.settings.hotLatencyPercentile} (ms)`,
        value: (v) => v.latencyMs,
        render: (v) => fixed(v.latencyMs, 1),
        numeric: true,
      },
      {
        key: 'demand',
        label: 'Demand',
        value: (v) => v.demand,
        render: (v) => <span className={`badge demand-${v.demand}`}>{DEMAND_TEXT[v.demand]}</span>,
      },
      { key: 'priority', label: 'Priority', value: (v) => v.priority, numeric: true },
      {
        key: 'flags',
        label: 'Flags',
        value: (v) => [v.pinned ? 'pinned' : '', v.excluded ? 'excluded' : ''].filter(Boolean).join(', '),
      },
      { key: 'home', label: 'Home', value: (v) => place(v.home) },
      { key: 'moves', label: 'Moves 24 h', value: (v) => v.movesToday, numeric: true },
      { key: 'why', label: 'Why', value: (v) => v.demandReason ?? '—' },
      { key: 'waiting', label: 'Not moved because', value: (v) => v.waitingReason ?? '—' },
    ],
    [status.settings.hotLatencyPercentile],
  );
  const option = useMemo<ChartOption>(() => demandChart(status), [status]);
  return (
    <section aria-labelledby="demand">
      <h2 id="demand">Demand of each VM</h2>
      <p className="hint">
        Over the last {status.settings.demandWindowSeconds} s. Hot: at least {status.settings.hotIops} IOPS
        {status.settings.hotLatencyMs > 0
          ? ` and ${status.settings.hotLatencyPercentile} latency at least ${status.settings.hotLatencyMs} ms`
          : ''}
        , or held at its datastore&apos;s limit, for {status.settings.holdSeconds} s; cool: below{' '}
        {status.settings.coolIops} IOPS for {status.settings.coolHoldSeconds} s.
      </p>
      {status.vms.length > 0 && (
        <Chart
          option={option}
          label={`IOPS of each VM over the demand window, with the hot threshold ${status.settings.hotIops} and the cool threshold ${status.settings.coolIops}`}
          height={Math.min(320, 120 + status.vms.length * 8)}
        />
      )}
      <DataTable
        rows={status.vms}
        columns={columns}
        rowKey={(v) => v.vm}
        caption="Every VM's demand and placement settings"
        search
        initialSort={{ key: 'iops', desc: true }}
        rowClass={(v) => (v.demand === 'hot' ? 'issue' : undefined)}
        empty="No VMs."
      />
    </section>
  );
}

const DEMAND_COLOUR: Record<VmStatus['demand'], string> = {
  hot: '#b3261e',
  between: '#8a5300',
  cool: '#0b5cad',
  unknown: '#6b7480',
};

function demandChart(status: Status): ChartOption {
  const vms = [...status.vms].sort((a, b) => (b.iops ?? 0) - (a.iops ?? 0));
  return {
    grid: { left: 56, right: 110, top: 24, bottom: 40 },
    tooltip: { trigger: 'axis' },
    xAxis: {
      type: 'category',
      data: vms.map((v) => v.vm),
      axisLabel: { interval: 0, rotate: vms.length > 8 ? 30 : 0 },
    },
    // Up to the hot threshold at least, so both threshold lines show.
    yAxis: {
      type: 'value',
      name: 'IOPS',
      max: (extent: { max: number }) => Math.ceil(Math.max(extent.max, status.settings.hotIops) * 1.1),
    },
    series: [
      {
        name: 'IOPS',
        type: 'bar',
        data: vms.map((v) => ({ value: v.iops ?? 0, itemStyle: { color: DEMAND_COLOUR[v.demand] } })),
        markLine: {
          symbol: 'none',
          label: { formatter: '{b}: {c}', position: 'end' },
          data: [
            { name: 'hot', yAxis: status.settings.hotIops, lineStyle: { color: '#b3261e', type: 'dashed' } },
            {
              name: 'cool',
              yAxis: status.settings.coolIops,
              lineStyle: { color: '#0b5cad', type: 'dashed' },
            },
          ],
        },
      },
    ],
  };
}

function Recommendations({ canWrite, ask }: { canWrite: boolean; ask: (c: Confirmation) => void }) {
  const [state, setState] = useState<'pending' | 'all'>('pending');
  const recs = useApi('listPlacementRecommendations', { query: { state, limit: 100 } });
  const apply = useAction('applyPlacementRecommendation');
  const dismiss = useAction('dismissPlacementRecommendation');
  const [started, setStarted] = useState<{ vm: string; jobId: string } | undefined>();
  const [dismissError, setDismissError] = useState<string | undefined>();

  const onApply = (r: Recommendation) =>
    ask({
      title: `Apply the recommendation for ${r.vm}?`,
      confirmLabel: 'Start move',
      body: (
        <>
          <p>
            Move <strong>{r.vm}</strong> from {place(r.from)} to {place(r.to)} ({r.to.class}): {r.reason.text}
          </p>
          <p className="hint">The move is checked afresh like any move; it runs live while the VM runs.</p>
        </>
      ),
      run: async () => {
        const accepted = await apply.mutateAsync({ params: { id: r.id }, body: {} });
        setStarted({ vm: r.vm, jobId: accepted.job.id });
      },
    });
  const onDismiss = (r: Recommendation) => {
    setDismissError(undefined);
    dismiss.mutate(
      { params: { id: r.id }, body: {} },
      { onError: (e) => setDismissError(`Dismissing the recommendation for ${r.vm}: ${describeError(e)}`) },
    );
  };

  const columns: Column<Recommendation>[] = [
    {
      key: 'vm',
      label: 'VM',
      value: (r) => r.vm,
      render: (r) => <Link to={`/vms/${encodeURIComponent(r.vm)}`}>{r.vm}</Link>,
    },
    { key: 'kind', label: 'Kind', value: (r) => KIND_TEXT[r.kind] ?? r.kind },
    { key: 'from', label: 'From', value: (r) => place(r.from) },
    { key: 'to', label: 'To', value: (r) => `${place(r.to)} (${r.to.class})` },
    { key: 'reason', label: 'Reason', value: (r) => r.reason.text },
    {
      key: 'after',
      label: 'Target after the move',
      value: (r) => r.predicted.iops,
      render: (r) =>
        `${Math.round(r.predicted.iops)}${r.predicted.iopsBudget === null ? '' : ` of ${r.predicted.iopsBudget}`} IOPS; ${bytes(r.predicted.memoryFreeBytes)} memory and ${bytes(r.predicted.freeBytes)} space free`,
    },
    {
      key: 'created',
      label: 'Made',
      value: (r) => r.createdAt,
      render: (r) => <time dateTime={r.createdAt}>{ago(r.createdAt)}</time>,
    },
    ...(state === 'all'
      ? [
          {
            key: 'state',
            label: 'State',
            value: (r: Recommendation) => r.state,
            render: (r: Recommendation) => (
              <>
                <span className={`badge rec-${r.state}`}>{r.state}</span>
                {r.jobId && (
                  <>
                    {' '}
                    <Link to="/moves" title={`job ${r.jobId}`}>
                      its move
                    </Link>
                  </>
                )}
              </>
            ),
          },
        ]
      : []),
    ...actionColumns(canWrite, (r: Recommendation) =>
      r.state === 'pending' ? (
        <div className="row-actions">
          <button
            type="button"
            className="primary"
            aria-label={`Apply recommendation for ${r.vm}`}
            onClick={() => onApply(r)}
          >
            Apply
          </button>
          <button
            type="button"
            aria-label={`Dismiss recommendation for ${r.vm}`}
            disabled={dismiss.isPending}
            onClick={() => onDismiss(r)}
          >
            Dismiss
          </button>
        </div>
      ) : null,
    ),
  ];

  return (
    <section aria-labelledby="recommendations">
      <h2 id="recommendations">Recommendations</h2>
      <div className="toolbar">
        <label>
          Show{' '}
          <select value={state} onChange={(e) => setState(e.target.value === 'all' ? 'all' : 'pending')}>
            <option value="pending">pending</option>
            <option value="all">all (applied, dismissed, expired too)</option>
          </select>
        </label>
      </div>
      {started && <StartedMove vm={started.vm} jobId={started.jobId} />}
      {dismissError && (
        <p role="alert" className="error">
          {dismissError}
        </p>
      )}
      <Loaded query={recs} what="recommendations">
        {(page) => (
          <DataTable
            rows={page.items}
            columns={columns}
            rowKey={(r) => r.id}
            caption={
              state === 'pending' ? 'Pending recommendations, newest first' : 'Recommendations, newest first'
            }
            empty={
              state === 'pending'
                ? 'No pending recommendations: no VM has been hot (or cool away from home) for its hold time.'
                : 'No recommendations yet.'
            }
          />
        )}
      </Loaded>
    </section>
  );
}

/** The move an applied recommendation started, followed live, with the way to the Moves page. */
function StartedMove({ vm, jobId }: { vm: string; jobId: string }) {
  const job = useJobProgress(jobId);
  return (
    <div className="card started" role="status">
      <p>
        Move of <strong>{vm}</strong> started (job <code>{jobId}</code>){job ? `: ${job.state}` : ''}.{' '}
        <Link to="/moves">Follow it on Moves</Link>
      </p>
      {job && job.state !== 'failed' && job.state !== 'cancelled' && (
        <ProgressBar percent={job.progress.percent} label={`Move of ${vm}`} />
      )}
      {job?.error && <p className="error">{job.error.detail}</p>}
    </div>
  );
}

function Schedules({
  status,
  canWrite,
  ask,
}: {
  status: Status;
  canWrite: boolean;
  ask: (c: Confirmation) => void;
}) {
  const schedules = useApi('listPlacementSchedules', { query: { limit: 1000 } });
  const remove = useAction('deletePlacementSchedule');
  const columns: Column<Schedule>[] = [
    { key: 'vm', label: 'VM', value: (s) => s.vm },
    { key: 'class', label: 'Class', value: (s) => s.class },
    { key: 'cron', label: 'Cron (UTC)', value: (s) => s.cron, render: (s) => <code>{s.cron}</code> },
    {
      key: 'for',
      label: 'For',
      value: (s) => s.durationSeconds,
      render: (s) => durationText(s.durationSeconds),
    },
    {
      key: 'next',
      label: 'Window (in progress or next)',
      value: (s) => s.nextStart,
      render: (s) => (s.nextStart ? `${when(s.nextStart)} – ${when(s.nextEnd)}` : '—'),
    },
    { key: 'by', label: 'Added by', value: (s) => s.createdBy },
    ...actionColumns(canWrite, (s: Schedule) => (
      <button
        type="button"
        aria-label={`Delete schedule for ${s.vm} (${s.cron})`}
        onClick={() =>
          ask({
            title: `Delete the schedule of ${s.vm}?`,
            confirmLabel: 'Delete schedule',
            danger: true,
            body: (
              <p>
                {s.vm} no longer moves to {s.class} for <code>{s.cron}</code> (UTC) windows of{' '}
                {durationText(s.durationSeconds)}.
              </p>
            ),
            run: () => remove.mutateAsync({ params: { id: s.id } }),
          })
        }
      >
        Delete
      </button>
    )),
  ];
  return (
    <section aria-labelledby="schedules">
      <h2 id="schedules">Schedules</h2>
      <Loaded query={schedules} what="schedules">
        {(page) => (
          <DataTable
            rows={page.items}
            columns={columns}
            rowKey={(s) => s.id}
            caption="Placement schedules: the VM moves in ahead of each window and back after it"
            empty="No schedules."
          />
        )}
      </Loaded>
      {canWrite && <AddSchedule vms={status.vms.map((v) => v.vm)} fastClass={status.settings.fastClass} />}
    </section>
  );
}

function AddSchedule({ vms, fastClass }: { vms: string[]; fastClass: string }) {
  const add = useAction('createPlacementSchedule');
  const [vm, setVm] = useState('');
  const [cls, setCls] = useState(fastClass);
  const [cron, setCron] = useState('0 1 * * *');
  const [length, setLength] = useState('4h');
  const error = add.error;
  const field = error instanceof ApiError ? error.field : undefined;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    add.mutate({ body: { vm: vm || (vms[0] ?? ''), class: cls, cron, for: length } });
  };
  const invalid = (name: string) => (field === name ? true : undefined);
  return (
    <form className="card add-schedule" onSubmit={submit} aria-labelledby="add-schedule">
      <h3 id="add-schedule">Add a schedule</h3>
      <div className="fields">
        <label>
          VM
          <select
            value={vm || (vms[0] ?? '')}
            onChange={(e) => setVm(e.target.value)}
            aria-invalid={invalid('vm')}
          >
            {vms.map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Class
          <input
            value={cls}
            onChange={(e) => setCls(e.target.value)}
            size={10}
            aria-invalid={invalid('class')}
          />
        </label>
        <label>
          Cron (UTC)
          <input
            value={cron}
            onChange={(e) => setCron(e.target.value)}
            size={16}
            aria-invalid={invalid('cron')}
            aria-describedby="cron-hint"
          />
        </label>
        <label>
          For
          <input
            value={length}
            onChange={(e) => setLength(e.target.value)}
            size={6}
            aria-invalid={invalid('for')}
          />
        </label>
        <button type="submit" className="primary" disabled={add.isPending || vms.length === 0}>
          Add schedule
        </button>
      </div>
      <p id="cron-hint" className="hint">
        Five fields, minute hour day-of-month month day-of-week, in UTC: <code>0 1 * * *</code> opens a window
        at 01:00 every day. For: 90m, 4h, 1d.
      </p>
      {add.isError && (
        <p role="alert" className="error">
          {describeError(add.error)}
        </p>
      )}
      {add.isSuccess && (
        <p role="status" className="hint">
          Added: {add.data.vm} on {add.data.class}, next window {when(add.data.nextStart)}.
        </p>
      )}
    </form>
  );
}

function ModeAndSettings({ canWrite }: { canWrite: boolean }) {
  const config = useApi('getPlacementConfig', {});
  return (
    <section aria-labelledby="settings">
      <h2 id="settings">Mode and settings</h2>
      <Loaded query={config} what="placement settings">
        {(c) => (
          <>
            <ModeForm config={c} canWrite={canWrite} />
            <SettingsForm config={c} canWrite={canWrite} />
          </>
        )}
      </Loaded>
    </section>
  );
}

function ModeForm({ config, canWrite }: { config: Config; canWrite: boolean }) {
  const setMode = useAction('setPlacementMode');
  const [mode, setModeChoice] = useState<Mode>(config.mode);
  if (!canWrite)
    return (
      <p>
        Mode: <strong>{config.mode}</strong> ({MODES.find((m) => m.mode === config.mode)?.text})
      </p>
    );
  return (
    <form
      className="mode"
      onSubmit={(e) => {
        e.preventDefault();
        setMode.mutate({ body: { mode } });
      }}
    >
      <fieldset>
        <legend>Mode (now: {config.mode})</legend>
        {MODES.map((m) => (
          <label key={m.mode}>
            <input
              type="radio"
              name="placement-mode"
              value={m.mode}
              checked={mode === m.mode}
              onChange={() => setModeChoice(m.mode)}
            />
            {m.text}
          </label>
        ))}
        <button type="submit" disabled={setMode.isPending || mode === config.mode}>
          Set mode
        </button>
      </fieldset>
      {setMode.isError && (
        <p role="alert" className="error">
          {describeError(setMode.error)}
        </p>
      )}
    </form>
  );
}

type Patch = NonNullable<Input<'patchPlacementSettings'>['body']>;

function SettingsForm({ config, canWrite }: { config: Config; canWrite: boolean }) {
  const rows = useMemo(() => settingRows(config), [config]);
  const patch = useAction('patchPlacementSettings');
  const [edits, setEdits] = useState<Record<string, string>>({});
  const error = patch.error;
  const field = error instanceof ApiError ? settingOfField(error.field) : undefined;
  const changed = settingsPatch(rows, edits);
  const send = (body: Record<string, string | number | null>) =>
    // Sent as typed: the manager checks it and names the field at fault.
    patch.mutate({ body: body as Patch }, { onSuccess: () => setEdits({}) });

  return (
    <form
      onSubmit={(e) => {
        e.preventDefault();
        send(changed);
      }}
      aria-label="Placement settings"
    >
      <div className="table-wrap">
        <table className="settings">
          <caption>
            Placement settings: effective and default{canWrite ? '; change a value and save' : ''}
          </caption>
          <thead>
            <tr>
              <th scope="col">Setting</th>
              <th scope="col">Effective</th>
              <th scope="col">Default</th>
              <th scope="col">Set here</th>
              {canWrite && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => {
              const bad = field === row.key;
              return (
                <tr key={row.key} className={bad ? 'critical' : undefined}>
                  <th scope="row">
                    <label htmlFor={canWrite ? `setting-${row.key}` : undefined}>{row.key}</label>
                  </th>
                  <td>
                    {canWrite ? (
                      <>
                        <input
                          id={`setting-${row.key}`}
                          value={edits[row.key] ?? String(row.effective)}
                          onChange={(e) => setEdits({ ...edits, [row.key]: e.target.value })}
                          aria-invalid={bad || undefined}
                          aria-describedby={bad ? 'settings-error' : undefined}
                          size={12}
                        />
                        {bad && (
                          <span className="error field-error">
                            {' '}
                            {error instanceof ApiError ? error.message : ''}
                          </span>
                        )}
                      </>
                    ) : (
                      String(row.effective)
                    )}
                  </td>
                  <td>{String(row.default)}</td>
                  <td>{row.overridden ? 'yes' : 'no (default)'}</td>
                  {canWrite && (
                    <td>
                      {row.overridden && (
                        <button
                          type="button"
                          aria-label={`Reset ${row.key} to its default`}
                          onClick={() => send({ [row.key]: null })}
                          disabled={patch.isPending}
                        >
                          Reset
                        </button>
                      )}
                    </td>
                  )}
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {canWrite && (
        <div className="toolbar">
          <button
            type="submit"
            className="primary"
            disabled={patch.isPending || Object.keys(changed).length === 0}
          >
            Save settings
          </button>
          <button type="button" onClick={() => setEdits({})} disabled={Object.keys(edits).length === 0}>
            Undo edits
          </button>
          {patch.isSuccess && Object.keys(edits).length === 0 && (
            <span role="status" className="hint">
              Saved.
            </span>
          )}
        </div>
      )}
      {patch.isError && (
        <p role="alert" id="settings-error" className="error">
          {describeError(patch.error)}
        </p>
      )}
    </form>
  );
}

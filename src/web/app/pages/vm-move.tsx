// Moving a VM from its page: the target host and a datastore per disk, the dry run's checks and
// plan shown before anything changes, then the move job's live progress. Moving storage (another
// datastore of the same host) follows the same three steps.
import { useMutation } from '@tanstack/react-query';
import { useId, useState, type ReactNode } from 'react';
import { Link } from 'react-router';
import {
  describeDiskCopy,
  describeDiskRoute,
  formatBitRate,
  LINK_SOURCE_LABEL,
  MovePlan,
  type Job,
  type MoveVmRequest,
  type VmMoveStorageRequest,
} from '../../../api/browser.js';
import { describeError, problemOf, request, type Output } from '../api.js';
import { useJobProgress } from '../events.js';
import { bytes, percent, rate, seconds } from '../format.js';
import { useAction, useApi } from '../hooks.js';
import {
  CHECK_TEXT,
  checkLevel,
  emptyMoveForm,
  finishedFigures,
  isInFlight,
  liveFigures,
  moveRequest,
  moveStorageRequest,
  type MoveForm,
} from '../move-figures.js';
import { ConfirmDialog } from '../parts/confirm.js';
import { ProgressBar } from '../parts/progress.js';
import { Failed, Loading } from '../parts/states.js';
import { useSession } from '../session.js';

type Vm = Output<'getVm'>;

/**
 * The dry run of a move: the same route with `dryRun`, whose 200 reply is the plan (the route's
 * other reply, so `call`, which checks the 202 job reply, is not the one to use).
 */
async function dryRun(
  name: 'moveVm' | 'moveVmStorage',
  vm: string,
  body: MoveVmRequest | VmMoveStorageRequest,
  token: string,
): Promise<MovePlan> {
  const { url, init } =
    name === 'moveVm'
      ? request('moveVm', { params: { vm }, body: { ...(body as MoveVmRequest), dryRun: true } }, token)
      : request(
          'moveVmStorage',
          { params: { vm }, body: { ...(body as VmMoveStorageRequest), dryRun: true } },
          token,
        );
  const response = await fetch(url, init);
  if (!response.ok) throw await problemOf(response);
  return MovePlan.parse(await response.json());
}

function useDryRun(name: 'moveVm' | 'moveVmStorage', vm: string) {
  const { token } = useSession();
  return useMutation<MovePlan, Error, MoveVmRequest | VmMoveStorageRequest>({
    mutationFn: (body) => dryRun(name, vm, body, token),
  });
}

/** The dry run's answer: the verdict, every check, the disks, and how the copy would go. */
export function PlanView({ plan }: { plan: MovePlan }) {
  const failed = plan.checks.filter((c) => !c.ok).length;
  const titleId = useId();
  return (
    <section className="plan" aria-labelledby={titleId}>
      <h3 id={titleId}>Dry run: checks and plan</h3>
      <p className={plan.ok ? 'verdict ok' : 'verdict fail'} role="status">
        {plan.ok
          ? `The ${plan.mode} move of ${plan.vm.name} from ${plan.from} to ${plan.to} can go ahead. Nothing has changed yet.`
          : `The move of ${plan.vm.name} would be refused: ${failed} check${failed === 1 ? '' : 's'} failed. Nothing has changed.`}
      </p>
      <ul className="checks" aria-label="Checks">
        {plan.checks.map((c, i) => {
          const level = checkLevel(c);
          return (
            <li key={`${c.check}-${i}`} className={level}>
              <span className={`check-level ${level}`}>{CHECK_TEXT[level]}</span> <strong>{c.check}</strong>:{' '}
              {c.detail}
            </li>
          );
        })}
      </ul>
      <dl className="facts">
        <dt>Mode</dt>
        <dd>
          {plan.mode === 'cold'
            ? 'cold (the VM is stopped)'
            : plan.memoryOnly
              ? 'live, memory only (the VM keeps running; every disk stays on shared storage both hosts see)'
              : 'live (the VM keeps running)'}
        </dd>
        {plan.diskCopy && (
          <>
            <dt>Disk copy</dt>
            <dd>
              {plan.diskCopy.kind === 'delta' ? 'Delta onto the retained copy: ' : ''}
              {describeDiskCopy(plan.diskCopy)}
            </dd>
          </>
        )}
        {plan.memoryBytes > 0 && (
          <>
            <dt>Memory to copy</dt>
            <dd>{bytes(plan.memoryBytes)}</dd>
          </>
        )}
        {plan.stream && (
          <>
            <dt>Memory stream</dt>
            <dd>
              {plan.stream.mode} ({plan.stream.why})
            </dd>
          </>
        )}
        {plan.link && (
          <>
            <dt>Link rate</dt>
            <dd>
              {plan.link.figure
                ? `${formatBitRate(plan.link.figure.bitsPerSecond)} (${LINK_SOURCE_LABEL[plan.link.figure.source]}): `
                : ''}
              {plan.link.why}
            </dd>
          </>
        )}
        {plan.link?.figure && (plan.diskCopy || plan.memoryOnly) && (
          <>
            <dt>Estimate</dt>
            <dd>{estimate(plan)}</dd>
          </>
        )}
        <dt>Space rule</dt>
        <dd>{plan.spaceRule}</dd>
      </dl>
      {plan.disks.length > 0 && (
        <div className="table-wrap">
          <table>
            <caption>Disks in this plan</caption>
            <thead>
              <tr>
                <th scope="col">Disk</th>
                <th scope="col">From</th>
                <th scope="col">To</th>
                <th scope="col">Copy</th>
                <th scope="col" className="num">
                  Allocated
                </th>
                <th scope="col" className="num">
                  Virtual
                </th>
                <th scope="col" className="num">
                  Needs
                </th>
              </tr>
            </thead>
            <tbody>
              {plan.disks.map((d) => (
                <tr key={d.diskId}>
                  <td>{d.diskId}</td>
                  <td>
                    {plan.from}:{d.fromDatastore}
                  </td>
                  <td>
                    {plan.to}:{d.toDatastore}
                  </td>
                  <td>{d.stays ? describeDiskRoute(d) : plan.mode === 'cold' ? 'copied' : 'mirrored'}</td>
                  <td className="num">{bytes(d.allocatedBytes)}</td>
                  <td className="num">{bytes(d.virtualSizeBytes)}</td>
                  <td className="num">{bytes(d.requiredBytes)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

/** Bytes to send at the link's rate: a floor (the guest adds writes and dirty memory meanwhile). */
function estimate(plan: MovePlan): string {
  const link = plan.link?.figure;
  if (!link || !(plan.diskCopy || plan.memoryOnly)) return '—';
  // Disks that stay on shared storage send nothing.
  const disk =
    plan.diskCopy?.kind === 'delta'
      ? plan.diskCopy.bytes
      : plan.disks.filter((d) => !d.stays).reduce((s, d) => s + d.allocatedBytes, 0);
  const total = disk + plan.memoryBytes;
  return `about ${bytes(total)} to send, at least ${seconds((total * 8) / link.bitsPerSecond)} at the link's rate`;
}

/** A move job as it runs: phase, bar, message, rates; its outcome when it ends. */
export function MoveProgress({
  job: accepted,
  label,
  vmName,
}: {
  job: Job;
  /** The progress bar's accessible name, e.g. "Move progress". */
  label: string;
  vmName: string;
}) {
  const { canWrite } = useSession();
  const job = useJobProgress(accepted.id) ?? accepted;
  const running = isInFlight(job);
  const f = liveFigures(job.progress.details);
  const done = finishedFigures(job);
  return (
    <div className="move-progress">
      <p>
        <strong>{job.kind === 'vm-move-storage' ? 'Storage move' : 'Move'}</strong>
        {f.from && f.to ? ` ${f.from} → ${f.to}` : ''}:{' '}
        <span className={`badge state-${job.state}`}>{job.state}</span>
        {running && (
          <>
            {' '}
            · phase <strong>{job.progress.phase || 'queued'}</strong>
          </>
        )}
      </p>
      <ProgressBar percent={job.state === 'succeeded' ? 100 : job.progress.percent} label={label} />
      <p className="message" aria-live="polite">
        {job.progress.message}
      </p>
      {running && <LiveFigureList job={job} />}
      {job.state === 'succeeded' && (
        <p role="status" className="done ok">
          {vmName} now runs on{' '}
          {done.to ? <Link to={`/hosts/${encodeURIComponent(done.to)}`}>{done.to}</Link> : 'its new place'}
          {done.totalSeconds !== undefined ? ` (took ${seconds(done.totalSeconds)}` : ' ('}
          {done.downtimeMs !== undefined ? `, downtime ${done.downtimeMs.toFixed(0)} ms` : ''}
          {done.sentBytes !== undefined ? `, ${bytes(done.sentBytes)} sent` : ''}).
        </p>
      )}
      {job.state === 'failed' && (
        <p role="alert" className="error">
          The move failed{job.error ? `: ${job.error.detail} (${job.error.code})` : '.'}
        </p>
      )}
      {job.state === 'cancelled' && <p role="status">The move was cancelled; the VM stayed where it was.</p>}
      {running && canWrite && <CancelMoveButton job={job} vmName={vmName} buttonLabel="Cancel move" />}
    </div>
  );
}

/** Cancelling a move in flight, after a confirmation; `buttonLabel` is the button's accessible name. */
export function CancelMoveButton({
  job,
  vmName,
  buttonLabel,
}: {
  job: Job;
  vmName: string;
  buttonLabel: string;
}) {
  const cancel = useAction('cancelJob');
  const [confirming, setConfirming] = useState(false);
  return (
    <>
      <button type="button" onClick={() => setConfirming(true)} disabled={job.cancelRequested}>
        {job.cancelRequested ? 'Cancelling…' : buttonLabel}
      </button>
      <ConfirmDialog
        open={confirming}
        title={`Cancel the move of ${vmName}?`}
        confirmLabel="Yes, cancel the move"
        danger
        busy={cancel.isPending}
        onCancel={() => setConfirming(false)}
        onConfirm={() =>
          cancel.mutate({ params: { id: job.id }, body: {} }, { onSettled: () => setConfirming(false) })
        }
      >
        <p>
          Before the switchover the move is undone and {vmName} keeps running where it is; after it, the move
          completes.
        </p>
      </ConfirmDialog>
      {cancel.isError && <Failed error={cancel.error} />}
    </>
  );
}

/** The running figures of a move: bytes, transfer and dirty rate, throttle, time left. */
export function LiveFigureList({ job }: { job: Job }) {
  const f = liveFigures(job.progress.details);
  const rows: [string, ReactNode][] = [];
  if (f.sentBytes !== undefined)
    rows.push([
      'Sent',
      f.totalBytes ? `${bytes(f.sentBytes)} of ${bytes(f.totalBytes)}` : bytes(f.sentBytes),
    ]);
  if (f.disksInSync) rows.push(['Disks', f.disksInSync]);
  if (f.rateBytesPerSecond !== undefined) rows.push(['Transfer rate', rate(f.rateBytesPerSecond)]);
  if (f.dirtyRateBytesPerSecond !== undefined) rows.push(['Dirty rate', rate(f.dirtyRateBytesPerSecond)]);
  if (f.memoryPasses !== undefined) rows.push(['Memory passes', String(f.memoryPasses)]);
  if (f.throttlePercent !== undefined) rows.push(['Throttle', percent(f.throttlePercent)]);
  if (f.etaSeconds !== undefined) rows.push(['Time left', seconds(f.etaSeconds)]);
  if (f.health && f.health !== 'progressing')
    rows.push(['Health', `${f.health}${f.healthReason ? `: ${f.healthReason}` : ''}`]);
  if (f.stream) rows.push(['Memory stream', f.stream]);
  if (!rows.length) return null;
  return (
    <dl className="facts figures">
      {rows.map(([k, v]) => (
        <div key={k} className="figure">
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

/** A started move's progress, and Close once it has ended. */
function MoveJob({
  job,
  label,
  vmName,
  onClose,
}: {
  job: Job;
  label: string;
  vmName: string;
  onClose: () => void;
}) {
  return (
    <>
      <MoveProgress job={job} label={label} vmName={vmName} />
      {!isInFlight(job) && (
        <div className="actions start">
          <button type="button" onClick={onClose}>
            Close
          </button>
        </div>
      )}
    </>
  );
}

/**
 * The end of a move form: Check (submits the form: the dry run), Start (once the plan is ok) and
 * Close; then the dry run's outcome: why the move cannot start, or its plan. `what` names the
 * move in the buttons and messages ("move", "storage move").
 */
function DryRunSteps({
  what,
  canCheck,
  check,
  start,
  onStart,
  onClose,
}: {
  what: 'move' | 'storage move';
  canCheck: boolean;
  check: { data: MovePlan | undefined; isPending: boolean; isError: boolean; error: Error | null };
  start: { isPending: boolean; error: Error | null };
  onStart: () => void;
  onClose: () => void;
}) {
  const whyId = useId();
  const plan = check.data;
  return (
    <>
      <div className="actions start">
        <button type="submit" disabled={!canCheck || check.isPending}>
          {check.isPending ? 'Checking…' : `Check ${what}`}
        </button>
        <button
          type="button"
          className="primary"
          disabled={!plan?.ok || start.isPending}
          aria-describedby={plan && !plan.ok ? whyId : undefined}
          onClick={onStart}
        >
          {start.isPending ? 'Starting…' : `Start ${what}`}
        </button>
        <button type="button" onClick={onClose}>
          Close
        </button>
      </div>
      {!plan && !check.isPending && (
        <p className="hint">Check the {what} first: its checks and plan are shown before anything changes.</p>
      )}
      {check.isPending && <Loading what="the dry run" />}
      {check.isError && check.error && <Failed error={check.error} />}
      {plan && !plan.ok && (
        <p className="error" id={whyId}>
          The {what} cannot start:{' '}
          {plan.checks
            .filter((c) => !c.ok)
            .map((c) => `${c.check} (${c.detail})`)
            .join('; ')}
          .
        </p>
      )}
      {start.error && (
        <p role="alert" className="error">
          {describeError(start.error)}
        </p>
      )}
      {plan && <PlanView plan={plan} />}
    </>
  );
}

/** The move form: target host, datastore per disk, advanced flags; then the dry run and the start. */
export function MovePanel({ vm, onClose }: { vm: Vm; onClose: () => void }) {
  const [form, setForm] = useState<MoveForm>(emptyMoveForm);
  const hosts = useApi('listHosts', { query: { limit: 1000 } });
  const datastores = useApi(
    'listDatastores',
    { query: { host: form.to, limit: 1000 } },
    { enabled: form.to !== '' },
  );
  const check = useDryRun('moveVm', vm.id);
  const start = useAction('moveVm');
  const [job, setJob] = useState<Job | undefined>(undefined);
  const ids = { host: useId(), advanced: useId() };
  const titleId = useId();

  // Any change of the form makes the plan shown stale: it is checked again before a start.
  const change = (next: MoveForm) => {
    setForm(next);
    check.reset();
    start.reset();
  };
  const targets = (hosts.data?.items ?? []).filter((h) => h.name !== vm.host);
  const defaultStore = datastores.data?.items.find((d) => d.default)?.name;

  return (
    <section className="panel" aria-labelledby={titleId}>
      <h2 id={titleId}>Move {vm.name} to another host</h2>
      {job ? (
        <MoveJob job={job} label="Move progress" vmName={vm.name} onClose={onClose} />
      ) : (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            if (form.to) check.mutate(moveRequest(form));
          }}
        >
          <div className="fields">
            <label htmlFor={ids.host}>Target host</label>
            {hosts.isError ? (
              <Failed error={hosts.error} retry={() => void hosts.refetch()} />
            ) : (
              <select
                id={ids.host}
                value={form.to}
                required
                onChange={(e) => change({ ...form, to: e.target.value, datastores: {} })}
              >
                <option value="">{hosts.data ? 'Choose a host…' : 'Loading hosts…'}</option>
                {targets.map((h) => (
                  <option key={h.id} value={h.name} disabled={h.state !== 'connected'}>
                    {h.name} ({h.class}
                    {h.pool ? `, pool ${h.pool}` : ''}, {bytes(h.memoryFreeBytes)} memory not promised
                    {h.state !== 'connected' ? `, ${h.state}` : ''})
                  </option>
                ))}
              </select>
            )}
            {hosts.data && targets.length === 0 && <p className="hint">No other host to move to.</p>}
            {vm.disks.map((d) => (
              <DiskTarget
                key={d.id}
                disk={d.id}
                current={`${vm.host}:${d.datastore}`}
                value={form.datastores[d.id] ?? ''}
                disabled={form.to === '' || !datastores.data}
                defaultName={defaultStore}
                options={(datastores.data?.items ?? []).map((s) => ({
                  value: s.name,
                  text: `${s.name} (${s.class}, ${bytes(s.freeBytes)} free)`,
                }))}
                onChange={(value) => change({ ...form, datastores: { ...form.datastores, [d.id]: value } })}
              />
            ))}
          </div>
          {datastores.isError && <Failed error={datastores.error} retry={() => void datastores.refetch()} />}
          <details className="advanced">
            <summary>Advanced options</summary>
            <p className="hint" id={ids.advanced}>
              Off by default, as with <code>silobreak vm move</code> without flags.
            </p>
            <label>
              <input
                type="checkbox"
                checked={form.noSecure}
                onChange={(e) => change({ ...form, noSecure: e.target.checked })}
              />
              Without TLS (--no-secure): only on a trusted dedicated link
            </label>
            <label>
              <input
                type="checkbox"
                checked={form.keepSource}
                onChange={(e) => change({ ...form, keepSource: e.target.checked })}
              />
              Keep the source disk files (--keep-source)
            </label>
            <label>
              <input
                type="checkbox"
                checked={form.retain}
                onChange={(e) => change({ ...form, retain: e.target.checked })}
              />
              Keep a retained copy on the source (--retain): a move back sends only what changed
            </label>
          </details>
          <DryRunSteps
            what="move"
            canCheck={form.to !== ''}
            check={check}
            start={start}
            onStart={() =>
              start.mutate(
                { params: { vm: vm.id }, body: moveRequest(form) },
                { onSuccess: (reply) => setJob(reply.job) },
              )
            }
            onClose={onClose}
          />
        </form>
      )}
    </section>
  );
}

function DiskTarget({
  disk,
  current,
  value,
  disabled,
  defaultName,
  options,
  onChange,
}: {
  disk: string;
  current: string;
  value: string;
  disabled: boolean;
  defaultName: string | undefined;
  options: { value: string; text: string }[];
  onChange: (value: string) => void;
}) {
  const id = useId();
  return (
    <>
      <label htmlFor={id}>Datastore for disk {disk}</label>
      <span className="with-hint">
        <select id={id} value={value} disabled={disabled} onChange={(e) => onChange(e.target.value)}>
          <option value="">The target&apos;s default{defaultName ? ` (${defaultName})` : ''}</option>
          {options.map((o) => (
            <option key={o.value} value={o.value}>
              {o.text}
            </option>
          ))}
        </select>
        <span className="hint"> now on {current}</span>
      </span>
    </>
  );
}

/** Moving the VM's disks to another datastore of its own host (live). */
export function MoveStoragePanel({ vm, onClose }: { vm: Vm; onClose: () => void }) {
  const [datastore, setDatastore] = useState('');
  const [disks, setDisks] = useState<string[]>([]);
  const stores = useApi('listDatastores', { query: { host: vm.host, limit: 1000 } });
  const check = useDryRun('moveVmStorage', vm.id);
  const start = useAction('moveVmStorage');
  const [job, setJob] = useState<Job | undefined>(undefined);
  const titleId = useId();
  const storeId = useId();
  const all = vm.disks.map((d) => d.id);
  const body = moveStorageRequest(datastore, disks, all);
  const reset = () => {
    check.reset();
    start.reset();
  };
  return (
    <section className="panel" aria-labelledby={titleId}>
      <h2 id={titleId}>
        Move the disks of {vm.name} to another datastore of {vm.host}
      </h2>
      {job ? (
        <MoveJob job={job} label="Storage move progress" vmName={vm.name} onClose={onClose} />
      ) : (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            if (datastore) check.mutate(body);
          }}
        >
          <div className="fields">
            <label htmlFor={storeId}>Target datastore</label>
            <select
              id={storeId}
              value={datastore}
              required
              onChange={(e) => {
                setDatastore(e.target.value);
                reset();
              }}
            >
              <option value="">{stores.data ? 'Choose a datastore…' : 'Loading datastores…'}</option>
              {(stores.data?.items ?? []).map((s) => (
                <option key={s.id} value={s.name}>
                  {s.name} ({s.class}, {bytes(s.freeBytes)} free)
                </option>
              ))}
            </select>
          </div>
          {stores.isError && <Failed error={stores.error} retry={() => void stores.refetch()} />}
          <fieldset className="disks">
            <legend>Disks (none ticked: every disk not there yet)</legend>
            {vm.disks.map((d) => (
              <label key={d.id}>
                <input
                  type="checkbox"
                  checked={disks.includes(d.id)}
                  onChange={(e) => {
                    setDisks(e.target.checked ? [...disks, d.id] : disks.filter((x) => x !== d.id));
                    reset();
                  }}
                />
                Disk {d.id} (now on {d.datastore})
              </label>
            ))}
          </fieldset>
          <DryRunSteps
            what="storage move"
            canCheck={datastore !== ''}
            check={check}
            start={start}
            onStart={() =>
              start.mutate({ params: { vm: vm.id }, body }, { onSuccess: (reply) => setJob(reply.job) })
            }
            onClose={onClose}
          />
        </form>
      )}
    </section>
  );
}

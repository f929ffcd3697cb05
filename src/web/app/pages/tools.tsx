// Guest tools and retained copies: the VMs whose guest agent needs an upgrade (or is missing, or
// silent), with one click that inserts the host's tools disk; and the retained copies VMs left on
// hosts they moved away from (size, age, expiry), each releasable. Actions only for admin tokens.
import { useState } from 'react';
import { Link } from 'react-router';
import { describeError, type Output } from '../api.js';
import { useJobProgress } from '../events.js';
import { bytes, when } from '../format.js';
import { useAction, useApi } from '../hooks.js';
import { isInFlight } from '../move-figures.js';
import { ToolsBadge } from '../parts/badges.js';
import { ConfirmDialog } from '../parts/confirm.js';
import { actionColumns, figureColumn } from '../parts/columns.js';
import { DataTable, type Column } from '../parts/data-table.js';
import { Failed, Loaded, Loading } from '../parts/states.js';
import { useSession } from '../session.js';
import { ATTENTION, copyAge, copyDatastores, expiryText, toolsAdvice } from './tools-figures.js';
import './tools.css';

type Vm = Output<'listVms'>['items'][number];
type Copy = Output<'listRetainedCopies'>[number];

export function ToolsPage() {
  return (
    <section className="tools-page">
      <h1>Guest tools and retained copies</h1>
      <GuestTools />
      <RetainedCopies />
    </section>
  );
}

function GuestTools() {
  const { canWrite } = useSession();
  const outdated = useApi('listVms', { query: { tools: 'outdated', limit: 1000 } });
  const missing = useApi('listVms', { query: { tools: 'missing', limit: 1000 } });
  const silent = useApi('listVms', { query: { tools: 'not-answering', limit: 1000 } });
  const queries = [outdated, missing, silent];
  const failed = queries.find((q) => q.isError);
  const rows: Vm[] = queries.flatMap((q) => q.data?.items ?? []);
  const order = (v: Vm) => ATTENTION.indexOf((v.tools?.status ?? 'outdated') as (typeof ATTENTION)[number]);

  const columns: Column<Vm>[] = [
    {
      key: 'vm',
      label: 'VM',
      value: (v) => v.name,
      render: (v) => <Link to={`/vms/${encodeURIComponent(v.name)}`}>{v.name}</Link>,
    },
    {
      key: 'host',
      label: 'Host',
      value: (v) => v.host,
      render: (v) => <Link to={`/hosts/${encodeURIComponent(v.host)}`}>{v.host}</Link>,
    },
    {
      key: 'status',
      label: 'Tools',
      value: (v) => order(v),
      render: (v) => <ToolsBadge status={v.tools?.status ?? null} />,
    },
    { key: 'installed', label: 'In the guest', value: (v) => v.tools?.installed ?? '—' },
    { key: 'current', label: "Host's tools disk", value: (v) => v.tools?.current ?? 'none' },
    {
      key: 'disk',
      label: 'Tools disk',
      value: (v) => (v.toolsDisk ? 'inserted' : 'not inserted'),
      render: (v) => (v.toolsDisk ? <strong>inserted</strong> : 'not inserted'),
    },
    {
      key: 'advice',
      label: 'What to do',
      value: (v) => (v.tools ? toolsAdvice(v.tools) : ''),
    },
    ...actionColumns(canWrite, (v: Vm) => <ToolsAction vm={v} />),
  ];

  return (
    <section aria-labelledby="guest-tools">
      <h2 id="guest-tools">VMs whose guest tools need attention</h2>
      <p className="hint">
        Outdated: the guest agent is older than the tools disk of the VM&apos;s host. Inserting the disk
        attaches it to a running VM at once (or at the next start); then run <code>install.sh</code> from it
        in the guest, and the status turns current without a reboot.
      </p>
      {failed ? (
        <Failed error={failed.error} retry={() => void Promise.all(queries.map((q) => q.refetch()))} />
      ) : queries.some((q) => q.data === undefined) ? (
        <Loading what="guest tools" />
      ) : (
        <DataTable
          rows={rows}
          columns={columns}
          rowKey={(v) => v.id}
          caption="VMs with outdated, missing or silent guest tools"
          initialSort={{ key: 'status', desc: false }}
          search
          empty="Every running VM's guest tools are current."
        />
      )}
    </section>
  );
}

/** Insert (or, once inserted, eject) the tools disk of one VM, following the job to its end. */
function ToolsAction({ vm }: { vm: Vm }) {
  const insert = useAction('insertVmTools');
  const eject = useAction('ejectVmTools');
  const [jobId, setJobId] = useState<string | undefined>();
  const job = useJobProgress(jobId);
  const running = jobId !== undefined && (job === undefined || isInFlight(job));
  const error = insert.error ?? eject.error;
  return (
    <div className="row-actions">
      {vm.toolsDisk ? (
        <button
          type="button"
          aria-label={`Eject tools disk from ${vm.name}`}
          disabled={running || eject.isPending}
          onClick={() =>
            eject.mutate({ params: { vm: vm.name }, body: {} }, { onSuccess: (r) => setJobId(r.job.id) })
          }
        >
          Eject
        </button>
      ) : (
        <button
          type="button"
          className="primary"
          aria-label={`Insert tools disk into ${vm.name}`}
          disabled={running || insert.isPending || vm.tools?.current === null}
          title={vm.tools?.current === null ? 'Its host has no tools disk' : undefined}
          onClick={() =>
            insert.mutate({ params: { vm: vm.name }, body: {} }, { onSuccess: (r) => setJobId(r.job.id) })
          }
        >
          Insert tools disk
        </button>
      )}
      <span role="status" className="hint">
        {running
          ? 'working…'
          : job?.state === 'succeeded'
            ? vm.toolsDisk
              ? 'Tools disk inserted.'
              : 'Ejected.'
            : ''}
      </span>
      {(error ?? job?.error) && (
        <span role="alert" className="error">
          {error ? describeError(error) : job?.error?.detail}
        </span>
      )}
    </div>
  );
}

function RetainedCopies() {
  const { canWrite } = useSession();
  const copies = useApi('listRetainedCopies', { query: {} });
  const release = useAction('releaseRetainedCopy');
  const [target, setTarget] = useState<Copy | undefined>();
  const [error, setError] = useState<string | undefined>();
  const now = Date.now();

  const columns: Column<Copy>[] = [
    {
      key: 'vm',
      label: 'VM',
      value: (c) => c.vm.name,
      render: (c) => <Link to={`/vms/${encodeURIComponent(c.vm.name)}`}>{c.vm.name}</Link>,
    },
    { key: 'host', label: 'Host', value: (c) => c.host },
    { key: 'datastore', label: 'Datastore', value: (c) => copyDatastores(c.datastores).join(', ') },
    figureColumn('size', 'Size', (c) => c.allocatedBytes, bytes),
    {
      key: 'age',
      label: 'Age',
      value: (c) => -Date.parse(c.departedAt),
      render: (c) => (
        <time dateTime={c.departedAt} title={when(c.departedAt)}>
          {copyAge(c.departedAt, now)}
        </time>
      ),
    },
    {
      key: 'expiry',
      label: 'Expires',
      value: (c) => Date.parse(c.expiresAt),
      render: (c) => (
        <time dateTime={c.expiresAt} title={when(c.expiresAt)}>
          {expiryText(c.expiresAt, now)}
        </time>
      ),
    },
    {
      key: 'state',
      label: 'State',
      value: (c) => c.state,
      render: (c) => (
        <>
          <span className={`badge copy-${c.state}`}>{c.state}</span>
          {c.reason && <span className="hint"> {c.reason}</span>}
        </>
      ),
    },
    ...actionColumns(canWrite, (c: Copy) => (
      <button
        type="button"
        aria-label={`Delete retained copy of ${c.vm.name} on ${c.host}`}
        onClick={() => {
          setError(undefined);
          setTarget(c);
        }}
      >
        Delete
      </button>
    )),
  ];

  const confirmDelete = () => {
    if (!target) return;
    release.mutate(
      { params: { id: target.id } },
      { onSuccess: () => setTarget(undefined), onError: (e) => setError(describeError(e)) },
    );
  };

  return (
    <section aria-labelledby="retained">
      <h2 id="retained">Retained copies</h2>
      <p className="hint">
        Disks a VM left on a host it moved away from, kept so a move back sends only what changed (usable),
        until they expire.
      </p>
      <Loaded query={copies} what="retained copies">
        {(list) => (
          <DataTable
            rows={list}
            columns={columns}
            rowKey={(c) => c.id}
            caption="Retained copies by VM and host"
            initialSort={{ key: 'expiry', desc: false }}
            search
            empty="No retained copies: no VM has moved away from a host since the last ones expired."
          />
        )}
      </Loaded>
      <ConfirmDialog
        open={target !== undefined}
        title={target ? `Delete the retained copy of ${target.vm.name} on ${target.host}?` : ''}
        confirmLabel="Delete copy"
        danger
        busy={release.isPending}
        onConfirm={confirmDelete}
        onCancel={() => setTarget(undefined)}
      >
        {target && (
          <p>
            Its images ({bytes(target.allocatedBytes)} on {copyDatastores(target.datastores).join(', ')}) are
            deleted on {target.host}; a later move of {target.vm.name} back there copies its disks in full.
          </p>
        )}
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
      </ConfirmDialog>
    </section>
  );
}

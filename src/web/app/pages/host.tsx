// One host: what its agent reports, its certificate, its datastores (space, class, limits,
// measured speed) and its VMs.
import { Link, useParams } from 'react-router';
import type { Output } from '../api.js';
import { bytes, fixed, rate, when } from '../format.js';
import { useApi } from '../hooks.js';
import { datastorePath } from '../paths.js';
import { StateBadge, ToolsBadge } from '../parts/badges.js';
import { figureColumn } from '../parts/columns.js';
import { DataTable, type Column } from '../parts/data-table.js';
import { Loaded } from '../parts/states.js';

type Datastore = Output<'listDatastores'>['items'][number];
type Vm = Output<'listVms'>['items'][number];

const DATASTORE_COLUMNS: Column<Datastore>[] = [
  {
    key: 'name',
    label: 'Datastore',
    value: (d) => d.name,
    render: (d) => (
      <Link to={datastorePath(d.host, d.name)}>
        {d.name}
        {d.default ? ' (default)' : ''}
      </Link>
    ),
  },
  { key: 'class', label: 'Class', value: (d) => d.class },
  figureColumn('capacity', 'Capacity', (d) => d.capacityBytes, bytes),
  figureColumn('free', 'Free', (d) => d.freeBytes, bytes),
  {
    key: 'limits',
    label: 'Limits',
    value: (d) => (d.limits ? `${d.limits.iops ?? '∞'} IOPS, ${rate(d.limits.bytesPerSecond)}` : 'none'),
  },
  {
    key: 'probe',
    label: 'Measured',
    value: (d) => d.probe?.iops,
    render: (d) =>
      d.probe
        ? `${fixed(d.probe.iops, 0)} IOPS, ${rate(d.probe.bytesPerSecond)} (${when(d.probe.probedAt)})`
        : 'not probed',
  },
];

const VM_COLUMNS: Column<Vm>[] = [
  {
    key: 'name',
    label: 'VM',
    value: (v) => v.name,
    render: (v) => <Link to={`/vms/${encodeURIComponent(v.name)}`}>{v.name}</Link>,
  },
  { key: 'state', label: 'State', value: (v) => v.state, render: (v) => <StateBadge state={v.state} /> },
  { key: 'vcpus', label: 'vCPUs', value: (v) => v.vcpus, numeric: true },
  {
    key: 'memory',
    label: 'Memory',
    value: (v) => v.memoryMiB,
    render: (v) => `${v.memoryMiB} MiB`,
    numeric: true,
  },
  {
    key: 'tools',
    label: 'Tools',
    value: (v) => v.tools?.status,
    render: (v) => <ToolsBadge status={v.tools?.status ?? null} />,
  },
  { key: 'ip', label: 'IP', value: (v) => v.guestIp },
];

export function HostPage() {
  const name = useParams().host ?? '';
  const host = useApi('getHost', { params: { host: name } });
  const datastores = useApi('listDatastores', { query: { host: name, limit: 1000 } });
  const vms = useApi('listVms', { query: { host: name, limit: 1000 } });
  return (
    <section>
      <p className="crumbs">
        <Link to="/">Fabric</Link> › host
      </p>
      <Loaded query={host} what={`host ${name}`}>
        {(h) => (
          <>
            <h1>
              {h.name} <StateBadge state={h.state} />
            </h1>
            {h.lastError && <p className="error">{h.lastError}</p>}
            <dl className="facts wide">
              <dt>Pool</dt>
              <dd>{h.pool ?? '—'}</dd>
              <dt>Class</dt>
              <dd>{h.class}</dd>
              <dt>Fabric address</dt>
              <dd>{h.fabricAddress}</dd>
              <dt>Agent</dt>
              <dd>
                {h.agentUrl} · v{h.agentVersion}
              </dd>
              <dt>QEMU</dt>
              <dd>
                {h.qemuVersion} · {h.machineType} · CPU {h.cpuModel}
              </dd>
              <dt>Accelerator</dt>
              <dd>
                {h.accelerator}
                {h.acceleratorWarning ? ` (${h.acceleratorWarning})` : ''}
              </dd>
              <dt>CPUs, memory</dt>
              <dd>
                {h.cpus} cores · {bytes(h.memoryBytes)} ({bytes(h.memoryFreeBytes)} not promised)
              </dd>
              <dt>Tools disk</dt>
              <dd>{h.toolsVersion ?? 'none'}</dd>
              <dt>Certificate</dt>
              <dd>
                {h.certificate
                  ? `serial ${h.certificate.serial}, until ${when(h.certificate.notAfter)}`
                  : '—'}
              </dd>
              <dt>Last seen</dt>
              <dd>{when(h.lastSeenAt)}</dd>
            </dl>
          </>
        )}
      </Loaded>
      <h2>Datastores</h2>
      <Loaded query={datastores} what="datastores">
        {(page) => (
          <DataTable
            caption={`Datastores of ${name}`}
            rows={page.items}
            columns={DATASTORE_COLUMNS}
            rowKey={(d) => d.id}
            initialSort={{ key: 'name', desc: false }}
          />
        )}
      </Loaded>
      <h2>VMs</h2>
      <Loaded query={vms} what="VMs">
        {(page) => (
          <DataTable
            caption={`VMs on ${name}`}
            rows={page.items}
            columns={VM_COLUMNS}
            rowKey={(v) => v.id}
            search
            initialSort={{ key: 'name', desc: false }}
          />
        )}
      </Loaded>
    </section>
  );
}

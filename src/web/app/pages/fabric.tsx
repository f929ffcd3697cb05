// The fabric at a glance: hosts grouped by pool (class, CPU, memory, datastores, accelerator,
// tools version) and each host's VMs (state, tools, IP, where their disks live); one search box
// filters both.
import { useMemo, useState } from 'react';
import { Link } from 'react-router';
import type { Output } from '../api.js';
import { bytes, percent } from '../format.js';
import { useApi } from '../hooks.js';
import { Empty, Failed, Loading } from '../parts/states.js';
import { StateBadge, ToolsBadge } from '../parts/badges.js';

type Host = Output<'listHosts'>['items'][number];
type Vm = Output<'listVms'>['items'][number];
type Datastore = Output<'listDatastores'>['items'][number];

const ALL = { query: { limit: 1000 } } as const;

export function FabricPage() {
  const hosts = useApi('listHosts', ALL);
  const vms = useApi('listVms', ALL);
  const datastores = useApi('listDatastores', ALL);
  const [text, setText] = useState('');
  const [state, setState] = useState('');

  const byHost = useMemo(() => {
    const map = new Map<string, { vms: Vm[]; datastores: Datastore[] }>();
    const of = (h: string) => map.get(h) ?? (map.set(h, { vms: [], datastores: [] }), map.get(h)!);
    for (const vm of vms.data?.items ?? []) of(vm.host).vms.push(vm);
    for (const d of datastores.data?.items ?? []) of(d.host).datastores.push(d);
    return map;
  }, [vms.data, datastores.data]);

  const error = hosts.error ?? vms.error ?? datastores.error;
  if (error) return <Failed error={error} retry={() => void Promise.all([hosts.refetch(), vms.refetch()])} />;
  if (!hosts.data || !vms.data || !datastores.data) return <Loading what="the fabric" />;

  const needle = text.trim().toLowerCase();
  const vmMatches = (vm: Vm) =>
    (!state || vm.state === state) &&
    (!needle ||
      vm.name.toLowerCase().includes(needle) ||
      (vm.guestIp ?? '').includes(needle) ||
      vm.disks.some((d) => d.datastore.toLowerCase().includes(needle)));
  const pools = new Map<string, Host[]>();
  for (const host of hosts.data.items) {
    const hostMatches =
      !needle || host.name.toLowerCase().includes(needle) || (host.pool ?? '').includes(needle);
    const anyVm = (byHost.get(host.name)?.vms ?? []).some(vmMatches);
    if (!hostMatches && !anyVm && (needle || state)) continue;
    const pool = host.pool ?? '(no pool)';
    pools.set(pool, [...(pools.get(pool) ?? []), host]);
  }
  const running = vms.data.items.filter((v) => v.state === 'running').length;

  return (
    <section>
      <h1>Fabric</h1>
      <p className="summary">
        {hosts.data.items.length} hosts · {vms.data.items.length} VMs ({running} running)
      </p>
      <div className="filters" role="search">
        <label>
          Search{' '}
          <input
            type="search"
            value={text}
            onChange={(e) => setText(e.target.value)}
            placeholder="host, VM, IP, datastore"
          />
        </label>
        <label>
          VM state{' '}
          <select value={state} onChange={(e) => setState(e.target.value)}>
            <option value="">any</option>
            <option value="running">running</option>
            <option value="stopped">stopped</option>
            <option value="paused">paused</option>
          </select>
        </label>
      </div>
      {hosts.data.items.length === 0 && (
        <Empty>
          No hosts yet. On a host, <code>silobreak agent-join-token</code> prints a join token; then{' '}
          <code>silobreak host add ADDRESS:PORT --join-token TOKEN</code>.
        </Empty>
      )}
      {[...pools.entries()].map(([pool, members]) => (
        <section key={pool} className="pool" aria-labelledby={`pool-${pool}`}>
          <h2 id={`pool-${pool}`}>Pool {pool}</h2>
          <div className="hosts">
            {members.map((host) => (
              <HostCard
                key={host.id}
                host={host}
                vms={(byHost.get(host.name)?.vms ?? []).filter(vmMatches)}
                datastores={byHost.get(host.name)?.datastores ?? []}
              />
            ))}
          </div>
        </section>
      ))}
    </section>
  );
}

function HostCard({ host, vms, datastores }: { host: Host; vms: Vm[]; datastores: Datastore[] }) {
  const capacity = datastores.reduce((s, d) => s + d.capacityBytes, 0);
  const used = datastores.reduce((s, d) => s + d.capacityBytes - d.freeBytes, 0);
  const memUsed = host.memoryBytes - host.memoryFreeBytes;
  return (
    <article className="host card" aria-labelledby={`host-${host.name}`}>
      <header>
        <h3 id={`host-${host.name}`}>
          <Link to={`/hosts/${encodeURIComponent(host.name)}`}>{host.name}</Link>
        </h3>
        <StateBadge state={host.state} />
        <span className={`class ${host.class}`}>{host.class}</span>
      </header>
      <dl className="facts">
        <dt>CPU</dt>
        <dd>{host.cpus} cores</dd>
        <dt>Memory</dt>
        <dd>
          {bytes(memUsed)} of {bytes(host.memoryBytes)} promised (
          {percent((100 * memUsed) / host.memoryBytes)})
        </dd>
        <dt>Datastores</dt>
        <dd>
          {datastores.length} · {bytes(used)} of {bytes(capacity)} used
        </dd>
        <dt>Accelerator</dt>
        <dd title={host.acceleratorWarning}>{host.accelerator}</dd>
        <dt>Tools</dt>
        <dd>{host.toolsVersion ?? 'none'}</dd>
      </dl>
      {host.lastError && <p className="error">{host.lastError}</p>}
      <table className="vms">
        <caption>VMs on {host.name}</caption>
        <thead>
          <tr>
            <th scope="col">VM</th>
            <th scope="col">State</th>
            <th scope="col">Tools</th>
            <th scope="col">IP</th>
            <th scope="col">Disks on</th>
          </tr>
        </thead>
        <tbody>
          {vms.length === 0 ? (
            <tr>
              <td colSpan={5} className="state empty">
                No VMs.
              </td>
            </tr>
          ) : (
            vms.map((vm) => (
              <tr key={vm.id}>
                <td>
                  <Link to={`/vms/${encodeURIComponent(vm.name)}`}>{vm.name}</Link>
                </td>
                <td>
                  <StateBadge state={vm.state} />
                </td>
                <td>
                  <ToolsBadge status={vm.tools?.status ?? null} />
                </td>
                <td>{vm.guestIp?.replace(/\/\d+$/, '') ?? '—'}</td>
                <td>{[...new Set(vm.disks.map((d) => d.datastore))].join(', ') || '—'}</td>
              </tr>
            ))
          )}
        </tbody>
      </table>
    </article>
  );
}

import { randomUUID } from 'node:crypto';
import {
  LEASE_HOST_ID,
  VmHaRequest,
  type Cluster,
  type FieldChange,
  type Host,
  type Job,
  type ManagedVm,
} from '../api/index.js';
import type { Caller } from './auth.js';
import { nowIso, recordChanges, type Actor } from './changes.js';
import type { Db, Tx } from './db.js';
import { DRAIN_JOB_KIND, drainsInFlight, movesInvolving } from './drain.js';
import { STAYING_STATES } from './drain-plan.js';
import { Conflict, InvalidInput, JobFinished } from './errors.js';
import {
  clusterRow,
  getCluster,
  getHost,
  getVm,
  haOf,
  hostObject,
  hostRow,
  vmObject,
  type HostRow,
} from './inventory.js';
import type { JobRunner } from './jobs.js';
import { KeyedMutex } from './locks.js';

/*
 * Clusters (issue 30): create, delete, a host's join and eviction (with its sanlock host id), a
 * VM's HA settings, and a host's maintenance (entering it starts a drain, drain.ts). Each change
 * with its change record in one transaction, as the rest of the inventory.
 */

export interface ClusterDeps {
  db: Db;
  jobs: JobRunner;
}

const actorOf = (caller: Caller): Actor => ({ name: caller.name });
/** A caller, or a job acting for one (its id goes into the change records it makes). */
const actorIn = (by: Actor): Actor => ({ name: by.name, ...(by.jobId ? { jobId: by.jobId } : {}) });
const clusterObject = (c: { id: string; name: string }) => ({
  kind: 'cluster' as const,
  id: c.id,
  name: c.name,
});

/** The lowest lease host id not in `taken` (sanlock's 1..2000), or undefined when all are. */
export function lowestFreeLeaseId(taken: readonly number[]): number | undefined {
  const used = new Set(taken);
  for (let id = LEASE_HOST_ID.min; id <= LEASE_HOST_ID.max; id++) if (!used.has(id)) return id;
  return undefined;
}

/** What entering maintenance did: the host is `in` at once, or a drain job moves its VMs off. */
export type MaintenanceAnswer = { host: Host } | { job: Job };

export class ClusterService {
  /** Maintenance changes of one host go one at a time (no two drains of a host). */
  readonly #hostMaintenance = new KeyedMutex();

  constructor(private readonly deps: ClusterDeps) {}

  async createCluster(caller: Caller, name: string): Promise<Cluster> {
    const { db } = this.deps;
    const id = randomUUID();
    await db.transaction().execute(async (tx) => {
      const taken = await tx.selectFrom('clusters').select('id').where('name', '=', name).executeTakeFirst();
      if (taken) throw new Conflict(`name: a cluster named ${name} already exists`, 'name');
      await tx.insertInto('clusters').values({ id, name, created_at: nowIso() }).execute();
      await recordChanges(tx, actorOf(caller), [{ object: clusterObject({ id, name }), action: 'created' }]);
    });
    return getCluster(db, id);
  }

  async deleteCluster(caller: Caller, ref: string): Promise<void> {
    await this.deps.db.transaction().execute(async (tx) => {
      const cluster = await clusterRow(tx, ref);
      const members = await memberNames(tx, cluster.id);
      if (members.length)
        throw new Conflict(
          `cluster ${cluster.name} still has hosts (${members.join(', ')}): evict them first (silobreak cluster evict ${cluster.name} <host>)`,
        );
      await tx.deleteFrom('clusters').where('id', '=', cluster.id).execute();
      await recordChanges(tx, actorOf(caller), [{ object: clusterObject(cluster), action: 'deleted' }]);
    });
  }

  /**
   * A host joins: refused while it is in another cluster; it gets the lowest free lease host id.
   * Joining its own cluster again changes nothing.
   */
  async join(caller: Caller, clusterRef: string, hostRef: string): Promise<Cluster> {
    const { db } = this.deps;
    const id = await db.transaction().execute(async (tx) => {
      const cluster = await clusterRow(tx, clusterRef);
      const host = await hostRow(tx, hostRef, 'host');
      if (host.cluster_id === cluster.id) return cluster.id;
      if (host.cluster_id !== null) {
        const other = await clusterRow(tx, host.cluster_id);
        throw new Conflict(
          `host: ${host.name} is already in cluster ${other.name}; evict it there first (silobreak cluster evict ${other.name} ${host.name})`,
          'host',
        );
      }
      // The cluster's lockspace lives on its lease storage (ha/service.ts): a host that does not
      // see it could hold no lease, and no VM of the cluster could restart there.
      if (cluster.lease_storage_id !== null) {
        const sees = await tx
          .selectFrom('datastores')
          .select('name')
          .where('host_id', '=', host.id)
          .where('storage_id', '=', cluster.lease_storage_id)
          .executeTakeFirst();
        if (!sees)
          throw new Conflict(
            `host: ${host.name} has no datastore on storage ${cluster.lease_storage_id}, which holds cluster ${cluster.name}'s leases: mount it there and add it as a shared datastore first`,
            'host',
          );
      }
      const taken = await tx
        .selectFrom('hosts')
        .select('lease_host_id')
        .where('cluster_id', '=', cluster.id)
        .execute();
      const leaseId = lowestFreeLeaseId(taken.map((t) => t.lease_host_id ?? 0));
      if (leaseId === undefined)
        throw new Conflict(
          `host: cluster ${cluster.name} has ${LEASE_HOST_ID.max} hosts, every lease host id is taken`,
          'host',
        );
      const before = await memberNames(tx, cluster.id);
      await tx
        .updateTable('hosts')
        .set({ cluster_id: cluster.id, lease_host_id: leaseId })
        .where('id', '=', host.id)
        .execute();
      await recordMembers(tx, caller, cluster, before, [...before, host.name].sort());
      return cluster.id;
    });
    return getCluster(db, id);
  }

  /**
   * A host leaves its cluster: refused while HA-protected VMs run on it (outside the cluster no
   * host would restart them): drain it first, or unprotect them. There is no force: both ways out
   * say what happens to those VMs.
   */
  async evict(caller: Caller, clusterRef: string, hostRef: string): Promise<Cluster> {
    const { db } = this.deps;
    const id = await db.transaction().execute(async (tx) => {
      const cluster = await clusterRow(tx, clusterRef);
      const host = await hostRow(tx, hostRef, 'host');
      if (host.cluster_id !== cluster.id)
        throw new InvalidInput(`host: ${host.name} is not in cluster ${cluster.name}`, 'host');
      const guarded = await tx
        .selectFrom('vms')
        .select('name')
        .where('host_id', '=', host.id)
        .where('ha_protected', '=', 1)
        .where('state', 'not in', [...STAYING_STATES])
        .orderBy('name')
        .execute();
      if (guarded.length) {
        const names = guarded.map((v) => v.name);
        throw new Conflict(
          `host: ${host.name} runs HA-protected VMs (${names.join(', ')}): drain it first (silobreak host drain ${host.name}) or unprotect them (silobreak vm ha ${names[0]} --unprotect)`,
          'host',
        );
      }
      const before = await memberNames(tx, cluster.id);
      await tx
        .updateTable('hosts')
        .set({ cluster_id: null, lease_host_id: null })
        .where('id', '=', host.id)
        .execute();
      await recordMembers(
        tx,
        caller,
        cluster,
        before,
        before.filter((n) => n !== host.name),
      );
      return cluster.id;
    });
    return getCluster(db, id);
  }

  /** Replaces a VM's HA settings; each preferred host must exist. */
  async setVmHa(caller: Caller, ref: string, req: VmHaRequest): Promise<ManagedVm> {
    const { db } = this.deps;
    const ha = VmHaRequest.parse(req);
    const vm = await getVm(db, ref);
    await db.transaction().execute(async (tx) => {
      const known = new Set(
        ha.preferredHosts.length
          ? (
              await tx.selectFrom('hosts').select('name').where('name', 'in', ha.preferredHosts).execute()
            ).map((h) => h.name)
          : [],
      );
      ha.preferredHosts.forEach((name, i) => {
        if (!known.has(name))
          throw new InvalidInput(
            `preferredHosts.${i}: no host named ${name} (silobreak host list shows them)`,
            `preferredHosts.${i}`,
          );
      });
      const row = await tx
        .selectFrom('vms')
        .select(['ha_protected', 'ha_priority', 'ha_preferred_hosts', 'state'])
        .where('id', '=', vm.id)
        .executeTakeFirstOrThrow();
      const before = haOf(row);
      const changes: FieldChange[] = [];
      if (before.protected !== ha.protected)
        changes.push({ field: 'ha.protected', before: before.protected, after: ha.protected });
      if (before.priority !== ha.priority)
        changes.push({ field: 'ha.priority', before: before.priority, after: ha.priority });
      if (before.preferredHosts.join(',') !== ha.preferredHosts.join(','))
        changes.push({ field: 'ha.preferredHosts', before: before.preferredHosts, after: ha.preferredHosts });
      if (!changes.length) return;
      const now = nowIso();
      await tx
        .updateTable('vms')
        .set({
          ha_protected: ha.protected ? 1 : 0,
          ha_priority: ha.priority,
          ha_preferred_hosts: JSON.stringify(ha.preferredHosts),
          updated_at: now,
        })
        .where('id', '=', vm.id)
        .execute();
      await recordChanges(
        tx,
        actorOf(caller),
        [
          {
            object: vmObject(vm),
            action: 'setting-changed',
            host: vm.host,
            vmRunning: !STAYING_STATES.includes(vm.state),
            changes,
          },
        ],
        now,
      );
    });
    return getVm(db, vm.id);
  }

  /**
   * Puts a host into maintenance. No VM runs there (and none is on its way): `in` at once.
   * Otherwise `entering`, and a drain job moves its running VMs off (drain.ts); a drain already
   * under way is answered again. Stopped VMs stay.
   */
  async enterMaintenance(by: Actor, ref: string): Promise<MaintenanceAnswer> {
    const { db, jobs } = this.deps;
    const caller = { name: by.name };
    const found = await hostRow(db, ref);
    return this.#hostMaintenance.run(found.id, async () => {
      const host = await hostRow(db, found.id);
      const [drain] = await drainsInFlight(db, host.id);
      if (drain) return { job: await jobs.get(drain) };
      if (!(await hasWorkToDrain(db, host.id))) {
        if (host.maintenance !== 'in')
          await db.transaction().execute((tx) => setMaintenance(tx, actorIn(by), host, 'in'));
        return { host: await getHost(db, host.id) };
      }
      const job = await jobs.submit({
        kind: DRAIN_JOB_KIND,
        target: hostObject(host),
        params: { hostId: host.id },
        actor: caller,
        details: { host: host.name },
        within: async (tx, jobId) => {
          const now = await hostRow(tx, host.id);
          if (now.maintenance !== 'entering')
            await setMaintenance(tx, { name: caller.name, jobId }, now, 'entering');
        },
      });
      return { job };
    });
  }

  /** Ends a host's maintenance; a drain under way is cancelled (its moves already started finish). */
  async resume(by: Actor, ref: string): Promise<Host> {
    const { db, jobs } = this.deps;
    const found = await hostRow(db, ref);
    return this.#hostMaintenance.run(found.id, async () => {
      for (const id of await drainsInFlight(db, found.id)) {
        await jobs.cancel(id).catch((error: unknown) => {
          if (!(error instanceof JobFinished)) throw error;
        });
      }
      await db.transaction().execute(async (tx) => {
        const host = await hostRow(tx, found.id);
        if (host.maintenance !== 'none') await setMaintenance(tx, actorIn(by), host, 'none');
      });
      return getHost(db, found.id);
    });
  }
}

/** The names of a cluster's hosts, sorted. */
async function memberNames(tx: Tx, clusterId: string): Promise<string[]> {
  const rows = await tx
    .selectFrom('hosts')
    .select('name')
    .where('cluster_id', '=', clusterId)
    .orderBy('name')
    .execute();
  return rows.map((r) => r.name);
}

function recordMembers(
  tx: Tx,
  caller: Caller,
  cluster: { id: string; name: string },
  before: string[],
  after: string[],
): Promise<void> {
  return recordChanges(tx, actorOf(caller), [
    {
      object: clusterObject(cluster),
      action: 'setting-changed',
      changes: [{ field: 'hosts', before, after }],
    },
  ]);
}

/** Sets a host's maintenance state with its change record (the host's, by `actor`). */
export async function setMaintenance(
  tx: Tx,
  actor: Actor,
  host: HostRow,
  to: HostRow['maintenance'],
): Promise<void> {
  await tx.updateTable('hosts').set({ maintenance: to }).where('id', '=', host.id).execute();
  await recordChanges(tx, actor, [
    {
      object: hostObject(host),
      action: 'state-changed',
      host: host.name,
      changes: [{ field: 'maintenance', before: host.maintenance, after: to }],
    },
  ]);
}

/** Whether a VM runs on the host (not stopped or crashed), or a move to or from it is under way. */
async function hasWorkToDrain(db: Db, hostId: string): Promise<boolean> {
  const running = await db
    .selectFrom('vms')
    .select('id')
    .where('host_id', '=', hostId)
    .where('state', 'not in', [...STAYING_STATES])
    .limit(1)
    .executeTakeFirst();
  return running !== undefined || (await movesInvolving(db, hostId)).length > 0;
}

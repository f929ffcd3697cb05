/*
 * The HA loop (issue 30), beside placement and of the same shape: facts in, a pure decision
 * (decide.ts), jobs out. Every round (2 s) it
 * - asks each cluster host's agent for its host record, with a short timeout: when each last
 *   answered is what "dead" is measured from (the inventory's reconciliation polls far less often);
 * - keeps every reachable cluster host in its cluster's lockspace (the lease storage chosen once:
 *   the smallest storage id every member sees);
 * - starts an `ha-restart` job for each protected VM of a dead host, by priority;
 * - removes what a restart leaves behind once the old host is back: the VM's stopped definition
 *   there (its disks are the running VM's and stay).
 */
import type { AgentClient, HostInfo } from '../../api/index.js';
import { nowIso, recordChanges } from '../changes.js';
import type { Db } from '../db.js';
import { hostRow, vmObject, type HostRow } from '../inventory.js';
import type { JobRunner } from '../jobs.js';
import { PeriodicLoop } from '../periodic.js';
import { decideHa, DEFAULT_HA_DEAD_AFTER_SECONDS, type HaHost, type HaVm } from './decide.js';
import { HA_RESTART_JOB_KIND } from './restart-job.js';

export const HA_ROUND_MS = 2_000;
export const HA_ACTOR = { name: 'ha' };

/** sanlock's name for a cluster's lockspace: from its id, so a rename never moves it. */
export const lockspaceName = (clusterId: string) => `sb${clusterId.replaceAll('-', '')}`.slice(0, 34);

export interface HaDeps {
  db: Db;
  jobs: JobRunner;
  /** A client with a short timeout: a probe must not outlast a round. */
  probeClientFor(host: HostRow): AgentClient;
  clientFor(host: HostRow): AgentClient;
  log(message: string): void;
  deadAfterSeconds?: number;
  intervalMs?: number;
}

export class HaService {
  readonly #loop: PeriodicLoop;
  readonly #lastSeen = new Map<string, number>();
  readonly #info = new Map<string, HostInfo | undefined>();
  readonly #started = Date.now();
  readonly #strandedSaid = new Set<string>();

  constructor(private readonly deps: HaDeps) {
    this.#loop = new PeriodicLoop(() => this.round(), deps.intervalMs ?? HA_ROUND_MS);
  }

  start(): void {
    this.#loop.start();
  }
  stop(): Promise<void> {
    return this.#loop.stop();
  }

  async round(): Promise<void> {
    try {
      await this.#round();
    } catch (error) {
      this.deps.log(`HA round failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  async #round(): Promise<void> {
    const { db } = this.deps;
    const hosts = await db
      .selectFrom('hosts')
      .innerJoin('clusters', 'clusters.id', 'hosts.cluster_id')
      .selectAll('hosts')
      .select(['clusters.name as cluster_name', 'clusters.lease_storage_id'])
      .execute();
    if (hosts.length === 0) return;
    const now = Date.now();
    await Promise.all(
      hosts.map(async (h) => {
        try {
          this.#info.set(h.id, await this.deps.probeClientFor(h).host());
          this.#lastSeen.set(h.id, Date.now());
        } catch {
          this.#info.set(h.id, undefined);
        }
      }),
    );
    const datastores = await db
      .selectFrom('datastores')
      .select(['host_id', 'name', 'kind', 'storage_id'])
      .where(
        'host_id',
        'in',
        hosts.map((h) => h.id),
      )
      .execute();
    const sharedOf = (hostId: string) =>
      datastores.filter((d) => d.host_id === hostId && d.storage_id !== null).map((d) => d.storage_id!);
    await this.#keepLockspaces(hosts, datastores);

    const haHosts: HaHost[] = hosts.map((h) => {
      const info = this.#info.get(h.id);
      return {
        name: h.name,
        cluster: h.cluster_name,
        reachable: info !== undefined,
        lastSeenMs: this.#lastSeen.get(h.id) ?? this.#started,
        maintenance: h.maintenance,
        leases: info?.lockspace?.state === 'joined',
        memoryFreeBytes: info?.memoryFreeBytes ?? h.memory_free_bytes,
        sharedStorage: sharedOf(h.id),
      };
    });
    const vmRows = await db
      .selectFrom('vms')
      .select([
        'id',
        'name',
        'host_id',
        'state',
        'memory_mib',
        'ha_protected',
        'ha_priority',
        'ha_preferred_hosts',
      ])
      .where(
        'host_id',
        'in',
        hosts.map((h) => h.id),
      )
      .execute();
    const disks = await db
      .selectFrom('vm_disks')
      .select(['vm_id', 'disk_id', 'datastore'])
      .where('vm_id', 'in', vmRows.map((v) => v.id).concat(['-']))
      .execute();
    const hostName = new Map(hosts.map((h) => [h.id, h.name]));
    const haVms: HaVm[] = vmRows.map((v) => ({
      name: v.name,
      host: hostName.get(v.host_id) ?? '?',
      running: v.state === 'running' || v.state === 'paused' || v.state === 'migrating',
      memoryBytes: v.memory_mib * 1024 * 1024,
      protected: v.ha_protected === 1,
      priority: v.ha_priority,
      preferredHosts: JSON.parse(v.ha_preferred_hosts) as string[],
      disks: disks
        .filter((d) => d.vm_id === v.id)
        .map((d) => ({
          id: d.disk_id,
          datastore: d.datastore,
          storageId:
            datastores.find((s) => s.host_id === v.host_id && s.name === d.datastore && s.kind === 'shared')
              ?.storage_id ?? null,
        })),
    }));
    const running = await db
      .selectFrom('jobs')
      .select('target_name')
      .where('kind', '=', HA_RESTART_JOB_KIND)
      .where('state', 'in', ['queued', 'running'])
      .execute();
    const decision = decideHa({
      hosts: haHosts,
      vms: haVms,
      nowMs: now,
      deadAfterSeconds: this.deps.deadAfterSeconds ?? DEFAULT_HA_DEAD_AFTER_SECONDS,
      restarting: new Set(running.map((r) => r.target_name)),
    });
    const idOf = new Map(hosts.map((h) => [h.name, h.id]));
    for (const restart of decision.restarts) {
      const vm = vmRows.find((v) => v.name === restart.vm)!;
      this.deps.log(`HA: ${restart.from} is dead; restarting ${restart.vm} on ${restart.to}`);
      await this.deps.jobs.submit({
        kind: HA_RESTART_JOB_KIND,
        target: vmObject({ id: vm.id, name: vm.name }),
        params: { vmId: vm.id, fromHostId: idOf.get(restart.from)!, toHostId: idOf.get(restart.to)! },
        actor: HA_ACTOR,
        details: { from: restart.from, to: restart.to, priority: restart.priority },
      });
    }
    for (const s of decision.stranded) {
      const key = `${s.vm}:${s.from}:${s.reason}`;
      if (this.#strandedSaid.has(key)) continue;
      this.#strandedSaid.add(key);
      this.deps.log(`HA: ${s.vm} of dead host ${s.from} cannot restart: ${s.reason}`);
    }
    await this.#removeLeftDefinitions(hosts);
  }

  /** Each reachable member with sanlock is in its cluster's lockspace, on the cluster's lease storage. */
  async #keepLockspaces(
    hosts: (HostRow & { cluster_name: string; lease_storage_id: string | null })[],
    datastores: { host_id: string; name: string; storage_id: string | null }[],
  ): Promise<void> {
    const byCluster = new Map<string, typeof hosts>();
    for (const h of hosts) byCluster.set(h.cluster_id!, [...(byCluster.get(h.cluster_id!) ?? []), h]);
    for (const [clusterId, members] of byCluster) {
      let storage = members[0]?.lease_storage_id ?? null;
      const capable = members.filter((h) => this.#info.get(h.id)?.sanlock);
      if (storage === null) {
        const seen = capable.map(
          (h) =>
            new Set(datastores.filter((d) => d.host_id === h.id && d.storage_id).map((d) => d.storage_id!)),
        );
        const common = [...(seen[0] ?? [])].filter((s) => seen.every((set) => set.has(s))).sort();
        storage = common[0] ?? null;
        if (storage === null) continue;
        await this.deps.db
          .updateTable('clusters')
          .set({ lease_storage_id: storage })
          .where('id', '=', clusterId)
          .execute();
      }
      for (const h of capable) {
        const state = this.#info.get(h.id)?.lockspace?.state;
        if (state === 'joined' || state === 'joining') continue;
        const datastore = datastores.find((d) => d.host_id === h.id && d.storage_id === storage);
        if (!datastore || h.lease_host_id === null) continue;
        await this.deps
          .clientFor(h)
          .joinLockspace({
            name: lockspaceName(clusterId),
            hostId: h.lease_host_id,
            datastore: datastore.name,
          })
          .then(
            () => this.deps.log(`HA: ${h.name} joins the lockspace of cluster ${h.cluster_name}`),
            (error: unknown) =>
              this.deps.log(
                `HA: ${h.name} cannot join the lockspace: ${error instanceof Error ? error.message : String(error)}`,
              ),
          );
      }
    }
  }

  /**
   * A host back from the dead still has the definitions of VMs restarted elsewhere (their QEMUs
   * were killed when it lost its lease): the inventory shows them as copies. Each is removed there,
   * disks kept, once the VM runs on its new host.
   */
  async #removeLeftDefinitions(hosts: HostRow[]): Promise<void> {
    const { db } = this.deps;
    const left = await db
      .selectFrom('vm_copies')
      .innerJoin('vms', 'vms.id', 'vm_copies.vm_id')
      .select([
        'vm_copies.host_id as copy_host',
        'vm_copies.state as copy_state',
        'vms.id',
        'vms.name',
        'vms.host_id',
      ])
      .where('vm_copies.state', 'in', ['stopped', 'crashed'])
      .where('vms.state', '=', 'running')
      .where(
        'vm_copies.host_id',
        'in',
        hosts.filter((h) => this.#info.get(h.id) !== undefined).map((h) => h.id),
      )
      .execute();
    for (const copy of left) {
      if (copy.copy_host === copy.host_id) continue;
      const host = await hostRow(db, copy.copy_host);
      try {
        await this.deps.clientFor(host).deleteVm(copy.name, false);
      } catch (error) {
        this.deps.log(
          `HA: the left definition of ${copy.name} on ${host.name} stays: ${error instanceof Error ? error.message : String(error)}`,
        );
        continue;
      }
      await db.transaction().execute(async (tx) => {
        await tx
          .deleteFrom('vm_copies')
          .where('vm_id', '=', copy.id)
          .where('host_id', '=', copy.copy_host)
          .execute();
        await recordChanges(
          tx,
          HA_ACTOR,
          [
            {
              object: vmObject({ id: copy.id, name: copy.name }),
              action: 'setting-changed',
              host: host.name,
              changes: [
                { field: 'left-definition', before: `${copy.copy_state} on ${host.name}`, after: null },
              ],
            },
          ],
          nowIso(),
        );
      });
      this.deps.log(`HA: removed the left definition of ${copy.name} on ${host.name} (its disks stay)`);
    }
  }
}

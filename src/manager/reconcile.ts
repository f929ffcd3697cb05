import type { Datastore, HostInfo, Vm, VSwitch } from '../api/index.js';
import { AgentClient } from '../api/index.js';
import { SYSTEM, nowIso, type Actor } from './changes.js';
import type { Db } from './db.js';
import { agentError, ManagerError } from './errors.js';
import {
  hostRow,
  markHostUnreachable,
  syncDatastores,
  syncVms,
  syncVSwitches,
  updateHostInfo,
  type HostRow,
} from './inventory.js';
import type { KeyedMutex } from './locks.js';
import { PeriodicLoop } from './periodic.js';

/*
 * Reconciliation: the agents are the truth about what runs where. Each poll takes a host's full
 * report and applies the difference to the inventory in one transaction, with change records by
 * `system`, so VMs created or removed behind the manager's back show up as such.
 */

export interface AgentSnapshot {
  info: HostInfo;
  datastores: Datastore[];
  vswitches: VSwitch[];
  vms: Vm[];
}

export async function fetchSnapshot(client: AgentClient): Promise<AgentSnapshot> {
  const [info, datastores, vswitches, vms] = await Promise.all([
    client.host(),
    client.datastores(),
    client.vswitches(),
    client.listVms(),
  ]);
  return { info, datastores, vswitches, vms };
}

/** Applies a host's full report; the caller holds the host's lock. */
export async function applySnapshot(
  db: Db,
  host: HostRow,
  snapshot: AgentSnapshot,
  actor: Actor = SYSTEM,
): Promise<void> {
  await db.transaction().execute(async (tx) => {
    const now = nowIso();
    const current = await updateHostInfo(tx, actor, host, snapshot.info, now);
    await syncDatastores(tx, actor, current, snapshot.datastores, now);
    await syncVSwitches(tx, actor, current, snapshot.vswitches, now);
    await syncVms(tx, actor, current, snapshot.vms, now);
  });
}

export interface ReconcilerOptions {
  db: Db;
  hostLocks: KeyedMutex;
  clientFor: (host: HostRow) => AgentClient;
  intervalMs: number;
  /** Hosts polled at once. */
  concurrency?: number;
  log: (message: string) => void;
  /** Started after a host answered a poll (e.g. undos that waited for it), outside its lock; not awaited. */
  onAnswered?: (host: HostRow) => Promise<void>;
}

export class Reconciler {
  readonly #loop: PeriodicLoop;

  constructor(private readonly options: ReconcilerOptions) {
    this.#loop = new PeriodicLoop(() => this.pollAll(), options.intervalMs);
  }

  start(): void {
    this.#loop.start(0);
  }

  stop(): Promise<void> {
    return this.#loop.stop();
  }

  async pollAll(): Promise<void> {
    const hosts = await this.options.db.selectFrom('hosts').select('id').orderBy('name').execute();
    const queue = hosts.map((h) => h.id);
    const workers = Array.from(
      { length: Math.min(this.options.concurrency ?? 8, queue.length) },
      async () => {
        for (let id = queue.shift(); id !== undefined && !this.#loop.stopped; id = queue.shift()) {
          try {
            await this.pollHost(id);
          } catch (error) {
            // A host removed while queued is not an error; anything else is logged and retried next round.
            if (!(error instanceof ManagerError && error.code === 'not-found')) {
              this.options.log(
                `reconcile: host ${id}: ${error instanceof Error ? error.message : String(error)}`,
              );
            }
          }
        }
      },
    );
    await Promise.all(workers);
  }

  /** Polls one host now and applies its report; an unreachable host is marked so. */
  async pollHost(hostId: string): Promise<void> {
    const { db, hostLocks, clientFor } = this.options;
    const answered = await hostLocks.run(hostId, async () => {
      const host = await hostRow(db, hostId);
      let snapshot: AgentSnapshot;
      try {
        snapshot = await fetchSnapshot(clientFor(host));
      } catch (error) {
        const reason = agentError(host.name, error).message;
        await db.transaction().execute((tx) => markHostUnreachable(tx, host, reason));
        return undefined;
      }
      await applySnapshot(db, host, snapshot);
      return host;
    });
    // Not awaited: an undo may wait on its host for a minute, and the next round of polls must not.
    if (answered) {
      this.options
        .onAnswered?.(answered)
        .catch((error: unknown) =>
          this.options.log(
            `after ${answered.name} answered: ${error instanceof Error ? error.message : String(error)}`,
          ),
        );
    }
  }
}

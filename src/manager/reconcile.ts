import type { AgentJournal, Datastore, HostInfo, Vm, VSwitch } from '../api/index.js';
import { AgentClient } from '../api/index.js';
import { SYSTEM, nowIso } from './changes.js';
import type { Db, Tx } from './db.js';
import { agentActor, reportDrift } from './drift.js';
import { agentError, isFenced, ManagerError } from './errors.js';
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
 * report and applies the difference to the inventory in one transaction. What the report changed
 * the manager did not do: it is recorded with the actor `agent:<host>` and reported as drift
 * (drift.ts), together with what the agent's journal shows made and deleted between two polls.
 */

export interface AgentSnapshot {
  info: HostInfo;
  datastores: Datastore[];
  vswitches: VSwitch[];
  vms: Vm[];
  /** The agent's journal after the host's cursor; absent from an agent without one. */
  journal?: AgentJournal;
}

/** `<bootId>:<seq>` as stored in hosts.agent_events. */
function parseCursor(cursor: string | null): { bootId: string; seq: number } | undefined {
  const match = /^([0-9a-f-]{36}):(\d+)$/.exec(cursor ?? '');
  return match ? { bootId: match[1] ?? '', seq: Number(match[2]) } : undefined;
}
export const journalCursor = (journal: AgentJournal) => `${journal.bootId}:${journal.next}`;

/**
 * The journal after `cursor`: from its start when the agent restarted since (a new boot id). An
 * agent without a journal (older) or a failed read costs only the drift between polls, never the
 * poll: undefined.
 */
async function readJournal(client: AgentClient, cursor: string | null): Promise<AgentJournal | undefined> {
  const at = parseCursor(cursor);
  try {
    const journal = await client.journal(at?.seq ?? 0);
    return at && journal.bootId !== at.bootId && at.seq > 0 ? await client.journal(0) : journal;
  } catch {
    return undefined;
  }
}

export async function fetchSnapshot(
  client: AgentClient,
  cursor: string | null = null,
): Promise<AgentSnapshot> {
  const [info, datastores, vswitches, vms, journal] = await Promise.all([
    client.host(),
    client.datastores(),
    client.vswitches(),
    client.listVms(),
    readJournal(client, cursor),
  ]);
  return { info, datastores, vswitches, vms, ...(journal ? { journal } : {}) };
}

/**
 * Applies a host's full report in the caller's transaction. `joining`: the host has just been
 * joined, what it has was there before the manager knew it (recorded by `system`, not drift);
 * else what changed is the agent's doing and is reported as drift.
 */
export async function applyReport(
  tx: Tx,
  host: HostRow,
  snapshot: AgentSnapshot,
  options: { joining?: boolean } = {},
): Promise<void> {
  const now = nowIso();
  const actor = options.joining ? SYSTEM : agentActor(host.name);
  const last = await tx
    .selectFrom('changes')
    .select((eb) => eb.fn.max('id').as('id'))
    .executeTakeFirst();
  const [knownVms, knownDatastores] = await Promise.all([
    tx.selectFrom('vms').select('id').where('host_id', '=', host.id).execute(),
    tx.selectFrom('datastores').select('name').where('host_id', '=', host.id).execute(),
  ]);
  const current = options.joining ? host : await updateHostInfo(tx, SYSTEM, host, snapshot.info, now);
  await syncDatastores(tx, actor, current, snapshot.datastores, now);
  await syncVSwitches(tx, actor, current, snapshot.vswitches, now);
  const conflicts = await syncVms(tx, actor, current, snapshot.vms, now);
  await reportDrift(
    tx,
    current,
    {
      // A joining host's VMs and datastores were there before: only its conflicts are drift.
      afterChangeId: options.joining ? Number.MAX_SAFE_INTEGER : Number(last?.id ?? 0),
      conflicts,
      journal: options.joining ? undefined : snapshot.journal,
      known: {
        vms: new Set(knownVms.map((v) => v.id)),
        datastores: new Set(knownDatastores.map((d) => d.name)),
      },
      reported: {
        vms: new Set(snapshot.vms.map((v) => v.id)),
        datastores: new Set(snapshot.datastores.map((d) => d.name)),
      },
      since: host.last_seen_at,
    },
    now,
  );
  if (snapshot.journal)
    await tx
      .updateTable('hosts')
      .set({ agent_events: journalCursor(snapshot.journal) })
      .where('id', '=', host.id)
      .execute();
}

/** Applies a host's full report (a poll) in one transaction; the caller holds the host's lock. */
export async function applySnapshot(
  db: Db,
  host: HostRow,
  snapshot: AgentSnapshot,
  options: { joining?: boolean } = {},
): Promise<void> {
  await db.transaction().execute((tx) => applyReport(tx, host, snapshot, options));
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
        snapshot = await fetchSnapshot(clientFor(host), host.agent_events);
      } catch (error) {
        // Not leading (any more): the host is not unreachable, this manager may not ask it.
        if (isFenced(error)) throw agentError(host.name, error);
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

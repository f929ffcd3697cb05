/*
 * Undos that could not run when their move failed, because their host did not answer (a cut
 * link, an agent down). The move still rolls back everything it can reach (the VM keeps running on
 * its source); what it could not reach is kept here and run again each time reconciliation finds
 * the host answering, until it succeeds. The job says "clean-up on <host> pending" meanwhile and
 * "clean-up on <host> done" after, and the VM's change log records both.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentMigrationClient, type AgentClient, isAgentError } from '../../api/index.js';
import { nowIso, recordChanges, SYSTEM } from '../changes.js';
import type { Db } from '../db.js';
import { agentError, HostUnreachable } from '../errors.js';
import { vmObject, type HostRow } from '../inventory.js';
import type { JobRunner } from '../jobs.js';
import type { UndoStep } from './phases.js';

/**
 * What a kept undo does: a live move's undos, or a cold move's: `close-cold-export` (the read-only
 * exports of the VM's disks on its source) and `remove-cold-copy` (the half-made copy on its
 * target, removed only while it is still that VM's and the VM does not live there now).
 */
export type PendingStep = UndoStep | 'close-cold-export' | 'remove-cold-copy';

export interface DeferredUndo {
  jobId: string;
  vm: { id: string; name: string };
  host: HostRow;
  step: PendingStep;
  migrationId: string;
  reason: string;
}

/** What a job says while an undo on `host` waits for it to answer. */
export const pendingMessage = (host: string, steps: string[]) =>
  `clean-up on ${host} pending (${steps.join(', ')}): it runs as soon as ${host} answers again`;

/** Keeps an undo to run later; the change log says so. */
export async function deferUndo(db: Db, undo: DeferredUndo): Promise<void> {
  const now = nowIso();
  await db.transaction().execute(async (tx) => {
    await tx
      .insertInto('pending_undos')
      .values({
        id: randomUUID(),
        job_id: undo.jobId,
        vm_id: undo.vm.id,
        vm_name: undo.vm.name,
        host_id: undo.host.id,
        step: undo.step,
        migration_id: undo.migrationId,
        state: 'pending',
        attempts: 1,
        last_error: undo.reason,
        created_at: now,
        done_at: null,
      })
      .execute();
    await recordChanges(
      tx,
      { ...SYSTEM, jobId: undo.jobId },
      [
        {
          object: vmObject(undo.vm),
          action: 'state-changed',
          host: undo.host.name,
          changes: [
            { field: 'clean-up', before: null, after: 'pending' },
            { field: 'step', before: null, after: undo.step },
            { field: 'reason', before: null, after: undo.reason },
          ],
        },
      ],
      now,
    );
  });
}

/** The undos of a VM (or of all VMs) still waiting for their host. */
export async function pendingUndos(db: Db, filter: { vmId?: string; hostId?: string } = {}) {
  let q = db.selectFrom('pending_undos').selectAll().where('state', '=', 'pending');
  if (filter.vmId) q = q.where('vm_id', '=', filter.vmId);
  if (filter.hostId) q = q.where('host_id', '=', filter.hostId);
  return q.orderBy('created_at').execute();
}

/** How long a retried cancel waits for the source's copy to wind down. */
const CANCEL_WAIT_MS = 60_000;

export interface PendingUndoRunnerDeps {
  db: Db;
  jobs: JobRunner;
  clientFor: (host: HostRow) => AgentClient;
  log: (message: string) => void;
}

export class PendingUndoRunner {
  readonly #running = new Map<string, Promise<void>>();

  constructor(private readonly deps: PendingUndoRunnerDeps) {}

  /** Runs every undo waiting for `host` (one run per host at a time); failures stay pending. */
  runFor(host: HostRow): Promise<void> {
    const busy = this.#running.get(host.id);
    if (busy) return busy;
    const run = this.#runAll(host).finally(() => this.#running.delete(host.id));
    this.#running.set(host.id, run);
    return run;
  }

  async #runAll(host: HostRow): Promise<void> {
    const { db } = this.deps;
    for (const row of await pendingUndos(db, { hostId: host.id })) {
      try {
        await this.#undo(host, row);
      } catch (error) {
        const reason = agentError(host.name, error).message;
        await db
          .updateTable('pending_undos')
          .set({ attempts: row.attempts + 1, last_error: reason })
          .where('id', '=', row.id)
          .execute();
        if (!(error instanceof HostUnreachable))
          this.deps.log(`pending ${row.step} on ${host.name}: ${reason}`);
        continue;
      }
      const now = nowIso();
      await db.transaction().execute(async (tx) => {
        await tx
          .updateTable('pending_undos')
          .set({ state: 'done', done_at: now, attempts: row.attempts + 1 })
          .where('id', '=', row.id)
          .execute();
        await recordChanges(
          tx,
          { ...SYSTEM, jobId: row.job_id },
          [
            {
              object: vmObject({ id: row.vm_id, name: row.vm_name }),
              action: 'state-changed',
              host: host.name,
              changes: [
                { field: 'clean-up', before: 'pending', after: 'done' },
                { field: 'step', before: null, after: row.step },
              ],
            },
          ],
          now,
        );
      });
      const left = await db
        .selectFrom('pending_undos')
        .select('id')
        .where('job_id', '=', row.job_id)
        .where('state', '=', 'pending')
        .execute();
      await this.deps.jobs
        .note(
          row.job_id,
          left.length
            ? `clean-up on ${host.name} done (${row.step}); ${left.length} more pending`
            : `rolled back; clean-up on ${host.name} done (${row.step})`,
        )
        .catch(() => undefined);
      this.deps.log(`pending ${row.step} of ${row.vm_name} on ${host.name}: done`);
    }
  }

  async #undo(
    host: HostRow,
    row: { step: PendingStep; migration_id: string; vm_id: string; vm_name: string },
  ): Promise<void> {
    const { step, migration_id: migrationId } = row;
    const agent = new AgentMigrationClient(this.deps.clientFor(host).http);
    // Idempotent; a restarted agent ended the exports of its lost cold moves at its start.
    if (step === 'close-cold-export') return void (await agent.coldClose(migrationId));
    if (step === 'remove-cold-copy') return this.#removeColdCopy(host, row, agent);
    const gone = (error: unknown) => isAgentError(error, 'migration-not-found');
    if (step === 'abort-incoming') {
      // Not found: the agent removed the orphaned incoming VM by itself meanwhile.
      await agent.abortIncoming(migrationId).catch((error: unknown) => {
        if (!gone(error)) throw error;
      });
      return;
    }
    // cancel-source. Not found: the agent restarted, and put its VMs back in order at its start.
    const status = await agent.cancel(migrationId).catch((error: unknown) => {
      if (gone(error)) return undefined;
      throw error;
    });
    if (status === undefined) return;
    const until = Date.now() + CANCEL_WAIT_MS;
    for (let s = status; s.state === 'running'; s = await agent.status(migrationId)) {
      if (Date.now() > until) throw new Error(`migration ${migrationId} is still winding down`);
      await sleep(500);
    }
  }

  /**
   * A cold move's copy: its copy stopped if it still runs, then the VM removed while it is still
   * that VM's (same id) and the VM lives elsewhere.
   */
  async #removeColdCopy(
    host: HostRow,
    row: { vm_id: string; vm_name: string; migration_id: string },
    migration: AgentMigrationClient,
  ): Promise<void> {
    const { vm_id: vmId, vm_name: vmName } = row;
    await migration.coldClose(row.migration_id);
    const livesHere = await this.deps.db
      .selectFrom('vms')
      .select('id')
      .where('id', '=', vmId)
      .where('host_id', '=', host.id)
      .executeTakeFirst();
    if (livesHere) return;
    const agent = this.deps.clientFor(host);
    const copy = await agent.getVm(vmName).catch((error: unknown) => {
      if (isAgentError(error, 'vm-not-found')) return undefined;
      throw error;
    });
    if (copy?.id !== vmId) return;
    await agent.deleteVm(vmName, true);
  }
}

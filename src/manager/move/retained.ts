/*
 * Retained copies in the manager (issue 17): which host keeps which VM's disks as they were when
 * it left, of which generation, until when; whether a move back can send only the delta (and why
 * not); the records after a move; the sweep that follows each host's own check, and releases.
 *
 * A copy is usable only while the VM's disks still track its generation (vm_generations: set when
 * a move retained its source, cleared by a move that did not, by a storage move and by a disk
 * resize), the host's check of it passes (retained.ts in the agent: size, time, sampled content),
 * every disk is qcow2 and goes to the datastore the copy is on, and the source's tracking bitmaps
 * are intact. Anything else is a full copy, with the reason.
 */
import { randomUUID } from 'node:crypto';
import {
  AgentMigrationClient,
  isAgentError,
  type MigrationPlan,
  type MigrationPolicy,
  type MovePlan,
  type RetainedCopy,
  type RetainedCopyView,
} from '../../api/index.js';
import { nowIso, recordChanges, type Actor } from '../changes.js';
import type { Db, RetainedCopiesTable, Tx } from '../db.js';
import { agentError, Conflict, NotFound } from '../errors.js';
import { getVm, hostRow, type HostRow } from '../inventory.js';
import type { VmJobDeps } from '../vm-jobs.js';

/** How long a retained copy is kept when nothing else releases it first (vSphere/Hyper-V have none: a week is a round trip's length). */
export const RETAINED_COPY_DAYS = 7;
const DAY_MS = 86_400_000;

export type DiskCopy = NonNullable<MovePlan['diskCopy']>;
type CopyRow = RetainedCopiesTable;

export async function currentGeneration(db: Tx, vmId: string): Promise<string | undefined> {
  const row = await db
    .selectFrom('vm_generations')
    .select('generation_id')
    .where('vm_id', '=', vmId)
    .executeTakeFirst();
  return row?.generation_id;
}

export async function retainedCopyOn(db: Tx, vmId: string, hostId: string): Promise<CopyRow | undefined> {
  return db
    .selectFrom('retained_copies')
    .selectAll()
    .where('vm_id', '=', vmId)
    .where('host_id', '=', hostId)
    .executeTakeFirst();
}

const datastoresOf = (row: CopyRow): Record<string, string> =>
  JSON.parse(row.datastores) as Record<string, string>;

/**
 * The datastores a move to `targetHostId` should use when none were asked for: those of a usable
 * retained copy there (so the delta can go onto it), else none (the target's default).
 */
export async function retainedDatastores(
  db: Db,
  vmId: string,
  targetHostId: string,
): Promise<Record<string, string> | undefined> {
  const [copy, generation] = await Promise.all([
    retainedCopyOn(db, vmId, targetHostId),
    currentGeneration(db, vmId),
  ]);
  if (!copy || copy.generation_id !== generation || copy.invalid_reason !== null) return undefined;
  return datastoresOf(copy);
}

export interface DiskCopyFacts {
  vmName: string;
  targetName: string;
  copy: { generationId: string; departedAt: string; datastores: Record<string, string> } | undefined;
  generation: string | undefined;
  disks: { id: string; format: string; toDatastore: string }[];
  /** The target's own check of its copy: undefined when it has none, a string when it did not answer. */
  targetCheck: RetainedCopy | undefined | string;
  /** The source's answer on its tracking bitmaps (plan with deltaGeneration), or why there is none. */
  sourceDelta: MigrationPlan['delta'] | string;
}

/** Delta or full copy, and why: the first reason found, in the order a person would check. */
export function chooseDiskCopy(f: DiskCopyFacts): DiskCopy {
  const full = (reason: string): DiskCopy => ({ kind: 'full', reason });
  const local = localRefusal(f);
  if (local !== undefined || !f.copy)
    return full(local ?? `${f.targetName} keeps no retained copy of ${f.vmName}`);
  if (typeof f.targetCheck === 'string')
    return full(`${f.targetName} cannot check its retained copy: ${f.targetCheck}`);
  if (f.targetCheck === undefined) return full(`${f.targetName} no longer has the retained copy`);
  if (f.targetCheck.generationId !== f.copy.generationId)
    return full(`${f.targetName} keeps a copy of another generation (${f.targetCheck.generationId})`);
  if (!f.targetCheck.check.valid)
    return full(`the retained copy on ${f.targetName} cannot be used: ${f.targetCheck.check.reason}`);
  if (typeof f.sourceDelta === 'string') return full(f.sourceDelta);
  if (f.sourceDelta === undefined)
    return full('the source did not say whether its disks track their changes');
  if (!f.sourceDelta.usable) return full(f.sourceDelta.reason);
  return {
    kind: 'delta',
    bytes: f.sourceDelta.bytes,
    generationId: f.copy.generationId,
    retainedAt: f.copy.departedAt,
  };
}

/** What the manager's own records already refuse, before any agent is asked (undefined: a candidate). */
function localRefusal(
  f: Pick<DiskCopyFacts, 'vmName' | 'targetName' | 'copy' | 'generation' | 'disks'>,
): string | undefined {
  if (!f.copy) return `${f.targetName} keeps no retained copy of ${f.vmName}`;
  if (f.copy.generationId !== f.generation)
    return `the retained copy on ${f.targetName} is stale: ${f.vmName} moved on or its disks changed outside a move since it left`;
  for (const d of f.disks) {
    if (d.format !== 'qcow2') return `disk ${d.id} is ${d.format}: only qcow2 disks track their changes`;
    const kept = f.copy.datastores[d.id];
    if (kept === undefined) return `the retained copy has no disk ${d.id}`;
    if (kept !== d.toDatastore)
      return `disk ${d.id} goes to datastore ${d.toDatastore}, its retained copy is on ${kept}`;
  }
  return undefined;
}

/** The plan's disk copy for a live move, asking both agents when a retained copy is a candidate. */
export async function diskCopyFor(
  deps: VmJobDeps,
  q: {
    vmId: string;
    source: HostRow;
    target: HostRow;
    disks: { id: string; format: string; toDatastore: string }[];
    policy?: MigrationPolicy | undefined;
  },
): Promise<DiskCopy> {
  const [copyRow, generation, vm] = await Promise.all([
    retainedCopyOn(deps.db, q.vmId, q.target.id),
    currentGeneration(deps.db, q.vmId),
    getVm(deps.db, q.vmId),
  ]);
  const facts: DiskCopyFacts = {
    vmName: vm.name,
    targetName: q.target.name,
    copy: copyRow && {
      generationId: copyRow.generation_id,
      departedAt: copyRow.departed_at,
      datastores: datastoresOf(copyRow),
    },
    generation,
    disks: q.disks,
    targetCheck: undefined,
    sourceDelta: undefined,
  };
  // Only a candidate costs the agents a question.
  const local = localRefusal(facts);
  if (local !== undefined) return { kind: 'full', reason: local };
  const target = new AgentMigrationClient(deps.clientFor(q.target).http);
  const source = new AgentMigrationClient(deps.clientFor(q.source).http);
  const [targetCheck, sourceDelta] = await Promise.all([
    target.listRetained().then(
      (copies) => copies.find((c) => c.vmId === q.vmId),
      (error: unknown) => agentError(q.target.name, error).message,
    ),
    source
      .plan({
        vmName: vm.name,
        policy: q.policy ?? {},
        deltaGeneration: generation,
        // Only the disks the move copies: those staying on shared storage track nothing.
        deltaDisks: q.disks.map((d) => d.id),
      })
      .then(
        (plan) => plan.delta,
        (error: unknown) =>
          `${q.source.name} cannot say whether its disks track changes: ${agentError(q.source.name, error).message}`,
      ),
  ]);
  return chooseDiskCopy({ ...facts, targetCheck, sourceDelta });
}

/**
 * After a move arrived: the copy a delta went onto is the VM's disks now (its record goes); a
 * retained source becomes the VM's copy of the new generation, which the arrived disks track;
 * without one the VM tracks nothing (its other copies are stale from now on).
 */
export async function recordArrival(
  db: Db,
  actor: Actor,
  q: {
    vm: { id: string; name: string };
    source: HostRow;
    target: HostRow;
    generationId: string | undefined;
    wentOntoCopy: boolean;
    kept: RetainedCopy | undefined;
    keepDays?: number | undefined;
  },
): Promise<void> {
  await db.transaction().execute(async (tx) => {
    const now = nowIso();
    if (q.wentOntoCopy)
      await tx
        .deleteFrom('retained_copies')
        .where('vm_id', '=', q.vm.id)
        .where('host_id', '=', q.target.id)
        .execute();
    await tx.deleteFrom('vm_generations').where('vm_id', '=', q.vm.id).execute();
    if (q.generationId === undefined) return;
    await tx
      .insertInto('vm_generations')
      .values({ vm_id: q.vm.id, generation_id: q.generationId, host_id: q.target.id, since: now })
      .execute();
    await tx
      .deleteFrom('retained_copies')
      .where('vm_id', '=', q.vm.id)
      .where('host_id', '=', q.source.id)
      .execute();
    const departedAt = q.kept?.departedAt ?? now;
    await tx
      .insertInto('retained_copies')
      .values({
        id: randomUUID(),
        vm_id: q.vm.id,
        vm_name: q.vm.name,
        host_id: q.source.id,
        generation_id: q.generationId,
        departed_at: departedAt,
        expires_at: new Date(
          Date.parse(departedAt) + (q.keepDays ?? RETAINED_COPY_DAYS) * DAY_MS,
        ).toISOString(),
        datastores: JSON.stringify(
          Object.fromEntries((q.kept?.disks ?? []).map((d) => [d.diskId, d.datastore])),
        ),
        disk_bytes: diskBytesOf(q.kept),
        allocated_bytes: q.kept?.allocatedBytes ?? 0,
        invalid_reason: q.kept && !q.kept.check.valid ? q.kept.check.reason : null,
        checked_at: now,
      })
      .execute();
    await recordChanges(
      tx,
      actor,
      [
        {
          object: { kind: 'vm', id: q.vm.id, name: q.vm.name },
          action: 'state-changed',
          host: q.source.name,
          changes: [{ field: 'retained-copy', before: null, after: `kept on ${q.source.name}` }],
        },
      ],
      now,
    );
  });
}

const diskBytesOf = (copy: RetainedCopy | undefined): string =>
  JSON.stringify(Object.fromEntries((copy?.disks ?? []).map((d) => [d.diskId, d.allocatedBytes])));

/** What retained copies hold on one datastore of a host (used space: `datastore show`). */
export async function retainedBytesOn(db: Tx, hostId: string, datastore: string): Promise<number> {
  const rows = await db
    .selectFrom('retained_copies')
    .select(['datastores', 'disk_bytes'])
    .where('host_id', '=', hostId)
    .execute();
  let bytes = 0;
  for (const row of rows) {
    const sizes = JSON.parse(row.disk_bytes) as Record<string, number>;
    for (const [disk, store] of Object.entries(JSON.parse(row.datastores) as Record<string, string>))
      if (store === datastore) bytes += sizes[disk] ?? 0;
  }
  return bytes;
}

/** A VM's disks changed outside a move (storage move, resize): its retained copies are stale. */
export async function forgetGeneration(db: Tx, vmId: string): Promise<void> {
  await db.deleteFrom('vm_generations').where('vm_id', '=', vmId).execute();
}

export async function listRetainedCopies(db: Db, vmRef?: string): Promise<RetainedCopyView[]> {
  let query = db
    .selectFrom('retained_copies')
    .innerJoin('hosts', 'hosts.id', 'retained_copies.host_id')
    .leftJoin('vm_generations', 'vm_generations.vm_id', 'retained_copies.vm_id')
    .selectAll('retained_copies')
    .select(['hosts.name as host_name', 'vm_generations.generation_id as current_generation'])
    .orderBy('retained_copies.departed_at', 'desc');
  if (vmRef !== undefined)
    query = query.where('retained_copies.vm_id', '=', (await getVm(db, vmRef, 'vm')).id);
  const rows = await query.execute();
  return rows.map((r) => ({
    id: r.id,
    vm: { id: r.vm_id, name: r.vm_name },
    host: r.host_name,
    generationId: r.generation_id,
    departedAt: r.departed_at,
    expiresAt: r.expires_at,
    datastores: datastoresOf(r),
    allocatedBytes: r.allocated_bytes,
    ...(r.invalid_reason !== null
      ? { state: 'invalid' as const, reason: r.invalid_reason }
      : r.current_generation !== r.generation_id
        ? { state: 'stale' as const, reason: `${r.vm_name} moved on since it left ${r.host_name}` }
        : { state: 'usable' as const }),
  }));
}

/** Deletes a retained copy on its host, then its record; a host that does not answer refuses it. */
export async function releaseRetainedCopy(
  deps: VmJobDeps,
  actor: Actor,
  id: string,
  why = 'released',
): Promise<void> {
  const row = await deps.db.selectFrom('retained_copies').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new NotFound('retained copy', id, 'id');
  const host = await hostRow(deps.db, row.host_id);
  const agent = new AgentMigrationClient(deps.clientFor(host).http);
  try {
    await agent.releaseRetained(row.vm_id);
  } catch (error) {
    if (isAgentError(error, 'migration-conflict'))
      throw new Conflict(`the retained copy of ${row.vm_name} on ${host.name} is in use by a move`);
    if (!isAgentError(error, 'retained-copy-not-found')) throw agentError(host.name, error);
  }
  await deps.db.transaction().execute(async (tx) => {
    await tx.deleteFrom('retained_copies').where('id', '=', id).execute();
    await recordChanges(tx, actor, [
      {
        object: { kind: 'vm', id: row.vm_id, name: row.vm_name },
        action: 'state-changed',
        host: host.name,
        changes: [{ field: 'retained-copy', before: `kept on ${host.name}`, after: why }],
      },
    ]);
  });
}

/**
 * Each time a host answers reconciliation: its copies' records follow its own check (size,
 * invalid reason, gone), and copies past their time or stale (the VM moved on) are released.
 */
export async function sweepRetainedCopies(deps: VmJobDeps, host: HostRow): Promise<void> {
  const rows = await deps.db
    .selectFrom('retained_copies')
    .selectAll()
    .where('host_id', '=', host.id)
    .execute();
  if (rows.length === 0) return;
  const copies = await new AgentMigrationClient(deps.clientFor(host).http).listRetained();
  const now = nowIso();
  for (const row of rows) {
    const found = copies.find((c) => c.vmId === row.vm_id && c.generationId === row.generation_id);
    if (!found) {
      await deps.db.deleteFrom('retained_copies').where('id', '=', row.id).execute();
      continue;
    }
    await deps.db
      .updateTable('retained_copies')
      .set({
        allocated_bytes: found.allocatedBytes,
        disk_bytes: diskBytesOf(found),
        invalid_reason: found.check.valid ? null : found.check.reason,
        checked_at: now,
      })
      .where('id', '=', row.id)
      .execute();
    const generation = await currentGeneration(deps.db, row.vm_id);
    const expired = row.expires_at <= now;
    if (expired || generation !== row.generation_id) {
      await releaseRetainedCopy(
        deps,
        { name: 'system' },
        row.id,
        expired ? 'released: expired' : 'released: stale',
      ).catch(() => undefined);
    }
  }
}

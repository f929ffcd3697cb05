import { sql } from 'kysely';
import type { ChangeListQuery, ChangeRecord, FieldChange, ObjectIdentity, Page } from '../api/index.js';
import { decodeCursor, pageOf } from './cursor.js';
import type { Tx } from './db.js';

/** Who makes a change: a token's name or `system`, and the job it happens in, if any. */
export interface Actor {
  name: string;
  jobId?: string;
}
export const SYSTEM: Actor = { name: 'system' };

export interface ChangeInput {
  object: ObjectIdentity;
  action: ChangeRecord['action'];
  changes?: FieldChange[];
  host?: string | null;
}

/** Writes change records; call it inside the transaction that makes the change. */
export async function recordChanges(
  tx: Tx,
  actor: Actor,
  inputs: ChangeInput[],
  at = nowIso(),
): Promise<void> {
  if (inputs.length === 0) return;
  await tx
    .insertInto('changes')
    .values(
      inputs.map((c) => ({
        id: undefined,
        at,
        actor: actor.name,
        object_kind: c.object.kind,
        object_id: c.object.id,
        object_name: c.object.name,
        action: c.action,
        changes: JSON.stringify(c.changes ?? []),
        host: c.host ?? null,
        job_id: actor.jobId ?? null,
      })),
    )
    .execute();
}

export function nowIso(): string {
  return new Date().toISOString();
}

type ValidChangeQuery = Omit<ChangeListQuery, 'limit'> & { limit: number };

/** Newest first. */
export async function listChanges(tx: Tx, q: ValidChangeQuery): Promise<Page<ChangeRecord>> {
  let query = tx.selectFrom('changes').selectAll();
  if (q.kind) query = query.where('object_kind', '=', q.kind);
  if (q.objectId) query = query.where('object_id', '=', q.objectId);
  if (q.actor) query = query.where('actor', '=', q.actor);
  if (q.since) query = query.where('at', '>=', new Date(q.since).toISOString());
  if (q.until) query = query.where('at', '<', new Date(q.until).toISOString());
  if (q.text) {
    const like = `%${q.text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    query = query.where(
      sql<boolean>`(lower(object_name) like ${like} escape '\\' or lower(changes) like ${like} escape '\\')`,
    );
  }
  if (q.cursor) {
    const [id] = decodeCursor(q.cursor, ['int']);
    query = query.where('id', '<', Number(id));
  }
  const rows = await query
    .orderBy('id', 'desc')
    .limit(q.limit + 1)
    .execute();
  return pageOf(
    rows,
    q.limit,
    (r) => [r.id ?? 0],
    (r): ChangeRecord => ({
      id: r.id ?? 0,
      at: r.at,
      actor: r.actor,
      object: { kind: r.object_kind as ChangeRecord['object']['kind'], id: r.object_id, name: r.object_name },
      action: r.action as ChangeRecord['action'],
      changes: JSON.parse(r.changes) as FieldChange[],
      ...(r.host ? { host: r.host } : {}),
      ...(r.job_id ? { jobId: r.job_id } : {}),
    }),
  );
}

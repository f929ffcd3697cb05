import { sql, type Selectable, type SelectQueryBuilder } from 'kysely';
import {
  CHANGE_WINDOW_DAYS,
  ChangeRisk,
  MAX_TIMELINE_BUCKETS,
  ObjectKind,
  type ChangeRecord,
  type ChangeTimeline,
  type FieldChange,
  type ObjectIdentity,
  type Page,
  type TimelineBucket,
} from '../api/index.js';
import { rateChange } from './change-risk.js';
import { noteWritten } from './writes.js';
import { decodeCursor, pageOf } from './cursor.js';
import { byDialect, writerOf, type ChangesTable, type DB, type Tx } from './db.js';
import { InvalidInput } from './errors.js';

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
  /** For a VM's, disk's or NIC's record: whether the VM's QEMU ran (its risk depends on it). */
  vmRunning?: boolean;
}

/**
 * Writes change records, each with its risk and the manager writing it (the one that named the
 * handle `tx` belongs to: db.ts nameWriter); call it inside the transaction that makes the change.
 */
export async function recordChanges(
  tx: Tx,
  actor: Actor,
  inputs: ChangeInput[],
  at = nowIso(),
): Promise<void> {
  if (inputs.length === 0) return;
  const manager = writerOf(tx);
  await tx
    .insertInto('changes')
    .values(
      inputs.map((c) => {
        const changes = c.changes ?? [];
        const rated = rateChange({ kind: c.object.kind, action: c.action, changes, vmRunning: c.vmRunning });
        return {
          id: undefined,
          at,
          actor: actor.name,
          object_kind: c.object.kind,
          object_id: c.object.id,
          object_name: c.object.name,
          action: c.action,
          changes: JSON.stringify(changes),
          host: c.host ?? null,
          job_id: actor.jobId ?? null,
          risk: rated.risk,
          risk_rule: rated.rule,
          manager,
        };
      }),
    )
    .execute();
  noteWritten('changes');
}

export function nowIso(): string {
  return new Date().toISOString();
}

/** The filters of every change query, as the route schemas give them. */
interface Filters {
  kind?: ObjectKind | undefined;
  objectId?: string | undefined;
  object?: string | undefined;
  actor?: string | undefined;
  manager?: string | undefined;
  risk?: ChangeRisk[] | undefined;
  since?: string | undefined;
  until?: string | undefined;
  text?: string | undefined;
}

/** The window a query covers: `since` defaults to CHANGE_WINDOW_DAYS before `now`. */
export function changeWindow(q: Filters, now = Date.now()): { since: string; until?: string } {
  const since = q.since ? new Date(q.since) : new Date(now - CHANGE_WINDOW_DAYS * 86_400_000);
  return { since: since.toISOString(), ...(q.until ? { until: new Date(q.until).toISOString() } : {}) };
}

/** `%text%` for LIKE with `\` escaping the wildcards the text itself holds. */
const likeAny = (text: string) => `%${likeEscape(text.toLowerCase())}%`;
const likeEscape = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

/** The WHERE of every change query (list, timeline): the same filters mean the same records. */
function filtered<O>(
  tx: Tx,
  query: SelectQueryBuilder<DB, 'changes', O>,
  q: Filters,
  window: { since: string; until?: string },
): SelectQueryBuilder<DB, 'changes', O> {
  let out = query.where('at', '>=', window.since);
  if (window.until) out = out.where('at', '<', window.until);
  if (q.kind) out = out.where('object_kind', '=', q.kind);
  if (q.objectId) out = out.where('object_id', '=', q.objectId);
  if (q.object) {
    const name = q.object.toLowerCase();
    // Its parts' names start with `<name>/`: the range up to `<name>0` ('0' follows '/'), which
    // the index on lower(object_name) serves (a LIKE would not).
    out = out.where(
      sql<boolean>`(lower(object_name) = ${name} or (lower(object_name) >= ${`${name}/`} and lower(object_name) < ${`${name}0`}))`,
    );
  }
  if (q.actor) out = out.where('actor', '=', q.actor);
  // No index: a database has a few managers, each writing a large share of the records.
  if (q.manager) out = out.where('manager', '=', q.manager);
  if (q.risk?.length) out = out.where('risk', 'in', q.risk);
  if (q.text) {
    const like = likeAny(q.text);
    // SQLite's LIKE ignores ASCII case, and lower() folds only ASCII: the same matches as
    // lower(column) would give, without lower-casing every record's text first (a third faster).
    // PostgreSQL's LIKE heeds case: ILIKE there.
    const op = sql.raw(byDialect(tx, { sqlite: 'like', postgres: 'ilike' }));
    out = out.where(
      sql<boolean>`(object_name ${op} ${like} escape '\\' or changes ${op} ${like} escape '\\' or actor ${op} ${like} escape '\\')`,
    );
  }
  return out;
}

type ValidChangeQuery = Filters & { limit: number; cursor?: string | undefined };

/** Newest first, over the last CHANGE_WINDOW_DAYS days unless `since` says otherwise. */
export async function listChanges(tx: Tx, q: ValidChangeQuery): Promise<Page<ChangeRecord>> {
  let query = filtered(tx, tx.selectFrom('changes').selectAll(), q, changeWindow(q));
  if (q.cursor) {
    const [id] = decodeCursor(q.cursor, ['int']);
    query = query.where('id', '<', Number(id));
  }
  const rows = await query
    .orderBy('id', 'desc')
    .limit(q.limit + 1)
    .execute();
  return pageOf(rows, q.limit, (r) => [r.id ?? 0], changeRecordOf);
}

const BUCKET_MS: Record<TimelineBucket, number> = { hour: 3_600_000, day: 86_400_000 };
/**
 * A record's bucket start, the same ISO form as `bucketStarts`: its time's first characters (an
 * ISO-8601 UTC time starts `YYYY-MM-DDTHH`) and the rest of the start. What strftime would give,
 * without parsing every record's time (the week's timeline groups 200,000 records in half the time).
 */
const BUCKET_SLOT: Record<TimelineBucket, { chars: number; rest: string }> = {
  hour: { chars: 13, rest: ':00:00.000Z' },
  day: { chars: 10, rest: 'T00:00:00.000Z' },
};

/** Every bucket start from the one holding `start` up to (not including) `end` (pure). */
export function bucketStarts(bucket: TimelineBucket, start: string, end: string): string[] {
  const size = BUCKET_MS[bucket];
  const out: string[] = [];
  for (let t = Math.floor(Date.parse(start) / size) * size; t < Date.parse(end); t += size)
    out.push(new Date(t).toISOString());
  return out;
}

type ValidTimelineQuery = Filters & { bucket: TimelineBucket; by: 'kind' | 'risk' };

/** Change counts per bucket and kind or risk, grouped in SQL; empty buckets are zeros. */
export async function changeTimeline(
  tx: Tx,
  q: ValidTimelineQuery,
  now = Date.now(),
): Promise<ChangeTimeline> {
  const window = changeWindow(q, now);
  const end = window.until ?? new Date(now).toISOString();
  if (end <= window.since)
    throw new InvalidInput(`until: must be later than since (${window.since})`, q.until ? 'until' : 'since');
  const buckets = bucketStarts(q.bucket, window.since, end);
  if (buckets.length > MAX_TIMELINE_BUCKETS)
    throw new InvalidInput(
      `since: the window holds ${buckets.length} ${q.bucket}s, more than ${MAX_TIMELINE_BUCKETS}: shorten it or use a larger bucket`,
      'since',
    );
  const column = q.by === 'kind' ? 'object_kind' : 'risk';
  const { chars, rest } = BUCKET_SLOT[q.bucket];
  const slot = sql<string>`substr(at, 1, ${chars}) || ${rest}`;
  const rows = await filtered(
    tx,
    tx
      .selectFrom('changes')
      .select([slot.as('slot'), `${column} as name`, (eb) => eb.fn.countAll<number>().as('n')]),
    q,
    { since: window.since, until: end },
  )
    .groupBy(['slot', column])
    .execute();
  const index = new Map(buckets.map((b, i) => [b, i]));
  const names =
    q.by === 'risk'
      ? ChangeRisk.options.filter((r) => !q.risk || q.risk.includes(r)).reverse()
      : ObjectKind.options.filter((k) => rows.some((r) => r.name === k));
  const counts = new Map(names.map((n) => [n as string, buckets.map(() => 0)]));
  let total = 0;
  for (const r of rows) {
    const i = index.get(r.slot);
    if (i === undefined) continue; // unreachable: the WHERE keeps rows inside the buckets
    const series = counts.get(r.name) ?? buckets.map(() => 0);
    counts.set(r.name, series);
    series[i] = (series[i] ?? 0) + Number(r.n);
    total += Number(r.n);
  }
  return {
    bucket: q.bucket,
    by: q.by,
    start: buckets[0] ?? window.since,
    end,
    buckets,
    series: [...counts].map(([name, c]) => ({ name, counts: c })),
    total,
  };
}

/** A stored change record as the API gives it (the list and the fabric event stream). */
export function changeRecordOf(r: Selectable<ChangesTable>): ChangeRecord {
  return {
    id: r.id ?? 0,
    at: r.at,
    actor: r.actor,
    object: { kind: r.object_kind as ChangeRecord['object']['kind'], id: r.object_id, name: r.object_name },
    action: r.action as ChangeRecord['action'],
    changes: JSON.parse(r.changes) as FieldChange[],
    ...(r.host ? { host: r.host } : {}),
    ...(r.job_id ? { jobId: r.job_id } : {}),
    risk: ChangeRisk.catch('medium').parse(r.risk),
    riskRule: r.risk_rule,
    manager: r.manager,
  };
}

import type { z } from 'zod';
import {
  DatastoreLost,
  DRIFT_RULES,
  StorageThresholdOverrides,
  GuestFilesystemStats,
  type Page,
  type StorageIssue,
  type StorageIssueQuery,
  type StorageThresholds,
} from '../../api/index.js';
import { decodeCursor, pageOf } from '../cursor.js';
import type { Selectable } from 'kysely';
import {
  rawAll,
  rawRun,
  runRaw,
  type RawProgram,
  type Db,
  type StatDatastoresTable,
  type StatDisksTable,
  type StorageIssuesTable,
} from '../db.js';
import { noteWritten } from '../writes.js';

/** A row as SQLite returns it: the table's columns, its autoincrement id set. */
type Row<T extends { id: number | undefined }> = T & { id: number };
import { daysUntilFull, type IoSums } from './rates.js';
import {
  effectiveThresholds,
  evaluateRules,
  type DatastoreFacts,
  type DiskFacts,
  type Finding,
  type GuestFsFacts,
  type GuestToolsFacts,
} from './rules.js';
import { toolsStatusOfRow } from '../tools-status.js';
import { IO_VALUE_COLUMNS, SUBJECT_DATASTORE, SUBJECT_DISK, SUM_COLUMNS, sumsFromRow } from './store.js';

/*
 * After each collection: the store's figures become the rules' facts (rules.ts decides), and the
 * findings open, update and end issues. An issue is open while its rule keeps finding it; it ends
 * at the first evaluation that does not, and stays listed (with both times) for the retention.
 */

/** The trend is recomputed once per bucket of this tier (5-minute points over the trend window). */
const TREND_RES = 300;

/** Overrides of every datastore that has some, by `host/datastore`. */
export async function thresholdOverrides(db: Db): Promise<Map<string, Partial<StorageThresholds>>> {
  const rows = await db.selectFrom('storage_thresholds').selectAll().execute();
  const out = new Map<string, Partial<StorageThresholds>>();
  for (const r of rows) {
    const parsed = StorageThresholdOverrides.safeParse(JSON.parse(r.overrides));
    if (parsed.success) out.set(`${r.host}/${r.datastore}`, parsed.data);
  }
  return out;
}

/** Trend points of one datastore: 5-minute points over the window, or raw ones while history is short. */
function* trendDays(
  ds: number,
  t: StorageThresholds,
  now: number,
): RawProgram<{ days: number | null; fromBuckets: boolean }> {
  const since = now - t.trendWindowHours * 3600;
  function* points(res: number) {
    return (yield* rawAll<{ at: number; free_bytes: number }>(
      `select at, free_bytes from ds_series where ds = ? and res = ? and bucket >= ? order by bucket`,
      ds,
      res,
      since,
    )).map((p) => ({ t: p.at, free: p.free_bytes }));
  }
  let list = yield* points(TREND_RES);
  const fromBuckets = list.length >= t.trendMinPoints;
  if (!fromBuckets) list = yield* points(0);
  const span = list.length > 1 ? (list[list.length - 1]?.t ?? 0) - (list[0]?.t ?? 0) : 0;
  if (list.length < t.trendMinPoints || span < t.trendMinSpanSeconds) return { days: null, fromBuckets };
  return { days: daysUntilFull(list), fromBuckets };
}

/** A stored DatastoreLost (the agent's, as JSON); null for none or text this version does not read. */
function lostOf(text: string | null): DatastoreLost | null {
  if (text === null) return null;
  try {
    const parsed = DatastoreLost.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

export interface EvaluationResult {
  findings: number;
  opened: number;
  ended: number;
}

/** Evaluates every rule on the stored figures and brings the issues table in line; one transaction. */
export async function evaluateIssues(db: Db, nowMs = Date.now()): Promise<EvaluationResult> {
  const overrides = await thresholdOverrides(db);
  const thresholdsOf = (key: string) => effectiveThresholds(overrides.get(key));
  const result = await runRaw(
    db,
    function* (): RawProgram<EvaluationResult> {
      const now = Math.floor(nowMs / 1000);
      const nowIso = new Date(nowMs).toISOString();
      const bucket = Math.floor(now / TREND_RES) * TREND_RES;
      // The last complete 5-minute bucket: the "sustained" period of the I/O rules.
      const sustainedBucket = bucket - TREND_RES;
      // Disks' rules need no bins (average latency, throughput): their sums only.
      function* sustained(kind: number) {
        const columns = kind === SUBJECT_DISK ? SUM_COLUMNS : IO_VALUE_COLUMNS;
        const rows = yield* rawAll<Record<string, unknown>>(
          `select subject, ${columns.join(', ')} from io_series where res = ? and bucket = ? and kind = ?`,
          TREND_RES,
          sustainedBucket,
          kind,
        );
        return new Map<number, IoSums>(rows.map((r) => [Number(r.subject), sumsFromRow(r)]));
      }
      const dsIo = yield* sustained(SUBJECT_DATASTORE);
      const diskIo = yield* sustained(SUBJECT_DISK);

      const dsRows = yield* rawAll<Row<StatDatastoresTable>>(`select * from stat_datastores`);
      // Shared datastores' storage ids, by `host/datastore` (the inventory's).
      const storageIds = new Map(
        (yield* rawAll<{ host: string; name: string; storage_id: string }>(
          `select h.name as host, d.name, d.storage_id from datastores d join hosts h on h.id = d.host_id
           where d.storage_id is not null`,
        )).map((r) => [`${r.host}/${r.name}`, r.storage_id]),
      );
      const datastores: DatastoreFacts[] = [];
      for (const d of dsRows) {
        const thresholds = thresholdsOf(`${d.host}/${d.name}`);
        let days = d.days_until_full;
        if (d.trend_bucket !== bucket) {
          const trend = yield* trendDays(d.id, thresholds, now);
          days = trend.days;
          yield* rawRun(
            `update stat_datastores set days_until_full = ?, trend_bucket = ? where id = ?`,
            days,
            trend.fromBuckets ? bucket : null,
            d.id,
          );
        }
        datastores.push({
          host: d.host,
          name: d.name,
          fsType: d.fs_type,
          capacityBytes: d.capacity_bytes,
          freeBytes: d.free_bytes,
          provisionedBytes: d.provisioned_bytes,
          daysUntilFull: days,
          sustained: dsIo.get(d.id) ?? null,
          thresholds,
          storageId: storageIds.get(`${d.host}/${d.name}`) ?? null,
          lost: lostOf(d.lost),
        });
      }

      const diskRows = yield* rawAll<Row<StatDisksTable>>(
        `select id, vm_id, disk_id, vm_name, host, datastore, format, format_version from stat_disks where gone = 0 order by id`,
      );
      const datastoreOf = new Map<string, string>();
      const disks: DiskFacts[] = diskRows.map((d) => {
        const ds = `${d.host}/${d.datastore}`;
        datastoreOf.set(`${d.vm_id}/${d.disk_id}`, ds);
        if (!datastoreOf.has(d.vm_id)) datastoreOf.set(d.vm_id, ds);
        return {
          vm: d.vm_name,
          vmId: d.vm_id,
          disk: d.disk_id,
          host: d.host,
          datastore: d.datastore,
          format: d.format,
          formatVersion: d.format_version,
          sustained: diskIo.get(d.id) ?? null,
          thresholds: thresholdsOf(ds),
        };
      });

      const guestRows = yield* rawAll<{ vm_id: string; vm_name: string; host: string; filesystems: string }>(
        `select vm_id, vm_name, host, filesystems from stat_guests where filesystems is not null`,
      );
      const guestFilesystems: GuestFsFacts[] = guestRows.flatMap((g) =>
        (JSON.parse(g.filesystems) as z.infer<typeof GuestFilesystemStats>[]).map((f) => ({
          vm: g.vm_name,
          vmId: g.vm_id,
          host: g.host,
          mountpoint: f.mountpoint,
          totalBytes: f.totalBytes,
          usedBytes: f.usedBytes,
          thresholds: thresholdsOf(datastoreOf.get(g.vm_id) ?? ''),
        })),
      );

      const toolRows = yield* rawAll<{
        id: string;
        name: string;
        state: string;
        started_at: string | null;
        tools_version: string | null;
        tools_started_at: string | null;
        tools_answering: number;
        host: string;
        host_tools: string | null;
      }>(
        `select v.id, v.name, v.state, v.started_at, v.tools_version, v.tools_started_at, v.tools_answering,
           h.name as host, h.tools_version as host_tools from vms v join hosts h on h.id = v.host_id
         where v.state = 'running'`,
      );
      const guestTools: GuestToolsFacts[] = toolRows.map((v) => ({
        vm: v.name,
        vmId: v.id,
        host: v.host,
        status: toolsStatusOfRow(v, v.host_tools, nowMs),
        installed: v.tools_version,
        current: v.host_tools,
      }));

      const findings = evaluateRules({ datastores, disks, guestFilesystems, guestTools });
      return yield* applyFindings(findings, datastoreOf, nowIso);
    },
    { transaction: true },
  );
  noteWritten('storage_issues');
  return result;
}

const INSERT_ISSUE = `insert into storage_issues (rule, severity, subject_kind, subject_key, subject_name, host, datastore,
   message, value, threshold, started_at, ended_at, updated_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, null, ?)`;
const UPDATE_ISSUE = `update storage_issues set severity = ?, message = ?, value = ?, threshold = ?, updated_at = ? where id = ?`;
const END_ISSUE = `update storage_issues set ended_at = ?, updated_at = ? where id = ?`;

function* applyFindings(
  findings: readonly Finding[],
  datastoreOf: ReadonlyMap<string, string>,
  nowIso: string,
): RawProgram<EvaluationResult> {
  const open = yield* rawAll<{
    id: number;
    rule: string;
    subject_key: string;
    severity: string;
    message: string;
    value: number | null;
    threshold: number | null;
  }>(
    // Drift issues are reconciliation's (drift.ts), not the figures'.
    `select id, rule, subject_key, severity, message, value, threshold from storage_issues
     where ended_at is null and rule not in (${DRIFT_RULES.map((r) => `'${r}'`).join(', ')})`,
  );
  const byKey = new Map(open.map((o) => [`${o.rule}|${o.subject_key}`, o]));
  let opened = 0;
  const found = new Set<string>();
  for (const f of findings) {
    const key = `${f.rule}|${f.subject.key}`;
    if (found.has(key)) continue;
    found.add(key);
    const existing = byKey.get(key);
    if (!existing) {
      const ds =
        f.subject.kind === 'datastore'
          ? f.subject.key
          : (datastoreOf.get(f.subject.key) ?? datastoreOf.get(f.subject.key.split(':')[0] ?? '') ?? null);
      yield* rawRun(
        INSERT_ISSUE,
        f.rule,
        f.severity,
        f.subject.kind,
        f.subject.key,
        f.subject.name,
        f.subject.host,
        ds,
        f.message,
        f.value,
        f.threshold,
        nowIso,
        nowIso,
      );
      opened++;
    } else if (
      existing.severity !== f.severity ||
      existing.message !== f.message ||
      existing.value !== f.value ||
      existing.threshold !== f.threshold
    ) {
      yield* rawRun(UPDATE_ISSUE, f.severity, f.message, f.value, f.threshold, nowIso, existing.id);
    }
  }
  let ended = 0;
  for (const [key, o] of byKey) {
    if (found.has(key)) continue;
    yield* rawRun(END_ISSUE, nowIso, nowIso, o.id);
    ended++;
  }
  return { findings: found.size, opened, ended };
}

type ValidIssueQuery = Omit<StorageIssueQuery, 'limit' | 'state'> & {
  limit: number;
  state: 'active' | 'all';
};

/** Newest first; `active` only the open ones. */
export async function listStorageIssues(db: Db, q: ValidIssueQuery): Promise<Page<StorageIssue>> {
  let query = db.selectFrom('storage_issues').selectAll();
  if (q.state === 'active') query = query.where('ended_at', 'is', null);
  if (q.severity) query = query.where('severity', '=', q.severity);
  if (q.rule) query = query.where('rule', '=', q.rule);
  if (q.cursor) {
    const [id] = decodeCursor(q.cursor, ['int']);
    query = query.where('id', '<', id);
  }
  const rows = await query
    .orderBy('id', 'desc')
    .limit(q.limit + 1)
    .execute();
  return pageOf(rows, q.limit, (r) => [r.id ?? 0], storageIssueOf);
}

/** A stored issue as the API gives it (the list and the fabric event stream). */
export function storageIssueOf(r: Selectable<StorageIssuesTable>): StorageIssue {
  return {
    id: r.id ?? 0,
    rule: r.rule as StorageIssue['rule'],
    severity: r.severity as StorageIssue['severity'],
    subject: {
      kind: r.subject_kind as StorageIssue['subject']['kind'],
      name: r.subject_name,
      host: r.host,
    },
    message: r.message,
    value: r.value,
    threshold: r.threshold,
    active: r.ended_at === null,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    updatedAt: r.updated_at,
  };
}

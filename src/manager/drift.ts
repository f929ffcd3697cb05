import { sql } from 'kysely';
import { DRIFT_ISSUE_HOURS, type AgentJournal, type JournalEntry } from '../api/index.js';
import { recordChanges, type Actor } from './changes.js';
import type { Tx } from './db.js';
import { noteWritten } from './writes.js';
import type { HostRow, VmConflict } from './inventory.js';

/*
 * Drift (issue 28): what a host's agent reports that the manager did not do. Reconciliation
 * records it with the actor `agent:<host>` (not `system`) and opens an issue for each VM or
 * datastore that appeared or vanished, and for each VM the inventory refuses because its name or
 * MAC is another VM's. A VM made and deleted between two polls is found in the agent's journal.
 */

/** Who made a change the manager found on a host and did not make itself. */
export const agentActor = (host: string): Actor => ({ name: `agent:${host}` });

type Subject = { kind: 'vm' | 'datastore'; key: string; name: string; datastore: string | null };

async function openIssue(
  tx: Tx,
  rule: 'drift' | 'drift-conflict',
  host: string,
  subject: Subject,
  severity: 'warning' | 'critical',
  message: string,
  now: string,
): Promise<boolean> {
  const open = await tx
    .selectFrom('storage_issues')
    .select('id')
    .where('rule', '=', rule)
    .where('subject_key', '=', subject.key)
    .where('ended_at', 'is', null)
    .executeTakeFirst();
  if (open) return false;
  await tx
    .insertInto('storage_issues')
    .values({
      id: undefined,
      rule,
      severity,
      subject_kind: subject.kind,
      subject_key: subject.key,
      subject_name: subject.name,
      host,
      datastore: subject.datastore,
      message,
      value: null,
      threshold: null,
      started_at: now,
      ended_at: null,
      updated_at: now,
    })
    .execute();
  return true;
}

const vmSubject = (host: string, id: string, name: string, what: string): Subject => ({
  kind: 'vm',
  key: `${host}:vm:${id}:${what}`,
  name,
  datastore: null,
});
const datastoreSubject = (host: string, name: string, what: string): Subject => ({
  kind: 'datastore',
  key: `${host}:datastore:${name}:${what}`,
  name: `${host}/${name}`,
  datastore: `${host}/${name}`,
});

const DIRECTLY = "on the host's agent directly, not through the manager";

export interface DriftReport {
  /** The change records of this poll start after this id. */
  afterChangeId: number;
  /** The VMs the inventory did not take (syncVms). */
  conflicts: readonly VmConflict[];
  /** The agent's journal since the last poll, when it has one. */
  journal: AgentJournal | undefined;
  /** What the inventory held of this host before this poll, and what the agent reports now. */
  known: { vms: ReadonlySet<string>; datastores: ReadonlySet<string> };
  reported: { vms: ReadonlySet<string>; datastores: ReadonlySet<string> };
  /** The manager's own changes of this host's datastores since then are not drift. */
  since: string;
}

/** Records and opens the issues of what this poll of `host` found that the manager did not do. */
export async function reportDrift(tx: Tx, host: HostRow, report: DriftReport, now: string): Promise<void> {
  const actor = agentActor(host.name);
  // What the report changed: the change records this poll wrote by the agent's name.
  const found = await tx
    .selectFrom('changes')
    .select(['id', 'object_kind', 'object_id', 'object_name', 'action'])
    .where('id', '>', report.afterChangeId)
    .where('actor', '=', actor.name)
    .where('object_kind', 'in', ['vm', 'datastore'])
    .where('action', 'in', ['created', 'deleted'])
    .orderBy('id')
    .execute();
  for (const c of found) {
    const appeared = c.action === 'created';
    if (c.object_kind === 'vm') {
      await openIssue(
        tx,
        'drift',
        host.name,
        vmSubject(host.name, c.object_id, c.object_name, `${c.action}:${c.id}`),
        'warning',
        `VM ${c.object_name} ${appeared ? 'appeared on' : 'vanished from'} host ${host.name}: ${appeared ? 'defined' : 'deleted'} ${DIRECTLY}`,
        now,
      );
    } else {
      const name = c.object_name.slice(host.name.length + 1);
      await openIssue(
        tx,
        'drift',
        host.name,
        datastoreSubject(host.name, name, `${c.action}:${c.id}`),
        'warning',
        `datastore ${c.object_name} ${appeared ? 'was added' : 'was removed'} ${DIRECTLY}`,
        now,
      );
    }
  }
  await reportConflicts(tx, host, report.conflicts, now);
  if (report.journal) await reportTransients(tx, host, report, report.journal.entries, now);
  // A drift issue is news, not a state: it ends after a day (conflicts end when they are gone).
  const expiry = new Date(Date.parse(now) - DRIFT_ISSUE_HOURS * 3_600_000).toISOString();
  await tx
    .updateTable('storage_issues')
    .set({ ended_at: now, updated_at: now })
    .where('rule', '=', 'drift')
    .where('ended_at', 'is', null)
    .where('started_at', '<', expiry)
    .execute();
  noteWritten('storage_issues');
}

/**
 * A VM the inventory refuses: an issue while the host reports it, and a change record when the
 * issue opens (the VM has no row to record changes on).
 */
async function reportConflicts(
  tx: Tx,
  host: HostRow,
  conflicts: readonly VmConflict[],
  now: string,
): Promise<void> {
  const keys: string[] = [];
  for (const { vm, reason } of conflicts) {
    const subject = vmSubject(host.name, vm.id, vm.name, 'conflict');
    keys.push(subject.key);
    const opened = await openIssue(
      tx,
      'drift-conflict',
      host.name,
      subject,
      'critical',
      `VM ${vm.name} on host ${host.name} is not in the inventory: ${reason}. Rename or remove it on the host`,
      now,
    );
    if (opened)
      await recordChanges(
        tx,
        agentActor(host.name),
        [
          {
            object: { kind: 'vm', id: vm.id, name: vm.name },
            action: 'created',
            host: host.name,
            changes: [
              { field: 'adopted', before: null, after: false },
              { field: 'reason', before: null, after: reason },
            ],
          },
        ],
        now,
      );
  }
  // Conflicts this host no longer reports have ended (renamed, removed, or adopted since).
  let gone = tx
    .updateTable('storage_issues')
    .set({ ended_at: now, updated_at: now })
    .where('rule', '=', 'drift-conflict')
    .where('host', '=', host.name)
    .where('ended_at', 'is', null);
  if (keys.length) gone = gone.where('subject_key', 'not in', keys);
  await gone.execute();
}

/**
 * Objects the journal shows made and deleted again between two polls, which no report showed:
 * unless the manager made them itself (a VM it has ever recorded; a datastore it added through its
 * API since the last poll), each gets its two change records, at the host's times, and an issue.
 */
async function reportTransients(
  tx: Tx,
  host: HostRow,
  report: DriftReport,
  entries: readonly JournalEntry[],
  now: string,
): Promise<void> {
  const key = (e: JournalEntry) => `${e.kind}:${e.id ?? e.name}`;
  const created = new Map<string, JournalEntry>();
  for (const e of entries) {
    if (e.action === 'created') {
      created.set(key(e), e);
      continue;
    }
    const made = created.get(key(e));
    if (!made) continue;
    created.delete(key(e));
    const seen =
      e.kind === 'vm'
        ? report.known.vms.has(e.id ?? '') || report.reported.vms.has(e.id ?? '')
        : report.known.datastores.has(e.name) || report.reported.datastores.has(e.name);
    if (seen) continue;
    const objectName = e.kind === 'vm' ? e.name : `${host.name}/${e.name}`;
    const byManager =
      e.kind === 'vm'
        ? await tx
            .selectFrom('changes')
            .select('id')
            .where('object_id', '=', e.id ?? '')
            .executeTakeFirst()
        : await tx
            .selectFrom('changes')
            .select('id')
            .where('object_kind', '=', 'datastore')
            .where('object_name', '=', objectName)
            .where('at', '>=', report.since)
            .where(sql<boolean>`actor not like 'agent:%'`)
            .executeTakeFirst();
    if (byManager) continue;
    const object = { kind: e.kind, id: e.kind === 'vm' ? (e.id ?? e.name) : objectName, name: objectName };
    const actor = agentActor(host.name);
    await recordChanges(tx, actor, [{ object, action: 'created', host: host.name }], made.at);
    await recordChanges(tx, actor, [{ object, action: 'deleted', host: host.name }], e.at);
    const subject =
      e.kind === 'vm'
        ? vmSubject(host.name, e.id ?? e.name, e.name, `transient:${e.seq}`)
        : datastoreSubject(host.name, e.name, `transient:${e.seq}`);
    await openIssue(
      tx,
      'drift',
      host.name,
      subject,
      'warning',
      `${e.kind === 'vm' ? 'VM' : 'datastore'} ${objectName} appeared on host ${host.name} at ${made.at} and vanished again at ${e.at}, between two polls: made and deleted ${DIRECTLY}`,
      now,
    );
  }
}

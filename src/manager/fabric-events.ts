import { EventEmitter } from 'node:events';
import type { ChangeRecord, FabricEvent, InventoryEvent, InventoryObjectKind, Job } from '../api/index.js';
import { changeRecordOf } from './changes.js';
import { readAfterTransactions, type Db } from './db.js';
import { storageIssueOf } from './insight/issues.js';
import type { JobRunner } from './jobs.js';
import { writes, type NotedTable } from './writes.js';

/*
 * The fabric's event source (GET /api/v1/events): one emitter per manager for everything a console
 * refreshes on. Jobs come from the job runner's own events. Change records (and the inventory
 * events made from them: every added, changed or removed host, VM, datastore, pool or virtual
 * switch writes one) and storage issues come from their tables: their writers only note that they
 * wrote, and the emitter reads what is new by id or time. That read queues behind the writing
 * transaction (one connection), so it sees committed rows only: a rolled-back change sends nothing.
 * Nothing is read or followed while nobody listens.
 */

/** Change records of these kinds are inventory events; a disk's or NIC's is a change of its VM. */
const INVENTORY_KINDS: Record<string, InventoryObjectKind> = {
  host: 'host',
  vm: 'vm',
  datastore: 'datastore',
  pool: 'pool',
  vswitch: 'vswitch',
  disk: 'vm',
  nic: 'vm',
};
const INVENTORY_ACTIONS = {
  created: 'added',
  deleted: 'removed',
  'state-changed': 'changed',
  'setting-changed': 'changed',
} as const;

/** Change records read at once (a burst, e.g. a host joining with its VMs, is read in pages). */
const CHANGE_PAGE = 500;

export type FabricListener = (event: FabricEvent) => void;

export class FabricEvents {
  private readonly out = new EventEmitter().setMaxListeners(0);
  /** Reads one at a time, in order (the marks move forward). */
  private queue: Promise<void> = Promise.resolve();
  private active = false;
  /** The last change record sent; undefined while inactive. */
  private lastChangeId: number | undefined;
  /** The newest issue update sent, and the issues updated at that very time (sent already). */
  private issueMark: { at: string; sent: Set<number> } | undefined;
  private readonly pending = { changes: false, storage_issues: false };
  private readonly onChanges = () => this.read('changes', () => this.readChanges());
  private readonly onIssues = () => this.read('storage_issues', () => this.readIssues());
  private readonly onJob = (job: Job) => this.emit({ kind: 'job', id: job.id, job });

  constructor(
    private readonly db: Db,
    private readonly jobs: JobRunner,
    private readonly log: (message: string) => void,
  ) {}

  /**
   * Adds a listener; resolves once everything after this moment will reach it (the marks are
   * read). Returns the call that removes it. The first listener starts following, the last stops.
   */
  async subscribe(listener: FabricListener): Promise<() => void> {
    this.out.on('event', listener);
    if (!this.active) this.start();
    await this.queue;
    return () => {
      this.out.off('event', listener);
      if (this.out.listenerCount('event') === 0) this.stop();
    };
  }

  private emit(event: FabricEvent): void {
    this.out.emit('event', event);
  }

  private start(): void {
    this.active = true;
    writes.on('changes', this.onChanges);
    writes.on('storage_issues', this.onIssues);
    this.jobs.events.on('job', this.onJob);
    this.enqueue(async () => {
      const change = await this.db
        .selectFrom('changes')
        .select((eb) => eb.fn.max('id').as('id'))
        .executeTakeFirst();
      this.lastChangeId = Number(change?.id ?? 0);
      const newest = await this.db
        .selectFrom('storage_issues')
        .select((eb) => eb.fn.max('updated_at').as('at'))
        .executeTakeFirst();
      const at = newest?.at ?? '';
      const sent = await this.db
        .selectFrom('storage_issues')
        .select('id')
        .where('updated_at', '=', at)
        .execute();
      this.issueMark = { at, sent: new Set(sent.map((r) => Number(r.id))) };
    });
  }

  private stop(): void {
    this.active = false;
    writes.off('changes', this.onChanges);
    writes.off('storage_issues', this.onIssues);
    this.jobs.events.off('job', this.onJob);
    // Reads still queued find no marks and send nothing; a new start reads them afresh.
    this.lastChangeId = undefined;
    this.issueMark = undefined;
  }

  private enqueue(work: () => Promise<void>): void {
    this.queue = this.queue
      .then(work)
      .catch((error: unknown) =>
        this.log(`fabric events: ${error instanceof Error ? error.message : String(error)}`),
      );
  }

  /** One read per table queued at a time: notes arriving before it starts are served by it. */
  private read(table: NotedTable, work: () => Promise<void>): void {
    if (this.pending[table]) return;
    this.pending[table] = true;
    this.enqueue(async () => {
      this.pending[table] = false;
      await work();
    });
  }

  private async readChanges(): Promise<void> {
    for (;;) {
      const after = this.lastChangeId;
      if (after === undefined) return;
      const rows = await readAfterTransactions(this.db, (tx) =>
        tx
          .selectFrom('changes')
          .selectAll()
          .where('id', '>', after)
          .orderBy('id')
          .limit(CHANGE_PAGE)
          .execute(),
      );
      // Stopped meanwhile: nobody to tell.
      if (this.lastChangeId === undefined) return;
      for (const row of rows) {
        const change = changeRecordOf(row);
        this.lastChangeId = change.id;
        this.emit({ kind: 'change', id: change.id, change });
        const inventory = inventoryEventOf(change);
        if (inventory) this.emit(inventory);
      }
      if (rows.length < CHANGE_PAGE) return;
    }
  }

  private async readIssues(): Promise<void> {
    const mark = this.issueMark;
    if (!mark) return;
    // Issues are updated in place (opened, changed, ended): read by time, the boundary's ids once.
    const rows = await readAfterTransactions(this.db, (tx) =>
      tx
        .selectFrom('storage_issues')
        .selectAll()
        .where('updated_at', '>=', mark.at)
        .orderBy('updated_at')
        .orderBy('id')
        .execute(),
    );
    if (this.issueMark !== mark) return;
    for (const row of rows) {
      const id = Number(row.id);
      if (row.updated_at === mark.at && mark.sent.has(id)) continue;
      if (row.updated_at !== mark.at) {
        mark.at = row.updated_at;
        mark.sent.clear();
      }
      mark.sent.add(id);
      const issue = storageIssueOf(row);
      const action =
        issue.endedAt !== null ? 'ended' : issue.updatedAt === issue.startedAt ? 'opened' : 'updated';
      this.emit({ kind: 'issue', action, id, issue });
    }
  }
}

/** The inventory event a change record means, if it is about the inventory. */
export function inventoryEventOf(change: ChangeRecord): InventoryEvent | undefined {
  const object = INVENTORY_KINDS[change.object.kind];
  if (!object) return undefined;
  // A disk or NIC (`<vm>/<part>`) changes its VM.
  const part = change.object.kind === 'disk' || change.object.kind === 'nic';
  const whole = (s: string) => (part ? (s.split('/')[0] ?? s) : s);
  return {
    kind: 'inventory',
    object,
    action: part ? 'changed' : INVENTORY_ACTIONS[change.action],
    id: whole(change.object.id),
    name: whole(change.object.name),
    host: change.host ?? null,
    changeId: change.id,
  };
}

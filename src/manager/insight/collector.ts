import type { AgentClient } from '../../api/index.js';
import type { Db } from '../db.js';
import type { HostRow } from '../inventory.js';
import { PeriodicLoop } from '../periodic.js';
import { recordGuestAgents } from '../tools-record.js';
import { evaluateIssues } from './issues.js';
import { ingestHostStats, maintainWindows, prune } from './store.js';

/*
 * The collector: every interval it asks each host for its stats (GET /v1/stats), stores them,
 * evaluates the storage rules and prunes what the store no longer keeps. A host that does not
 * answer is skipped (the reconciler marks it unreachable); its series resume when it answers.
 */

/** Seconds between two collections (the manager's `statsIntervalSeconds`). */
export const DEFAULT_STATS_INTERVAL_SECONDS = 10;
/** Old rows are pruned at most this often: each pass scans a tier's old end. */
const PRUNE_EVERY_MS = 60_000;

export interface CollectorOptions {
  db: Db;
  clientFor: (host: HostRow) => AgentClient;
  intervalMs: number;
  concurrency?: number;
  log: (message: string) => void;
}

export interface CollectionResult {
  hosts: number;
  answered: number;
  disks: number;
  intervals: number;
  opened: number;
  ended: number;
}

export class Collector {
  readonly #loop: PeriodicLoop;
  private lastPrune = 0;
  /** Hosts whose last collection failed: logged once until they answer again. */
  private readonly failing = new Set<string>();

  constructor(private readonly options: CollectorOptions) {
    this.#loop = new PeriodicLoop(
      () =>
        this.collect().then(
          () => undefined,
          (error: unknown) =>
            this.options.log(`stats: ${error instanceof Error ? error.message : String(error)}`),
        ),
      options.intervalMs,
    );
  }

  start(): void {
    this.#loop.start();
  }

  stop(): Promise<void> {
    return this.#loop.stop();
  }

  /** One collection of every host now, then the rules and (at most once a minute) pruning. */
  collect(): Promise<CollectionResult> {
    // One at a time: a collection asked for (tests, the API) waits for the timer's.
    const next = this.queue.then(() => this.collectOnce(Date.now()));
    this.queue = next.catch(() => undefined);
    return next;
  }
  private queue: Promise<unknown> = Promise.resolve();

  private async collectOnce(nowMs: number): Promise<CollectionResult> {
    const { db, clientFor, log } = this.options;
    const hosts = await db.selectFrom('hosts').selectAll().orderBy('name').execute();
    const queue = [...hosts];
    const result: CollectionResult = {
      hosts: hosts.length,
      answered: 0,
      disks: 0,
      intervals: 0,
      opened: 0,
      ended: 0,
    };
    const workers = Array.from(
      { length: Math.min(this.options.concurrency ?? 8, queue.length) },
      async () => {
        for (let host = queue.shift(); host !== undefined && !this.#loop.stopped; host = queue.shift()) {
          try {
            const stats = await clientFor(host).stats();
            const ingested = await ingestHostStats(db, stats);
            // The same poll says which guest agents answer, and their versions (guest tools).
            await recordGuestAgents(db, host.id, stats);
            result.answered++;
            result.disks += ingested.disks;
            result.intervals += ingested.intervals;
            if (this.failing.delete(host.id)) log(`stats: ${host.name} answers again`);
          } catch (error) {
            if (!this.failing.has(host.id))
              log(`stats: ${host.name}: ${error instanceof Error ? error.message : String(error)}`);
            this.failing.add(host.id);
          }
        }
      },
    );
    await Promise.all(workers);
    await maintainWindows(db, nowMs);
    const evaluation = await evaluateIssues(db, nowMs);
    result.opened = evaluation.opened;
    result.ended = evaluation.ended;
    if (nowMs - this.lastPrune >= PRUNE_EVERY_MS) {
      this.lastPrune = nowMs;
      await prune(db, nowMs);
    }
    return result;
  }
}

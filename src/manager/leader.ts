import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import { ApiError } from '../api/index.js';
import { leaseDatabase, type Db, type ManagerLeaderTable } from './db.js';

/*
 * Several managers on one database, one of them leading (issue 31). The lease is one row
 * (manager_leader, migration 0017), taken and renewed by compare-and-set updates, each one
 * statement and so one transaction of the database: no consensus of our own, the database's
 * serialisation of writes decides.
 *
 * - The leader renews every LEASE_RENEW_MS; the lease runs LEASE_EXPIRY_MS past each renewal.
 * - Any other manager looks every LEASE_CHECK_MS and takes an expired lease; the epoch goes up by
 *   one on every change of holder (the update's condition is the epoch it read, so two takers
 *   cannot both win).
 * - A leader whose last successful renewal began LEASE_STEP_DOWN_MS ago steps down on its own
 *   timer, also when the renewal hangs: LEASE_RENEW_MS before anyone else may take over. The
 *   lease's times are the managers' wall clocks, which must agree to well within that margin (NTP).
 * - A manager that steps down stops acting on agents at once: every agent call carries the epoch
 *   (`fence()`), which throws once it does not lead, and agents refuse an epoch older than one they
 *   have seen (src/agent/epoch.ts), which covers a leader that does not know yet it was replaced.
 * - At its start a manager takes at once a lease held under its own name: its previous run, which
 *   died without releasing it (a single manager's restart does not wait for its own lease).
 *   Names must differ between managers (default: the machine's host name).
 *
 * Worst case from a leader's death to a new leader: LEASE_EXPIRY_MS + LEASE_CHECK_MS (7 s).
 */
export const LEASE_RENEW_MS = 2_000;
export const LEASE_EXPIRY_MS = 6_000;
export const LEASE_STEP_DOWN_MS = LEASE_EXPIRY_MS - LEASE_RENEW_MS;
export const LEASE_CHECK_MS = 1_000;
/** Managers not seen for this long are dropped from the list of managers. */
export const MANAGER_FORGET_MS = 3_600_000;

/** One manager process: `id` is made at its start, `name` is its configured name. */
export interface LeaseClaimant {
  id: string;
  name: string;
  url: string;
}

export type LeaseRow = Omit<ManagerLeaderTable, 'id'>;

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * One compare-and-set on the lease. With `heldEpoch`: renews the lease that `me` holds under that
 * epoch (nothing when it does not any more). Without: takes the lease, one epoch higher, when it
 * has expired (or, with `atStart`, when `me`'s name holds it). Returns whether `me` leads now and
 * the row as it stands after.
 *
 * The compare and the set are one UPDATE statement, so one transaction of the database (SQLite's
 * write lock, PostgreSQL's row lock decide between two managers): a transaction spanning several
 * statements would hold SQLite's write lock across awaits, and another handle in the same process
 * (better-sqlite3 waits for a lock synchronously) would stall the event loop that must release it.
 */
export async function claimLease(
  db: Db,
  me: LeaseClaimant,
  options: { now: number; heldEpoch?: number | undefined; atStart?: boolean },
): Promise<{ leading: boolean; row: LeaseRow }> {
  const now = iso(options.now);
  const expires = iso(options.now + LEASE_EXPIRY_MS);
  const result =
    options.heldEpoch !== undefined
      ? await db
          .updateTable('manager_leader')
          .set({ expires_at: expires, holder_url: me.url })
          .where('id', '=', 1)
          .where('holder', '=', me.id)
          .where('epoch', '=', options.heldEpoch)
          .executeTakeFirst()
      : await db
          .updateTable('manager_leader')
          .set({
            holder: me.id,
            holder_name: me.name,
            holder_url: me.url,
            epoch: sql<number>`epoch + 1`,
            expires_at: expires,
            since: now,
          })
          .where('id', '=', 1)
          .where((eb) =>
            options.atStart
              ? eb.or([eb('expires_at', '<', now), eb('holder_name', '=', me.name)])
              : eb('expires_at', '<', now),
          )
          .executeTakeFirst();
  const row = await db
    .selectFrom('manager_leader')
    .select(['holder', 'holder_name', 'holder_url', 'epoch', 'expires_at', 'since'])
    .where('id', '=', 1)
    .executeTakeFirstOrThrow();
  // Read after the update: another manager may have taken the lease in between (then not leading,
  // and the next renewal under the epoch it took finds out for certain).
  return { leading: result.numUpdatedRows === 1n && row.holder === me.id, row };
}

/** Gives the lease up (a clean stop): the next manager need not wait for it to expire. */
export async function releaseLease(db: Db, me: LeaseClaimant, epoch: number): Promise<void> {
  await db
    .updateTable('manager_leader')
    .set({ expires_at: iso(0) })
    .where('id', '=', 1)
    .where('holder', '=', me.id)
    .where('epoch', '=', epoch)
    .execute();
}

/** What a manager's fenced agent call throws when it does not lead: as an agent's refusal reads. */
export function notLeading(detail: string): ApiError {
  return new ApiError({ type: 'about:blank', title: 'Conflict', status: 409, code: 'stale-epoch', detail });
}

export interface LeadershipDeps {
  db: Db;
  /** This manager's name (unique among the managers of one database). */
  name: string;
  /** Its API's base URL (known once it listens). */
  url: () => string;
  version: string;
  log: (message: string) => void;
  /** Called (one transition at a time) when this manager starts to lead under `epoch`. */
  onGain: (epoch: number) => Promise<void>;
  /** Called when it stopped leading: `fence()` throws already. */
  onLose: (epoch: number) => Promise<void>;
}

export interface ManagersView {
  self: { id: string; name: string; url: string; leading: boolean; epoch?: number };
  leader?: { id: string; name: string; url: string; epoch: number; since: string; expiresAt: string };
  managers: { id: string; name: string; url: string; version: string; startedAt: string; seenAt: string }[];
}

/** This manager's side of the lease: the ticks, the step-down timer and the fence. */
export class Leadership {
  readonly me: LeaseClaimant;
  readonly #startedAt = new Date().toISOString();
  #epoch: number | undefined;
  #seen: LeaseRow | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stepDown: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #stopped = false;
  #transition: Promise<void> = Promise.resolve();

  constructor(private readonly deps: LeadershipDeps) {
    this.me = {
      id: randomUUID(),
      name: deps.name,
      get url() {
        return deps.url();
      },
    };
  }

  /** The epoch this manager leads under; undefined while it does not lead. */
  get epoch(): number | undefined {
    return this.#epoch;
  }

  /** The epoch for an agent call; throws (as an agent's stale-epoch refusal) when not leading. */
  fence(): number {
    if (this.#epoch !== undefined) return this.#epoch;
    const leader = this.#seen?.holder_name;
    throw notLeading(
      `manager ${this.me.name} does not lead${leader && this.#seen?.holder !== this.me.id ? `: manager ${leader} does (${this.#seen?.holder_url ?? '?'})` : ''}; only the leader acts on hosts`,
    );
  }

  /** The first look at the lease (taking it when free), then the ticks; resolves after onGain. */
  async start(): Promise<void> {
    await this.#tick(true);
    await this.#transition;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(
      () => {
        this.#ticking = this.#tick(false).finally(() => {
          this.#ticking = undefined;
          this.#schedule();
        });
      },
      this.#epoch !== undefined ? LEASE_RENEW_MS : LEASE_CHECK_MS,
    );
    this.#timer.unref();
  }

  async #tick(atStart: boolean): Promise<void> {
    const held = this.#epoch;
    const began = performance.now();
    let result;
    try {
      result = await claimLease(leaseDatabase(this.deps.db), this.me, {
        now: Date.now(),
        heldEpoch: held,
        atStart,
      });
    } catch (error) {
      // A leader's failed renewal is left to the step-down timer; a follower tries again.
      this.deps.log(`lease: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    if (this.#stopped) return;
    this.#seen = result.row;
    if (held !== undefined) {
      // The step-down timer fired meanwhile: this answer is too late to count.
      if (this.#epoch !== held) return;
      if (result.leading) this.#armStepDown(began);
      else this.#lose(`manager ${result.row.holder_name ?? '?'} holds the lease (epoch ${result.row.epoch})`);
    } else if (result.leading && this.#epoch === undefined) {
      this.#gain(result.row.epoch, began);
    }
    await this.#heartbeat().catch((error: unknown) =>
      this.deps.log(`managers list: ${error instanceof Error ? error.message : String(error)}`),
    );
  }

  async #heartbeat(): Promise<void> {
    const now = new Date().toISOString();
    const row = {
      id: this.me.id,
      name: this.me.name,
      url: this.me.url,
      version: this.deps.version,
      started_at: this.#startedAt,
      seen_at: now,
    };
    // On the lease's connection: the next renewal waits for this one.
    const db = leaseDatabase(this.deps.db);
    await db
      .insertInto('managers')
      .values(row)
      .onConflict((oc) => oc.column('id').doUpdateSet({ seen_at: now, url: row.url }))
      .execute();
    if (this.#epoch !== undefined)
      await db
        .deleteFrom('managers')
        .where('seen_at', '<', iso(Date.now() - MANAGER_FORGET_MS))
        .execute();
  }

  #armStepDown(began: number): void {
    clearTimeout(this.#stepDown);
    this.#stepDown = setTimeout(
      () => this.#lose(`the lease was not renewed within ${LEASE_STEP_DOWN_MS / 1000} s`),
      Math.max(0, began + LEASE_STEP_DOWN_MS - performance.now()),
    );
    this.#stepDown.unref();
  }

  #gain(epoch: number, began: number): void {
    this.#epoch = epoch;
    this.#armStepDown(began);
    this.deps.log(`leads the managers (epoch ${epoch})`);
    this.#transition = this.#transition
      .then(() => (this.#epoch === epoch ? this.deps.onGain(epoch) : undefined))
      .catch((error: unknown) =>
        this.deps.log(`taking the lead failed: ${error instanceof Error ? error.message : String(error)}`),
      );
  }

  /** Stops leading now: the fence closes before anything else happens. */
  #lose(reason: string): void {
    const epoch = this.#epoch;
    if (epoch === undefined) return;
    this.#epoch = undefined;
    clearTimeout(this.#stepDown);
    this.deps.log(`no longer leads (epoch ${epoch}): ${reason}`);
    this.#transition = this.#transition
      .then(() => this.deps.onLose(epoch))
      .catch((error: unknown) =>
        this.deps.log(`stepping down failed: ${error instanceof Error ? error.message : String(error)}`),
      );
  }

  /**
   * A clean stop: no more ticks; the lease is given up so another manager leads at once, and this
   * manager leaves the list. Does not call onLose (the caller has stopped its work already).
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#stepDown);
    await this.#ticking;
    await this.#transition;
    const epoch = this.#epoch;
    this.#epoch = undefined;
    if (epoch !== undefined) await releaseLease(leaseDatabase(this.deps.db), this.me, epoch);
    await this.deps.db.deleteFrom('managers').where('id', '=', this.me.id).execute();
  }

  /** Who leads (from the database, now), this manager and the others seen within the lease. */
  async view(): Promise<ManagersView> {
    const { db } = this.deps;
    const lease = await db
      .selectFrom('manager_leader')
      .selectAll()
      .where('id', '=', 1)
      .executeTakeFirstOrThrow();
    const managers = await db
      .selectFrom('managers')
      .selectAll()
      .orderBy('name')
      .orderBy('started_at')
      .execute();
    const live = lease.holder !== null && lease.expires_at >= new Date().toISOString();
    return {
      self: {
        id: this.me.id,
        name: this.me.name,
        url: this.me.url,
        leading: this.#epoch !== undefined,
        ...(this.#epoch !== undefined ? { epoch: this.#epoch } : {}),
      },
      ...(live && lease.holder !== null
        ? {
            leader: {
              id: lease.holder,
              name: lease.holder_name ?? '?',
              url: lease.holder_url ?? '?',
              epoch: lease.epoch,
              since: lease.since ?? lease.expires_at,
              expiresAt: lease.expires_at,
            },
          }
        : {}),
      managers: managers.map((m) => ({
        id: m.id,
        name: m.name,
        url: m.url,
        version: m.version,
        startedAt: m.started_at,
        seenAt: m.seen_at,
      })),
    };
  }
}

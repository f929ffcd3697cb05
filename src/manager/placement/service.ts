/*
 * Placement in the manager: the loop that evaluates every `evaluationIntervalSeconds` (stores
 * recommendations in `recommend` mode, starts moves in `automatic` mode), and the calls behind the
 * placement API. Moves go through the move service like a person's, as actor `placement`, with
 * the reason in the job's details and in the change log.
 */
import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import {
  DEFAULT_PLACEMENT_SETTINGS,
  PlacementReason,
  PlacementSettings,
  PlacementSettingsOverrides,
  PredictedLoad,
  RecommendationKind,
  parseDuration,
  placementSettingsProblem,
  priorityValue,
  type CreateScheduleRequest,
  type FieldChange,
  type Job,
  MoveVmRequest,
  type Page,
  type PlacementConfig,
  type PlacementMode,
  type PlacementSchedule,
  type PlacementStatus,
  type Recommendation,
  type SuggestRequest,
  type SuggestResult,
  type VmPlacement,
  type VmPlacementRequest,
} from '../../api/index.js';
import type { z } from 'zod';
import type { Caller } from '../auth.js';
import { nowIso, recordChanges } from '../changes.js';
import { decodeCursor, pageOf } from '../cursor.js';
import type {
  Db,
  PlacementRecommendationsTable,
  PlacementSchedulesTable,
  Tx,
  VmPlacementTable,
} from '../db.js';
import { Conflict, InvalidInput, NotFound } from '../errors.js';
import { getVm, hostRow, poolRow, vmObject } from '../inventory.js';
import type { MoveService } from '../move/index.js';
import { PeriodicLoop } from '../periodic.js';
import { loadTargets, loadVmFacts, loadWindows, priorityDefault } from './facts.js';
import { demandReason, isCool, isHot, plan, type PlannedMove } from './planner.js';
import { cronProblem, currentOrNextWindow } from './schedule.js';
import { rankSuggestions } from './suggest.js';

/** Who placement's own moves and records are by. */
export const PLACEMENT_ACTOR: Caller = { name: 'placement', role: 'admin' };

/**
 * Whether a placement move that takes a VM away from its home keeps the source's copy, so the
 * return sends only the delta (issue 17); the return onto that copy retains by itself.
 */
export const RETAIN_ON_PLACEMENT_MOVE = true;

/** Kinds that take a VM away from its home (the others bring it back). */
const LEAVES_HOME: readonly RecommendationKind[] = ['to-fast', 'schedule-in'];

/** The move request of a placement move to another host. */
function placementMoveRequest(
  to: { host: string; datastore: string },
  retain: boolean,
): z.output<typeof MoveVmRequest> {
  // The request's defaults, as a user's `vm move` gets them (TLS on, the source's files removed).
  return MoveVmRequest.parse({ to: to.host, datastore: to.datastore, retain });
}

type RecRow = Selectable<PlacementRecommendationsTable>;

function recommendationOf(r: RecRow): Recommendation {
  return {
    id: r.id,
    kind: RecommendationKind.parse(r.kind),
    vm: r.vm_name,
    vmId: r.vm_id,
    from: { host: r.from_host, datastore: r.from_datastore },
    to: { host: r.to_host, datastore: r.to_datastore, class: r.to_class },
    reason: PlacementReason.parse(JSON.parse(r.reason)),
    predicted: PredictedLoad.parse(JSON.parse(r.predicted)),
    state: r.state,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    jobId: r.job_id,
  };
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export interface PlacementDeps {
  db: Db;
  moves: MoveService;
  log: (message: string) => void;
}

export class PlacementService {
  #loop: PeriodicLoop | undefined;
  #intervalSeconds = 0;

  constructor(private readonly deps: PlacementDeps) {}

  /** Starts the loop at the configured interval (restarted when the interval changes). */
  async start(): Promise<void> {
    const { settings } = await this.config();
    this.#intervalSeconds = settings.evaluationIntervalSeconds;
    this.#loop = new PeriodicLoop(() => this.#round(), settings.evaluationIntervalSeconds * 1000);
    this.#loop.start();
  }

  async stop(): Promise<void> {
    await this.#loop?.stop();
    this.#loop = undefined;
  }

  async #round(): Promise<void> {
    try {
      await this.evaluate();
    } catch (error) {
      this.deps.log(
        `placement: evaluation failed: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }

  // -------------------------------------------------------------------------------------------
  // Mode and settings

  async config(): Promise<PlacementConfig> {
    const row = await this.deps.db.selectFrom('placement_config').selectAll().executeTakeFirstOrThrow();
    const overrides = PlacementSettingsOverrides.catch({}).parse(JSON.parse(row.overrides));
    return {
      mode: row.mode as PlacementMode,
      settings: { ...DEFAULT_PLACEMENT_SETTINGS, ...overrides },
      overrides,
      defaults: { ...DEFAULT_PLACEMENT_SETTINGS },
    };
  }

  async setMode(caller: Caller, mode: PlacementMode): Promise<PlacementConfig> {
    const before = await this.config();
    if (before.mode !== mode) {
      await this.deps.db.transaction().execute(async (tx) => {
        await tx
          .updateTable('placement_config')
          .set({ mode, updated_at: nowIso(), updated_by: caller.name })
          .execute();
        // Recommendations of another mode are not this mode's to apply.
        if (mode === 'off') await expirePending(tx, new Set());
        await recordChanges(tx, { name: caller.name }, [
          {
            object: PLACEMENT_OBJECT,
            action: 'setting-changed',
            changes: [{ field: 'mode', before: before.mode, after: mode }],
          },
        ]);
      });
    }
    return this.config();
  }

  async setSettings(caller: Caller, overrides: PlacementSettingsOverrides): Promise<PlacementConfig> {
    const before = await this.config();
    const effective = PlacementSettings.parse({ ...DEFAULT_PLACEMENT_SETTINGS, ...overrides });
    const problem = placementSettingsProblem(effective);
    if (problem) throw new InvalidInput(`${problem.field}: ${problem.message}`, problem.field);
    const changes: FieldChange[] = Object.keys(DEFAULT_PLACEMENT_SETTINGS)
      .map((k) => k as keyof PlacementSettings)
      .filter((k) => before.settings[k] !== effective[k])
      .map((k) => ({ field: k, before: before.settings[k], after: effective[k] }));
    await this.deps.db.transaction().execute(async (tx) => {
      await tx
        .updateTable('placement_config')
        .set({ overrides: JSON.stringify(overrides), updated_at: nowIso(), updated_by: caller.name })
        .execute();
      if (changes.length)
        await recordChanges(tx, { name: caller.name }, [
          { object: PLACEMENT_OBJECT, action: 'setting-changed', changes },
        ]);
    });
    if (this.#loop && effective.evaluationIntervalSeconds !== this.#intervalSeconds) {
      await this.stop();
      await this.start();
    }
    return this.config();
  }

  // -------------------------------------------------------------------------------------------
  // The evaluation

  /** One round: plan, keep the streaks, store the recommendations, start moves when automatic. */
  async evaluate(now = Date.now()): Promise<Recommendation[]> {
    const { db } = this.deps;
    const { mode, settings } = await this.config();
    if (mode === 'off') {
      await db
        .updateTable('placement_config')
        .set({ last_evaluated_at: iso(now) })
        .execute();
      return [];
    }
    const targets = await loadTargets(db);
    const [{ vms, movesInFlight }, windows] = await Promise.all([
      loadVmFacts(db, targets, settings, now),
      loadWindows(db, now),
    ]);
    const out = plan({ vms, targets, settings, windows, movesInFlight, now });
    const recs = await db.transaction().execute(async (tx) => {
      for (const vm of vms) {
        const streak = out.streaks.get(vm.id);
        if (!streak || (streak.hotSince === vm.hotSince && streak.coolSince === vm.coolSince)) continue;
        await upsertVmPlacement(tx, vm.id, {
          hot_since: iso(streak.hotSince),
          cool_since: iso(streak.coolSince),
        });
      }
      const kept: RecRow[] = [];
      for (const move of out.moves) kept.push(await storeRecommendation(tx, move, iso(now) ?? nowIso()));
      await expirePending(tx, new Set(kept.map((r) => r.id)));
      await tx
        .updateTable('placement_config')
        .set({ last_evaluated_at: iso(now) })
        .execute();
      return kept;
    });
    if (mode === 'automatic') {
      for (const rec of recs) {
        try {
          await this.#startMove(rec, PLACEMENT_ACTOR);
        } catch (error) {
          this.deps.log(
            `placement: could not start the ${rec.kind} move of ${rec.vm_name}: ${error instanceof Error ? error.message : String(error)}`,
          );
        }
      }
    }
    const ids = recs.map((r) => r.id);
    if (!ids.length) return [];
    const rows = await db
      .selectFrom('placement_recommendations')
      .selectAll()
      .where('id', 'in', ids)
      .orderBy('seq')
      .execute();
    return rows.map(recommendationOf);
  }

  async #startMove(rec: RecRow, caller: Caller): Promise<Job> {
    const { db, moves } = this.deps;
    const reason = PlacementReason.parse(JSON.parse(rec.reason));
    const retain = RETAIN_ON_PLACEMENT_MOVE && LEAVES_HOME.includes(RecommendationKind.parse(rec.kind));
    const details = {
      placement: { recommendation: rec.id, kind: rec.kind, reason: reason.text, retain },
    };
    const to = { host: rec.to_host, datastore: rec.to_datastore };
    const answer =
      rec.from_host === rec.to_host
        ? await moves.moveStorage(caller, rec.vm_id, { datastore: to.datastore, dryRun: false }, details)
        : await moves.move(caller, rec.vm_id, placementMoveRequest(to, retain), details);
    if (!('job' in answer)) throw new Error('unreachable: a move that is not a dry run answers with a job');
    const { job } = answer;
    const at = nowIso();
    const leaves = LEAVES_HOME.includes(RecommendationKind.parse(rec.kind));
    await db.transaction().execute(async (tx) => {
      await tx
        .updateTable('placement_recommendations')
        .set({ state: 'applied', job_id: job.id, updated_at: at })
        .where('id', '=', rec.id)
        .execute();
      await tx
        .insertInto('placement_moves')
        .values({
          id: undefined,
          vm_id: rec.vm_id,
          kind: rec.kind,
          job_id: job.id,
          ...toCols(to),
          started_at: at,
        })
        .execute();
      const current = await tx
        .selectFrom('vm_placement')
        .selectAll()
        .where('vm_id', '=', rec.vm_id)
        .executeTakeFirst();
      // Home is where it was the first time placement took it away.
      const fromHost = leaves && !current?.home_host_id ? await hostRow(tx, rec.from_host) : undefined;
      await upsertVmPlacement(tx, rec.vm_id, {
        placed_for: leaves ? (rec.kind === 'schedule-in' ? 'schedule' : 'demand') : null,
        hot_since: null,
        cool_since: null,
        ...(fromHost ? { home_host_id: fromHost.id, home_datastore: rec.from_datastore } : {}),
      });
      await recordChanges(tx, { name: PLACEMENT_ACTOR.name, jobId: job.id }, [
        {
          object: vmObject({ id: rec.vm_id, name: rec.vm_name }),
          action: 'state-changed',
          host: rec.from_host,
          changes: [
            {
              field: 'placement',
              before: `${rec.from_host}/${rec.from_datastore}`,
              after: `${rec.to_host}/${rec.to_datastore}`,
            },
            { field: 'placement.reason', before: null, after: `${rec.kind}: ${reason.text}` },
            ...(caller.name !== PLACEMENT_ACTOR.name
              ? [{ field: 'placement.appliedBy', before: null, after: caller.name }]
              : []),
          ],
        },
      ]);
    });
    return job;
  }

  // -------------------------------------------------------------------------------------------
  // Recommendations

  async listRecommendations(q: {
    state: Recommendation['state'] | 'all';
    limit: number;
    cursor?: string | undefined;
  }): Promise<Page<Recommendation>> {
    let query = this.deps.db.selectFrom('placement_recommendations').selectAll();
    if (q.state !== 'all') query = query.where('state', '=', q.state);
    // Newest first by creation order: one round's recommendations share their created_at.
    if (q.cursor) query = query.where('seq', '<', decodeCursor(q.cursor, ['int'])[0]);
    const rows = await query
      .orderBy('seq', 'desc')
      .limit(q.limit + 1)
      .execute();
    return pageOf(rows, q.limit, (r) => [r.seq], recommendationOf);
  }

  async #pending(id: string): Promise<RecRow> {
    const rec = await this.deps.db
      .selectFrom('placement_recommendations')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    if (!rec) throw new NotFound('recommendation', id, 'id');
    if (rec.state !== 'pending')
      throw new Conflict(`recommendation ${id} is ${rec.state}, not pending`, 'id');
    return rec;
  }

  /** Starts the move of a pending recommendation (checked afresh by the move service). */
  async apply(caller: Caller, id: string): Promise<Job> {
    return this.#startMove(await this.#pending(id), caller);
  }

  async dismiss(caller: Caller, id: string): Promise<Recommendation> {
    const rec = await this.#pending(id);
    const at = nowIso();
    await this.deps.db.transaction().execute(async (tx) => {
      await tx
        .updateTable('placement_recommendations')
        .set({ state: 'dismissed', updated_at: at })
        .where('id', '=', id)
        .execute();
      await recordChanges(tx, { name: caller.name }, [
        {
          object: vmObject({ id: rec.vm_id, name: rec.vm_name }),
          action: 'setting-changed',
          changes: [
            {
              field: 'placement.dismissed',
              before: null,
              after: `${rec.kind} to ${rec.to_host}/${rec.to_datastore}`,
            },
          ],
        },
      ]);
    });
    return recommendationOf({ ...rec, state: 'dismissed', updated_at: at });
  }

  // -------------------------------------------------------------------------------------------
  // Schedules

  async listSchedules(
    q: { limit: number; cursor?: string | undefined },
    now = Date.now(),
  ): Promise<Page<PlacementSchedule>> {
    let query = this.deps.db
      .selectFrom('placement_schedules')
      .innerJoin('vms', 'vms.id', 'placement_schedules.vm_id')
      .selectAll('placement_schedules')
      .select('vms.name as vm_name');
    if (q.cursor) {
      const [id] = decodeCursor(q.cursor, ['string']);
      query = query.where('placement_schedules.id', '>', id);
    }
    const rows = await query
      .orderBy('placement_schedules.id')
      .limit(q.limit + 1)
      .execute();
    return pageOf(
      rows,
      q.limit,
      (r) => [r.id],
      (r) => scheduleOf(r, now),
    );
  }

  async addSchedule(caller: Caller, req: CreateScheduleRequest): Promise<PlacementSchedule> {
    const { db } = this.deps;
    const vm = await getVm(db, req.vm, 'vm');
    const cronIssue = cronProblem(req.cron);
    if (cronIssue) throw new InvalidInput(`cron: ${cronIssue}`, 'cron');
    const classes = new Set((await loadTargets(db)).map((t) => t.cls));
    if (!classes.has(req.class))
      throw new InvalidInput(
        `class: no datastore has class ${req.class} (there are: ${[...classes].join(', ')})`,
        'class',
      );
    const duration = parseDuration(req.for) ?? 0; // the route's schema checked it
    const id = randomUUID();
    const at = nowIso();
    await db.transaction().execute(async (tx) => {
      await tx
        .insertInto('placement_schedules')
        .values({
          id,
          vm_id: vm.id,
          class: req.class,
          cron: req.cron,
          duration_seconds: duration,
          created_at: at,
          created_by: caller.name,
        })
        .execute();
      await recordChanges(tx, { name: caller.name }, [
        {
          object: scheduleObject(id, vm.name),
          action: 'created',
          changes: [
            { field: 'class', before: null, after: req.class },
            { field: 'cron', before: null, after: req.cron },
            { field: 'durationSeconds', before: null, after: duration },
          ],
        },
      ]);
    });
    const row = await db
      .selectFrom('placement_schedules')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    return scheduleOf({ ...row, vm_name: vm.name }, Date.now());
  }

  async removeSchedule(caller: Caller, id: string): Promise<void> {
    await this.deps.db.transaction().execute(async (tx) => {
      const row = await tx
        .selectFrom('placement_schedules')
        .innerJoin('vms', 'vms.id', 'placement_schedules.vm_id')
        .select(['placement_schedules.id', 'vms.name'])
        .where('placement_schedules.id', '=', id)
        .executeTakeFirst();
      if (!row) throw new NotFound('schedule', id, 'id');
      await tx.deleteFrom('placement_schedules').where('id', '=', id).execute();
      await recordChanges(tx, { name: caller.name }, [
        { object: scheduleObject(id, row.name), action: 'deleted' },
      ]);
    });
  }

  // -------------------------------------------------------------------------------------------
  // Per-VM settings

  async getVmPlacement(ref: string): Promise<VmPlacement> {
    const { db } = this.deps;
    const vm = await getVm(db, ref);
    const row = await db.selectFrom('vm_placement').selectAll().where('vm_id', '=', vm.id).executeTakeFirst();
    const home = row?.home_host_id
      ? await db.selectFrom('hosts').select('name').where('id', '=', row.home_host_id).executeTakeFirst()
      : undefined;
    return {
      vm: vm.name,
      priority: row?.priority ?? priorityDefault,
      pinned: row?.pinned === 1,
      excluded: row?.excluded === 1,
      home: home && row?.home_datastore ? { host: home.name, datastore: row.home_datastore } : null,
      placedFor: row?.placed_for ?? null,
      hotSince: row?.hot_since ?? null,
      coolSince: row?.cool_since ?? null,
    };
  }

  async setVmPlacement(caller: Caller, ref: string, req: Partial<VmPlacementRequest>): Promise<VmPlacement> {
    const { db } = this.deps;
    const vm = await getVm(db, ref);
    const before = await this.getVmPlacement(vm.id);
    const set: Partial<VmPlacementTable> = {};
    const changes: FieldChange[] = [];
    const change = (field: string, was: unknown, now: unknown) => {
      if (JSON.stringify(was) !== JSON.stringify(now))
        changes.push({ field: `placement.${field}`, before: was, after: now });
    };
    if (req.priority !== undefined) {
      set.priority = priorityValue(req.priority);
      change('priority', before.priority, set.priority);
    }
    if (req.pinned !== undefined) {
      set.pinned = req.pinned ? 1 : 0;
      change('pinned', before.pinned, req.pinned);
    }
    if (req.excluded !== undefined) {
      set.excluded = req.excluded ? 1 : 0;
      change('excluded', before.excluded, req.excluded);
    }
    if (req.home !== undefined) {
      if (req.home === null) {
        set.home_host_id = null;
        set.home_datastore = null;
      } else {
        const host = await hostRow(db, req.home.host, 'home.host');
        const ds = await db
          .selectFrom('datastores')
          .select('name')
          .where('host_id', '=', host.id)
          .where('name', '=', req.home.datastore)
          .executeTakeFirst();
        if (!ds)
          throw new InvalidInput(
            `home.datastore: host ${host.name} has no datastore ${req.home.datastore}`,
            'home.datastore',
          );
        set.home_host_id = host.id;
        set.home_datastore = ds.name;
      }
      change(
        'home',
        before.home,
        req.home === null ? null : { host: req.home.host, datastore: req.home.datastore },
      );
    }
    if (changes.length) {
      await db.transaction().execute(async (tx) => {
        await upsertVmPlacement(tx, vm.id, set);
        await recordChanges(tx, { name: caller.name }, [
          { object: vmObject(vm), action: 'setting-changed', host: vm.host, changes },
        ]);
      });
    }
    return this.getVmPlacement(vm.id);
  }

  // -------------------------------------------------------------------------------------------
  // Status and suggest

  async status(now = Date.now()): Promise<PlacementStatus> {
    const { db } = this.deps;
    const [{ mode, settings }, cfg] = await Promise.all([
      this.config(),
      db.selectFrom('placement_config').select('last_evaluated_at').executeTakeFirstOrThrow(),
    ]);
    const targets = await loadTargets(db);
    const [{ vms, movesInFlight }, windows] = await Promise.all([
      loadVmFacts(db, targets, settings, now),
      loadWindows(db, now),
    ]);
    // What the next round would decide now (planning is pure: nothing is stored or started).
    const { waiting } = plan({ vms, targets, settings, windows, movesInFlight, now });
    const pending = await db
      .selectFrom('placement_recommendations')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('state', '=', 'pending')
      .executeTakeFirstOrThrow();
    return {
      mode,
      settings,
      lastEvaluatedAt: cfg.last_evaluated_at,
      pendingRecommendations: Number(pending.n),
      movesInFlight,
      vms: vms
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
        .map((v) => ({
          vm: v.name,
          host: v.at.host,
          datastore: v.at.datastore,
          class: v.cls,
          iops: v.demand?.iops ?? null,
          latencyMs: v.demand?.latencyMs ?? null,
          demand:
            v.demand?.iops === null || v.demand === null
              ? 'unknown'
              : isHot(v.demand, settings)
                ? 'hot'
                : isCool(v.demand, settings)
                  ? 'cool'
                  : 'between',
          demandReason: demandReason(v.demand, settings),
          waitingReason: waiting.get(v.id) ?? null,
          priority: v.priority,
          pinned: v.pinned,
          excluded: v.excluded,
          home: v.home,
          movesToday: v.movesToday,
        })),
    };
  }

  async suggest(req: SuggestRequest, now = Date.now()): Promise<SuggestResult> {
    const { db } = this.deps;
    const { settings } = await this.config();
    let targets = await loadTargets(db);
    if (req.pool !== undefined) {
      const pool = await poolRow(db, req.pool, 'pool');
      const members = await db.selectFrom('hosts').select('name').where('pool_id', '=', pool.id).execute();
      const names = new Set(members.map((m) => m.name));
      targets = targets.filter((t) => names.has(t.host));
    }
    const { vms } = await loadVmFacts(db, targets, settings, now);
    const used = new Map<string, number>();
    for (const v of vms) {
      const k = `${v.at.host}/${v.at.datastore}`;
      used.set(k, (used.get(k) ?? 0) + (v.demand?.iops ?? 0));
    }
    return rankSuggestions(
      targets.map((t) => ({ ...t, iopsUsed: used.get(`${t.host}/${t.datastore}`) ?? 0 })),
      { memoryBytes: req.memoryBytes, diskBytes: req.diskBytes, cls: req.class },
      settings,
    );
  }
}

function scheduleOf(
  r: Selectable<PlacementSchedulesTable> & { vm_name: string },
  now: number,
): PlacementSchedule {
  const w = currentOrNextWindow(r.cron, r.duration_seconds, now);
  return {
    id: r.id,
    vm: r.vm_name,
    class: r.class,
    cron: r.cron,
    durationSeconds: r.duration_seconds,
    nextStart: iso(w.start),
    nextEnd: iso(w.end),
    createdAt: r.created_at,
    createdBy: r.created_by,
  };
}

const PLACEMENT_OBJECT = { kind: 'placement' as const, id: 'placement', name: 'placement' };
const scheduleObject = (id: string, vm: string) => ({
  kind: 'placement' as const,
  id,
  name: `schedule of ${vm}`,
});
const toCols = (to: { host: string; datastore: string }) => ({
  to_host: to.host,
  to_datastore: to.datastore,
});

async function upsertVmPlacement(tx: Tx, vmId: string, set: Partial<VmPlacementTable>): Promise<void> {
  await tx
    .insertInto('vm_placement')
    .values({ vm_id: vmId, priority: priorityDefault, pinned: 0, excluded: 0, ...set })
    .onConflict((oc) => oc.column('vm_id').doUpdateSet(set))
    .execute();
}

/**
 * The round's recommendation for a move: the pending one for the same VM, kind and target is kept
 * (its reason and prediction refreshed), else a new one is made.
 */
async function storeRecommendation(tx: Tx, move: PlannedMove, at: string): Promise<RecRow> {
  const existing = await tx
    .selectFrom('placement_recommendations')
    .selectAll()
    .where('vm_id', '=', move.vmId)
    .where('state', '=', 'pending')
    .where('kind', '=', move.kind)
    .where('to_host', '=', move.to.host)
    .where('to_datastore', '=', move.to.datastore)
    .executeTakeFirst();
  const reason = JSON.stringify(move.reason);
  const predicted = JSON.stringify(move.predicted);
  if (existing) {
    await tx
      .updateTable('placement_recommendations')
      .set({ reason, predicted, updated_at: at })
      .where('id', '=', existing.id)
      .execute();
    return { ...existing, reason, predicted, updated_at: at };
  }
  const row: Omit<RecRow, 'seq'> = {
    id: randomUUID(),
    vm_id: move.vmId,
    vm_name: move.vm,
    kind: move.kind,
    from_host: move.from.host,
    from_datastore: move.from.datastore,
    ...toCols(move.to),
    to_class: move.to.cls,
    reason,
    predicted,
    state: 'pending',
    created_at: at,
    updated_at: at,
    job_id: null,
  };
  await tx.insertInto('placement_recommendations').values(row).execute();
  // Its creation order, assigned by the database at insert.
  const { seq } = await tx
    .selectFrom('placement_recommendations')
    .select('seq')
    .where('id', '=', row.id)
    .executeTakeFirstOrThrow();
  return { ...row, seq };
}

/** Pending recommendations the last round no longer made expire. */
async function expirePending(tx: Tx, keep: ReadonlySet<string>): Promise<void> {
  let query = tx
    .updateTable('placement_recommendations')
    .set({ state: 'expired', updated_at: nowIso() })
    .where('state', '=', 'pending');
  if (keep.size) query = query.where('id', 'not in', [...keep]);
  await query.execute();
}

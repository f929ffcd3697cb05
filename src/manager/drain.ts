/*
 * The `host-drain` job (issue 30): empties a host entering maintenance. Its running VMs leave by
 * HA priority, each to the best host that passes the move checks (a dry run per candidate: cluster
 * peers first, then any other host with room, drain-plan.ts), each with the request a plain
 * `silobreak vm move <vm> --to <host>` makes, so every default of a move applies; at most as many
 * at once as the host's move slots allow. Stopped VMs stay (as vSphere keeps powered-off VMs on a
 * host in maintenance). When no VM runs there any more the host is `in` maintenance. A VM that no
 * host takes, or whose move fails, fails the drain naming it once the other moves are done; the
 * host stays `entering` (no new VMs) until `host resume`, or another `host drain` tries again.
 *
 * The drain keeps no state of its own beyond its job: what is left is read from the inventory and
 * the move jobs each round, so a manager restart resumes it where it was.
 */
import { z } from 'zod';
import {
  MOVE_JOB_KINDS,
  MoveVmRequest,
  TERMINAL_JOB_STATES,
  type DrainResult,
  type Job,
  type MovePlan,
} from '../api/index.js';
import { nowIso, recordChanges } from './changes.js';
import type { Db } from './db.js';
import {
  drainOrder,
  drainTargets,
  PASSING_STATES,
  STAYING_STATES,
  whyNoTarget,
  type DrainHost,
  type DrainVm,
} from './drain-plan.js';
import { ManagerError } from './errors.js';
import { haOf, hostObject, hostRow, type HostRow } from './inventory.js';
import type { JobContext, JobHandler, JobRunner } from './jobs.js';
import type { MoveService } from './move/index.js';

export const DRAIN_JOB_KIND = 'host-drain';

export const DrainParams = z.object({ hostId: z.uuid() });
export type DrainParams = z.infer<typeof DrainParams>;

export interface DrainDeps {
  db: Db;
  jobs: JobRunner;
  moves: MoveService;
  /** Moves a host takes part in at once (the move slots' limit). */
  moveLimit: number;
  /** Polls a host's agent into the inventory now (reconciliation). */
  poll(hostId: string): Promise<void>;
  /** Milliseconds between looks while moves run (default 1000). */
  pollMs?: number;
}

/** Some VMs could not leave: the host stays `entering` maintenance. */
export class DrainFailed extends ManagerError {
  constructor(host: string, stuck: ReadonlyMap<string, string>) {
    const list = [...stuck].map(([vm, why]) => `${vm}: ${why}`).join('; ');
    super(
      'conflict',
      `drain of ${host} left ${stuck.size} VM${stuck.size === 1 ? '' : 's'} on it, which stays entering maintenance (no new VMs; silobreak host resume ${host} ends it, silobreak host drain ${host} tries again): ${list}`,
    );
  }
}

/** The host left maintenance (host resume) while the drain ran. */
export class DrainStopped extends ManagerError {
  constructor(host: string, maintenance: string) {
    super('conflict', `the drain of ${host} stopped: the host is ${maintenance} maintenance now`);
  }
}

/** A move under way that involves a host: its job, VM and hosts. */
interface Flight {
  jobId: string;
  vmId: string;
  from: string;
  to: string;
}

const FlightParams = z.union([
  z.object({ vmId: z.string(), sourceHostId: z.string(), targetHostId: z.string() }),
  z.object({ vmId: z.string(), hostId: z.string() }),
]);

/** Moves queued or running that have `hostId` as source or target (a storage move: both). */
export async function movesInvolving(db: Db, hostId: string): Promise<Flight[]> {
  const rows = await db
    .selectFrom('jobs')
    .select(['id', 'params'])
    .where('kind', 'in', [...MOVE_JOB_KINDS])
    .where('state', 'in', ['queued', 'running'])
    .execute();
  return rows.flatMap((r) => {
    const p = FlightParams.safeParse(JSON.parse(r.params));
    if (!p.success) return [];
    const [from, to] =
      'hostId' in p.data ? [p.data.hostId, p.data.hostId] : [p.data.sourceHostId, p.data.targetHostId];
    return from === hostId || to === hostId ? [{ jobId: r.id, vmId: p.data.vmId, from, to }] : [];
  });
}

/** Drain jobs of the host that have not ended. */
export async function drainsInFlight(db: Db, hostId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('jobs')
    .select('id')
    .where('kind', '=', DRAIN_JOB_KIND)
    .where('target_id', '=', hostId)
    .where('state', 'in', ['queued', 'running'])
    .execute();
  return rows.map((r) => r.id);
}

/** The VMs on the host, as the inventory has them. */
async function vmsOn(db: Db, hostId: string): Promise<DrainVm[]> {
  const rows = await db
    .selectFrom('vms')
    .select(['id', 'name', 'state', 'memory_mib', 'ha_protected', 'ha_priority', 'ha_preferred_hosts'])
    .where('host_id', '=', hostId)
    .execute();
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    state: r.state as DrainVm['state'],
    memoryBytes: r.memory_mib * 2 ** 20,
    ha: haOf(r),
  }));
}

async function drainHosts(db: Db): Promise<DrainHost[]> {
  const rows = await db
    .selectFrom('hosts')
    .select(['id', 'name', 'cluster_id', 'state', 'maintenance', 'memory_free_bytes'])
    .orderBy('name')
    .execute();
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    clusterId: r.cluster_id,
    state: r.state,
    maintenance: r.maintenance,
    memoryFreeBytes: r.memory_free_bytes,
  }));
}

/** Where a VM goes now, or why not. */
type Choice =
  | { kind: 'target'; host: DrainHost }
  /** Stopped since the inventory looked: it stays. */
  | { kind: 'stays' }
  /** Not now (moves under way hold the room it needs, or its state is passing): look again later. */
  | { kind: 'later' }
  | { kind: 'stuck'; why: string };

/** Move checks about the VM and its own host: the same whichever host it goes to. */
const SOURCE_CHECKS = [
  'vm-state',
  'cold-move',
  'no-move-in-flight',
  'source-reachable',
  'tools-disk',
] as const;

const failedDetails = (plan: MovePlan) =>
  plan.checks
    .filter((c) => !c.ok)
    .map((c) => c.detail)
    .join('; ');

class Drain {
  readonly #stuck = new Map<string, string>();
  /** Moves this run started that have not been seen ending: job id -> VM and target. */
  readonly #mine = new Map<string, { vm: string; to: string }>();
  readonly #moved: DrainResult['moved'] = [];
  /** VMs that stopped after the inventory looked: they stay. */
  readonly #stopped = new Set<string>();

  constructor(
    private readonly deps: DrainDeps,
    private readonly ctx: JobContext<DrainParams>,
  ) {}

  async run(): Promise<DrainResult> {
    const { db } = this.deps;
    const hostId = this.ctx.params.hostId;
    // Each time nothing seems left, the host's agent is asked once more before the drain ends.
    let confirmed = false;
    for (;;) {
      this.ctx.throwIfCancelled();
      const host = await hostRow(db, hostId);
      if (host.maintenance !== 'entering') throw new DrainStopped(host.name, host.maintenance);
      const flying = await movesInvolving(db, hostId);
      await this.#collectEnded(flying);
      const vms = await vmsOn(db, hostId);
      const leaving = drainOrder(
        vms.filter(
          (v) =>
            !STAYING_STATES.includes(v.state) &&
            !this.#stopped.has(v.id) &&
            !this.#stuck.has(v.name) &&
            !flying.some((f) => f.vmId === v.id),
        ),
      );
      if (leaving.length === 0 && flying.length === 0) {
        if (confirmed) break;
        await this.deps.poll(hostId);
        confirmed = true;
        continue;
      }
      confirmed = false;
      await this.#report(host, leaving, flying);
      const started = flying.length < this.deps.moveLimit && (await this.#startOne(host, leaving, flying));
      if (!started) await this.#waitForMoves(flying);
    }
    const host = await hostRow(db, hostId);
    if (this.#stuck.size) throw new DrainFailed(host.name, this.#stuck);
    await this.#finish(host);
    return {
      host: host.name,
      moved: this.#moved,
      stayed: (await vmsOn(db, hostId)).map((v) => v.name).sort(),
    };
  }

  /** The moves this drain started that ended: moved, or the VM is stuck with the move's error. */
  async #collectEnded(flying: Flight[]): Promise<void> {
    for (const [jobId, m] of this.#mine) {
      if (flying.some((f) => f.jobId === jobId)) continue;
      this.#mine.delete(jobId);
      const job = await this.deps.jobs.get(jobId);
      if (job.state === 'succeeded') this.#moved.push({ ...m, jobId });
      else
        this.#stuck.set(
          m.vm,
          `its move to ${m.to} (job ${jobId}) ${job.state}: ${job.error?.detail ?? job.progress.message}`,
        );
    }
  }

  /** Starts the move of the first VM (by priority) that can go now; false when none can. */
  async #startOne(host: HostRow, leaving: DrainVm[], flying: Flight[]): Promise<boolean> {
    const hosts = await drainHosts(this.deps.db);
    const vmMemory = new Map((await this.#memoryOf(flying)).map((v) => [v.id, v.memoryBytes]));
    const reserved = new Map<string, number>();
    for (const f of flying)
      if (f.from === host.id && f.to !== host.id)
        reserved.set(f.to, (reserved.get(f.to) ?? 0) + (vmMemory.get(f.vmId) ?? 0));
    for (const vm of leaving) {
      this.ctx.throwIfCancelled();
      const choice = await this.#choose(vm, host, hosts, reserved);
      if (choice.kind === 'stays') this.#stopped.add(vm.id);
      else if (choice.kind === 'stuck') this.#stuck.set(vm.name, choice.why);
      else if (choice.kind === 'target') {
        // A resume cancels the drain first: no move starts after it.
        this.ctx.throwIfCancelled();
        try {
          const answer = await this.deps.moves.move(
            { name: this.ctx.actor.name },
            vm.id,
            MoveVmRequest.parse({ to: choice.host.id }),
            { drain: this.ctx.jobId, host: host.name },
          );
          if ('job' in answer) {
            this.#mine.set(answer.job.id, { vm: vm.name, to: choice.host.name });
            return true;
          }
        } catch (error) {
          this.#stuck.set(vm.name, error instanceof Error ? error.message : String(error));
        }
      }
    }
    return false;
  }

  async #memoryOf(flying: Flight[]): Promise<{ id: string; memoryBytes: number }[]> {
    if (!flying.length) return [];
    const rows = await this.deps.db
      .selectFrom('vms')
      .select(['id', 'memory_mib'])
      .where(
        'id',
        'in',
        flying.map((f) => f.vmId),
      )
      .execute();
    return rows.map((r) => ({ id: r.id, memoryBytes: r.memory_mib * 2 ** 20 }));
  }

  /** The first candidate whose dry run passes, with the request a plain `vm move --to` makes. */
  async #choose(
    vm: DrainVm,
    source: HostRow,
    hosts: DrainHost[],
    reserved: ReadonlyMap<string, number>,
  ): Promise<Choice> {
    const targets = drainTargets(vm, { id: source.id, clusterId: source.cluster_id }, hosts, reserved);
    const refusals: { host: string; why: string }[] = [];
    for (const candidate of targets.candidates) {
      const plan = await this.deps.moves.check(vm.id, MoveVmRequest.parse({ to: candidate.id }));
      if (plan.mode === 'cold') return { kind: 'stays' };
      if (plan.ok) return { kind: 'target', host: candidate };
      const own = plan.checks.filter((c) => !c.ok && (SOURCE_CHECKS as readonly string[]).includes(c.check));
      if (own.length) {
        // What no target changes: the VM not ready (starting, shutting down, in another move) is
        // waited for; anything else (paused, a tools disk, its host not answering) is said once.
        const waiting = own.every(
          (c) =>
            c.check === 'no-move-in-flight' || (c.check === 'vm-state' && PASSING_STATES.includes(vm.state)),
        );
        return waiting ? { kind: 'later' } : { kind: 'stuck', why: own.map((c) => c.detail).join('; ') };
      }
      refusals.push({ host: candidate.name, why: failedDetails(plan) });
    }
    // Room the drain's own moves hold now frees up, or counts on the target, when they end.
    if (targets.noRoom.length && reserved.size) return { kind: 'later' };
    return { kind: 'stuck', why: whyNoTarget(vm, targets, refusals) };
  }

  async #report(host: HostRow, leaving: DrainVm[], flying: Flight[]): Promise<void> {
    const out = flying.filter((f) => f.from === host.id && f.to !== host.id);
    const done = this.#moved.length;
    const total = done + out.length + leaving.length + this.#stuck.size;
    const moving = [...this.#mine.values()].map((m) => `${m.vm} to ${m.to}`);
    await this.ctx.progress({
      phase: 'drain',
      percent: total ? Math.floor((100 * done) / total) : 0,
      message: `${done} of ${total} VMs moved off ${host.name}${moving.length ? `; moving ${moving.join(', ')}` : ''}${
        this.#stuck.size ? `; ${this.#stuck.size} cannot leave` : ''
      }`,
      details: {
        host: host.name,
        moved: this.#moved,
        moving: [...this.#mine].map(([jobId, m]) => ({ ...m, jobId })),
        waiting: leaving.map((v) => v.name),
        stuck: Object.fromEntries(this.#stuck),
      },
    });
  }

  /** Until one of the moves under way ends (or a while passes: states change without jobs). */
  async #waitForMoves(flying: Flight[]): Promise<void> {
    const { jobs } = this.deps;
    const ids = new Set(flying.map((f) => f.jobId));
    const signal = this.ctx.signal;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        jobs.events.off('job', onJob);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const onJob = (job: Job) => {
        if (ids.has(job.id) && TERMINAL_JOB_STATES.includes(job.state)) done();
      };
      const timer = setTimeout(done, this.deps.pollMs ?? 1000);
      jobs.events.on('job', onJob);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  /** `entering` -> `in`, recorded as the drain's (unless the host left maintenance meanwhile). */
  async #finish(host: HostRow): Promise<void> {
    await this.deps.db.transaction().execute(async (tx) => {
      const now = nowIso();
      const updated = await tx
        .updateTable('hosts')
        .set({ maintenance: 'in' })
        .where('id', '=', host.id)
        .where('maintenance', '=', 'entering')
        .executeTakeFirst();
      if (updated.numUpdatedRows === 0n) {
        const current = await hostRow(tx, host.id);
        throw new DrainStopped(host.name, current.maintenance);
      }
      await recordChanges(
        tx,
        this.ctx.actor,
        [
          {
            object: hostObject(host),
            action: 'state-changed',
            host: host.name,
            changes: [{ field: 'maintenance', before: 'entering', after: 'in' }],
          },
        ],
        now,
      );
    });
  }
}

export function drainHandler(deps: DrainDeps): JobHandler<DrainParams> {
  return {
    kind: DRAIN_JOB_KIND,
    params: DrainParams,
    // Everything it needs is in the inventory and the move jobs: a restart picks it up again.
    resumable: true,
    run: (ctx) => new Drain(deps, ctx).run(),
  };
}

/*
 * The `host-upgrade` job (issue 30): a rolling upgrade, one host at a time in the plan's order
 * (POST /api/v1/upgrades/run). Each host's step goes through named phases, each checkpointed:
 *
 *   drain      maintenance, as `host drain` enters it (its drain job moves the running VMs off);
 *   upgrade    the agent's POST /v1/host/upgrade (its configured command);
 *   reconnect  until the host answers the manager again with its new versions (the agent's own
 *              restart cuts its connections: expected, within a bound);
 *   resume     maintenance ended, as `host resume` ends it.
 *
 * The first failure ends the run naming the step, host and phase; that host stays in maintenance
 * (the drain's VMs are elsewhere, the upgrade may be half done: an admin looks first). Last,
 * `return`: each VM that ran on one of the hosts at the start goes back there with the request a
 * plain `vm move --to` makes (a move that cannot is listed, the run still succeeds: every host is
 * upgraded and out of maintenance).
 *
 * What it has done is in its checkpoint and in the inventory and the jobs it started (the drain
 * job, the moves): a manager restart resumes it in the phase it was in.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import {
  AgentClient,
  ApiError,
  DrainResult,
  MoveVmRequest,
  UPGRADE_RUN_PHASES,
  UPGRADE_TIMEOUT_MAX_SECONDS,
  UpgradeRunPhase,
  UpgradeRunStep,
  type HostUpgradeResult,
  type Job,
  type ManagerErrorCode,
  type UpgradeRunMove,
  type UpgradeRunResult,
} from '../../api/index.js';
import type { ClusterService } from '../clusters.js';
import type { Db } from '../db.js';
import { STAYING_STATES } from '../drain-plan.js';
import { ManagerError } from '../errors.js';
import { hostRow, type HostRow } from '../inventory.js';
import type { JobContext, JobHandler, JobRunner } from '../jobs.js';
import type { MoveService } from '../move/index.js';

export const UPGRADE_JOB_KIND = 'host-upgrade';
/** The job's target: one object for every run, so the job list shows them together. */
export const UPGRADE_TARGET = { kind: 'upgrade' as const, id: 'upgrade' };
/** How long a host may take to answer again with its new versions after its upgrade command. */
export const UPGRADE_RECONNECT_SECONDS = 300;

export const UpgradeRunParams = z.object({
  /** The hosts in the plan's order. */
  hostIds: z.array(z.uuid()).min(1),
  targetQemuVersion: z.string(),
  returnVms: z.boolean(),
  /** The VMs running on those hosts when the run was asked for: VM id -> its host's id. */
  homes: z.record(z.uuid(), z.uuid()),
});
export type UpgradeRunParams = z.infer<typeof UpgradeRunParams>;

const Versions = z.object({ agentVersion: z.string(), qemuVersion: z.string() });
type Versions = z.infer<typeof Versions>;

/** Where the run is: the host at `index` in `phase`, with what its step has done so far. */
const Checkpoint = z.object({
  index: z.number().int().min(0),
  phase: UpgradeRunPhase,
  steps: z.array(UpgradeRunStep),
  current: z
    .object({
      drainJobId: z.uuid().optional(),
      moved: UpgradeRunStep.shape.moved.default([]),
      stayed: z.array(z.string()).default([]),
      before: Versions.optional(),
      /** The versions the upgrade's answer said are installed; null when no answer came. */
      expected: Versions.nullable().optional(),
      upgradeMs: z.number().int().default(0),
      after: Versions.optional(),
    })
    .default({ moved: [], stayed: [], upgradeMs: 0 }),
  /** Return moves started: VM id -> the move's job and the host it left. */
  returns: z.record(z.uuid(), z.object({ jobId: z.uuid(), from: z.string() })).default({}),
});
type Checkpoint = z.infer<typeof Checkpoint>;

export interface UpgradeRunDeps {
  db: Db;
  jobs: JobRunner;
  clusters: ClusterService;
  moves: MoveService;
  clientFor(host: HostRow): AgentClient;
  /** Polls a host's agent into the inventory now (reconciliation). */
  poll(hostId: string): Promise<void>;
  /** Default UPGRADE_RECONNECT_SECONDS. */
  reconnectSeconds?: number;
  /** Milliseconds between looks while waiting (default 1000). */
  pollMs?: number;
}

/** A step of the run failed: the run stops there; the host stays in maintenance. */
export class UpgradeStepFailed extends ManagerError {
  constructor(
    code: ManagerErrorCode,
    at: { step: number; of: number; host: string; phase: UpgradeRunPhase; maintenance: string },
    why: string,
    upgraded: readonly string[],
  ) {
    super(
      code,
      `rolling upgrade stopped at step ${at.step} of ${at.of}, host ${at.host}, ${at.phase}: ${why}; ` +
        `${at.host} stays ${at.maintenance === 'none' ? 'out of' : at.maintenance} maintenance (silobreak host resume ${at.host} ends it)` +
        (upgraded.length ? `; upgraded before it: ${upgraded.join(', ')}` : '; no host was upgraded'),
    );
  }
}

const versionsOf = (h: HostRow): Versions => ({ agentVersion: h.agent_version, qemuVersion: h.qemu_version });
const same = (a: Versions, b: Versions) =>
  a.agentVersion === b.agentVersion && a.qemuVersion === b.qemuVersion;
const shown = (v: Versions) => `agent ${v.agentVersion}, QEMU ${v.qemuVersion}`;
const reason = (error: unknown) => (error instanceof Error ? error.message : String(error));

class UpgradeRun {
  #cp: Checkpoint;
  readonly #of: number;

  constructor(
    private readonly deps: UpgradeRunDeps,
    private readonly ctx: JobContext<UpgradeRunParams>,
  ) {
    this.#cp = Checkpoint.parse(ctx.checkpoint ?? { index: 0, phase: 'drain', steps: [] });
    this.#of = ctx.params.hostIds.length;
  }

  async run(): Promise<UpgradeRunResult> {
    const { hostIds } = this.ctx.params;
    while (this.#cp.index < hostIds.length) await this.#step(hostIds[this.#cp.index] ?? '');
    const back = this.ctx.params.returnVms ? await this.#returnVms() : { returned: [], notReturned: [] };
    return {
      targetQemuVersion: this.ctx.params.targetQemuVersion,
      steps: this.#cp.steps,
      ...back,
      placement: await this.#placement(),
    };
  }

  async #step(hostId: string): Promise<void> {
    const cp = this.#cp;
    if (cp.phase === 'drain') {
      await this.#drain(await hostRow(this.deps.db, hostId));
      await this.#save('upgrade');
    }
    if (cp.phase === 'upgrade') {
      await this.#upgrade(await hostRow(this.deps.db, hostId));
      await this.#save('reconnect');
    }
    if (cp.phase === 'reconnect') {
      cp.current.after = await this.#reconnect(hostId);
      await this.#save('resume');
    }
    if (cp.phase === 'resume') {
      this.ctx.throwIfCancelled();
      const host = await this.deps.clusters.resume(this.ctx.actor, hostId);
      const { before, after, moved, stayed, upgradeMs } = cp.current;
      cp.steps.push({
        step: cp.index + 1,
        host: host.name,
        before: before ?? { agentVersion: '?', qemuVersion: '?' },
        after: after ?? { agentVersion: host.agentVersion, qemuVersion: host.qemuVersion },
        moved,
        stayed,
        upgradeMs,
      });
      cp.index += 1;
      cp.current = { moved: [], stayed: [], upgradeMs: 0 };
      await this.#save(cp.index < this.#of ? 'drain' : 'return');
    }
  }

  /** Maintenance as `host drain` enters it; the drain job (if any) followed to its end. */
  async #drain(host: HostRow): Promise<void> {
    const cur = this.#cp.current;
    await this.#progress('drain', host.name, `entering maintenance`);
    let jobId = cur.drainJobId;
    if (jobId === undefined) {
      this.ctx.throwIfCancelled();
      const answer = await this.deps.clusters.enterMaintenance(this.ctx.actor, host.id);
      if ('host' in answer) {
        cur.stayed = await this.#stoppedOn(host.id);
        return;
      }
      jobId = answer.job.id;
      cur.drainJobId = jobId;
      await this.#save('drain');
    }
    const job = await this.deps.jobs.waitForEnd(jobId, {
      signal: this.ctx.signal,
      pollMs: this.deps.pollMs,
      onUpdate: (j) => void this.#progress('drain', host.name, j.progress.message).catch(() => undefined),
    });
    const result = DrainResult.safeParse(job.result);
    if (job.state !== 'succeeded' || !result.success)
      throw await this.#failed(
        'conflict',
        host.id,
        'drain',
        `its drain (job ${job.id}) ${job.state}: ${job.error?.detail ?? job.progress.message}`,
      );
    cur.moved = result.data.moved.map((m) => ({ vm: m.vm, from: host.name, to: m.to, jobId: m.jobId }));
    cur.stayed = result.data.stayed;
  }

  /** The agent's upgrade command; what it says is installed, or null when its answer was lost. */
  async #upgrade(host: HostRow): Promise<void> {
    const cur = this.#cp.current;
    if (host.maintenance !== 'in')
      throw await this.#failed(
        'conflict',
        host.id,
        'upgrade',
        `it is ${host.maintenance === 'none' ? 'out of' : host.maintenance} maintenance now (host resume during the run?): not upgraded`,
      );
    if (cur.before !== undefined && this.ctx.resumed) {
      // The manager restarted while the upgrade was asked for: it may have run (or still run).
      await this.deps.poll(host.id);
      const now = await hostRow(this.deps.db, host.id);
      if (now.state !== 'connected' || !same(versionsOf(now), cur.before)) {
        cur.expected = null;
        return;
      }
    }
    cur.before ??= versionsOf(host);
    await this.#save('upgrade');
    this.ctx.throwIfCancelled();
    await this.#progress('upgrade', host.name, `running its upgrade command (${shown(cur.before)} now)`);
    const started = Date.now();
    let answer: HostUpgradeResult | undefined;
    try {
      // The agent ends a command at its own timeout (at most this) and answers then.
      answer = await this.deps.clientFor(host).upgradeHost((UPGRADE_TIMEOUT_MAX_SECONDS + 60) * 1000);
    } catch (error) {
      if (!(error instanceof ApiError))
        // The agent's restart may cut the answer: whether it upgraded shows when it answers again.
        await this.#progress(
          'upgrade',
          host.name,
          `the answer was lost (${reason(error)}); waiting for the host`,
        );
      else if (error.code !== 'host-upgrading')
        throw await this.#failed('agent-error', host.id, 'upgrade', `${error.message} [${error.code}]`);
    }
    cur.upgradeMs = answer?.durationMs ?? Date.now() - started;
    cur.expected = answer?.after ?? null;
  }

  /** Until the host answers the manager with the versions its upgrade installed (or new ones). */
  async #reconnect(hostId: string): Promise<Versions> {
    const { expected, before } = this.#cp.current;
    const seconds = this.deps.reconnectSeconds ?? UPGRADE_RECONNECT_SECONDS;
    const deadline = Date.now() + seconds * 1000;
    const name = (await hostRow(this.deps.db, hostId)).name;
    await this.#progress(
      'reconnect',
      name,
      expected
        ? `waiting for it to answer with ${shown(expected)}`
        : 'waiting for it to answer with new versions',
    );
    for (;;) {
      this.ctx.throwIfCancelled();
      await this.deps.poll(hostId);
      const host = await hostRow(this.deps.db, hostId);
      const now = versionsOf(host);
      const back =
        host.state === 'connected' &&
        (expected ? same(now, expected) : before === undefined || !same(now, before));
      if (back) return now;
      if (Date.now() > deadline)
        throw await this.#failed(
          'host-unreachable',
          hostId,
          'reconnect',
          host.state !== 'connected'
            ? `it has not answered within ${seconds} s of its upgrade (${host.last_error ?? 'no answer'})`
            : `it answers with ${shown(now)}${expected ? `, not the ${shown(expected)} its upgrade installed` : ', as before its upgrade'} (${seconds} s after it)`,
        );
      await sleep(this.deps.pollMs ?? 1000, undefined, { signal: this.ctx.signal }).catch(() => undefined);
    }
  }

  /** Each VM back to the host it ran on at the start, all at once within the move slots. */
  async #returnVms(): Promise<Pick<UpgradeRunResult, 'returned' | 'notReturned'>> {
    const { db, moves, jobs } = this.deps;
    const cp = this.#cp;
    const notReturned: UpgradeRunResult['notReturned'] = [];
    const started = new Map<string, { vm: string; from: string; to: string }>();
    for (const [vmId, homeId] of Object.entries(this.ctx.params.homes)) {
      const vm = await db
        .selectFrom('vms')
        .select(['name', 'host_id', 'state'])
        .where('id', '=', vmId)
        .executeTakeFirst();
      if (!vm) continue; // deleted meanwhile
      const [on, home] = await Promise.all([hostRow(db, vm.host_id), hostRow(db, homeId)]);
      const earlier = cp.returns[vmId];
      if (earlier !== undefined) {
        started.set(earlier.jobId, { vm: vm.name, from: earlier.from, to: home.name });
        continue;
      }
      if (vm.host_id === homeId) continue;
      const skip = (why: string) => notReturned.push({ vm: vm.name, on: on.name, home: home.name, why });
      if (vm.state !== 'running') {
        skip(`it is ${vm.state}`);
        continue;
      }
      this.ctx.throwIfCancelled();
      await this.#progress('return', home.name, `moving ${vm.name} back from ${on.name}`);
      try {
        const answer = await moves.move(
          { name: this.ctx.actor.name },
          vmId,
          MoveVmRequest.parse({ to: homeId }),
          { upgrade: this.ctx.jobId },
        );
        if ('job' in answer) {
          cp.returns[vmId] = { jobId: answer.job.id, from: on.name };
          started.set(answer.job.id, { vm: vm.name, from: on.name, to: home.name });
          await this.#save('return');
        }
      } catch (error) {
        skip(reason(error));
      }
    }
    const returned: UpgradeRunMove[] = [];
    for (const [jobId, m] of started) {
      const job: Job = await jobs.waitForEnd(jobId, { signal: this.ctx.signal, pollMs: this.deps.pollMs });
      if (job.state === 'succeeded') returned.push({ ...m, jobId });
      else
        notReturned.push({
          vm: m.vm,
          on: m.from,
          home: m.to,
          why: `its move (job ${jobId}) ${job.state}: ${job.error?.detail ?? job.progress.message}`,
        });
    }
    return { returned, notReturned };
  }

  async #placement(): Promise<UpgradeRunResult['placement']> {
    const ids = Object.keys(this.ctx.params.homes);
    if (!ids.length) return [];
    const rows = await this.deps.db
      .selectFrom('vms')
      .innerJoin('hosts', 'hosts.id', 'vms.host_id')
      .select(['vms.name as vm', 'hosts.name as host'])
      .where('vms.id', 'in', ids)
      .orderBy('vms.name')
      .execute();
    return rows;
  }

  async #stoppedOn(hostId: string): Promise<string[]> {
    const rows = await this.deps.db
      .selectFrom('vms')
      .select('name')
      .where('host_id', '=', hostId)
      .where('state', 'in', [...STAYING_STATES])
      .orderBy('name')
      .execute();
    return rows.map((r) => r.name);
  }

  async #failed(
    code: ManagerErrorCode,
    hostId: string,
    phase: UpgradeRunPhase,
    why: string,
  ): Promise<UpgradeStepFailed> {
    const host = await hostRow(this.deps.db, hostId);
    return new UpgradeStepFailed(
      code,
      { step: this.#cp.index + 1, of: this.#of, host: host.name, phase, maintenance: host.maintenance },
      why,
      this.#cp.steps.map((s) => s.host),
    );
  }

  #save(phase: UpgradeRunPhase): Promise<void> {
    this.#cp.phase = phase;
    return this.ctx.saveCheckpoint(this.#cp);
  }

  #progress(phase: UpgradeRunPhase, host: string, message: string): Promise<void> {
    const { index } = this.#cp;
    // Each host's four phases are equal shares; the returns the last one.
    const at =
      phase === 'return'
        ? this.#of * UPGRADE_RUN_PHASES.length
        : index * UPGRADE_RUN_PHASES.length + UPGRADE_RUN_PHASES.indexOf(phase);
    const step = phase === 'return' ? 'returning VMs' : `step ${index + 1} of ${this.#of}, ${host}`;
    return this.ctx.progress({
      phase,
      percent: Math.floor((100 * at) / (this.#of * UPGRADE_RUN_PHASES.length + 1)),
      message: `${step}: ${phase}: ${message}`,
      details: {
        step: Math.min(index + 1, this.#of),
        of: this.#of,
        host,
        upgraded: this.#cp.steps.map((s) => ({ host: s.host, after: s.after })),
      },
    });
  }
}

export function upgradeRunHandler(deps: UpgradeRunDeps): JobHandler<UpgradeRunParams> {
  return {
    kind: UPGRADE_JOB_KIND,
    params: UpgradeRunParams,
    // Its checkpoint, the inventory and the jobs it started say where it is: a restart resumes it.
    resumable: true,
    run: (ctx) => new UpgradeRun(deps, ctx).run(),
  };
}

// Rolling host upgrades (issue 30): the plan (POST /api/v1/upgrades/plan) and the run (POST
// /api/v1/upgrades/run, the host-upgrade job of run.ts).
import type { z } from 'zod';
import {
  UPGRADE_STRANDED,
  type Job,
  type StrandedVm,
  type UpgradePlan,
  type UpgradePlanRequest,
  type UpgradeRunRequest,
} from '../../api/index.js';
import type { Actor } from '../changes.js';
import type { Db } from '../db.js';
import { STAYING_STATES } from '../drain-plan.js';
import { Conflict, HostNotFound, InvalidInput, ManagerError, NotFound } from '../errors.js';
import type { JobRunner } from '../jobs.js';
import { loadUpgradeFacts } from './facts.js';
import { newerThanTarget, planUpgrade } from './plan.js';
import { UPGRADE_JOB_KIND, UPGRADE_TARGET, type UpgradeRunParams } from './run.js';

export { planUpgrade, ORDER_RULE, QEMU_RULE } from './plan.js';
export {
  UPGRADE_JOB_KIND,
  UPGRADE_RECONNECT_SECONDS,
  upgradeRunHandler,
  UpgradeStepFailed,
  type UpgradeRunDeps,
} from './run.js';

/** The plan would leave VMs with nowhere to go (422): `stranded` lists them; nothing was changed. */
export class UpgradeStranded extends ManagerError {
  constructor(readonly stranded: StrandedVm[]) {
    const each = stranded.map(
      (s) =>
        `${s.vm} on ${s.host} (step ${s.step}: ${
          s.targets.length
            ? s.targets.map((t) => `${t.host} ${t.failed.map((f) => f.rule).join(', ')}`).join('; ')
            : 'no other host'
        })`,
    );
    super(
      UPGRADE_STRANDED,
      `the upgrade plan strands ${stranded.length} VM${stranded.length === 1 ? '' : 's'}: ${each.join(', ')}`,
      undefined,
      { stranded },
    );
  }
}

/** The plan of a rolling upgrade of the hosts (or the cluster) asked for, from the inventory. */
export async function planHostUpgrade(db: Db, request: UpgradePlanRequest): Promise<UpgradePlan> {
  const facts = await loadUpgradeFacts(db);
  const byName = new Map(facts.hosts.map((h) => [h.name, h]));
  let names: string[];
  if (request.cluster !== undefined) {
    const ref = request.cluster;
    names = facts.hosts.filter((h) => h.cluster === ref).map((h) => h.name);
    if (!names.length) throw new NotFound('cluster', ref, 'cluster');
  } else {
    names = (request.hosts ?? []).map((ref, i) => {
      const name = facts.hostIds.get(ref) ?? (byName.has(ref) ? ref : undefined);
      if (name === undefined) throw new HostNotFound(ref, `hosts.${i}`);
      return name;
    });
  }
  const unreachable = names.map((n) => byName.get(n)).find((h) => h?.state !== 'connected');
  if (unreachable)
    throw new Conflict(
      `host ${unreachable.name} is unreachable: its VMs cannot be moved nor its agent upgraded until it answers`,
      request.cluster !== undefined ? 'cluster' : `hosts.${names.indexOf(unreachable.name)}`,
    );
  if (request.targetQemuVersion !== undefined) {
    const newer = newerThanTarget(
      names.flatMap((n) => byName.get(n) ?? []),
      request.targetQemuVersion,
    );
    if (newer.length)
      throw new InvalidInput(
        `targetQemuVersion: ${request.targetQemuVersion} is older than the QEMU of ${newer
          .map((h) => `${h.name} (${h.qemuVersion})`)
          .join(', ')}: an upgrade does not go back`,
        'targetQemuVersion',
      );
  }
  const outcome = planUpgrade({
    hosts: facts.hosts,
    upgrade: names,
    vms: facts.vms,
    targetQemuVersion: request.targetQemuVersion,
  });
  if (!outcome.ok) throw new UpgradeStranded(outcome.stranded);
  return outcome.plan;
}

/**
 * Plans the rolling upgrade asked for (refused as the plan is: nothing changes) and queues its
 * `host-upgrade` job with the plan's order and where each running VM is now (its home, for the
 * return at the end). One run at a time: another one queued or running is a 409 naming it.
 */
export async function startHostUpgrade(
  deps: { db: Db; jobs: JobRunner },
  by: Actor,
  request: z.output<typeof UpgradeRunRequest>,
): Promise<Job> {
  const { db, jobs } = deps;
  const scope = request.cluster !== undefined ? { cluster: request.cluster } : { hosts: request.hosts ?? [] };
  const plan = await planHostUpgrade(db, {
    ...scope,
    ...(request.targetQemuVersion !== undefined ? { targetQemuVersion: request.targetQemuVersion } : {}),
  });
  const names = plan.steps.map((s) => s.host);
  const rows = await db.selectFrom('hosts').select(['id', 'name']).where('name', 'in', names).execute();
  const hostIds = names.map((n) => rows.find((r) => r.name === n)?.id ?? '');
  const running = await db
    .selectFrom('vms')
    .select(['id', 'host_id'])
    .where('host_id', 'in', hostIds)
    .where('state', 'not in', [...STAYING_STATES])
    .execute();
  const params: UpgradeRunParams = {
    hostIds,
    targetQemuVersion: plan.targetQemuVersion,
    returnVms: request.returnVms,
    homes: Object.fromEntries(running.map((v) => [v.id, v.host_id])),
  };
  return jobs.submit({
    kind: UPGRADE_JOB_KIND,
    target: {
      ...UPGRADE_TARGET,
      name: request.cluster !== undefined ? `cluster ${request.cluster}` : `hosts ${names.join(', ')}`,
    },
    params,
    actor: { name: by.name },
    details: { order: names, targetQemuVersion: plan.targetQemuVersion },
    within: async (tx, jobId) => {
      const other = await tx
        .selectFrom('jobs')
        .select(['id', 'target_name'])
        .where('kind', '=', UPGRADE_JOB_KIND)
        .where('state', 'in', ['queued', 'running'])
        .where('id', '!=', jobId)
        .executeTakeFirst();
      if (other)
        throw new Conflict(
          `a rolling upgrade (${other.target_name}) is under way as job ${other.id}: one at a time (silobreak job watch ${other.id}; silobreak job cancel ${other.id} stops it)`,
        );
    },
  });
}

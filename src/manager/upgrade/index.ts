// Rolling host upgrades (issue 30): the plan (POST /api/v1/upgrades/plan).
import {
  UPGRADE_STRANDED,
  type StrandedVm,
  type UpgradePlan,
  type UpgradePlanRequest,
} from '../../api/index.js';
import type { Db } from '../db.js';
import { Conflict, HostNotFound, InvalidInput, ManagerError, NotFound } from '../errors.js';
import { loadUpgradeFacts } from './facts.js';
import { newerThanTarget, planUpgrade } from './plan.js';

export { planUpgrade, ORDER_RULE, QEMU_RULE } from './plan.js';

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

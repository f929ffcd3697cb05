import { z } from 'zod';
import { Name } from './agent.js';
import { ApiError } from './problem.js';
import { uniqueItems } from './rules.js';

/*
 * Rolling host upgrades (issue 30): the plan the manager makes before it upgrades hosts one at a
 * time, and its refusal when a VM would have nowhere to go. The planner is
 * src/manager/upgrade/plan.ts; its rules are explained there and in the README.
 */

/** A QEMU or agent version as `--version` prints it: numbers joined by dots (10.0.2). */
export const SoftwareVersion = z
  .string()
  .regex(/^\d{1,5}(\.\d{1,5}){0,3}$/, 'must be a version of numbers joined by dots, like 10.0.2');

const HostRefs = z
  .array(z.string().min(1).max(64))
  .min(1)
  .max(200)
  .superRefine(uniqueItems('', (h) => h));

/** What a plan or a run upgrades: the hosts, or a cluster, and the QEMU they will run. */
const upgradeScope = {
  /** The hosts to upgrade (ids or names); the planner chooses their order. */
  hosts: HostRefs.optional(),
  /** Or every host of this cluster (id or name). */
  cluster: z.string().min(1).max(64).optional(),
  /**
   * The QEMU version the upgrade installs. A VM moved onto an upgraded host runs on it from then
   * on; absent, the newest QEMU any host runs now is assumed.
   */
  targetQemuVersion: SoftwareVersion.optional(),
};
const oneScope = (r: { hosts?: unknown; cluster?: unknown }) =>
  (r.hosts === undefined) !== (r.cluster === undefined);
const ONE_SCOPE = { message: 'give hosts or cluster (one of them)', path: ['hosts'] };

export const UpgradePlanRequest = z.strictObject(upgradeScope).refine(oneScope, ONE_SCOPE);
export type UpgradePlanRequest = z.input<typeof UpgradePlanRequest>;

/**
 * POST /upgrades/run: plan as /upgrades/plan does (refused alike), then upgrade the hosts one at a
 * time in the plan's order (a `host-upgrade` job).
 */
export const UpgradeRunRequest = z
  .strictObject({
    ...upgradeScope,
    /**
     * At the end, move each VM that ran on one of the hosts back to it (a plain live move each);
     * false leaves every VM where the last drain put it.
     */
    returnVms: z.boolean().default(true),
  })
  .refine(oneScope, ONE_SCOPE);
export type UpgradeRunRequest = z.input<typeof UpgradeRunRequest>;

/** The rules a host must pass to take a VM during an upgrade, each named in a refusal. */
export const UPGRADE_TARGET_RULES = [
  /** Its agent answers the manager. */
  'host-up',
  /** Not in maintenance (entering or in). */
  'maintenance',
  /** Free memory for the VM, counting the VMs the plan moved there before. */
  'memory',
  /** Room on its default datastore for the VM's disks that it does not see (the move checks' allocated rule). */
  'disk-space',
  'machine-type',
  'cpu-model',
  /** Its QEMU is not older than the QEMU the VM runs on. */
  'qemu-version',
  /** The virtual switches of the VM's NICs. */
  'vswitches',
  /** No VM of the same name there. */
  'name-free',
] as const;
export const UpgradeTargetRule = z.enum(UPGRADE_TARGET_RULES);
export type UpgradeTargetRule = z.infer<typeof UpgradeTargetRule>;

export const UpgradeMove = z.object({
  vm: Name,
  vmId: z.uuid(),
  to: Name,
  /** Every disk stays on a shared datastore the target sees: only memory crosses the link. */
  memoryOnly: z.boolean(),
  /** Why this host: its rank as a drain ranks hosts, and the better-ranked hosts that could not. */
  why: z.string(),
});
export type UpgradeMove = z.infer<typeof UpgradeMove>;

export const UpgradeStay = z.object({
  vm: Name,
  vmId: z.uuid(),
  /** e.g. stopped: stays, and starts on the new QEMU. */
  why: z.string(),
});
export type UpgradeStay = z.infer<typeof UpgradeStay>;

export const UpgradeStep = z.object({
  /** 1, 2, …: the order the hosts are upgraded in, one at a time. */
  step: z.number().int().min(1),
  host: Name,
  cluster: Name.nullable(),
  agentVersion: z.string(),
  qemuVersion: z.object({ from: z.string(), to: z.string() }),
  /** Why the host comes at this step. */
  why: z.string(),
  /** The VMs that leave it before its upgrade (a drain), in the drain's order. */
  moves: z.array(UpgradeMove),
  /** The VMs that stay (nothing runs: they start on the new QEMU). */
  stays: z.array(UpgradeStay),
});
export type UpgradeStep = z.infer<typeof UpgradeStep>;

export const UpgradePlan = z.object({
  /** The QEMU the upgraded hosts run afterwards (the request's, or the newest any host runs). */
  targetQemuVersion: z.string(),
  /** How the hosts are ordered. */
  orderRule: z.string(),
  /** Which QEMU a VM runs on, and where it may go. */
  qemuRule: z.string(),
  steps: z.array(UpgradeStep),
});
export type UpgradePlan = z.infer<typeof UpgradePlan>;

export const StrandedVm = z.object({
  /** The step that would have to move it. */
  step: z.number().int().min(1),
  vm: Name,
  vmId: z.uuid(),
  /** The host it is on at that step (the one being upgraded). */
  host: Name,
  /** Every other host, with each rule it fails for this VM; empty when there is no other host. */
  targets: z.array(
    z.object({
      host: Name,
      failed: z.array(z.object({ rule: UpgradeTargetRule, detail: z.string() })).min(1),
    }),
  ),
});
export type StrandedVm = z.infer<typeof StrandedVm>;

/** The problem code of a refused plan (HTTP 422); its `stranded` member lists the VMs. */
export const UPGRADE_STRANDED = 'upgrade-stranded';

/** The members a refused plan's problem carries beside code and detail. */
export const UpgradeRefusal = z.object({ stranded: z.array(StrandedVm).min(1) });
export type UpgradeRefusal = z.infer<typeof UpgradeRefusal>;

/** The stranded VMs of a refused upgrade plan, when `error` is that refusal. */
export function strandedVms(error: unknown): StrandedVm[] | undefined {
  if (!(error instanceof ApiError) || error.code !== UPGRADE_STRANDED) return undefined;
  const parsed = UpgradeRefusal.safeParse(error.body);
  return parsed.success ? parsed.data.stranded : undefined;
}

/** The phases of each host's step in a rolling upgrade, in order; `return` ends the run. */
export const UPGRADE_RUN_PHASES = ['drain', 'upgrade', 'reconnect', 'resume'] as const;
export const UpgradeRunPhase = z.enum([...UPGRADE_RUN_PHASES, 'return']);
export type UpgradeRunPhase = z.infer<typeof UpgradeRunPhase>;

const Versions = z.object({ agentVersion: z.string(), qemuVersion: z.string() });

/** A VM moved by the run: by a host's drain, or back to its host at the end. */
export const UpgradeRunMove = z.object({ vm: Name, from: Name, to: Name, jobId: z.uuid() });
export type UpgradeRunMove = z.infer<typeof UpgradeRunMove>;

/** One host's step as it went. */
export const UpgradeRunStep = z.object({
  step: z.number().int().min(1),
  host: Name,
  /** The versions the host answered with before its upgrade, and once it came back. */
  before: Versions,
  after: Versions,
  /** Where its drain moved each running VM. */
  moved: z.array(UpgradeRunMove),
  /** VMs that stayed on it (stopped). */
  stayed: z.array(Name),
  /** The upgrade command's run on the host, in milliseconds. */
  upgradeMs: z.number().int(),
});
export type UpgradeRunStep = z.infer<typeof UpgradeRunStep>;

/** The `result` of a succeeded `host-upgrade` job. */
export const UpgradeRunResult = z.object({
  targetQemuVersion: z.string(),
  steps: z.array(UpgradeRunStep),
  /** VMs moved back to the host they ran on before the run (returnVms). */
  returned: z.array(UpgradeRunMove),
  /** VMs that could not go back (they run on where they are), each with why. */
  notReturned: z.array(z.object({ vm: Name, on: Name, home: Name, why: z.string() })),
  /** Where every VM that ran on the upgraded hosts at the start is at the end. */
  placement: z.array(z.object({ vm: Name, host: Name })),
});
export type UpgradeRunResult = z.infer<typeof UpgradeRunResult>;

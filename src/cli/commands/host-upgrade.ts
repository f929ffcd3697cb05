// silobreak host upgrade --plan|--run <host...> | --cluster <cluster>
import type { Command } from 'commander';
import { z } from 'zod';
import {
  ApiError,
  SoftwareVersion,
  strandedVms,
  UpgradeRunResult,
  type Job,
  type StrandedVm,
  type UpgradePlan,
} from '../../api/index.js';
import { OperationFailed, UsageError } from '../errors.js';
import { followJob } from '../jobs.js';
import { paint, type OutputStyle } from '../output.js';
import { act, noun, verb, withDetach, type CliContext } from '../program.js';
import { input } from '../rules.js';
import { renderTable } from '../table.js';

interface PlanRow {
  step: string;
  host: string;
  vm: string;
  to: string;
  why: string;
}

/** The plan: one row per VM (moving or staying), one for a host with none; the rules under it. */
export function renderUpgradePlan(style: OutputStyle, plan: UpgradePlan): string {
  const rows: PlanRow[] = plan.steps.flatMap((s) => {
    const host = `${s.host} (QEMU ${s.qemuVersion.from} -> ${s.qemuVersion.to})`;
    const lines: PlanRow[] = [
      ...s.moves.map((m) => ({ step: String(s.step), host, vm: m.vm, to: m.to, why: m.why })),
      ...s.stays.map((v) => ({ step: String(s.step), host, vm: v.vm, to: 'stays', why: v.why })),
    ];
    return lines.length
      ? lines
      : [{ step: String(s.step), host, vm: '-', to: '-', why: 'no VMs: upgraded as is' }];
  });
  const count = plan.steps.length;
  const head = paint(
    style,
    'green',
    `Upgrade plan: ${count} host${count === 1 ? '' : 's'}, one at a time, to QEMU ${plan.targetQemuVersion}; every VM has somewhere to go (nothing was changed).`,
  );
  const table = renderTable(
    [
      { header: 'Step', value: (r: PlanRow) => r.step, align: 'right' },
      { header: 'Host', value: (r: PlanRow) => r.host },
      { header: 'VM', value: (r: PlanRow) => r.vm },
      { header: 'Goes to', value: (r: PlanRow) => r.to },
      { header: 'Why', value: (r: PlanRow) => r.why },
    ],
    rows,
  );
  const reasons = plan.steps.map((s) => `  ${s.step}. ${s.host}: ${s.why}`);
  return [
    head,
    table,
    ['Order:', ...reasons, `  (${plan.orderRule})`].join('\n'),
    `QEMU: ${plan.qemuRule}.`,
  ].join('\n\n');
}

interface StrandRow {
  step: string;
  host: string;
  vm: string;
  target: string;
  fails: string;
}

/** A refused plan: each stranded VM with every other host and each rule it fails there. */
export function renderStranded(style: OutputStyle, stranded: readonly StrandedVm[]): string {
  const rows: StrandRow[] = stranded.flatMap((s) => {
    const base = { step: String(s.step), host: s.host, vm: s.vm };
    if (!s.targets.length) return [{ ...base, target: '-', fails: 'there is no other host' }];
    return s.targets.map((t) => ({
      ...base,
      target: t.host,
      fails: t.failed.map((f) => `${f.rule}: ${f.detail}`).join('; '),
    }));
  });
  const n = stranded.length;
  const head = paint(
    style,
    'red',
    `The upgrade would strand ${n} VM${n === 1 ? '' : 's'}: each needs a host that passes every rule (nothing was changed).`,
  );
  const table = renderTable(
    [
      { header: 'Step', value: (r: StrandRow) => r.step, align: 'right' },
      { header: 'Host', value: (r: StrandRow) => r.host },
      { header: 'VM', value: (r: StrandRow) => r.vm },
      { header: 'Target', value: (r: StrandRow) => r.target },
      { header: 'Fails', value: (r: StrandRow) => r.fails },
    ],
    rows,
  );
  return `${head}\n\n${table}`;
}

/** What a finished run did: each host's versions before and after, where each VM went. */
export function renderUpgradeRun(style: OutputStyle, job: Pick<Job, 'result'>): string | undefined {
  const parsed = UpgradeRunResult.safeParse(job.result);
  if (!parsed.success) return undefined;
  const r = parsed.data;
  const versions = (v: { agentVersion: string; qemuVersion: string }) =>
    `agent ${v.agentVersion}, QEMU ${v.qemuVersion}`;
  const count = r.steps.length;
  const head = paint(
    style,
    'green',
    `Rolling upgrade done: ${count} host${count === 1 ? '' : 's'} upgraded one at a time, each out of maintenance again.`,
  );
  const table = renderTable(
    [
      { header: 'Step', value: (s: (typeof r.steps)[number]) => String(s.step), align: 'right' },
      { header: 'Host', value: (s) => s.host },
      { header: 'Before', value: (s) => versions(s.before) },
      { header: 'After', value: (s) => versions(s.after) },
      {
        header: 'VMs moved off',
        value: (s) =>
          [...s.moved.map((m) => `${m.vm} -> ${m.to}`), ...s.stayed.map((v) => `${v} stayed (stopped)`)].join(
            ', ',
          ) || '-',
      },
    ],
    r.steps,
  );
  const lines = [head, table];
  if (r.returned.length)
    lines.push(`Moved back: ${r.returned.map((m) => `${m.vm} ${m.from} -> ${m.to}`).join(', ')}`);
  if (r.notReturned.length)
    lines.push(
      paint(
        style,
        'yellow',
        `Not moved back: ${r.notReturned.map((n) => `${n.vm} stays on ${n.on}, not ${n.home} (${n.why})`).join('; ')}`,
      ),
    );
  if (r.placement.length)
    lines.push(`Where the VMs run now: ${r.placement.map((p) => `${p.vm} on ${p.host}`).join(', ')}`);
  return lines.join('\n\n');
}

export const UpgradeFlags = z
  .object({
    hosts: z.array(input.ref).default([]),
    cluster: input.ref.optional(),
    plan: z.boolean().default(false),
    run: z.boolean().default(false),
    /** `--no-return`: VMs stay where the last drain put them. */
    return: z.boolean().default(true),
    detach: z.boolean().default(false),
    targetQemu: SoftwareVersion.optional(),
  })
  .superRefine((o, ctx) => {
    if (o.plan && o.run)
      ctx.addIssue({ code: 'custom', path: ['run'], message: 'give --plan or --run, not both' });
    if (o.hosts.length > 0 && o.cluster !== undefined)
      ctx.addIssue({ code: 'custom', path: ['cluster'], message: 'give hosts or --cluster, not both' });
    if (o.hosts.length === 0 && o.cluster === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['hosts'],
        message: 'name the hosts to upgrade, or give --cluster',
      });
  });

export function registerHostUpgradeCommand(program: Command): void {
  const host = noun(program, 'host', 'Hosts (KVM machines running the silobreak agent)');
  withDetach(
    verb(
      host,
      'upgrade [hosts...]',
      "Rolling upgrade: --plan orders the hosts (or a cluster) and shows where every VM goes before its host is upgraded, or why one could not go anywhere; --run does it, one host at a time: drain, the host's upgrade command, back with its new versions, resume (a job)",
    ),
  )
    .option('--plan', 'show the plan and check it; change nothing')
    .option('--run', "plan, then upgrade the hosts one at a time in the plan's order")
    .option(
      '--no-return',
      'with --run: leave each VM where the last drain put it (default: back to its host)',
    )
    .option('--cluster <cluster>', 'every host of this cluster')
    .option(
      '--target-qemu <version>',
      'the QEMU version the upgrade installs (default: the newest any host runs)',
    )
    .action(
      act(UpgradeFlags, async (o, ctx) => {
        if (!o.plan && !o.run)
          throw new UsageError(
            'host upgrade: give --plan (show the plan) or --run (upgrade the hosts)',
            'silobreak host upgrade --plan|--run <host...> | --cluster <cluster>',
          );
        const request = {
          ...(o.cluster !== undefined ? { cluster: o.cluster } : { hosts: o.hosts }),
          ...(o.targetQemu !== undefined ? { targetQemuVersion: o.targetQemu } : {}),
        };
        try {
          if (o.run) {
            const { job } = await ctx.client().runUpgrade({ ...request, returnVms: o.return });
            await followRun(ctx, job, o.detach);
            return;
          }
          const plan = await ctx.client().planUpgrade(request);
          if (ctx.style.json) ctx.printJson(plan);
          else ctx.print(renderUpgradePlan(ctx.style, plan));
        } catch (error) {
          const stranded = strandedVms(error);
          if (!stranded) throw error;
          if (ctx.style.json) ctx.printJson(error instanceof ApiError ? error.body : stranded);
          else ctx.print(renderStranded(ctx.style, stranded));
          throw new OperationFailed(
            `the upgrade plan strands ${stranded.length} VM${stranded.length === 1 ? '' : 's'}`,
            'free memory or space, or bring hosts out of maintenance, then plan again',
          );
        }
      }),
    );
}

/** Follows the run's job (as `host drain` follows its drain) and prints what it did. */
async function followRun(ctx: CliContext, job: Job, detach: boolean): Promise<void> {
  const final = await followJob(ctx, job, detach);
  const summary =
    final.state === 'succeeded' && !ctx.style.json ? renderUpgradeRun(ctx.style, final) : undefined;
  if (summary) ctx.print(summary);
}

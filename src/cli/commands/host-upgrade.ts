// silobreak host upgrade --plan <host...> | --cluster <cluster>
import type { Command } from 'commander';
import { z } from 'zod';
import {
  ApiError,
  SoftwareVersion,
  strandedVms,
  type StrandedVm,
  type UpgradePlan,
} from '../../api/index.js';
import { OperationFailed, UsageError } from '../errors.js';
import { paint, type OutputStyle } from '../output.js';
import { act, noun, verb } from '../program.js';
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

export const UpgradeFlags = z
  .object({
    hosts: z.array(input.ref).default([]),
    cluster: input.ref.optional(),
    plan: z.boolean().default(false),
    targetQemu: SoftwareVersion.optional(),
  })
  .superRefine((o, ctx) => {
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
  verb(
    host,
    'upgrade [hosts...]',
    'Rolling upgrade: --plan orders the hosts (or a cluster) and shows where every VM goes before its host is upgraded, or why one could not go anywhere',
  )
    .option('--plan', 'show the plan and check it; change nothing')
    .option('--cluster <cluster>', 'every host of this cluster')
    .option(
      '--target-qemu <version>',
      'the QEMU version the upgrade installs (default: the newest any host runs)',
    )
    .action(
      act(UpgradeFlags, async (o, ctx) => {
        if (!o.plan)
          throw new UsageError(
            'host upgrade: give --plan (running the upgrade is not available yet)',
            'silobreak host upgrade --plan <host...> | --cluster <cluster>',
          );
        const request = {
          ...(o.cluster !== undefined ? { cluster: o.cluster } : { hosts: o.hosts }),
          ...(o.targetQemu !== undefined ? { targetQemuVersion: o.targetQemu } : {}),
        };
        try {
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

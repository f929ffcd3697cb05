// silobreak vm move <vm> --to <host> | vm move --cancel <job> | vm move-storage <vm> --datastore <ds>
import type { Command } from 'commander';
import { z } from 'zod';
import {
  describeDiskCopy,
  describeDiskRoute,
  Name,
  type MoveCleanupResult,
  type MovePlan,
  type MoveVmRequest,
} from '../../api/index.js';
import { OperationFailed, UsageError } from '../errors.js';
import { followJob, jobLabel } from '../jobs.js';
import { paint, type OutputStyle } from '../output.js';
import { act, noun, printObject, repeatable, verb, withDetach } from '../program.js';
import { input } from '../rules.js';
import { renderTable } from '../table.js';
import { formatBytes } from '../units.js';

/**
 * `--datastore` values: one datastore name for every disk, or `disk=datastore` pairs (repeatable;
 * disks not named go to the target's default datastore).
 */
export function datastoreChoice(values: string[] | undefined): string | Record<string, string> | undefined {
  if (!values?.length) return undefined;
  const pairs = values.filter((v) => v.includes('='));
  if (pairs.length === 0) {
    if (values.length > 1) {
      throw new UsageError(
        '--datastore: give one datastore for all disks, or disk=datastore pairs (e.g. --datastore root=fast)',
      );
    }
    return checkName(values[0] ?? '', '--datastore');
  }
  if (pairs.length !== values.length) {
    throw new UsageError('--datastore: do not mix a plain datastore with disk=datastore pairs');
  }
  const map: Record<string, string> = {};
  for (const pair of pairs) {
    const [disk = '', store = ''] = pair.split('=', 2);
    map[checkName(disk, '--datastore (disk)')] = checkName(store, '--datastore');
  }
  return map;
}

function checkName(value: string, flag: string): string {
  const parsed = Name.safeParse(value);
  if (!parsed.success)
    throw new UsageError(`${flag}: "${value}" ${parsed.error.issues[0]?.message ?? 'is not a name'}`);
  return parsed.data;
}

/** The dry run's answer: every check with its verdict, the disks' plan, the space rule. */
export function renderPlan(style: OutputStyle, plan: MovePlan): string {
  const checks = renderTable(
    [
      { header: 'Check', value: (c) => c.check },
      {
        header: 'OK',
        value: (c) =>
          !c.ok
            ? paint(style, 'red', 'NO')
            : c.warning
              ? paint(style, 'yellow', 'warn')
              : paint(style, 'green', 'yes'),
      },
      { header: 'Detail', value: (c) => c.detail },
    ],
    plan.checks,
  );
  const disks = plan.disks.length
    ? renderTable(
        [
          { header: 'Disk', value: (d) => d.diskId },
          { header: 'From', value: (d) => `${plan.from}:${d.fromDatastore}` },
          { header: 'To', value: (d) => `${plan.to}:${d.toDatastore}` },
          {
            header: 'Copy',
            value: (d) =>
              d.stays ? 'none: stays on shared storage' : plan.mode === 'cold' ? 'copy' : 'mirror',
          },
          { header: 'Allocated', value: (d) => formatBytes(d.allocatedBytes), align: 'right' },
          { header: 'Virtual', value: (d) => formatBytes(d.virtualSizeBytes), align: 'right' },
          { header: 'Needs', value: (d) => formatBytes(d.requiredBytes), align: 'right' },
        ],
        plan.disks,
      )
    : 'No disks to move.';
  const verdict = plan.ok
    ? paint(
        style,
        'green',
        `The ${plan.mode} move of ${plan.vm.name} can go ahead (dry run: nothing changed).`,
      )
    : paint(
        style,
        'red',
        `The move of ${plan.vm.name} would be refused: fix the checks marked NO (nothing changed).`,
      );
  const staying = plan.disks.filter((d) => d.stays);
  const shared = plan.memoryOnly
    ? [
        `Memory only: ${staying.map((d) => `disk ${d.diskId} ${describeDiskRoute(d)}`).join(', ') || 'the VM has no disks'}; only the guest's memory crosses the link.`,
      ]
    : staying.length
      ? [
          `Shared storage: ${staying.map((d) => `disk ${d.diskId} ${describeDiskRoute(d)}`).join(', ')}; only the other disks are mirrored.`,
        ]
      : [];
  const copy = plan.diskCopy ? [`Disk copy: ${describeDiskCopy(plan.diskCopy)}`] : [];
  const link = plan.link ? [`Link ${plan.from} -> ${plan.to}: ${plan.link.why}`] : [];
  const stream = plan.stream ? [`Memory stream: ${plan.stream.mode} (${plan.stream.why})`] : [];
  return [
    verdict,
    checks,
    disks,
    ...shared,
    ...copy,
    `Space rule: ${plan.spaceRule}`,
    ...link,
    ...stream,
  ].join('\n\n');
}

/** `vm move --cleanup`: what went, what waits for its host. */
export function renderCleanup(result: MoveCleanupResult): string {
  const lines = [
    ...result.removed.map(
      (r) => `removed on ${r.host}: ${r.what}${r.migrationId ? ` (move ${r.migrationId})` : ''}`,
    ),
    ...result.pending.map((p) => `pending on ${p.host}: ${p.what}: ${p.reason}`),
  ];
  const head = lines.length
    ? `Failed moves of ${result.vm} (on ${result.host}):`
    : `Nothing left of failed moves of ${result.vm} on other hosts; it runs on ${result.host}.`;
  return [head, ...lines.map((l) => `  ${l}`)].join('\n');
}

function printPlan(ctx: Parameters<Parameters<typeof act>[1]>[1], plan: MovePlan): void {
  printObject(ctx, plan, renderPlan(ctx.style, plan));
  if (!plan.ok)
    throw new OperationFailed(`dry run: ${plan.checks.filter((c) => !c.ok).length} check(s) failed`);
}

export const MoveFlags = z
  .object({
    vm: input.ref.optional(),
    to: input.ref.optional(),
    datastore: z.array(z.string()).optional(),
    /** Absent: the request's default (TLS on). */
    secure: z.boolean().optional(),
    keepSource: z.boolean().default(false),
    retain: z.boolean().default(false),
    dryRun: z.boolean().default(false),
    detach: z.boolean().default(false),
    cancel: z.uuid('must be a job id (a UUID, as `silobreak job list` shows)').optional(),
    cleanup: z.boolean().default(false),
  })
  .superRefine((o, ctx) => {
    if (o.cleanup) {
      if (o.vm === undefined)
        ctx.addIssue({ code: 'custom', path: ['vm'], message: 'name the VM whose failed moves to clean up' });
      if (o.to !== undefined || o.cancel !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['cleanup'],
          message: 'give --cleanup <vm> alone (no --to, no --cancel)',
        });
    } else if (o.cancel !== undefined) {
      if (o.vm !== undefined || o.to !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['cancel'],
          message: 'give either --cancel <job> or <vm> --to <host>',
        });
    } else {
      if (o.vm === undefined) ctx.addIssue({ code: 'custom', path: ['vm'], message: 'name the VM to move' });
      if (o.to === undefined) ctx.addIssue({ code: 'custom', path: ['to'], message: 'name the target host' });
    }
  });

/**
 * The move request of `vm move`: `secure` only when a flag says so (--secure / --no-secure), so
 * the request's default (TLS on) is the one users get.
 */
export function moveRequestBody(o: z.output<typeof MoveFlags>): MoveVmRequest {
  const datastore = datastoreChoice(o.datastore);
  return {
    to: o.to ?? '',
    ...(o.secure !== undefined ? { secure: o.secure } : {}),
    keepSource: o.keepSource,
    retain: o.retain,
    ...(datastore !== undefined ? { datastore } : {}),
  };
}

export function registerMoveCommands(program: Command): void {
  const vm = noun(program, 'vm', 'Virtual machines');

  withDetach(verb(vm, 'move [vm]', 'Move a VM with its disks to another host, live if it runs (a job)'))
    .option('--to <host>', 'the target host')
    .option(
      '--datastore <ds>',
      "target datastore for every disk, or disk=datastore (repeatable); default: the target's default",
      repeatable,
    )
    .option(
      '--secure',
      'carry the disk mirror and the memory stream over TLS, only the source host accepted (the default)',
    )
    .option(
      '--no-secure',
      'no TLS on the disk mirror and memory stream: only for a trusted dedicated link (a cold copy keeps its TLS)',
    )
    .option('--keep-source', "keep the VM's disk files on the source host after the move")
    .option(
      '--retain',
      'keep the source disks as a retained copy (read-only): a later move back sends only what changed',
    )
    .option('--dry-run', 'only check and show the plan; change nothing')
    .option('--cancel <job>', 'cancel a move (any time before the switchover)')
    .option(
      '--cleanup',
      'remove what failed moves of the VM left on other hosts (incoming copies, kept undos); its own host is not touched',
    )
    .action(
      act(MoveFlags, async (o, ctx) => {
        const client = ctx.client();
        if (o.cleanup) {
          const result = await client.cleanUpMoves(o.vm ?? '');
          printObject(ctx, result, renderCleanup(result));
          if (result.pending.length)
            throw new OperationFailed(
              `${result.pending.length} clean-up(s) pending: their hosts did not answer`,
            );
          return;
        }
        if (o.cancel !== undefined) {
          const job = await client.cancelJob(o.cancel);
          printObject(ctx, job, `Cancel requested for job ${job.id} (${jobLabel(job)}), now ${job.state}.`);
          return;
        }
        const body = moveRequestBody(o);
        const ref = o.vm ?? '';
        if (o.dryRun) return printPlan(ctx, await client.planMove(ref, body));
        const accepted = await client.moveVm(ref, body);
        await followJob(ctx, accepted.job, o.detach);
      }),
    );

  withDetach(
    verb(vm, 'move-storage <vm>', "Move a running VM's disks to another datastore of its host (a job)"),
  )
    .requiredOption('--datastore <ds>', 'the datastore the disks move to')
    .option('--disk <id>', 'only this disk (repeatable); default: every disk not already there', repeatable)
    .option('--dry-run', 'only check and show the plan; change nothing')
    .action(
      act(
        z.object({
          vm: input.ref,
          datastore: Name,
          disk: z.array(Name).optional(),
          dryRun: z.boolean().default(false),
          detach: z.boolean().default(false),
        }),
        async (o, ctx) => {
          const client = ctx.client();
          const body = { datastore: o.datastore, ...(o.disk ? { disks: o.disk } : {}) };
          if (o.dryRun) return printPlan(ctx, await client.planMoveStorage(o.vm, body));
          const accepted = await client.moveStorage(o.vm, body);
          await followJob(ctx, accepted.job, o.detach);
        },
      ),
    );
}

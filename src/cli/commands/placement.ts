// silobreak placement status|recommendations|apply|dismiss|mode|settings|suggest|schedule, vm set: demand
// driven placement (issue 18) in the terminal.
import type { Command } from 'commander';
import { z } from 'zod';
import {
  DEFAULT_PLACEMENT_SETTINGS,
  Duration,
  Name,
  PlacementMode,
  type CreateVmRequest,
  type ManagerClient,
  type PlacementConfig,
  type PlacementSchedule,
  type PlacementSettingsOverrides,
  type PlacementSettingsPatch,
  type PlacementVmStatus,
  type Recommendation,
  type SuggestCandidate,
  type SuggestResult,
  type VmPlacement,
  type VmPlacementPatch,
  type VmPlacementRequest,
} from '../../api/index.js';
import { OperationFailed, UsageError } from '../errors.js';
import { followJob } from '../jobs.js';
import { act, allPages, noun, printList, printObject, repeatable, verb, withDetach } from '../program.js';
import { fromParser, input, parseFieldSettings, parseUnsetFields } from '../rules.js';
import { renderDetails, type Column } from '../table.js';
import { formatBytes, formatRelativeTime, parseSize } from '../units.js';

const num = (v: number | null, digits = 0) => (v === null ? '-' : v.toFixed(digits));
const place = (p: { host: string; datastore: string } | null) => (p ? `${p.host}/${p.datastore}` : '-');

const vmColumns: Column<PlacementVmStatus>[] = [
  { header: 'VM', value: (v) => v.vm },
  { header: 'On', value: (v) => place(v) },
  { header: 'Class', value: (v) => v.class },
  { header: 'IOPS', value: (v) => num(v.iops), align: 'right' },
  { header: 'Latency ms', value: (v) => num(v.latencyMs, 1), align: 'right' },
  { header: 'Demand', value: (v) => v.demand },
  { header: 'Priority', value: (v) => String(v.priority), align: 'right' },
  {
    header: 'Flags',
    value: (v) => [v.pinned ? 'pinned' : '', v.excluded ? 'excluded' : ''].filter(Boolean).join(',') || '-',
  },
  { header: 'Home', value: (v) => place(v.home) },
  { header: 'Moves 24h', value: (v) => String(v.movesToday), align: 'right' },
  { header: 'Why', value: (v) => v.demandReason ?? '-' },
  { header: 'Not moved because', value: (v) => v.waitingReason ?? '-' },
];

const recommendationColumns: Column<Recommendation>[] = [
  { header: 'Id', value: (r) => r.id },
  { header: 'Kind', value: (r) => r.kind },
  { header: 'VM', value: (r) => r.vm },
  { header: 'From', value: (r) => place(r.from) },
  { header: 'To', value: (r) => `${place(r.to)} (${r.to.class})` },
  {
    header: 'Target after',
    value: (r) =>
      `${Math.round(r.predicted.iops)}${r.predicted.iopsBudget === null ? '' : `/${r.predicted.iopsBudget}`} IOPS, ${formatBytes(r.predicted.memoryFreeBytes)} mem free`,
  },
  { header: 'State', value: (r) => r.state },
  { header: 'Created', value: (r) => formatRelativeTime(r.createdAt) },
  { header: 'Reason', value: (r) => r.reason.text },
];

const scheduleColumns: Column<PlacementSchedule>[] = [
  { header: 'Id', value: (s) => s.id },
  { header: 'VM', value: (s) => s.vm },
  { header: 'Class', value: (s) => s.class },
  { header: 'Cron (UTC)', value: (s) => s.cron },
  { header: 'For', value: (s) => `${Math.round(s.durationSeconds / 60)}m`, align: 'right' },
  { header: 'Next window', value: (s) => (s.nextStart ? `${s.nextStart} - ${s.nextEnd ?? ''}` : '-') },
];

const suggestColumns: Column<SuggestCandidate>[] = [
  { header: 'Host', value: (c) => c.host },
  { header: 'Datastore', value: (c) => c.datastore },
  { header: 'Class', value: (c) => c.class },
  { header: 'Score', value: (c) => c.score.toFixed(1), align: 'right' },
  { header: 'Why', value: (c) => c.reasons.join('; ') },
];

function configText(c: PlacementConfig): string {
  return `Mode: ${c.mode}\n${renderDetails(
    Object.entries(c.settings).map(
      ([k, v]) =>
        [
          k,
          `${v}${k in c.overrides ? ` (set; default ${String(c.defaults[k as keyof typeof c.defaults])})` : ''}`,
        ] as const,
    ),
  )}`;
}

const vmPlacementText = (p: VmPlacement) =>
  renderDetails([
    ['VM', p.vm],
    ['Priority', String(p.priority)],
    ['Pinned', p.pinned ? 'yes' : 'no'],
    ['Excluded', p.excluded ? 'yes' : 'no'],
    ['Home', place(p.home)],
    ['Placed for', p.placedFor ?? '-'],
  ]);

const SETTING_FIELDS = Object.keys(DEFAULT_PLACEMENT_SETTINGS);

/** `--home host/datastore` or `--home none`. */
export function parseHome(text: string): { host: string; datastore: string } | null | { error: string } {
  if (text === 'none') return null;
  const m = /^([^/\s]{1,64})\/([a-z0-9][a-z0-9-]{0,30})$/.exec(text);
  if (!m?.[1] || !m[2]) return { error: `'${text}' is not host/datastore (or none)` };
  return { host: m[1], datastore: m[2] };
}

/** `--priority high` or `--priority 80`. */
export function parsePriority(text: string): VmPlacementRequest['priority'] | { error: string } {
  if (text === 'low' || text === 'normal' || text === 'high') return text;
  if (/^\d{1,3}$/.test(text) && Number(text) <= 100) return Number(text);
  return { error: `'${text}' is not low, normal, high or a number from 0 to 100` };
}

/** Suggest's refusals as the hint of a failure. */
const refusedHint = (r: SuggestResult) =>
  r.refused.map((x) => `${x.host}/${x.datastore}: ${x.reason}`).join('\n') || 'there are no datastores';

/**
 * `vm create --pool`: the suggest API's best datastore among the pool's hosts; disks that name no
 * datastore go there. Returns the request for that host and the candidate chosen.
 */
export async function placeInPoolBySuggest(
  client: ManagerClient,
  req: CreateVmRequest,
): Promise<{ request: CreateVmRequest; chosen: SuggestCandidate }> {
  const { pool, ...rest } = req;
  if (pool === undefined) throw new UsageError('--pool: not given');
  const diskBytes = req.spec.disks?.reduce((a, d) => a + d.sizeBytes, 0) ?? 0;
  const result = await client.suggestPlacement({
    memoryBytes: req.spec.memoryMiB * 2 ** 20,
    diskBytes,
    pool,
  });
  const chosen = result.candidates[0];
  if (!chosen)
    throw new OperationFailed(`no datastore in pool ${pool} has room for the VM`, refusedHint(result));
  return {
    chosen,
    request: {
      ...rest,
      host: chosen.host,
      spec: {
        ...req.spec,
        disks: req.spec.disks?.map((d) => ({ ...d, datastore: d.datastore ?? chosen.datastore })),
      },
    },
  };
}

export function registerPlacementCommands(program: Command): void {
  const placement = noun(
    program,
    'placement',
    'Demand-driven placement: hot VMs to the fast class, home when they cool; schedules; suggest',
  );

  verb(
    placement,
    'status',
    "Placement's mode, last evaluation and every VM's demand and placement settings",
  ).action(
    act(z.object({}), async (_o, ctx) => {
      const s = await ctx.client().placementStatus();
      if (ctx.style.json) return ctx.printJson(s);
      ctx.print(
        `Mode ${s.mode}; last evaluated ${formatRelativeTime(s.lastEvaluatedAt)}; ${s.pendingRecommendations} pending recommendation(s); ${s.movesInFlight} placement move(s) in flight.`,
      );
      printList(ctx, s.vms, vmColumns, 'No VMs.');
    }),
  );

  verb(
    placement,
    'recommendations',
    'Recommendations with their reasons, newest first (pending unless --all)',
  )
    .option('--all', 'also applied, dismissed and expired ones')
    .option('--limit <n>', 'at most this many')
    .action(
      act(z.object({ all: z.boolean().default(false), limit: input.limit }), async (o, ctx) => {
        const client = ctx.client();
        const items = await allPages(
          (q) => client.listRecommendations({ ...q, state: o.all ? 'all' : 'pending' }),
          o.limit,
        );
        printList(
          ctx,
          items,
          recommendationColumns,
          o.all ? 'No recommendations.' : 'No pending recommendations.',
        );
      }),
    );

  withDetach(verb(placement, 'apply <id>', "Start a recommendation's move (a job)")).action(
    act(
      z.object({ id: z.uuid('must be a recommendation id'), detach: z.boolean().default(false) }),
      async (o, ctx) => {
        const accepted = await ctx.client().applyRecommendation(o.id);
        await followJob(ctx, accepted.job, o.detach);
      },
    ),
  );

  verb(placement, 'dismiss <id>', 'Dismiss a pending recommendation').action(
    act(z.object({ id: z.uuid('must be a recommendation id') }), async (o, ctx) => {
      const r = await ctx.client().dismissRecommendation(o.id);
      printObject(ctx, r, `Recommendation ${r.id} (${r.kind} of ${r.vm}) dismissed.`);
    }),
  );

  verb(placement, 'mode [mode]', `Show or set the mode (${PlacementMode.options.join(', ')})`).action(
    act(z.object({ mode: PlacementMode.optional() }), async (o, ctx) => {
      const client = ctx.client();
      const c = o.mode ? await client.setPlacementMode(o.mode) : await client.placementConfig();
      printObject(ctx, c, configText(c));
    }),
  );

  verb(placement, 'settings', 'Show or set the thresholds, holds, budget and cap')
    .option('--set <field=value>', 'override a setting (repeatable); the others keep theirs', repeatable)
    .option('--unset <field>', 'drop one override: back to its default (repeatable)', repeatable)
    .option('--reset', 'drop every override (with --set: keep only those)')
    .action(
      act(
        z.object({
          set: z.array(z.string()).optional(),
          unset: z.array(z.string()).optional(),
          reset: z.boolean().default(false),
        }),
        async (o, ctx) => {
          const client = ctx.client();
          const set = parseFieldSettings(o.set ?? [], SETTING_FIELDS, 'holdSeconds=600', true);
          const unset = parseUnsetFields(o.unset ?? [], SETTING_FIELDS);
          // --reset replaces the overrides as a whole (PUT); --set and --unset change only theirs
          // in one merge patch on the manager (PATCH), so two admins' changes do not undo each other.
          const c = o.reset
            ? await client.setPlacementSettings(set as PlacementSettingsOverrides)
            : o.set || o.unset
              ? await client.patchPlacementSettings({ ...set, ...unset } as PlacementSettingsPatch)
              : await client.placementConfig();
          printObject(ctx, c, configText(c));
        },
      ),
    );

  verb(placement, 'suggest', 'Where a new VM would go: datastores ranked by the room left, with reasons')
    .requiredOption('--memory <size>', "the VM's memory, e.g. 2G")
    .option('--disk <size>', 'its disks in total, e.g. 20G (default 0)')
    .option('--class <class>', 'only datastores of this class')
    .option('--pool <pool>', "only the pool's hosts")
    .action(
      act(
        z.object({
          memory: fromParser(parseSize),
          disk: fromParser(parseSize).optional(),
          class: Name.optional(),
          pool: input.ref.optional(),
        }),
        async (o, ctx) => {
          const r = await ctx.client().suggestPlacement({
            memoryBytes: o.memory.bytes,
            diskBytes: o.disk?.bytes ?? 0,
            ...(o.class ? { class: o.class } : {}),
            ...(o.pool ? { pool: o.pool } : {}),
          });
          if (ctx.style.json) return ctx.printJson(r);
          printList(ctx, r.candidates, suggestColumns, 'No datastore fits.');
          for (const x of r.refused) ctx.print(`  not ${x.host}/${x.datastore}: ${x.reason}`);
        },
      ),
    );

  const schedule = noun(
    placement,
    'schedule',
    'Schedules: a VM on a class for a window that a cron expression opens',
  );
  verb(schedule, 'add <vm>', 'Move the VM to a class ahead of each window and back after it')
    .requiredOption('--class <class>', 'the datastore class, e.g. fast')
    .requiredOption('--cron <expression>', 'when each window opens, five fields in UTC, e.g. "0 1 * * *"')
    .requiredOption('--for <duration>', 'how long each window lasts, e.g. 4h or 90m')
    .action(
      act(
        z.object({ vm: input.ref, class: Name, cron: z.string().min(1).max(100), for: Duration }),
        async (o, ctx) => {
          const s = await ctx
            .client()
            .addPlacementSchedule({ vm: o.vm, class: o.class, cron: o.cron, for: o.for });
          printObject(
            ctx,
            s,
            `Schedule ${s.id}: ${s.vm} on ${s.class}; next window ${s.nextStart ?? '-'} to ${s.nextEnd ?? '-'}.`,
          );
        },
      ),
    );
  verb(schedule, 'list', 'List schedules with their next window')
    .option('--limit <n>', 'at most this many')
    .action(
      act(z.object({ limit: input.limit }), async (o, ctx) => {
        const client = ctx.client();
        printList(
          ctx,
          await allPages((q) => client.listPlacementSchedules(q), o.limit),
          scheduleColumns,
          'No schedules.',
        );
      }),
    );
  verb(schedule, 'remove <id>', 'Remove a schedule').action(
    act(z.object({ id: z.uuid('must be a schedule id') }), async (o, ctx) => {
      await ctx.client().removePlacementSchedule(o.id);
      printObject(ctx, { removed: o.id }, `Schedule ${o.id} removed.`);
    }),
  );

  const vm = noun(program, 'vm');
  verb(vm, 'set <vm>', "Change a VM's placement settings: priority, pin, exclude, home")
    .option('--priority <priority>', 'low, normal, high or 0-100: who wins the fast class, who is displaced')
    .option('--pin', 'placement never moves it')
    .option('--no-pin', 'placement may move it again')
    .option('--exclude', 'placement ignores it entirely')
    .option('--no-exclude', 'placement considers it again')
    .option('--home <host/datastore>', 'where it goes when it cools (none: forget it)')
    .action(
      act(
        z.object({
          vm: input.ref,
          priority: fromParser(parsePriority).optional(),
          pin: z.boolean().optional(),
          exclude: z.boolean().optional(),
          home: fromParser(parseHome).optional(),
        }),
        async (o, ctx) => {
          const req: VmPlacementPatch = {
            ...(o.priority !== undefined ? { priority: o.priority } : {}),
            ...(o.pin !== undefined ? { pinned: o.pin } : {}),
            ...(o.exclude !== undefined ? { excluded: o.exclude } : {}),
            ...(o.home !== undefined ? { home: o.home } : {}),
          };
          const client = ctx.client();
          const p = Object.keys(req).length
            ? await client.patchVmPlacement(o.vm, req)
            : await client.vmPlacement(o.vm);
          printObject(ctx, p, vmPlacementText(p));
        },
      ),
    );
}

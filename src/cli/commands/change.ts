// silobreak change list: the record of every change made through the manager or seen by it.
import type { Command } from 'commander';
import { z } from 'zod';
import { ObjectKind, type ChangeRecord, type ManagerClient, isManagerError } from '../../api/index.js';
import { UsageError } from '../errors.js';
import { act, allPages, noun, printList, verb } from '../program.js';
import { fromParser, input } from '../rules.js';
import type { Column } from '../table.js';
import { formatRelativeTime, parseTimeFilter } from '../units.js';

function show(value: unknown): string {
  if (value === undefined || value === null) return '-';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

const columns: Column<ChangeRecord>[] = [
  { header: 'When', value: (c) => formatRelativeTime(c.at) },
  { header: 'Actor', value: (c) => c.actor },
  { header: 'Kind', value: (c) => c.object.kind },
  { header: 'Object', value: (c) => c.object.name },
  { header: 'Action', value: (c) => c.action },
  {
    header: 'Changes',
    value: (c) => c.changes.map((f) => `${f.field}: ${show(f.before)} -> ${show(f.after)}`).join('; ') || '-',
  },
];

const uuid = z.uuid();

/**
 * The id of the object `ref` names: an id as is; a name looked up among the current VMs, hosts and
 * pools (of `kind` only, when given). Deleted objects keep their records, findable by id.
 */
async function objectId(client: ManagerClient, ref: string, kind: ObjectKind | undefined): Promise<string> {
  if (uuid.safeParse(ref).success) return ref;
  const lookups: Partial<Record<ObjectKind, (r: string) => Promise<{ id: string }>>> = {
    vm: (r) => client.getVm(r),
    host: (r) => client.getHost(r),
    pool: (r) => client.getPool(r),
  };
  const kinds = kind ? [kind] : (['vm', 'host', 'pool'] as const);
  for (const k of kinds) {
    const lookup = lookups[k];
    if (!lookup) continue;
    try {
      return (await lookup(ref)).id;
    } catch (error) {
      if (!isManagerError(error, 'not-found')) throw error;
    }
  }
  throw new UsageError(
    `--object: no current ${kinds.join(', ')} is named '${ref}'`,
    'give the object id instead (change list --json shows object.id), or use --search',
  );
}

export function registerChangeCommands(program: Command): void {
  const change = noun(program, 'change', 'The change record: who changed what, when');

  verb(change, 'list', 'List change records, newest first')
    .option('--kind <kind>', `only changes of objects of this kind (${ObjectKind.options.join(', ')})`)
    .option('--object <id|name>', 'only changes of this object')
    .option('--actor <name>', 'only changes by this token name (or `system` for what the manager observed)')
    .option('--since <time>', 'only changes since then: an age like 30m, 2h, 7d or an ISO time')
    .option('--until <time>', 'only changes before then (same forms as --since)')
    .option('--search <text>', 'only changes whose object name or values contain this text')
    .option('--limit <n>', 'at most this many records (default 50)')
    .action(
      act(
        z.object({
          kind: ObjectKind.optional(),
          object: input.ref.optional(),
          actor: z.string().min(1).max(64, 'must be at most 64 characters').optional(),
          since: fromParser(parseTimeFilter).optional(),
          until: fromParser(parseTimeFilter).optional(),
          search: z
            .string()
            .min(1, 'must not be empty')
            .max(200, 'must be at most 200 characters')
            .optional(),
          limit: input.limit,
        }),
        async (o, ctx) => {
          const client = ctx.client();
          const id = o.object === undefined ? undefined : await objectId(client, o.object, o.kind);
          const records = await allPages(
            (q) =>
              client.listChanges({
                ...q,
                kind: o.kind,
                objectId: id,
                actor: o.actor,
                since: o.since?.iso,
                until: o.until?.iso,
                text: o.search,
              }),
            o.limit ?? 50,
          );
          printList(ctx, records, columns, 'No changes.');
        },
      ),
    );
}

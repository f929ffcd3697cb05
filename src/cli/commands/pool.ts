// silobreak pool list|create|delete|add-host|remove-host
import type { Command } from 'commander';
import { z } from 'zod';
import { Name, type Pool } from '../../api/index.js';
import { act, allPages, noun, printList, printObject, verb } from '../program.js';
import { input } from '../rules.js';
import type { Column } from '../table.js';
import { formatRelativeTime } from '../units.js';

const poolColumns: Column<Pool>[] = [
  { header: 'Name', value: (p) => p.name },
  { header: 'Hosts', value: (p) => (p.hosts.length ? p.hosts.join(',') : '-') },
  { header: 'Description', value: (p) => p.description || '-' },
  { header: 'Created', value: (p) => formatRelativeTime(p.createdAt) },
];

export function registerPoolCommands(program: Command): void {
  const pool = noun(program, 'pool', 'Resource pools (named groups of hosts)');

  verb(pool, 'list', 'List pools')
    .option('--limit <n>', 'at most this many pools')
    .action(
      act(z.object({ limit: input.limit }), async (o, ctx) => {
        const client = ctx.client();
        const pools = await allPages((q) => client.listPools(q), o.limit);
        printList(ctx, pools, poolColumns, 'No pools.');
      }),
    );

  verb(pool, 'create <name>', 'Create a pool')
    .option('--description <text>', 'what the pool is for')
    .action(
      act(
        z.object({
          name: Name,
          description: z.string().max(500, 'must be at most 500 characters').optional(),
        }),
        async (o, ctx) => {
          const p = await ctx.client().createPool({ name: o.name, description: o.description });
          printObject(ctx, p, `Created pool ${p.name}.`);
        },
      ),
    );

  verb(pool, 'delete <pool>', 'Delete a pool (its hosts stay, without a pool)').action(
    act(z.object({ pool: input.ref }), async (o, ctx) => {
      const client = ctx.client();
      const p = await client.getPool(o.pool);
      await client.deletePool(p.id);
      printObject(ctx, p, `Deleted pool ${p.name}.`);
    }),
  );

  const membership = (action: 'add-host' | 'remove-host', description: string) =>
    verb(pool, `${action} <pool> <host>`, description).action(
      act(z.object({ pool: input.ref, host: input.ref }), async (o, ctx) => {
        const client = ctx.client();
        const p =
          action === 'add-host'
            ? await client.addPoolHost(o.pool, o.host)
            : await client.removePoolHost(o.pool, o.host);
        printObject(ctx, p, `Pool ${p.name} hosts: ${p.hosts.length ? p.hosts.join(', ') : '(none)'}`);
      }),
    );
  membership('add-host', 'Put a host into a pool (a host belongs to at most one pool)');
  membership('remove-host', 'Take a host out of a pool');
}

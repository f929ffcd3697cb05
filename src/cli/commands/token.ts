// silobreak token list|create|delete: API tokens of the manager (admin only).
import type { Command } from 'commander';
import { z } from 'zod';
import { TokenName, TokenRole, type Token } from '../../api/index.js';
import { act, allPages, noun, printList, printObject, verb } from '../program.js';
import { input } from '../rules.js';
import type { Column } from '../table.js';
import { formatRelativeTime } from '../units.js';

const columns: Column<Token>[] = [
  { header: 'Name', value: (t) => t.name },
  { header: 'Role', value: (t) => t.role },
  { header: 'Created', value: (t) => formatRelativeTime(t.createdAt) },
];

export function registerTokenCommands(program: Command): void {
  const token = noun(program, 'token', "The manager's API tokens (admin only)");

  verb(token, 'list', 'List API tokens (names and roles; secrets are never shown again)')
    .option('--limit <n>', 'at most this many tokens')
    .action(
      act(z.object({ limit: input.limit }), async (o, ctx) => {
        const client = ctx.client();
        printList(ctx, await allPages((q) => client.listTokens(q), o.limit), columns, 'No tokens.');
      }),
    );

  verb(token, 'create <name>', 'Create an API token; its secret is printed once')
    .option('--role <role>', `${TokenRole.options.join(' or ')} (default read-only)`)
    .action(
      act(z.object({ name: TokenName, role: TokenRole.default('read-only') }), async (o, ctx) => {
        const created = await ctx.client().createToken({ name: o.name, role: o.role });
        printObject(
          ctx,
          created,
          `Created ${created.role} token ${created.name}. Its secret (shown only now):\n${created.secret}`,
        );
      }),
    );

  verb(token, 'delete <name>', 'Delete an API token; clients using it get 401 from then on').action(
    act(z.object({ name: TokenName }), async (o, ctx) => {
      await ctx.client().deleteToken(o.name);
      printObject(ctx, { name: o.name, deleted: true }, `Deleted token ${o.name}.`);
    }),
  );
}

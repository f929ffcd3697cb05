// silobreak managers: the managers sharing one database, which one leads and under which epoch.
import type { Command } from 'commander';
import { z } from 'zod';
import type { ManagersStatus } from '../../api/index.js';
import { act, noun, printObject, verb } from '../program.js';
import { renderTable, type Column } from '../table.js';
import { formatRelativeTime } from '../units.js';

type Row = ManagersStatus['managers'][number] & { role: string };

const columns: Column<Row>[] = [
  { header: 'Name', value: (m) => m.name },
  { header: 'Role', value: (m) => m.role },
  { header: 'URL', value: (m) => m.url },
  { header: 'Version', value: (m) => m.version },
  { header: 'Started', value: (m) => formatRelativeTime(m.startedAt) },
  { header: 'Seen', value: (m) => formatRelativeTime(m.seenAt) },
];

export function registerManagersCommands(program: Command): void {
  const managers = noun(program, 'managers', 'The managers of one database: which one leads (issue 31)');
  verb(managers, 'list', 'List the managers seen lately, the leader and its lease epoch first').action(
    act(z.object({}), async (_o, ctx) => {
      const status = await ctx.client().managers();
      const rows: Row[] = status.managers
        .map((m) => ({
          ...m,
          role: m.id === status.leader?.id ? `leader (epoch ${status.leader.epoch})` : 'follower',
        }))
        .sort((a, b) => Number(b.id === status.leader?.id) - Number(a.id === status.leader?.id));
      const leader = status.leader
        ? `Leader: ${status.leader.name} (epoch ${status.leader.epoch}, since ${formatRelativeTime(status.leader.since)}).`
        : 'No manager leads right now: the lease has expired and the next manager takes it within seconds.';
      printObject(ctx, status, `${leader}\n${renderTable(columns, rows)}`);
    }),
  );
}

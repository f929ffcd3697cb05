// silobreak vswitch list
import type { Command } from 'commander';
import { z } from 'zod';
import type { ManagedVSwitch } from '../../api/index.js';
import { act, allPages, printList, noun, verb } from '../program.js';
import { input } from '../rules.js';
import type { Column } from '../table.js';

const columns: Column<ManagedVSwitch>[] = [
  { header: 'Host', value: (s) => s.host },
  { header: 'Name', value: (s) => s.name },
  { header: 'Bridge', value: (s) => s.bridge },
  { header: 'Uplink', value: (s) => s.uplink ?? '-' },
];

export function registerVSwitchCommands(program: Command): void {
  const vswitch = noun(program, 'vswitch', "Virtual switches (bridges on a host that VMs' NICs plug into)");
  verb(vswitch, 'list', 'List virtual switches of every host')
    .option('--host <host>', 'only virtual switches of this host')
    .option('--limit <n>', 'at most this many')
    .action(
      act(z.object({ host: input.ref.optional(), limit: input.limit }), async (o, ctx) => {
        const client = ctx.client();
        const items = await allPages((q) => client.listVSwitches({ ...q, host: o.host }), o.limit);
        printList(ctx, items, columns, 'No virtual switches.');
      }),
    );
}

// silobreak datastore list
import type { Command } from 'commander';
import { z } from 'zod';
import type { ManagedDatastore } from '../../api/index.js';
import { act, allPages, printList, noun, verb } from '../program.js';
import { input } from '../rules.js';
import type { Column } from '../table.js';
import { formatBytes } from '../units.js';

const columns: Column<ManagedDatastore>[] = [
  { header: 'Host', value: (d) => d.host },
  { header: 'Name', value: (d) => d.name + (d.default ? ' (default)' : '') },
  { header: 'Free', value: (d) => formatBytes(d.freeBytes), align: 'right' },
  { header: 'Capacity', value: (d) => formatBytes(d.capacityBytes), align: 'right' },
  {
    header: 'Used',
    value: (d) => (d.capacityBytes > 0 ? `${Math.round((1 - d.freeBytes / d.capacityBytes) * 100)}%` : '-'),
    align: 'right',
  },
  { header: 'Path', value: (d) => d.path },
];

export function registerDatastoreCommands(program: Command): void {
  const datastore = noun(program, 'datastore', "Datastores (directories on a host that hold VMs' disks)");
  verb(datastore, 'list', 'List datastores of every host')
    .option('--host <host>', 'only datastores of this host')
    .option('--limit <n>', 'at most this many datastores')
    .action(
      act(z.object({ host: input.ref.optional(), limit: input.limit }), async (o, ctx) => {
        const client = ctx.client();
        const items = await allPages((q) => client.listDatastores({ ...q, host: o.host }), o.limit);
        printList(ctx, items, columns, 'No datastores.');
      }),
    );
}

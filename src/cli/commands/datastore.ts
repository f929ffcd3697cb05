// silobreak datastore list|show|add|set|remove|probe
import type { Command } from 'commander';
import { z } from 'zod';
import {
  DatastoreClass,
  DatastoreLimits,
  Name,
  type DatastoreUpdate,
  type ManagedDatastore,
} from '../../api/index.js';
import { act, allPages, printList, printObject, noun, verb } from '../program.js';
import { fromParser, input } from '../rules.js';
import { renderDetails, type Column } from '../table.js';
import { formatBytes, formatRate, formatRelativeTime, parseSize } from '../units.js';

/** `400 IOPS, 80 MiB/s`, or `none`. */
export function formatLimits(limits: ManagedDatastore['limits']): string {
  const parts = [
    ...(limits?.iops === undefined ? [] : [`${limits.iops} IOPS`]),
    ...(limits?.bytesPerSecond === undefined ? [] : [formatRate(limits.bytesPerSecond)]),
  ];
  return parts.length ? parts.join(', ') : 'none';
}

/** `12345 IOPS, 1.2 GiB/s`, or `-` before the first probe. */
export function formatProbe(probe: ManagedDatastore['probe']): string {
  return probe ? `${Math.round(probe.iops)} IOPS, ${formatRate(probe.bytesPerSecond)}` : '-';
}

const columns: Column<ManagedDatastore>[] = [
  { header: 'Host', value: (d) => d.host },
  { header: 'Name', value: (d) => d.name + (d.default ? ' (default)' : '') },
  { header: 'Kind', value: (d) => d.kind },
  { header: 'Class', value: (d) => d.class },
  { header: 'Limits', value: (d) => formatLimits(d.limits) },
  { header: 'Measured', value: (d) => formatProbe(d.probe) },
  { header: 'Free', value: (d) => formatBytes(d.freeBytes), align: 'right' },
  { header: 'Capacity', value: (d) => formatBytes(d.capacityBytes), align: 'right' },
  {
    header: 'Used',
    value: (d) => (d.capacityBytes > 0 ? `${Math.round((1 - d.freeBytes / d.capacityBytes) * 100)}%` : '-'),
    align: 'right',
  },
  { header: 'Path', value: (d) => d.path },
];

function details(d: ManagedDatastore): string {
  return renderDetails([
    ['Datastore', `${d.host}/${d.name}${d.default ? ' (default)' : ''}`],
    ['Path', d.path],
    ['Kind', d.kind === 'shared' ? `shared (storage ${d.storageId ?? '?'})` : 'local'],
    ['Class', d.class],
    ['Limits', formatLimits(d.limits)],
    [
      'Measured',
      d.probe
        ? `${formatProbe(d.probe)} (sync 4 KiB writes; sequential writes), ${formatRelativeTime(d.probe.probedAt)}`
        : 'not yet (silobreak datastore probe)',
    ],
    ['Space', `${formatBytes(d.freeBytes)} free of ${formatBytes(d.capacityBytes)}`],
    ...(d.retainedBytes
      ? [
          ['Retained copies', `${formatBytes(d.retainedBytes)} (silobreak vm retained list)`] as [
            string,
            string,
          ],
        ]
      : []),
  ]);
}

/** `host/name`: a datastore is named within its host. */
const DatastorePath = z
  .string()
  .regex(/^[^/]+\/[^/]+$/, 'must be <host>/<datastore>, like host1/local')
  .transform((text) => {
    const [host = '', datastore = ''] = text.split('/');
    return { host, datastore };
  })
  .pipe(z.object({ host: input.ref, datastore: Name }));

/** `--bandwidth 80M/s` (or `80MiB/s`, `80M`): bytes per second, binary units like every size here. */
export const parseBandwidth = (text: string): { bytes: number } | { error: string } => {
  const parsed = parseSize(text.replace(/\/s$/i, ''));
  return 'error' in parsed
    ? { error: `${parsed.error.replace(/\(e\.g\. [^)]*\)/, '(e.g. 80M/s)')}` }
    : parsed;
};
const Iops = input.count(1, 10_000_000).transform((iops) => ({ iops }));
const Bandwidth = fromParser(parseBandwidth).transform((r) => ({ bytesPerSecond: r.bytes }));
const NONE = z.literal('none').transform(() => null);

export function registerDatastoreCommands(program: Command): void {
  const datastore = noun(program, 'datastore', "Datastores (directories on a host that hold VMs' disks)");
  verb(datastore, 'list', 'List datastores of every host, with their class, limits and measured speed')
    .option('--host <host>', 'only datastores of this host')
    .option('--limit <n>', 'at most this many datastores')
    .action(
      act(z.object({ host: input.ref.optional(), limit: input.limit }), async (o, ctx) => {
        const client = ctx.client();
        const items = await allPages((q) => client.listDatastores({ ...q, host: o.host }), o.limit);
        printList(ctx, items, columns, 'No datastores.');
      }),
    );

  verb(datastore, 'show <datastore>', 'Show one datastore (<host>/<name>)').action(
    act(z.object({ datastore: DatastorePath }), async (o, ctx) => {
      const d = await ctx.client().getDatastore(o.datastore.host, o.datastore.datastore);
      printObject(ctx, d, details(d));
    }),
  );

  verb(
    datastore,
    'add <host> <name>',
    'Add a datastore (a directory on the host, made when missing; a shared one must be mounted)',
  )
    .requiredOption('--path <dir>', 'absolute directory on the host')
    .option(
      '--shared',
      'shared storage other hosts mount too (NFS, CephFS, sshfs): VMs whose disks are all on storage the target sees move by memory alone',
    )
    .option('--class <class>', 'fast, standard (the default) or a name of your own')
    .option('--iops <n>', 'limit every VM disk on it to this many I/O operations per second')
    .option('--bandwidth <rate>', 'limit every VM disk on it to this many bytes per second, e.g. 80M/s')
    .option('--default', 'make it the default datastore of the host')
    .option('--no-probe', 'do not measure it with the short I/O probe (about 2 s)')
    .action(
      act(
        z.object({
          host: input.ref,
          name: Name,
          path: z.string().min(1),
          class: DatastoreClass.optional(),
          iops: Iops.optional(),
          bandwidth: Bandwidth.optional(),
          default: z.boolean().optional(),
          shared: z.boolean().optional(),
          probe: z.boolean(),
        }),
        async (o, ctx) => {
          const limits = DatastoreLimits.parse({ ...o.iops, ...o.bandwidth });
          const d = await ctx.client().addDatastore(o.host, {
            name: o.name,
            path: o.path,
            ...(o.shared ? { kind: 'shared' as const } : {}),
            ...(o.class === undefined ? {} : { class: o.class }),
            ...(o.iops || o.bandwidth ? { limits } : {}),
            ...(o.default ? { default: true } : {}),
            probe: o.probe,
          });
          printObject(ctx, d, `Added datastore ${d.host}/${d.name}.\n${details(d)}`);
        },
      ),
    );

  verb(datastore, 'set <datastore>', "Change a datastore's class or limits; running VMs follow at once")
    .option('--class <class>', 'fast, standard or a name of your own')
    .option('--iops <n|none>', 'limit of I/O operations per second, or none')
    .option('--bandwidth <rate|none>', 'limit of bytes per second (e.g. 80M/s), or none')
    .option('--no-limits', 'lift every limit')
    .option('--default', 'make it the default datastore of its host')
    .action(
      act(
        z.object({
          datastore: DatastorePath,
          class: DatastoreClass.optional(),
          iops: z.union([NONE, Iops]).optional(),
          bandwidth: z.union([NONE, Bandwidth]).optional(),
          limits: z.boolean(),
          default: z.boolean().optional(),
        }),
        async (o, ctx) => {
          const client = ctx.client();
          const { host, datastore: name } = o.datastore;
          const update: DatastoreUpdate = {
            ...(o.class === undefined ? {} : { class: o.class }),
            ...(o.default ? { default: true } : {}),
          };
          if (!o.limits) update.limits = null;
          else if (o.iops !== undefined || o.bandwidth !== undefined) {
            // Each flag changes its own limit; the other one stays as it is.
            const current = (await client.getDatastore(host, name)).limits ?? {};
            const merged = {
              ...current,
              ...(o.iops === undefined ? {} : { iops: o.iops?.iops }),
              ...(o.bandwidth === undefined ? {} : { bytesPerSecond: o.bandwidth?.bytesPerSecond }),
            };
            const kept = Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined));
            update.limits = Object.keys(kept).length ? DatastoreLimits.parse(kept) : null;
          }
          const d = await client.updateDatastore(host, name, update);
          printObject(ctx, d, `Changed datastore ${d.host}/${d.name}.\n${details(d)}`);
        },
      ),
    );

  verb(
    datastore,
    'remove <datastore>',
    'Remove a datastore from its host (its directory and files stay)',
  ).action(
    act(z.object({ datastore: DatastorePath }), async (o, ctx) => {
      const client = ctx.client();
      const d = await client.getDatastore(o.datastore.host, o.datastore.datastore);
      await client.removeDatastore(d.host, d.name);
      printObject(ctx, d, `Removed datastore ${d.host}/${d.name} (its directory ${d.path} stays).`);
    }),
  );

  verb(datastore, 'probe <datastore>', 'Measure a datastore with a short I/O probe (about 2 s)').action(
    act(z.object({ datastore: DatastorePath }), async (o, ctx) => {
      const d = await ctx.client().probeDatastore(o.datastore.host, o.datastore.datastore);
      printObject(ctx, d, `Measured ${d.host}/${d.name}: ${formatProbe(d.probe)}.`);
    }),
  );
}

// silobreak cluster list|create|show|delete|join|evict, vm ha
import type { Command } from 'commander';
import { z } from 'zod';
import {
  DrainResult,
  HA_PRIORITY,
  MAX_PREFERRED_HOSTS,
  Name,
  type Cluster,
  type Job,
  type ManagedVm,
  type VmHa,
  type VmHaPatch,
} from '../../api/index.js';
import { act, allPages, noun, printList, printObject, verb } from '../program.js';
import { input } from '../rules.js';
import { renderDetails, renderTable, type Column } from '../table.js';
import { formatRelativeTime } from '../units.js';

const clusterColumns: Column<Cluster>[] = [
  { header: 'Name', value: (c) => c.name },
  { header: 'Hosts', value: (c) => (c.hosts.length ? c.hosts.map((h) => h.name).join(',') : '-') },
  {
    header: 'Maintenance',
    value: (c) =>
      c.hosts
        .filter((h) => h.maintenance !== 'none')
        .map((h) => `${h.name} (${h.maintenance})`)
        .join(', ') || '-',
  },
  { header: 'Created', value: (c) => formatRelativeTime(c.createdAt) },
];

export function clusterDetails(c: Cluster): string {
  const head = renderDetails([
    ['Name', c.name],
    ['Id', c.id],
    ['Created', formatRelativeTime(c.createdAt)],
  ]);
  if (!c.hosts.length) return `${head}\n\nNo hosts: silobreak cluster join ${c.name} <host>`;
  const hosts = renderTable(
    [
      { header: 'Host', value: (h) => h.name },
      { header: 'Lease id', value: (h) => String(h.leaseHostId), align: 'right' },
      { header: 'State', value: (h) => h.state },
      { header: 'Maintenance', value: (h) => h.maintenance },
    ],
    c.hosts,
  );
  return `${head}\n\n${hosts}`;
}

/** `protected, priority 900, prefers h2, h3` */
export function haLine(ha: VmHa): string {
  return [
    ha.protected ? 'protected' : 'not protected',
    `priority ${ha.priority}`,
    ...(ha.preferredHosts.length ? [`prefers ${ha.preferredHosts.join(', ')}`] : []),
  ].join(', ');
}

/** `--prefer h1,h2`: host names, each a valid name, none twice. */
export function parsePreferred(text: string): string[] | { error: string } {
  const names = text.split(',').map((n) => n.trim());
  for (const name of names) {
    const parsed = Name.safeParse(name);
    if (!parsed.success)
      return {
        error: `"${name}" ${parsed.error.issues[0]?.message ?? 'is not a host name'} (give host names joined by commas)`,
      };
  }
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) return { error: `${twice} is named twice` };
  if (names.length > MAX_PREFERRED_HOSTS) return { error: `at most ${MAX_PREFERRED_HOSTS} hosts` };
  return names;
}

export const VmHaFlags = z
  .object({
    vm: input.ref,
    protect: z.boolean().default(false),
    unprotect: z.boolean().default(false),
    priority: input.count(HA_PRIORITY.min, HA_PRIORITY.max).optional(),
    /** A list, or false for --no-prefer. */
    prefer: z
      .union([z.literal(false), z.string()])
      .optional()
      .transform((v, ctx) => {
        if (typeof v !== 'string') return v;
        const parsed = parsePreferred(v);
        if (Array.isArray(parsed)) return parsed;
        ctx.issues.push({ code: 'custom', message: parsed.error, input: v });
        return z.NEVER;
      }),
  })
  .superRefine((o, ctx) => {
    if (o.protect && o.unprotect)
      ctx.addIssue({ code: 'custom', path: ['protect'], message: 'give --protect or --unprotect, not both' });
  });

/** The merge patch `vm ha` sends: only what a flag asks for (--no-prefer: no preferred hosts). */
export function vmHaPatch(o: z.output<typeof VmHaFlags>): VmHaPatch {
  return {
    ...(o.protect ? { protected: true } : {}),
    ...(o.unprotect ? { protected: false } : {}),
    ...(o.priority !== undefined ? { priority: o.priority } : {}),
    ...(o.prefer === false ? { preferredHosts: null } : o.prefer ? { preferredHosts: o.prefer } : {}),
  };
}

/** What a drain did, from its job's result: where each VM went, which stayed. */
export function drainSummary(job: Pick<Job, 'result'>): string | undefined {
  const parsed = DrainResult.safeParse(job.result);
  if (!parsed.success) return undefined;
  const r = parsed.data;
  const moved = r.moved.length
    ? r.moved.map((m) => `${m.vm} -> ${m.to}`).join(', ')
    : 'none (no VM was running there)';
  return renderDetails([
    ['Host', `${r.host}: in maintenance (silobreak host resume ${r.host} ends it)`],
    ['Moved', moved],
    ['Stayed', r.stayed.length ? `${r.stayed.join(', ')} (stopped; they cannot start there)` : '-'],
  ]);
}

export function registerClusterCommands(program: Command): void {
  const cluster = noun(program, 'cluster', 'Clusters: hosts that share datastores (HA, drain)');

  verb(cluster, 'list', 'List clusters with their hosts')
    .option('--limit <n>', 'at most this many clusters')
    .action(
      act(z.object({ limit: input.limit }), async (o, ctx) => {
        const client = ctx.client();
        const clusters = await allPages((q) => client.listClusters(q), o.limit);
        printList(ctx, clusters, clusterColumns, 'No clusters.');
      }),
    );

  verb(cluster, 'create <name>', 'Create a cluster (then join its hosts)').action(
    act(z.object({ name: Name }), async (o, ctx) => {
      const c = await ctx.client().createCluster({ name: o.name });
      printObject(
        ctx,
        c,
        `Created cluster ${c.name}; join hosts with: silobreak cluster join ${c.name} <host>`,
      );
    }),
  );

  verb(cluster, 'show <cluster>', 'Show a cluster: its hosts, their lease host ids and maintenance').action(
    act(z.object({ cluster: input.ref }), async (o, ctx) => {
      const c = await ctx.client().getCluster(o.cluster);
      printObject(ctx, c, clusterDetails(c));
    }),
  );

  verb(cluster, 'delete <cluster>', 'Delete a cluster (refused while it has hosts)').action(
    act(z.object({ cluster: input.ref }), async (o, ctx) => {
      const client = ctx.client();
      const c = await client.getCluster(o.cluster);
      await client.deleteCluster(c.id);
      printObject(ctx, c, `Deleted cluster ${c.name}.`);
    }),
  );

  verb(cluster, 'join <cluster> <host>', 'Put a host into a cluster (a host is in at most one)').action(
    act(z.object({ cluster: input.ref, host: input.ref }), async (o, ctx) => {
      const c = await ctx.client().joinCluster(o.cluster, o.host);
      const joined = c.hosts.find((h) => h.name === o.host);
      printObject(
        ctx,
        c,
        `Host ${o.host} is in cluster ${c.name}${joined ? ` (lease host id ${joined.leaseHostId})` : ''}; its hosts: ${c.hosts.map((h) => h.name).join(', ')}`,
      );
    }),
  );

  verb(
    cluster,
    'evict <cluster> <host>',
    'Take a host out of its cluster (refused while HA-protected VMs run on it: drain it or unprotect them)',
  ).action(
    act(z.object({ cluster: input.ref, host: input.ref }), async (o, ctx) => {
      const c = await ctx.client().evictClusterHost(o.cluster, o.host);
      printObject(
        ctx,
        c,
        `Host ${o.host} left cluster ${c.name}; its hosts: ${c.hosts.map((h) => h.name).join(', ') || '(none)'}`,
      );
    }),
  );

  const vm = noun(program, 'vm', 'Virtual machines');
  verb(
    vm,
    'ha <vm>',
    "Show or change a VM's HA settings: protected (restarted elsewhere in its cluster when its host dies), priority, preferred hosts",
  )
    .option('--protect', 'restart it on another host of its cluster when its host dies')
    .option('--unprotect', 'no restart when its host dies')
    .option(
      '--priority <n>',
      `restart and drain order, ${HA_PRIORITY.min}-${HA_PRIORITY.max}, higher first (default ${HA_PRIORITY.default})`,
    )
    .option(
      '--prefer <hosts>',
      'hosts to restart it on or drain it to first, joined by commas (each must exist)',
    )
    .option('--no-prefer', 'no preferred hosts')
    .action(
      act(VmHaFlags, async (o, ctx) => {
        const client = ctx.client();
        const patch = vmHaPatch(o);
        const v: ManagedVm = Object.keys(patch).length
          ? await client.patchVmHa(o.vm, patch)
          : await client.getVm(o.vm);
        printObject(
          ctx,
          v,
          `VM ${v.name}: HA ${haLine(v.ha)} (on ${v.host}${v.cluster ? `, cluster ${v.cluster}` : ', no cluster: HA restarts need one'}).`,
        );
      }),
    );
}

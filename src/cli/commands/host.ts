// silobreak host list|add|remove|show
import type { Command } from 'commander';
import { z } from 'zod';
import { AgentAddress, HostState, type Host } from '../../api/index.js';
import { act, allPages, printList, printObject, noun, verb } from '../program.js';
import { input } from '../rules.js';
import { paintState } from '../output.js';
import { renderDetails, type Column } from '../table.js';
import { formatBytes, formatRelativeTime } from '../units.js';
import type { OutputStyle } from '../output.js';

function hostColumns(style: OutputStyle): Column<Host>[] {
  return [
    { header: 'Name', value: (h) => h.name },
    { header: 'State', value: (h) => paintState(style, h.state) },
    { header: 'Pool', value: (h) => h.pool ?? '-' },
    { header: 'Address', value: (h) => h.fabricAddress },
    { header: 'Class', value: (h) => h.class },
    { header: 'Accel', value: (h) => h.accelerator },
    { header: 'CPUs', value: (h) => String(h.cpus), align: 'right' },
    { header: 'Mem free', value: (h) => formatBytes(h.memoryFreeBytes), align: 'right' },
    { header: 'Mem total', value: (h) => formatBytes(h.memoryBytes), align: 'right' },
    { header: 'VMs', value: (h) => String(h.vmCount), align: 'right' },
    { header: 'Tools', value: (h) => h.toolsVersion ?? '-' },
    { header: 'Last seen', value: (h) => formatRelativeTime(h.lastSeenAt) },
  ];
}

export function hostDetails(h: Host): string {
  return renderDetails([
    ['Name', h.name],
    ['Id', h.id],
    ['State', h.state + (h.lastError ? ` (${h.lastError})` : '')],
    ['Pool', h.pool ?? '-'],
    ['Agent', h.agentUrl],
    ['Fabric address', h.fabricAddress],
    ['Agent version', h.agentVersion],
    ['QEMU', h.qemuVersion],
    [
      'Guest tools',
      h.toolsVersion
        ? `${h.toolsVersion} (guest agent on its tools disk)`
        : 'none (run silobreak guest build)',
    ],
    ['Storage class', `${h.class} (the best of its datastores')`],
    ['Accelerator', h.accelerator + (h.acceleratorWarning ? ` (${h.acceleratorWarning})` : '')],
    ['Machine', h.machineType],
    ['CPU model', h.cpuModel],
    ['CPUs', String(h.cpus)],
    ['Memory', `${formatBytes(h.memoryFreeBytes)} free of ${formatBytes(h.memoryBytes)}`],
    ['VMs', String(h.vmCount)],
    ['Last seen', formatRelativeTime(h.lastSeenAt)],
    ['Added', formatRelativeTime(h.createdAt)],
  ]);
}

export function registerHostCommands(program: Command): void {
  const host = noun(program, 'host', 'Hosts (KVM machines running the silobreak agent)');

  verb(host, 'list', 'List hosts')
    .option('--pool <pool>', 'only hosts of this pool')
    .option('--state <state>', `only hosts in this state (${HostState.options.join(', ')})`)
    .option('--limit <n>', 'at most this many hosts')
    .action(
      act(
        z.object({ pool: input.ref.optional(), state: HostState.optional(), limit: input.limit }),
        async (o, ctx) => {
          const client = ctx.client();
          const hosts = await allPages(
            (q) => client.listHosts({ ...q, pool: o.pool, state: o.state }),
            o.limit,
          );
          printList(ctx, hosts, hostColumns(ctx.style), 'No hosts.');
        },
      ),
    );

  verb(host, 'show <host>', 'Show one host (by name or id)').action(
    act(z.object({ host: input.ref }), async (o, ctx) => {
      const h = await ctx.client().getHost(o.host);
      printObject(ctx, h, hostDetails(h));
    }),
  );

  verb(
    host,
    'add <address>',
    "Join a host: the manager reaches its agent at address:port with the agent's token",
  )
    .requiredOption('--agent-token <token>', "the agent's API token (the `token` of its config)")
    .option('--pool <pool>', 'put the host into this pool')
    .action(
      act(
        z.object({
          address: AgentAddress,
          agentToken: z.string().min(16, 'must be at least 16 characters (the agent config `token`)'),
          pool: input.ref.optional(),
        }),
        async (o, ctx) => {
          const h = await ctx.client().addHost({ address: o.address, token: o.agentToken, pool: o.pool });
          printObject(
            ctx,
            h,
            `Added host ${h.name} (${h.fabricAddress}, ${h.accelerator}, ${h.vmCount} VMs).`,
          );
        },
      ),
    );

  verb(host, 'remove <host>', 'Forget a host and its inventory (its agent and VMs keep running)').action(
    act(z.object({ host: input.ref }), async (o, ctx) => {
      const client = ctx.client();
      const h = await client.getHost(o.host);
      await client.removeHost(h.id);
      printObject(ctx, h, `Removed host ${h.name}.`);
    }),
  );
}

// silobreak vm list|show|create|start|stop|shutdown|delete
import type { Command } from 'commander';
import { z } from 'zod';
import {
  ManagedVm,
  ToolsStatus,
  VmState,
  type Job,
  type JobAccepted,
  type ManagerClient,
} from '../../api/index.js';
import { UsageError } from '../errors.js';
import { followJob } from '../jobs.js';
import { placeInPoolBySuggest } from './placement.js';
import { haLine } from './cluster.js';
import { paintState, type OutputStyle } from '../output.js';
import {
  act,
  allPages,
  noun,
  printList,
  printObject,
  repeatable,
  verb,
  withDetach,
  type CliContext,
} from '../program.js';
import { input } from '../rules.js';
import { renderDetails, renderTable, type Column } from '../table.js';
import { formatBytes, formatRelativeTime } from '../units.js';
import { createVmRequest, VmCreateFlags } from '../vm-options.js';

const MiB = 1024 * 1024;

function vmColumns(style: OutputStyle): Column<ManagedVm>[] {
  return [
    { header: 'Name', value: (v) => v.name },
    { header: 'State', value: (v) => paintState(style, v.state) },
    { header: 'Host', value: (v) => v.host },
    { header: 'vCPUs', value: (v) => String(v.vcpus), align: 'right' },
    { header: 'Memory', value: (v) => formatBytes(v.memoryMiB * MiB), align: 'right' },
    {
      header: 'Disks',
      value: (v) =>
        v.disks.length ? formatBytes(v.disks.reduce((sum, d) => sum + d.virtualSizeBytes, 0)) : '-',
      align: 'right',
    },
    { header: 'IP', value: (v) => v.guestIp ?? '-' },
    { header: 'Tools', value: (v) => v.tools?.status ?? '-' },
    { header: 'Started', value: (v) => (v.state === 'running' ? formatRelativeTime(v.startedAt) : '-') },
  ];
}

/** `outdated (installed 7.2.22, current 10.0.2); tools disk inserted` */
export function toolsLine(v: ManagedVm): string {
  const t = v.tools;
  const versions = [
    t?.installed ? `installed ${t.installed}` : undefined,
    t?.current ? `current ${t.current}` : undefined,
  ]
    .filter(Boolean)
    .join(', ');
  const status = t?.status ?? (v.state === 'running' ? 'not known yet' : 'not running');
  return `${status}${versions ? ` (${versions})` : ''}${v.toolsDisk ? '; tools disk inserted' : ''}`;
}

function vmDetails(v: ManagedVm): string {
  const sections = [
    renderDetails([
      ['Name', v.name],
      ['Id', v.id],
      ['State', v.state + (v.pid ? ` (pid ${v.pid})` : '')],
      ['Host', v.host + (v.pool ? ` (pool ${v.pool})` : '') + (v.cluster ? ` (cluster ${v.cluster})` : '')],
      ['HA', haLine(v.ha)],
      ['vCPUs', String(v.vcpus)],
      ['Memory', formatBytes(v.memoryMiB * MiB)],
      ['IP', v.guestIp ? v.guestIp + (v.guestGateway ? ` via ${v.guestGateway}` : '') : '-'],
      ['Machine', `${v.machineType}, ${v.cpuModel}, ${v.accelerator}`],
      ['Created', formatRelativeTime(v.createdAt)],
      ['Started', v.state === 'running' ? formatRelativeTime(v.startedAt) : '-'],
      ['Updated', formatRelativeTime(v.updatedAt)],
      ['Tools', toolsLine(v)],
      ...(v.otherCopies?.length
        ? ([
            [
              'Other copies',
              `${v.otherCopies.map((c) => `${c.host} (${c.state})`).join(', ')}: left by a failed move; ` +
                `\`silobreak vm move --cleanup ${v.name}\` removes them`,
            ],
          ] as [string, string][])
        : []),
    ]),
  ];
  if (v.disks.length) {
    sections.push(
      renderTable(
        [
          { header: 'Disk', value: (d) => d.id },
          { header: 'Datastore', value: (d) => d.datastore },
          { header: 'Size', value: (d) => formatBytes(d.virtualSizeBytes), align: 'right' },
          { header: 'Allocated', value: (d) => formatBytes(d.allocatedBytes), align: 'right' },
          { header: 'Format', value: (d) => d.format },
          { header: 'Path', value: (d) => d.path },
        ],
        v.disks,
      ),
    );
  }
  if (v.nics.length) {
    sections.push(
      renderTable(
        [
          { header: 'NIC', value: (n) => n.id },
          { header: 'Vswitch', value: (n) => n.vswitch },
          { header: 'MAC', value: (n) => n.mac },
          { header: 'Tap', value: (n) => n.tap },
        ],
        v.nics,
      ),
    );
  }
  return sections.join('\n\n');
}

/** After a VM job: where the VM stands now, from the job's result (a ManagedVm). */
function printOutcome(ctx: CliContext, job: Job): void {
  const vm = ManagedVm.safeParse(job.result);
  if (ctx.style.json || job.state !== 'succeeded' || !vm.success) return;
  const v = vm.data;
  ctx.print(
    `VM ${v.name} is ${paintState(ctx.style, v.state)} on ${v.host}${v.guestIp ? `, ${v.guestIp}` : ''}.`,
  );
}

/** The flags every VM job verb takes. */
const vmJobFlags = { vm: input.ref, detach: z.boolean().default(false) };

/** A verb that starts a job on one VM and follows it (or returns with `--detach`). */
function vmJobVerb<S extends z.ZodType<{ vm: string; detach: boolean }>>(
  vm: Command,
  name: string,
  description: string,
  flags: S,
  start: (client: ManagerClient, o: z.output<S>) => Promise<JobAccepted>,
): Command {
  return withDetach(verb(vm, `${name} <vm>`, description)).action(
    act(flags, async (o, ctx) => {
      const accepted = await start(ctx.client(), o);
      printOutcome(ctx, await followJob(ctx, accepted.job, o.detach));
    }),
  );
}

export function registerVmCommands(program: Command): void {
  const vm = noun(program, 'vm', 'Virtual machines');

  verb(vm, 'list', 'List VMs')
    .option('--host <host>', 'only VMs on this host')
    .option('--pool <pool>', 'only VMs on hosts of this pool')
    .option('--state <state>', `only VMs in this state (${VmState.options.join(', ')})`)
    .option('--name <text>', 'only VMs whose name contains this')
    .option('--tools <status>', `only VMs whose guest tools are ${ToolsStatus.options.join(', ')}`)
    .option('--limit <n>', 'at most this many VMs')
    .action(
      act(
        z.object({
          host: input.ref.optional(),
          pool: input.ref.optional(),
          state: VmState.optional(),
          name: z.string().max(64, 'must be at most 64 characters').optional(),
          tools: ToolsStatus.optional(),
          limit: input.limit,
        }),
        async (o, ctx) => {
          const client = ctx.client();
          const { limit, ...filters } = o;
          const vms = await allPages((q) => client.listVms({ ...q, ...filters }), limit);
          printList(ctx, vms, vmColumns(ctx.style), 'No VMs.');
        },
      ),
    );

  verb(vm, 'show <vm>', 'Show one VM (by name or id) with its disks and NICs').action(
    act(z.object({ vm: input.ref }), async (o, ctx) => {
      const v = await ctx.client().getVm(o.vm);
      printObject(ctx, v, vmDetails(v));
    }),
  );

  withDetach(verb(vm, 'create <name>', 'Create a VM on a host (a job)'))
    .option('--host <host>', 'host to create it on')
    .option(
      '--pool <pool>',
      'or: a pool, placement suggest picks the member datastore with the most room left',
    )
    .option('--vcpus <n>', 'virtual CPUs, 1-64 (default 1)')
    .option('--memory <size>', 'memory, e.g. 512M or 2G; K/M/G/T are powers of 1024 (default 512M)')
    .option(
      '--disk <size[@datastore]>',
      "a disk, e.g. 2G or 2G@local (default: the host's default datastore); repeatable",
      repeatable,
    )
    .option(
      '--nic <vswitch[=mac]>',
      'a NIC on a virtual switch, e.g. vmsw0 or vmsw0=52:54:00:12:34:56; repeatable',
      repeatable,
    )
    .option('--ip <cidr>', "the guest's address, e.g. 10.251.0.101/24")
    .option('--gateway <ip>', "the guest's default gateway")
    .option('--start', 'start the VM once created')
    .action(
      act(VmCreateFlags, async (flags, ctx) => {
        const client = ctx.client();
        let request = createVmRequest(flags);
        if (request.pool !== undefined && request.host === undefined) {
          // The placement suggest API picks the pool's datastore with the most room left.
          const placed = await placeInPoolBySuggest(client, request);
          request = placed.request;
          if (!ctx.style.json)
            ctx.print(
              `Placing on ${placed.chosen.host}/${placed.chosen.datastore} (${placed.chosen.reasons.join('; ')}).`,
            );
        }
        const accepted = await client.createVm(request);
        printOutcome(ctx, await followJob(ctx, accepted.job, flags.detach));
      }),
    );

  vmJobVerb(vm, 'start', 'Start a VM (a job)', z.object(vmJobFlags), (client, o) => client.startVm(o.vm));
  vmJobVerb(
    vm,
    'shutdown',
    'Ask the guest to power off (ACPI); force it off after --timeout seconds (a job)',
    z.object({ ...vmJobFlags, timeout: input.count(0, 3600).default(60) }),
    (client, o) => client.shutdownVm(o.vm, o.timeout),
  ).option('--timeout <seconds>', 'seconds to wait for the guest before forcing it off (default 60)');
  vmJobVerb(
    vm,
    'stop',
    'Force a VM off at once, like pulling the plug (a job)',
    z.object(vmJobFlags),
    (client, o) => client.stopVm(o.vm),
  );
  vmJobVerb(
    vm,
    'delete',
    'Delete a VM and, unless --keep-disks, its disk images (a job)',
    z.object({ ...vmJobFlags, keepDisks: z.boolean().default(false) }),
    (client, o) => client.deleteVm(o.vm, !o.keepDisks),
  ).option('--keep-disks', "keep the VM's disk images on the datastore");

  const tools = noun(
    vm,
    'tools',
    'The guest tools disk: the guest agent the fabric ships, and its installer',
  );
  vmJobVerb(
    tools,
    'insert',
    'Insert the tools disk (hot-plugged; a stopped VM gets it at its next start). In the guest: ' +
      'mount -t iso9660 -o ro /dev/vdb /mnt && sh /mnt/install.sh (a job)',
    z.object(vmJobFlags),
    (client, o) => client.insertVmTools(o.vm),
  );
  vmJobVerb(tools, 'eject', 'Eject the tools disk (a job)', z.object(vmJobFlags), (client, o) =>
    client.ejectVmTools(o.vm),
  );

  const retained = noun(
    vm,
    'retained',
    'Retained copies: disks a VM left on a host it moved away from (vm move --retain); a move back sends only the delta',
  );
  verb(retained, 'list [vm]', 'List retained copies, of every VM or of one').action(
    act(z.object({ vm: input.ref.optional() }), async (o, ctx) => {
      const copies = await ctx.client().listRetainedCopies(o.vm === undefined ? {} : { vm: o.vm });
      printList(
        ctx,
        copies,
        [
          { header: 'ID', value: (c) => c.id },
          { header: 'VM', value: (c) => c.vm.name },
          { header: 'Host', value: (c) => c.host },
          { header: 'Datastores', value: (c) => [...new Set(Object.values(c.datastores))].join(',') },
          { header: 'Size', value: (c) => formatBytes(c.allocatedBytes), align: 'right' },
          { header: 'Left', value: (c) => c.departedAt },
          { header: 'Expires', value: (c) => c.expiresAt },
          { header: 'State', value: (c) => (c.reason ? `${c.state}: ${c.reason}` : c.state) },
        ],
        'No retained copies.',
      );
    }),
  );
  verb(
    retained,
    'release <copy>',
    'Release a retained copy (its id, or a VM name to release all of its copies): the images are deleted',
  ).action(
    act(z.object({ copy: input.ref }), async (o, ctx) => {
      const client = ctx.client();
      const all = await client.listRetainedCopies();
      const chosen = all.filter((c) => c.id === o.copy || c.vm.name === o.copy || c.vm.id === o.copy);
      if (chosen.length === 0)
        throw new UsageError(`copy: no retained copy or VM with retained copies named ${o.copy}`);
      for (const c of chosen) await client.releaseRetainedCopy(c.id);
      printObject(
        ctx,
        chosen,
        chosen
          .map(
            (c) =>
              `Released the retained copy of ${c.vm.name} on ${c.host} (${formatBytes(c.allocatedBytes)}).`,
          )
          .join('\n'),
      );
    }),
  );
}

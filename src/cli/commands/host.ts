// silobreak host list|add|remove|show|drain|resume
import type { Command } from 'commander';
import { z } from 'zod';
import {
  AgentAddress,
  JoinToken,
  figureAge,
  formatBitRate,
  HostMaintenance,
  HostState,
  LINK_PROBE_MS,
  LINK_SOURCE_LABEL,
  type Host,
  type HostLink,
} from '../../api/index.js';
import { OperationFailed } from '../errors.js';
import { followJob } from '../jobs.js';
import { act, allPages, printList, printObject, noun, verb, withDetach } from '../program.js';
import { drainSummary } from './cluster.js';
import { input } from '../rules.js';
import { paintState } from '../output.js';
import { renderDetails, renderTable, type Column } from '../table.js';
import { formatBytes, formatRelativeTime } from '../units.js';
import type { OutputStyle } from '../output.js';

function hostColumns(style: OutputStyle): Column<Host>[] {
  return [
    { header: 'Name', value: (h) => h.name },
    { header: 'State', value: (h) => paintState(style, h.state) },
    { header: 'Pool', value: (h) => h.pool ?? '-' },
    { header: 'Cluster', value: (h) => h.cluster ?? '-' },
    { header: 'Maint', value: (h) => (h.maintenance === 'none' ? '-' : h.maintenance) },
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

const MAINTENANCE_TEXT: Record<HostMaintenance, string> = {
  none: 'no',
  entering: 'entering: its VMs are being moved off, or could not all leave (no new VMs, no moves to it)',
  in: 'in: no VM runs there (no new VMs, no moves to it); silobreak host resume ends it',
};

export function hostDetails(h: Host): string {
  return renderDetails([
    ['Name', h.name],
    ['Id', h.id],
    ['State', h.state + (h.lastError ? ` (${h.lastError})` : '')],
    ['Pool', h.pool ?? '-'],
    ['Cluster', h.cluster ? `${h.cluster} (lease host id ${h.leaseHostId ?? '?'})` : '-'],
    ['Maintenance', MAINTENANCE_TEXT[h.maintenance]],
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

/** Each link's rate, where it came from and how old it is; a failed last probe is said. */
export function renderLinks(links: readonly HostLink[], now: number = Date.now()): string {
  if (!links.length) return 'No other hosts: no links.';
  return renderTable(
    [
      { header: 'From', value: (l) => l.from },
      { header: 'To', value: (l) => l.to },
      {
        header: 'Rate',
        value: (l) => (l.figure ? formatBitRate(l.figure.bitsPerSecond) : 'unknown'),
        align: 'right',
      },
      { header: 'Source', value: (l) => (l.figure ? LINK_SOURCE_LABEL[l.figure.source] : '-') },
      {
        header: 'Age',
        value: (l) => (l.figure ? figureAge(l.figure.measuredAt, now) + (l.stale ? ' (stale)' : '') : '-'),
      },
      {
        header: 'Last mirror',
        value: (l) =>
          l.mirror ? `${formatBitRate(l.mirror.bitsPerSecond)} ${figureAge(l.mirror.observedAt, now)}` : '-',
      },
      {
        header: 'Last probe failed',
        value: (l) => (l.probeError ? `${figureAge(l.probeError.at, now)}: ${l.probeError.reason}` : '-'),
      },
    ],
    links,
  );
}

export function registerHostCommands(program: Command): void {
  const host = noun(program, 'host', 'Hosts (KVM machines running the silobreak agent)');

  verb(host, 'list', 'List hosts')
    .option('--pool <pool>', 'only hosts of this pool')
    .option('--cluster <cluster>', 'only hosts of this cluster')
    .option('--state <state>', `only hosts in this state (${HostState.options.join(', ')})`)
    .option(
      '--maintenance <state>',
      `only hosts in this maintenance state (${HostMaintenance.options.join(', ')})`,
    )
    .option('--limit <n>', 'at most this many hosts')
    .action(
      act(
        z.object({
          pool: input.ref.optional(),
          cluster: input.ref.optional(),
          state: HostState.optional(),
          maintenance: HostMaintenance.optional(),
          limit: input.limit,
        }),
        async (o, ctx) => {
          const client = ctx.client();
          const { limit, ...filters } = o;
          const hosts = await allPages((q) => client.listHosts({ ...q, ...filters }), limit);
          printList(ctx, hosts, hostColumns(ctx.style), 'No hosts.');
        },
      ),
    );

  verb(host, 'show <host>', 'Show one host (by name or id) and its links to the other hosts').action(
    act(z.object({ host: input.ref }), async (o, ctx) => {
      const client = ctx.client();
      const h = await client.getHost(o.host);
      const { links } = await client.hostLinks(h.id);
      printObject(ctx, { ...h, links }, `${hostDetails(h)}\n\nLinks:\n${renderLinks(links)}`);
    }),
  );

  verb(host, 'links <host>', 'The links between a host and each other host: rate, source and age').action(
    act(z.object({ host: input.ref }), async (o, ctx) => {
      const links = await ctx.client().hostLinks(o.host);
      printObject(ctx, links, renderLinks(links.links));
    }),
  );

  verb(host, 'probe <host>', "Measure a host's links now, both directions (a short probe each)")
    .option('--to <host>', 'only the links with this host')
    .option(
      '--duration <ms>',
      `how long each probe sends (${LINK_PROBE_MS.min}-${LINK_PROBE_MS.max} ms, default ${LINK_PROBE_MS.default})`,
    )
    .action(
      act(
        z.object({
          host: input.ref,
          to: input.ref.optional(),
          duration: input.count(LINK_PROBE_MS.min, LINK_PROBE_MS.max).optional(),
        }),
        async (o, ctx) => {
          const probed = await ctx.client().probeHostLinks(o.host, {
            ...(o.to ? { to: o.to } : {}),
            ...(o.duration !== undefined ? { durationMs: o.duration } : {}),
          });
          const failed = probed.failures.map((f) => `probe ${f.from} -> ${f.to} failed: ${f.reason}`);
          printObject(ctx, probed, [renderLinks(probed.links), ...failed].join('\n'));
          if (probed.failures.length) throw new OperationFailed(`${probed.failures.length} probe(s) failed`);
        },
      ),
    );

  verb(
    host,
    'add <address>',
    'Join a host: the manager enrolls its agent at address:port (HTTPS) with its one-time join token',
  )
    .requiredOption(
      '--join-token <token>',
      'what `silobreak agent-join-token --config <file>` printed on the host (one use)',
    )
    .option('--pool <pool>', 'put the host into this pool')
    .action(
      act(
        z.object({
          address: AgentAddress,
          joinToken: JoinToken,
          pool: input.ref.optional(),
        }),
        async (o, ctx) => {
          const h = await ctx.client().addHost({ address: o.address, joinToken: o.joinToken, pool: o.pool });
          printObject(
            ctx,
            h,
            `Added host ${h.name} (${h.fabricAddress}, ${h.accelerator}, ${h.vmCount} VMs).`,
          );
        },
      ),
    );

  verb(
    host,
    'remove <host>',
    'Forget a host and its inventory (its agent and VMs keep running); its certificate is revoked',
  ).action(
    act(z.object({ host: input.ref }), async (o, ctx) => {
      const client = ctx.client();
      const h = await client.getHost(o.host);
      await client.removeHost(h.id);
      printObject(
        ctx,
        h,
        `Removed host ${h.name}; its certificate is revoked, its agent waits for a new join.`,
      );
    }),
  );

  withDetach(
    verb(
      host,
      'drain <host>',
      'Put a host into maintenance: its running VMs move off live by HA priority (cluster peers first, then any host with room), then no VM runs there; stopped VMs stay (a job)',
    ),
  ).action(
    act(z.object({ host: input.ref, detach: z.boolean().default(false) }), async (o, ctx) => {
      const answer = await ctx.client().enterMaintenance(o.host);
      if ('host' in answer) {
        printObject(
          ctx,
          answer.host,
          `Host ${answer.host.name} is in maintenance: no VM runs there (silobreak host resume ${answer.host.name} ends it).`,
        );
        return;
      }
      const job = await followJob(ctx, answer.job, o.detach);
      const summary = job.state === 'succeeded' && !ctx.style.json ? drainSummary(job) : undefined;
      if (summary) ctx.print(summary);
    }),
  );

  verb(
    host,
    'resume <host>',
    "End a host's maintenance: it takes VMs again (a drain in progress is cancelled; its moves under way finish)",
  ).action(
    act(z.object({ host: input.ref }), async (o, ctx) => {
      const h = await ctx.client().resumeHost(o.host);
      printObject(ctx, h, `Host ${h.name} is out of maintenance; it takes VMs again.`);
    }),
  );

  verb(
    host,
    'renew-cert <host>',
    "Renew the host's certificate now (a new key on the host; the old certificate is revoked)",
  ).action(
    act(z.object({ host: input.ref }), async (o, ctx) => {
      const h = await ctx.client().renewHostCertificate(o.host);
      printObject(
        ctx,
        h,
        `Renewed the certificate of ${h.name}: serial ${h.certificate?.serial ?? '?'}, valid until ${h.certificate?.notAfter ?? '?'}.`,
      );
    }),
  );
}

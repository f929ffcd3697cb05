import { DEFAULT_STORAGE_THRESHOLDS as T, type IssueSeverity, type StorageRule } from '../../api/index.js';
import { SUSTAINED_SECONDS } from './rules.js';

/*
 * The storage rules as Prometheus alerting rules over the agents' /metrics, rendered from the
 * same defaults the manager's rules use (deploy/prometheus/silobreak-alerts.yml is this text;
 * a test keeps the two equal and runs `promtool check rules` on it). Per-datastore overrides live
 * in the manager only: Prometheus sees the defaults.
 *
 * Metric names are the agent's (src/agent/metrics.ts): silobreak_datastore_{capacity,free,
 * provisioned}_bytes{host,datastore}, silobreak_datastore_info{fs_type}, silobreak_disk_info
 * {host,vm,disk,datastore,format,format_version}, silobreak_disk_latency_seconds_bucket{op,le},
 * silobreak_disk_{read,write}_{operations,time_seconds}_total, silobreak_disk_{read,written}_bytes_total,
 * silobreak_guest_filesystem_{used,size}_bytes{host,vm,mountpoint}.
 */

interface Alert {
  alert: string;
  rule: StorageRule;
  severity: IssueSeverity;
  expr: string;
  for?: string;
  summary: string;
}

const DS = 'host, datastore';
const free = 'silobreak_datastore_free_bytes';
const capacity = 'silobreak_datastore_capacity_bytes';
const provisioned = 'silobreak_datastore_provisioned_bytes';
const sustained = `${SUSTAINED_SECONDS / 60}m`;
const trend = `${T.trendWindowHours}h`;
const days = (n: number) => n * 86_400;
const fullWithin = (n: number) => `predict_linear(${free}[${trend}], ${days(n)}) < 0`;
const freeBelow = (percent: number) => `100 * ${free} / ${capacity} < ${percent}`;
const ratioAbove = (r: number) => `${provisioned} / ${capacity} >= ${r}`;
const atRisk = `((${freeBelow(T.freeWarningPercent)}) or on(${DS}) (${fullWithin(T.daysUntilFullInfo)}))`;
const p90 = (op: string) =>
  `histogram_quantile(0.9, sum by (${DS}, le) (rate(silobreak_disk_latency_seconds_bucket{op="${op}"}[${sustained}]) * on(host, vm, disk) group_left(datastore) silobreak_disk_info))`;
const avgLatency = (dir: 'read' | 'write') =>
  `rate(silobreak_disk_${dir}_time_seconds_total[${sustained}]) / rate(silobreak_disk_${dir}_operations_total[${sustained}])`;
const vmLatency = (ms: number) =>
  `(${avgLatency('read')} >= ${ms / 1000}) or (${avgLatency('write')} >= ${ms / 1000})`;
const vmBytes = `sum by (host, vm) (rate(silobreak_disk_read_bytes_total[${sustained}]) + rate(silobreak_disk_written_bytes_total[${sustained}]))`;
const guestUsed = '100 * silobreak_guest_filesystem_used_bytes / (silobreak_guest_filesystem_size_bytes > 0)';

export const ALERTS: readonly Alert[] = [
  {
    alert: 'SilobreakDatastoreLowCapacity',
    rule: 'low-capacity',
    severity: 'warning',
    expr: `(${freeBelow(T.freeWarningPercent)}) unless (${freeBelow(T.freeCriticalPercent)})`,
    for: '5m',
    summary: `Datastore {{ $labels.host }}/{{ $labels.datastore }} has less than ${T.freeWarningPercent} % free`,
  },
  {
    alert: 'SilobreakDatastoreLowCapacity',
    rule: 'low-capacity',
    severity: 'critical',
    expr: freeBelow(T.freeCriticalPercent),
    for: '5m',
    summary: `Datastore {{ $labels.host }}/{{ $labels.datastore }} has less than ${T.freeCriticalPercent} % free`,
  },
  ...(
    [
      ['critical', T.daysUntilFullCritical, undefined],
      ['warning', T.daysUntilFullWarning, T.daysUntilFullCritical],
      ['info', T.daysUntilFullInfo, T.daysUntilFullWarning],
    ] as const
  ).map(([severity, within, sooner]): Alert => ({
    alert: 'SilobreakDatastoreDaysUntilFull',
    rule: 'days-until-full',
    severity,
    expr:
      sooner === undefined ? fullWithin(within) : `(${fullWithin(within)}) unless (${fullWithin(sooner)})`,
    for: '1h',
    summary: `Datastore {{ $labels.host }}/{{ $labels.datastore }} is full within ${within} days at the growth of the last ${T.trendWindowHours} h`,
  })),
  {
    alert: 'SilobreakDatastoreOvercommitted',
    rule: 'over-commitment',
    severity: 'critical',
    expr: `(${ratioAbove(T.overcommitCriticalRatio)}) and on(${DS}) ${atRisk}`,
    for: '15m',
    summary: `Datastore {{ $labels.host }}/{{ $labels.datastore }}: provisioned above ${T.overcommitCriticalRatio}x its capacity while free space runs low or shrinks`,
  },
  {
    alert: 'SilobreakDatastoreOvercommitted',
    rule: 'over-commitment',
    severity: 'warning',
    expr: `((${ratioAbove(T.overcommitCriticalRatio)}) unless on(${DS}) ${atRisk}) or on(${DS}) ((${ratioAbove(T.overcommitWarningRatio)}) and on(${DS}) ${atRisk} unless on(${DS}) (${ratioAbove(T.overcommitCriticalRatio)}))`,
    for: '15m',
    summary: `Datastore {{ $labels.host }}/{{ $labels.datastore }} is over-committed (provisioned / capacity at least ${T.overcommitWarningRatio})`,
  },
  {
    alert: 'SilobreakDatastoreHighLatency',
    rule: 'high-latency',
    severity: 'warning',
    expr: `(${p90('read')} > ${T.datastoreLatencyP90Ms / 1000}) or (${p90('write')} > ${T.datastoreLatencyP90Ms / 1000})`,
    for: sustained,
    summary: `Datastore {{ $labels.host }}/{{ $labels.datastore }}: p90 latency above ${T.datastoreLatencyP90Ms} ms`,
  },
  {
    alert: 'SilobreakQcow2CompatMismatch',
    rule: 'format-version-mismatch',
    severity: 'warning',
    expr: `count by (${DS}) (count by (${DS}, format_version) (silobreak_disk_info{format="qcow2"})) > 1`,
    summary:
      'Datastore {{ $labels.host }}/{{ $labels.datastore }} holds qcow2 images of different compat levels',
  },
  {
    alert: 'SilobreakQcow2CompatMismatch',
    rule: 'format-version-mismatch',
    severity: 'info',
    expr: `count(count by (format_version) (silobreak_disk_info{format="qcow2"})) > 1`,
    summary: 'The fabric holds qcow2 images of different compat levels',
  },
  {
    alert: 'SilobreakDatastoreFilesystemMismatch',
    rule: 'filesystem-mismatch',
    severity: 'info',
    expr: `count(count by (fs_type) (silobreak_datastore_info{fs_type!="unknown"})) > 1`,
    summary: 'Datastores of the fabric use different filesystem types',
  },
  {
    alert: 'SilobreakVmLowDiskSpace',
    rule: 'vm-low-disk-space',
    severity: 'warning',
    expr: `${guestUsed} >= ${T.guestUsedWarningPercent} < ${T.guestUsedCriticalPercent}`,
    for: '5m',
    summary: `VM {{ $labels.vm }}: guest filesystem {{ $labels.mountpoint }} is over ${T.guestUsedWarningPercent} % full`,
  },
  {
    alert: 'SilobreakVmLowDiskSpace',
    rule: 'vm-low-disk-space',
    severity: 'critical',
    expr: `${guestUsed} >= ${T.guestUsedCriticalPercent}`,
    for: '5m',
    summary: `VM {{ $labels.vm }}: guest filesystem {{ $labels.mountpoint }} is over ${T.guestUsedCriticalPercent} % full`,
  },
  {
    // The agent's bounded check of the mount, or its cluster lockspace there lost (shared-health.ts).
    alert: 'SilobreakSharedDatastoreLost',
    rule: 'shared-datastore-lost',
    severity: 'critical',
    expr: 'silobreak_datastore_lost == 1',
    summary:
      'Host {{ $labels.host }} cannot reach its shared datastore {{ $labels.datastore }}: silobreak storage issues --rule shared-datastore-lost',
  },
  {
    // From the manager's own /api/v1/metrics (the agents do not know the fabric's tools version).
    alert: 'SilobreakVmGuestToolsOutdated',
    rule: 'vm-tools',
    severity: 'warning',
    expr: 'silobreak_vms_by_tools_status{status=~"outdated|not-answering"} > 0',
    for: '15m',
    summary:
      '{{ $value }} running VMs have guest tools {{ $labels.status }}: silobreak vm list --tools {{ $labels.status }}',
  },
  {
    alert: 'SilobreakVmDiskLatency',
    rule: 'vm-latency',
    severity: 'warning',
    expr: `(${vmLatency(T.vmLatencyWarningMs)}) unless (${vmLatency(T.vmLatencyCriticalMs)})`,
    for: sustained,
    summary: `VM {{ $labels.vm }} disk {{ $labels.disk }}: average latency above ${T.vmLatencyWarningMs} ms`,
  },
  {
    alert: 'SilobreakVmDiskLatency',
    rule: 'vm-latency',
    severity: 'critical',
    expr: vmLatency(T.vmLatencyCriticalMs),
    for: sustained,
    summary: `VM {{ $labels.vm }} disk {{ $labels.disk }}: average latency above ${T.vmLatencyCriticalMs} ms`,
  },
  {
    alert: 'SilobreakVmThroughput',
    rule: 'vm-throughput',
    severity: 'warning',
    expr: `${vmBytes} >= ${T.vmThroughputWarningBytesPerSecond} < ${T.vmThroughputCriticalBytesPerSecond}`,
    for: sustained,
    summary: `VM {{ $labels.vm }} moves more than ${T.vmThroughputWarningBytesPerSecond / 2 ** 20} MiB/s`,
  },
  {
    alert: 'SilobreakVmThroughput',
    rule: 'vm-throughput',
    severity: 'critical',
    expr: `${vmBytes} >= ${T.vmThroughputCriticalBytesPerSecond}`,
    for: sustained,
    summary: `VM {{ $labels.vm }} moves more than ${T.vmThroughputCriticalBytesPerSecond / 2 ** 20} MiB/s`,
  },
];

/** A YAML single-quoted scalar: nothing is special inside but the quote itself (doubled). */
const q = (text: string) => `'${text.replaceAll("'", "''")}'`;

/** The rules file (Prometheus `rule_files` format). */
export function renderAlertRules(): string {
  const lines = [
    "# Generated from src/manager/insight/prometheus-rules.ts (the manager's storage rules and their",
    "# default thresholds, src/api/storage.ts); edit there. Per-datastore overrides are the manager's only.",
    'groups:',
    '  - name: silobreak-storage',
    '    rules:',
  ];
  for (const a of ALERTS) {
    lines.push(`      - alert: ${a.alert}`, `        expr: ${q(a.expr)}`);
    if (a.for) lines.push(`        for: ${a.for}`);
    lines.push(
      '        labels:',
      `          severity: ${a.severity}`,
      `          rule: ${a.rule}`,
      '        annotations:',
      `          summary: ${q(a.summary)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

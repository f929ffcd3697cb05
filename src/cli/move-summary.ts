// What a move cost, as people read it at the end of `vm move` and in `job show`: total time, disk
// and memory bytes and rates, passes, QEMU's and the guest's downtime, throttling. Pure.
import { formatBitRate, LINK_SOURCE_LABEL, MoveResult, type Job } from '../api/index.js';
import { formatBytes, formatDuration, formatMilliseconds, formatRate } from './units.js';

/** `1 GiB at 95 MiB/s` when the time is known, else the bytes alone. */
function amount(bytes: number, ms: number | undefined): string {
  return ms && ms > 0 ? `${formatBytes(bytes)} at ${formatRate(bytes / (ms / 1000))}` : formatBytes(bytes);
}

/** The summary's rows (label, value) of a move job's result; undefined for other jobs or no result. */
export function moveSummary(job: Pick<Job, 'result'>): [string, string][] | undefined {
  const parsed = MoveResult.safeParse(job.result);
  if (!parsed.success) return undefined;
  const r = parsed.data;
  const s = r.stats;
  const rows: [string, string][] = [
    ['Moved', `${r.vm.name}: ${r.from} -> ${r.to} (${r.mode})`],
    ['Total time', formatDuration(r.totalTimeMs / 1000)],
  ];
  const diskBytes = r.diskBytes ?? s.diskBytes;
  if (diskBytes !== undefined)
    rows.push([
      'Disks',
      `${amount(diskBytes, s.mirrorTimeMs)}${s.deltaBytes !== undefined ? ' (delta onto the retained copy)' : ''}`,
    ]);
  const memoryBytes = r.memoryBytes ?? s.memoryBytes;
  if (memoryBytes !== undefined) {
    const passes =
      s.iterations !== undefined ? `, ${s.iterations} pass${s.iterations === 1 ? '' : 'es'}` : '';
    rows.push(['Memory', `${amount(memoryBytes, s.memoryTimeMs)}${passes}`]);
  }
  if (r.mode === 'live') {
    const downtime = r.downtimeMs ?? s.downtimeMs;
    rows.push(['Downtime (QEMU)', downtime !== undefined ? formatMilliseconds(downtime) : 'not reported']);
    rows.push([
      'Guest paused',
      r.guestDowntimeMs !== undefined ? formatMilliseconds(r.guestDowntimeMs) : 'not measured',
    ]);
    const peak = r.throttlePeakPercent ?? s.throttlePeakPercent;
    const seconds = r.throttleSeconds ?? s.throttleSeconds;
    rows.push([
      'Throttle',
      peak ? `up to ${Math.round(peak)}%${seconds ? ` for ${formatDuration(seconds)}` : ''}` : 'none',
    ]);
  }
  const plan = r.plan;
  if (plan) {
    const link = plan.link
      ? `${formatBitRate(plan.link.bitsPerSecond)} (${LINK_SOURCE_LABEL[plan.link.source]})`
      : 'unknown (a LAN assumed)';
    const cap = plan.slowLink ? `; stream capped at ${formatRate(plan.maxBandwidthBytesPerSecond)}` : '';
    rows.push(['Link', link + cap]);
  }
  if (s.compression) rows.push(['Memory stream', `${s.compression.mode} (${s.compression.why})`]);
  if (r.note) rows.push(['Note', r.note]);
  return rows;
}

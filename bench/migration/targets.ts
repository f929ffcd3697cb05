// The targets of issue 20 for one row, as ratios against the same run's baselines (pure).
// "Silobreak" is the product path: a move through the manager with no policy, as `vm move` sends it
// (since issue 27; before, the bench told it the link rate). The "link given" row is no baseline.
//
//  - converges:  every Silobreak run of the row completed;
//  - downtime:   Silobreak's QEMU-reported downtime median <= 0.8 x the best converged baseline's;
//  - ping:       its ping-measured downtime median <= 0.8 x the best baseline's;
//  - total:      total move time median <= the best baseline's, and <= 0.7 x on the 1 Gbit/s
//                dirtying rows (where the link is the bound and compression replaces throttling);
//  - throttle:   on the 1 Gbit/s dirtying rows, throttled seconds <= 0.5 x Proxmox-like's (no
//                throttling at all when Proxmox-like throttled none);
//  - mirror:     disk mirror throughput >= 0.8 x min(link rate, target datastore fsync rate);
//  - memory:     memory copy throughput >= the best baseline's (shown, not one of issue 20's).
// "Best" is over the baselines that converged in this row. When none did, a comparison target is
// not won: it says `only-silobreak` with Silobreak's own figure (the row shows that only Silobreak
// converged, and how fast), and counts as neither met nor missed. A figure Silobreak did not
// measure is missed, never left out of the tally.
import { BASELINES, summarize, type PolicySummary, type Row, type RowKey } from './model.js';

export interface TargetCheck {
  name: 'converges' | 'downtime' | 'ping' | 'total' | 'throttle' | 'mirror' | 'memory';
  /** only-silobreak: no baseline converged in the row, so there is nothing to compare with. */
  status: 'met' | 'missed' | 'only-silobreak' | 'n/a';
  /** Silobreak / reference, when a ratio applies. */
  ratio?: number;
  /** The baseline compared with (the best converged one for this target). */
  reference?: string;
  detail: string;
}

type Metric = 'downtimeMs' | 'pingDowntimeMs' | 'totalMs' | 'memoryBytesPerSecond';

function best(baselines: PolicySummary[], metric: Metric, lowerIsBetter: boolean) {
  let winner: { policy: string; value: number } | undefined;
  for (const b of baselines) {
    const value = b[metric]?.median;
    if (value === undefined || b.converged === 0) continue;
    if (!winner || (lowerIsBetter ? value < winner.value : value > winner.value)) {
      winner = { policy: b.policy, value };
    }
  }
  return winner;
}

function compare(
  name: TargetCheck['name'],
  sb: PolicySummary,
  baselines: PolicySummary[],
  metric: Metric,
  factor: number,
  lowerIsBetter: boolean,
): TargetCheck {
  const mine = sb[metric]?.median;
  if (mine === undefined) return { name, status: 'missed', detail: 'not measured' };
  const ref = best(baselines, metric, lowerIsBetter);
  if (!ref)
    return { name, status: 'only-silobreak', detail: `no baseline converged; Silobreak ${Math.round(mine)}` };
  const ratio = ref.value > 0 ? mine / ref.value : mine === 0 ? 1 : Infinity;
  const met = lowerIsBetter ? mine <= factor * ref.value : mine >= factor * ref.value;
  const rule = `${lowerIsBetter ? '<=' : '>='} ${factor === 1 ? '' : `${factor} x `}${ref.policy}`;
  return { name, status: met ? 'met' : 'missed', ratio, reference: ref.policy, detail: rule };
}

export function checkTargets(row: Row): TargetCheck[] {
  const sb = summarize('silobreak', row.runs);
  const baselines = BASELINES.map((b) => summarize(b, row.runs));
  const checks: TargetCheck[] = [];
  checks.push({
    name: 'converges',
    status: sb.attempted > 0 && sb.converged === sb.attempted ? 'met' : 'missed',
    detail: `${sb.converged}/${sb.attempted}`,
  });
  checks.push(compare('downtime', sb, baselines, 'downtimeMs', 0.8, true));
  checks.push(compare('ping', sb, baselines, 'pingDowntimeMs', 0.8, true));
  const slowDirtying = row.key.link === '1gbit' && row.key.workload !== 'idle';
  checks.push(compare('total', sb, baselines, 'totalMs', slowDirtying ? 0.7 : 1, true));

  if (slowDirtying) {
    const px = baselines.find((b) => b.policy === 'proxmox-like');
    const secs = sb.throttleSeconds?.median;
    const pxSecs = px?.throttleSeconds?.median;
    if (secs === undefined) {
      checks.push({ name: 'throttle', status: 'missed', detail: 'Silobreak did not complete' });
    } else if (pxSecs === undefined) {
      checks.push({
        name: 'throttle',
        status: 'only-silobreak',
        detail: `proxmox-like did not complete; Silobreak throttled ${secs} s`,
      });
    } else {
      checks.push({
        name: 'throttle',
        status: secs <= 0.5 * pxSecs ? 'met' : 'missed',
        ...(pxSecs > 0 ? { ratio: secs / pxSecs } : {}),
        reference: 'proxmox-like',
        detail: `throttled ${secs} s <= 0.5 x proxmox-like's ${pxSecs} s`,
      });
    }
  } else {
    checks.push({ name: 'throttle', status: 'n/a', detail: 'only on the 1 Gbit/s dirtying rows' });
  }

  const mirror = sb.mirrorBytesPerSecond?.median;
  const bound = Math.min(row.facts.linkBitsPerSecond / 8, row.facts.fsyncBytesPerSecond);
  checks.push(
    mirror === undefined
      ? { name: 'mirror', status: 'missed', detail: 'not measured' }
      : {
          name: 'mirror',
          status: mirror >= 0.8 * bound ? 'met' : 'missed',
          ratio: mirror / bound,
          detail: `>= 0.8 x min(link, fsync) = ${Math.round((0.8 * bound) / 1e6)} MB/s`,
        },
  );
  checks.push(compare('memory', sb, baselines, 'memoryBytesPerSecond', 1, false));
  return checks;
}

/**
 * Issue 27's Done-when, per row: the product path (a `vm move` with no policy) within 10 % of the
 * "link given" row's total time (medians), and throttled no more (median throttled seconds and
 * peak %, an unreported throttle counting as none). The issue asks it of the 1 GiB dirtying guest
 * on the 1 Gbit/s link (DONE_WHEN_ROW); the report shows it for every row that has both.
 */
export const PRODUCT_PATH_TOTAL_FACTOR = 1.1;
export const DONE_WHEN_ROW: Readonly<RowKey> = { vm: '1 GiB / 2 GiB', workload: 'dirty', link: '1gbit' };

export interface ProductPathCheck {
  /** n/a: the row has no converged "link given" run to compare with. */
  status: 'met' | 'missed' | 'n/a';
  totalRatio?: number;
  totalMet?: boolean;
  throttleMet?: boolean;
  detail: string;
}

const s1 = (ms: number) => (ms / 1000).toFixed(1);

export function checkProductPath(row: Row): ProductPathCheck {
  const product = summarize('silobreak', row.runs);
  const given = summarize('silobreak-link-given', row.runs);
  const givenTotal = given.totalMs?.median;
  if (given.converged === 0 || givenTotal === undefined)
    return { status: 'n/a', detail: `"link given" converged ${given.converged}/${given.attempted}` };
  const total = product.totalMs?.median;
  if (product.converged < product.attempted || total === undefined)
    return {
      status: 'missed',
      detail: `product path converged ${product.converged}/${product.attempted}`,
    };
  const totalRatio = total / givenTotal;
  const totalMet = total <= PRODUCT_PATH_TOTAL_FACTOR * givenTotal;
  const secs = product.throttleSeconds?.median ?? 0;
  const givenSecs = given.throttleSeconds?.median ?? 0;
  const peak = product.throttlePeakPercent?.median ?? 0;
  const givenPeak = given.throttlePeakPercent?.median ?? 0;
  const throttleMet = secs <= givenSecs && peak <= givenPeak;
  return {
    status: totalMet && throttleMet ? 'met' : 'missed',
    totalRatio,
    totalMet,
    throttleMet,
    detail:
      `total ${s1(total)} s vs ${s1(givenTotal)} s = ${totalRatio.toFixed(2)} x ` +
      `(<= ${PRODUCT_PATH_TOTAL_FACTOR} x: ${totalMet ? 'met' : 'missed'}); ` +
      `throttled ${peak} % ${secs} s vs ${givenPeak} % ${givenSecs} s (no more: ${throttleMet ? 'met' : 'missed'})`,
  };
}

export const sameRow = (a: RowKey, b: RowKey): boolean =>
  a.vm === b.vm && a.workload === b.workload && a.link === b.link;

/**
 * Issue 28: the default move (TLS on the mirror and the memory stream) takes at most 10 % longer
 * in total than the same move with `--no-secure`, on the full link (where TLS's CPU cost shows;
 * on 1 Gbit/s the link is the bound). Shown for every row that has both.
 */
export const TLS_TOTAL_FACTOR = 1.1;

export interface TlsCostCheck {
  status: 'met' | 'missed' | 'n/a';
  tls: PolicySummary;
  plain: PolicySummary;
  totalRatio?: number;
  detail: string;
}

export function checkTlsCost(row: Row): TlsCostCheck {
  const tls = summarize('silobreak', row.runs);
  const plain = summarize('silobreak-plain', row.runs);
  const plainTotal = plain.totalMs?.median;
  if (plain.converged === 0 || plainTotal === undefined)
    return {
      status: 'n/a',
      tls,
      plain,
      detail: `--no-secure converged ${plain.converged}/${plain.attempted}`,
    };
  const total = tls.totalMs?.median;
  if (tls.converged < tls.attempted || total === undefined)
    return { status: 'missed', tls, plain, detail: `TLS converged ${tls.converged}/${tls.attempted}` };
  const totalRatio = total / plainTotal;
  const met = total <= TLS_TOTAL_FACTOR * plainTotal;
  return {
    status: met ? 'met' : 'missed',
    tls,
    plain,
    totalRatio,
    detail: `total ${s1(total)} s vs ${s1(plainTotal)} s = ${totalRatio.toFixed(2)} x (<= ${TLS_TOTAL_FACTOR} x)`,
  };
}

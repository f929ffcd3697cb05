/*
 * Where to put a new VM (POST /placement/suggest, `vm create --pool`): every datastore that fits
 * the VM's memory and disk with the placement reserves kept, ranked by the room left after it —
 * memory and space as fractions, and IOPS headroom, so a new VM lands where it disturbs least.
 */
import type { PlacementSettings, SuggestResult } from '../../api/index.js';
import { fitOn, type Target } from './planner.js';

/** A datastore as suggest sees it: a target and the IOPS its VMs make now. */
export interface SuggestTarget extends Target {
  iopsUsed: number;
}

export interface SuggestNeed {
  memoryBytes: number;
  diskBytes: number;
  /** Only datastores of this class. */
  cls?: string | undefined;
}

const pct = (x: number) => `${Math.round(x * 100)} %`;

export function rankSuggestions(
  targets: readonly SuggestTarget[],
  need: SuggestNeed,
  s: PlacementSettings,
): SuggestResult {
  const out: SuggestResult = { candidates: [], refused: [] };
  for (const t of targets) {
    if (need.cls !== undefined && t.cls !== need.cls) {
      out.refused.push({ host: t.host, datastore: t.datastore, reason: `class ${t.cls}, not ${need.cls}` });
      continue;
    }
    const fit = fitOn(
      t,
      { memoryFreeBytes: t.memoryFreeBytes, freeBytes: t.freeBytes, iops: t.iopsUsed },
      { memoryBytes: need.memoryBytes, diskBytes: need.diskBytes, iops: 0 },
      s,
    );
    if ('problem' in fit) {
      out.refused.push({ host: t.host, datastore: t.datastore, reason: fit.problem });
      continue;
    }
    const memoryLeft = fit.predicted.memoryFreeBytes / Math.max(1, t.memoryFreeBytes);
    const spaceLeft = fit.predicted.freeBytes / Math.max(1, t.capacityBytes);
    const iopsLeft = t.iopsBudget === null ? 1 : Math.max(0, 1 - t.iopsUsed / t.iopsBudget);
    const score = Math.round((0.4 * memoryLeft + 0.4 * spaceLeft + 0.2 * iopsLeft) * 1000) / 10;
    out.candidates.push({
      host: t.host,
      datastore: t.datastore,
      class: t.cls,
      score,
      reasons: [
        `memory: ${pct(memoryLeft)} of the host's free memory left after it`,
        `space: ${pct(spaceLeft)} of the datastore free after it`,
        t.iopsBudget === null
          ? `I/O: no IOPS limit, ${Math.round(t.iopsUsed)} IOPS in use`
          : `I/O: ${Math.round(t.iopsUsed)} of ${t.iopsBudget} IOPS in use`,
      ],
    });
  }
  out.candidates.sort(
    (a, b) => b.score - a.score || (`${a.host}/${a.datastore}` < `${b.host}/${b.datastore}` ? -1 : 1),
  );
  return out;
}

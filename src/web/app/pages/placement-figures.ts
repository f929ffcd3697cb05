// The figures the placement page draws, from the placement status and the datastore list: how
// full the fast class is against its budget, and the settings as effective, default and set.
// Pure, so the arithmetic has unit tests (placement-figures.test.ts).

/** What the page needs of a datastore (ManagedDatastore). */
export interface DatastoreFacts {
  host: string;
  name: string;
  class: string;
  capacityBytes: number;
  freeBytes: number;
  limits?: { iops?: number | undefined } | undefined;
  probe?: { iops: number } | undefined;
}

/** What the page needs of a VM's placement status (PlacementVmStatus). */
export interface VmDemandFacts {
  vm: string;
  host: string;
  datastore: string;
  iops: number | null;
}

export interface FastOccupancy {
  host: string;
  datastore: string;
  /** The IOPS of the VMs on it over the demand window. */
  iops: number;
  /** Its IOPS budget: the configured limit, else the probed capability; null when unknown. */
  iopsBudget: number | null;
  /** Where the budget comes from. */
  budgetSource: 'limit' | 'probe' | null;
  /** The share of the budget placement fills (maxIopsUtilisation × budget); null when unknown. */
  iopsUsable: number | null;
  /** iops ÷ budget in percent; null when the budget is unknown. */
  iopsPercent: number | null;
  usedBytes: number;
  capacityBytes: number;
  /** Space placement keeps free (minFreeSpacePercent of capacity). */
  reservedBytes: number;
  vms: string[];
}

/**
 * A datastore's IOPS budget the way the manager's planner reads it (facts.ts,
 * datastoreIopsBudget): the configured limit, else the measured capability, else none.
 */
export function iopsBudget(d: DatastoreFacts): { budget: number | null; source: 'limit' | 'probe' | null } {
  if (d.limits?.iops !== undefined && d.limits.iops > 0) return { budget: d.limits.iops, source: 'limit' };
  if (d.probe && d.probe.iops > 0) return { budget: d.probe.iops, source: 'probe' };
  return { budget: null, source: null };
}

/** Each datastore of the fast class with the demand on it against its budget, by host and name. */
export function fastOccupancy(
  datastores: readonly DatastoreFacts[],
  vms: readonly VmDemandFacts[],
  settings: { fastClass: string; maxIopsUtilisation: number; minFreeSpacePercent: number },
): FastOccupancy[] {
  return datastores
    .filter((d) => d.class === settings.fastClass)
    .map((d) => {
      const on = vms.filter((v) => v.host === d.host && v.datastore === d.name);
      const iops = on.reduce((sum, v) => sum + (v.iops ?? 0), 0);
      const { budget, source } = iopsBudget(d);
      return {
        host: d.host,
        datastore: d.name,
        iops,
        iopsBudget: budget,
        budgetSource: source,
        iopsUsable: budget === null ? null : budget * settings.maxIopsUtilisation,
        iopsPercent: budget === null ? null : (100 * iops) / budget,
        usedBytes: d.capacityBytes - d.freeBytes,
        capacityBytes: d.capacityBytes,
        reservedBytes: (d.capacityBytes * settings.minFreeSpacePercent) / 100,
        vms: on.map((v) => v.vm).sort(),
      };
    })
    .sort((a, b) => a.host.localeCompare(b.host) || a.datastore.localeCompare(b.datastore));
}

/** One line for a fast datastore's load: "120 of 1,000 IOPS (12 %); placement fills up to 800". */
export function occupancyText(o: FastOccupancy): string {
  const n = (x: number) => Math.round(x).toLocaleString('en');
  if (o.iopsBudget === null || o.iopsUsable === null || o.iopsPercent === null)
    return `${n(o.iops)} IOPS; no budget known (no IOPS limit, not probed): placement does not limit it by IOPS`;
  const over = o.iops > o.iopsUsable ? ' — above what placement fills' : '';
  return `${n(o.iops)} of ${n(o.iopsBudget)} IOPS (${Math.round(o.iopsPercent)} %); placement fills up to ${n(o.iopsUsable)}${over}`;
}

export type SettingValue = string | number;

export interface SettingRow {
  key: string;
  effective: SettingValue;
  default: SettingValue;
  /** Set by an override (else the default applies). */
  overridden: boolean;
}

/** The settings in the order the defaults list them, each effective, default and whether set. */
export function settingRows(config: {
  settings: Record<string, SettingValue>;
  defaults: Record<string, SettingValue>;
  overrides: Record<string, SettingValue | undefined>;
}): SettingRow[] {
  return Object.keys(config.defaults).map((key) => ({
    key,
    effective: config.settings[key] ?? config.defaults[key] ?? '',
    default: config.defaults[key] ?? '',
    overridden: config.overrides[key] !== undefined,
  }));
}

/**
 * The merge patch of a settings form: only the fields whose text differs from the effective
 * value; numbers where the default is a number (a text that is no number is sent as it is, so
 * the manager's refusal names the field and its rule).
 */
export function settingsPatch(
  rows: readonly SettingRow[],
  edits: Readonly<Record<string, string>>,
): Record<string, SettingValue> {
  const patch: Record<string, SettingValue> = {};
  for (const row of rows) {
    const text = edits[row.key];
    if (text === undefined) continue;
    const trimmed = text.trim();
    if (trimmed === String(row.effective)) continue;
    const number = Number(trimmed);
    patch[row.key] =
      typeof row.default === 'number' && trimmed !== '' && Number.isFinite(number) ? number : trimmed;
  }
  return patch;
}

/** The field an API error names, without the `body.` prefix a request part may carry. */
export function settingOfField(field: string | undefined): string | undefined {
  if (!field) return undefined;
  return field.replace(/^body[./]/, '').split(/[./[]/)[0] || undefined;
}

/** A recommendation's kind in words. */
export const KIND_TEXT: Record<string, string> = {
  'to-fast': 'to the fast class',
  'go-home': 'home',
  displace: 'make room (displace)',
  'schedule-in': 'in for a schedule',
  'schedule-out': 'out after a schedule',
};

/** A schedule window's length in the unit the API takes ("4h", "90m", "1d"). */
export function durationText(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400}d`;
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

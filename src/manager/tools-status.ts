import type { ToolsStatus, VmState } from '../api/index.js';

/*
 * A VM's guest tools status, as Hyper-V's integration services showed it: is a guest agent
 * answering, and is it the version the VM's host ships on its tools disk. Pure; the manager
 * records what each statistics poll learnt of the guest agents (tools-record.ts) and asks this.
 */

/** A guest that never answered this long after its start is `missing` (a TCG boot takes ~1 min). */
export const TOOLS_BOOT_GRACE_MS = 3 * 60_000;

/** Compares dotted version numbers ("10.0.2" > "7.2.22"); non-numeric parts count as 0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

export interface ToolsFacts {
  state: VmState;
  /** When the VM's current QEMU started. */
  startedAt: string | undefined;
  /** The version on the VM's host's tools disk; undefined when it has none. */
  hostToolsVersion: string | undefined;
  /** The last answer of the guest agent: its version, and the VM start it belongs to. */
  answered: { version: string; startedAt: string | undefined } | undefined;
  /** Whether the last statistics poll got an answer. */
  answeringNow: boolean;
  now: number;
}

/** null while the VM does not run, or is still booting and has not answered yet. */
export function toolsStatus(f: ToolsFacts): ToolsStatus | null {
  if (f.state !== 'running') return null;
  const thisBoot = f.answered !== undefined && f.answered.startedAt === f.startedAt;
  if (!f.answeringNow || !thisBoot) {
    if (thisBoot) return 'not-answering';
    const since = f.startedAt === undefined ? Infinity : f.now - Date.parse(f.startedAt);
    return since > TOOLS_BOOT_GRACE_MS ? 'missing' : null;
  }
  if (f.hostToolsVersion === undefined || f.answered === undefined) return 'current';
  return compareVersions(f.answered.version, f.hostToolsVersion) >= 0 ? 'current' : 'outdated';
}

/** The columns of a `vms` row the status is read from (tools-record.ts writes them). */
export interface ToolsRow {
  state: string;
  started_at: string | null;
  tools_version: string | null;
  tools_started_at: string | null;
  tools_answering: number;
}

/** The status of a stored VM whose host ships `hostToolsVersion` (null: no tools disk). */
export function toolsStatusOfRow(
  r: ToolsRow,
  hostToolsVersion: string | null,
  now: number,
): ToolsStatus | null {
  return toolsStatus({
    state: r.state as VmState,
    startedAt: r.started_at ?? undefined,
    hostToolsVersion: hostToolsVersion ?? undefined,
    answered: r.tools_version
      ? { version: r.tools_version, startedAt: r.tools_started_at ?? undefined }
      : undefined,
    answeringNow: r.tools_answering === 1,
    now,
  });
}

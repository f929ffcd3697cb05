import type { ChangeAction, ChangeRisk, FieldChange, ObjectKind } from '../api/index.js';

/*
 * The risk of a change record (pure): every record gets `low`, `medium` or `high` and the id of
 * the rule that set it, stored with the record (changes.ts) so that "what high-risk changes
 * happened before the outage?" is one indexed query. Of the rules a record matches, the one with
 * the highest risk wins; among equals, the first in RISK_RULES. A record no rule matches is
 * `medium` (`unrated`): an unknown change is not hidden among the harmless ones.
 *
 * Why these levels: high is what can take a guest or its data away or leaves the fabric with
 * less than before (removals, shrinking, a running VM's memory or NICs changed under it, a move
 * that failed and was rolled back, a host that stopped answering, a crashed guest); medium is
 * what changes access or behaviour and deserves a look (tokens, settings, a VM stopped, a
 * cancelled move, a clean-up left pending); low is what adds or proceeds as planned (creations,
 * starts, moves that went through). The README's "Change risk" table lists the same rules.
 */

export interface RiskInput {
  kind: ObjectKind;
  action: ChangeAction;
  changes: readonly FieldChange[];
  /**
   * Whether the VM (of a VM, disk or NIC record) had a running QEMU when the change was seen;
   * undefined when unknown (records made before risks existed): such changes count as stopped.
   */
  vmRunning?: boolean | undefined;
}

export interface RiskRule {
  id: string;
  risk: ChangeRisk;
  /** When the rule applies, for people (the README's table). */
  when: string;
  matches(change: RiskInput): boolean;
}

export interface RatedChange {
  risk: ChangeRisk;
  rule: string;
}

const after = (c: RiskInput, field: string): unknown => c.changes.find((f) => f.field === field)?.after;
const has = (c: RiskInput, field: string) => c.changes.some((f) => f.field === field);
const is = (kind: ObjectKind, action: ChangeAction) => (c: RiskInput) =>
  c.kind === kind && c.action === action;

/** Sizes and counts whose decrease takes resources away from a VM, a host or a datastore. */
export const SHRINKABLE_FIELDS = [
  'memoryMiB',
  'vcpus',
  'virtualSizeBytes',
  'capacityBytes',
  'memoryBytes',
  'cpus',
] as const;

const shrunk = (c: RiskInput) =>
  c.action === 'setting-changed' &&
  c.changes.some(
    (f) =>
      (SHRINKABLE_FIELDS as readonly string[]).includes(f.field) &&
      typeof f.before === 'number' &&
      typeof f.after === 'number' &&
      f.after < f.before,
  );

/** Fields of a VM record that say where it runs, not what it is. */
const PLACEMENT_FIELDS = new Set(['host']);
/** Fields of a disk record that change when its image moves to another datastore. */
const DISK_PLACEMENT_FIELDS = new Set(['datastore', 'path']);

const onlyFields = (c: RiskInput, fields: Set<string>) =>
  c.changes.length > 0 && c.changes.every((f) => fields.has(f.field));

const RUNNING_STATES = new Set(['starting', 'running', 'paused', 'incoming', 'migrating']);

export const RISK_RULES: readonly RiskRule[] = [
  // high
  {
    id: 'host-removed',
    risk: 'high',
    when: 'a host is removed from the fabric',
    matches: is('host', 'deleted'),
  },
  {
    id: 'datastore-removed',
    risk: 'high',
    when: 'a datastore disappears from its host',
    matches: is('datastore', 'deleted'),
  },
  {
    id: 'vswitch-removed',
    risk: 'high',
    when: 'a virtual switch disappears (its VMs lose their network)',
    matches: is('vswitch', 'deleted'),
  },
  { id: 'vm-deleted', risk: 'high', when: 'a VM is deleted', matches: is('vm', 'deleted') },
  { id: 'disk-removed', risk: 'high', when: 'a disk is removed from a VM', matches: is('disk', 'deleted') },
  {
    id: 'resource-shrunk',
    risk: 'high',
    when: `a size or count decreases (${SHRINKABLE_FIELDS.join(', ')})`,
    matches: shrunk,
  },
  {
    id: 'running-vm-memory',
    risk: 'high',
    when: "a running VM's memory changes",
    matches: (c) => c.kind === 'vm' && c.vmRunning === true && has(c, 'memoryMiB'),
  },
  {
    id: 'running-vm-nic',
    risk: 'high',
    when: "a running VM's NIC is added, removed or changed",
    matches: (c) => c.kind === 'nic' && c.vmRunning === true,
  },
  {
    id: 'move-failed',
    risk: 'high',
    when: 'a move failed (and was rolled back, or interrupted by a manager restart)',
    matches: (c) => c.kind === 'vm' && after(c, 'move') === 'failed',
  },
  {
    id: 'host-unreachable',
    risk: 'high',
    when: "a host's agent stops answering",
    matches: (c) => c.kind === 'host' && after(c, 'state') === 'unreachable',
  },
  {
    id: 'vm-crashed',
    risk: 'high',
    when: 'a guest crashed',
    matches: (c) => c.kind === 'vm' && after(c, 'state') === 'crashed',
  },
  // medium
  {
    id: 'token-created',
    risk: 'medium',
    when: 'an API token is created (its role recorded, never the secret)',
    matches: is('token', 'created'),
  },
  { id: 'token-deleted', risk: 'medium', when: 'an API token is deleted', matches: is('token', 'deleted') },
  {
    id: 'token-secret-replaced',
    risk: 'medium',
    when: "the admin token's secret is replaced at start",
    matches: (c) => c.kind === 'token' && c.action === 'setting-changed',
  },
  {
    id: 'move-cancelled',
    risk: 'medium',
    when: 'a move was cancelled (rolled back on request)',
    matches: (c) => c.kind === 'vm' && after(c, 'move') === 'cancelled',
  },
  {
    id: 'clean-up-pending',
    risk: 'medium',
    when: "a failed move's clean-up waits for a host that did not answer",
    matches: (c) => after(c, 'clean-up') === 'pending',
  },
  {
    id: 'vm-stopped',
    risk: 'medium',
    when: 'a VM stops or shuts down',
    matches: (c) => c.kind === 'vm' && ['stopped', 'shutting-down'].includes(String(after(c, 'state'))),
  },
  {
    id: 'job-ended-by-manager',
    risk: 'medium',
    when: 'the manager ended a job itself (e.g. after a restart)',
    matches: (c) => c.kind === 'job',
  },
  { id: 'pool-deleted', risk: 'medium', when: 'a resource pool is deleted', matches: is('pool', 'deleted') },
  { id: 'cluster-deleted', risk: 'medium', when: 'a cluster is deleted', matches: is('cluster', 'deleted') },
  {
    id: 'cluster-membership',
    risk: 'medium',
    when: "a cluster's hosts change (a host joins or is evicted)",
    matches: is('cluster', 'setting-changed'),
  },
  {
    id: 'host-maintenance',
    risk: 'medium',
    when: 'a host enters or leaves maintenance (entering it drains its VMs)',
    matches: (c) => c.kind === 'host' && has(c, 'maintenance'),
  },
  {
    id: 'pool-membership',
    risk: 'medium',
    when: "a pool's hosts change",
    matches: is('pool', 'setting-changed'),
  },
  {
    id: 'nic-changed',
    risk: 'medium',
    when: "a stopped VM's NIC is added, removed or changed",
    matches: (c) => c.kind === 'nic',
  },
  {
    id: 'settings-changed',
    risk: 'medium',
    when: 'a setting of a host, datastore, virtual switch, VM or disk changes (beyond the rules above)',
    matches: (c) =>
      c.action === 'setting-changed' &&
      !(c.kind === 'vm' && onlyFields(c, PLACEMENT_FIELDS)) &&
      !(c.kind === 'disk' && onlyFields(c, DISK_PLACEMENT_FIELDS)),
  },
  // low
  {
    id: 'created',
    risk: 'low',
    when: 'a VM, host, pool, cluster, datastore, virtual switch or disk is created or joined',
    matches: (c) => c.action === 'created',
  },
  {
    id: 'vm-started',
    risk: 'low',
    when: 'a VM starts, runs, pauses or takes part in a move',
    matches: (c) => c.kind === 'vm' && RUNNING_STATES.has(String(after(c, 'state'))),
  },
  {
    id: 'move-progress',
    risk: 'low',
    when: 'a move starts, switches over or finishes',
    matches: (c) =>
      c.kind === 'vm' && ['started', 'switched-over', 'finished'].includes(String(after(c, 'move'))),
  },
  {
    id: 'vm-moved',
    risk: 'low',
    when: "a VM's host changes (a move went through)",
    matches: (c) => c.kind === 'vm' && c.action === 'setting-changed' && onlyFields(c, PLACEMENT_FIELDS),
  },
  {
    id: 'disk-moved',
    risk: 'low',
    when: "a disk's datastore or path changes (a storage move)",
    matches: (c) =>
      c.kind === 'disk' && c.action === 'setting-changed' && onlyFields(c, DISK_PLACEMENT_FIELDS),
  },
  {
    id: 'clean-up-done',
    risk: 'low',
    when: "a failed move's kept clean-up ran",
    matches: (c) => after(c, 'clean-up') === 'done',
  },
  {
    id: 'host-reconnected',
    risk: 'low',
    when: "a host's agent answers again",
    matches: (c) => c.kind === 'host' && after(c, 'state') === 'connected',
  },
];

/** The rating of a change no rule matches. */
export const UNRATED: RatedChange = { risk: 'medium', rule: 'unrated' };

const LEVEL: Record<ChangeRisk, number> = { low: 0, medium: 1, high: 2 };

/** The risk of one change and the rule that set it (see the file's comment). */
export function rateChange(change: RiskInput): RatedChange {
  let best: RiskRule | undefined;
  for (const rule of RISK_RULES) {
    if ((!best || LEVEL[rule.risk] > LEVEL[best.risk]) && rule.matches(change)) best = rule;
  }
  return best ? { risk: best.risk, rule: best.id } : UNRATED;
}

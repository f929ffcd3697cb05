import { z } from 'zod';
import {
  DatastoreClass,
  DatastoreKind,
  DatastoreLimits,
  DatastoreProbe,
  DEFAULT_DATASTORE_CLASS,
  HostInfo,
  JoinToken,
  Name,
  Vm,
  StorageId,
  VmSpec,
  VmState,
} from './agent.js';
import { MigrationPlan, MigrationPolicy, MigrationStats, StreamCompression } from './migration.js';
import { LinkChoice } from './links.js';
import { ApiError } from './problem.js';
import { MergePatchOf } from './merge-patch.js';
import { DisplayText, QueryInt, uniqueItems } from './rules.js';

/*
 * The manager's REST API, served under /api/v1 with a bearer token on every call. These schemas
 * validate every request at the manager's edge, every reply in ManagerClient, and generate the
 * OpenAPI document (/api/v1/openapi.json), so the three cannot drift apart.
 */

export const API_PREFIX = '/api/v1';

const Timestamp = z.iso.datetime().describe('ISO-8601 UTC time');

/** A host, pool or VM is addressed in paths by its id or by its name. */
export const ObjectRef = z.string().min(1).max(64);

/*
 * Every request object is strict: an unknown field is a 400 naming it. Dropping it silently would
 * turn a typo such as `dryrun` into a real move.
 */

/** The body of calls that take none; `{}` (what clients send) is accepted, anything more is not. */
export const EmptyBody = z.strictObject({}).optional();

// ---------------------------------------------------------------------------------------------
// Lists: every list is paginated with `limit` and an opaque `cursor` taken from `nextCursor`.

export const PageQuery = z.strictObject({
  limit: QueryInt(1, 1000).default(100),
  cursor: z.string().min(1).max(512).optional(),
});
export type PageQuery = z.input<typeof PageQuery>;

export function Page<T extends z.ZodType>(item: T) {
  return z.object({
    items: z.array(item),
    /** Pass as `cursor` to get the next page; null on the last page. */
    nextCursor: z.string().nullable(),
  });
}
export type Page<T> = { items: T[]; nextCursor: string | null };

// ---------------------------------------------------------------------------------------------
// Tokens

export const TokenRole = z.enum(['admin', 'read-only']);
export type TokenRole = z.infer<typeof TokenRole>;

export const TokenName = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9._-]{0,62}$/,
    'must be 1-63 lowercase letters, digits, dots, dashes or underscores',
  );

/** A manager's name (`silobreak manager --name`), unique among the managers of one database. */
export const ManagerName = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/,
    'must be 1-63 letters, digits, dots, dashes or underscores, starting with a letter or digit',
  );

export const Token = z.object({ name: TokenName, role: TokenRole, createdAt: Timestamp });
export type Token = z.infer<typeof Token>;

export const CreateTokenRequest = z.strictObject({ name: TokenName, role: TokenRole });
export type CreateTokenRequest = z.input<typeof CreateTokenRequest>;

/** The secret is shown once, in this reply; the manager keeps only its hash. */
export const CreatedToken = Token.extend({ secret: z.string() });
export type CreatedToken = z.infer<typeof CreatedToken>;

// ---------------------------------------------------------------------------------------------
// Pools and hosts

export const Pool = z.object({
  id: z.uuid(),
  name: Name,
  description: z.string(),
  /** Names of the member hosts; a host belongs to at most one pool. */
  hosts: z.array(Name),
  createdAt: Timestamp,
});
export type Pool = z.infer<typeof Pool>;

export const CreatePoolRequest = z.strictObject({ name: Name, description: DisplayText(500).default('') });
export type CreatePoolRequest = z.input<typeof CreatePoolRequest>;

export const PoolHostRequest = z.strictObject({ host: ObjectRef });
export type PoolHostRequest = z.input<typeof PoolHostRequest>;

export const HostState = z.enum(['connected', 'unreachable']);
export type HostState = z.infer<typeof HostState>;

// ---------------------------------------------------------------------------------------------
// Clusters (issue 30): hosts that share datastores; a VM of a cluster can be restarted on another
// of its hosts (HA), and a host can be drained into maintenance.

/**
 * none; entering: a drain moves its running VMs off (no new VMs, no placement, no moves to it);
 * in: none runs there (stopped VMs may stay, as vSphere keeps powered-off VMs registered).
 */
export const HostMaintenance = z.enum(['none', 'entering', 'in']);
export type HostMaintenance = z.infer<typeof HostMaintenance>;

/** A host's sanlock host id in its cluster: sanlock's range, unique within the cluster. */
export const LEASE_HOST_ID = { min: 1, max: 2000 } as const;
export const LeaseHostId = z.number().int().min(LEASE_HOST_ID.min).max(LEASE_HOST_ID.max);

export const ClusterMember = z.object({
  name: Name,
  /** Assigned at join: the lowest free one. */
  leaseHostId: LeaseHostId,
  state: HostState,
  maintenance: HostMaintenance,
});
export type ClusterMember = z.infer<typeof ClusterMember>;

export const Cluster = z.object({
  id: z.uuid(),
  name: Name,
  /** Its hosts by name; a host is in at most one cluster. */
  hosts: z.array(ClusterMember),
  createdAt: Timestamp,
});
export type Cluster = z.infer<typeof Cluster>;

export const CreateClusterRequest = z.strictObject({ name: Name });
export type CreateClusterRequest = z.input<typeof CreateClusterRequest>;

export const ClusterHostRequest = z.strictObject({ host: ObjectRef });
export type ClusterHostRequest = z.input<typeof ClusterHostRequest>;

/** The `result` of a succeeded host-drain job: where each VM went, which stayed (stopped). */
export const DrainResult = z.object({
  host: Name,
  moved: z.array(z.object({ vm: Name, to: Name, jobId: z.uuid() })),
  stayed: z.array(Name),
});
export type DrainResult = z.infer<typeof DrainResult>;

/** A VM's restart priority: higher first (HA restarts and drains). */
export const HA_PRIORITY = { min: 0, max: 1000, default: 500 } as const;
/** At most this many preferred hosts per VM. */
export const MAX_PREFERRED_HOSTS = 16;

/** `PUT /vms/:vm/ha`: a VM's HA settings, all of them (priority and preferredHosts default). */
export const VmHaRequest = z.strictObject({
  /** Restarted on another host of its cluster when its host dies. */
  protected: z.boolean(),
  priority: z.number().int().min(HA_PRIORITY.min).max(HA_PRIORITY.max).default(HA_PRIORITY.default),
  /** Hosts (names) to restart it on, or drain it to, first: each must exist. */
  preferredHosts: z
    .array(Name)
    .max(MAX_PREFERRED_HOSTS)
    .superRefine(uniqueItems('', (h) => h))
    .default([]),
});
export type VmHaRequest = z.input<typeof VmHaRequest>;
/** PATCH /vms/:vm/ha: a merge patch of those settings (`priority: null` restores the default). */
export const VmHaPatch = MergePatchOf(VmHaRequest);
export type VmHaPatch = { protected?: boolean; priority?: number | null; preferredHosts?: string[] | null };

export const VmHa = z.object({
  protected: z.boolean(),
  priority: z.number().int(),
  preferredHosts: z.array(Name),
});
export type VmHa = z.infer<typeof VmHa>;

/** A joined host: what its agent reports (HostInfo) plus what the manager keeps about it. */
export const Host = HostInfo.extend({
  id: z.uuid(),
  /** Base URL of the host's agent (HTTPS), e.g. https://10.251.0.11:8470 */
  agentUrl: z.string(),
  /** The host certificate the fabric CA issued it (renewed when fewer than 30 days are left). */
  certificate: z.object({ serial: z.string(), notAfter: Timestamp }).optional(),
  state: HostState,
  pool: Name.nullable(),
  /** The host's cluster, and its sanlock host id there; null for a standalone host. */
  cluster: Name.nullable(),
  leaseHostId: LeaseHostId.nullable(),
  maintenance: HostMaintenance,
  vmCount: z.number().int(),
  /**
   * The best class of the host's datastores: `fast` over `standard` over any other name (of
   * those, the first alphabetically); `standard` for a host without datastores.
   */
  class: DatastoreClass,
  /** Last time the agent answered a poll. */
  lastSeenAt: Timestamp,
  /** Why the last poll failed, while the host is unreachable. */
  lastError: z.string().optional(),
  createdAt: Timestamp,
});
export type Host = z.infer<typeof Host>;

const ADDRESS_RULE = 'must be address:port of the agent, like 10.251.0.11:8470 (or an https:// URL)';
/** An agent's API address: HTTPS always (an `http://` URL is refused, not quietly upgraded). */
export const AgentAddress = z
  .string()
  .max(300, 'must be at most 300 characters')
  .regex(/^(https:\/\/)?[A-Za-z0-9.-]+:\d{1,5}\/?$/, ADDRESS_RULE)
  .refine((a) => {
    const port = Number(/:(\d+)\/?$/.exec(a)?.[1]);
    return port >= 1 && port <= 65535;
  }, 'the port must be 1-65535')
  .refine((a) => URL.canParse(/^https:\/\//.test(a) ? a : `https://${a}`), ADDRESS_RULE);

export const AddHostRequest = z.strictObject({
  /** Where the agent's API listens (HTTPS): `10.0.0.11:8470` or `https://kvm1:8470`. */
  address: AgentAddress,
  /** What `silobreak agent-join-token` printed on the host: one use. */
  joinToken: JoinToken,
  pool: ObjectRef.optional(),
});
export type AddHostRequest = z.input<typeof AddHostRequest>;

export const HostListQuery = PageQuery.extend({
  pool: ObjectRef.optional(),
  cluster: ObjectRef.optional(),
  state: HostState.optional(),
  maintenance: HostMaintenance.optional(),
});
export type HostListQuery = z.input<typeof HostListQuery>;

export const ManagedDatastore = z.object({
  id: z.uuid(),
  name: Name,
  host: Name,
  hostId: z.uuid(),
  path: z.string(),
  default: z.boolean(),
  capacityBytes: z.number().int(),
  freeBytes: z.number().int(),
  class: DatastoreClass,
  /** Absent: no limits. */
  limits: DatastoreLimits.optional(),
  /** The last I/O probe of the datastore, if one ran. */
  probe: DatastoreProbe.omit({ durationMs: true }).optional(),
  /** One datastore (`datastore show`): the bytes retained copies of VMs that left hold here (used space). */
  retainedBytes: z.number().int().optional(),
  /** `local` to its host, or `shared` storage other hosts may see too (DatastoreKind). */
  kind: DatastoreKind,
  /** A shared datastore's storage: hosts whose datastores carry the same id see the same files. */
  storageId: StorageId.optional(),
});
export type ManagedDatastore = z.infer<typeof ManagedDatastore>;

/** `fast` over `standard` over any other class name (of those, the first alphabetically). */
export function bestClass(classes: readonly string[]): string {
  const rank = (c: string) => (c === 'fast' ? 0 : c === DEFAULT_DATASTORE_CLASS ? 1 : 2);
  return [...classes].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))[0] ?? DEFAULT_DATASTORE_CLASS;
}

export const ManagedVSwitch = z.object({
  id: z.uuid(),
  name: Name,
  host: Name,
  hostId: z.uuid(),
  bridge: z.string(),
  uplink: z.string().optional(),
});
export type ManagedVSwitch = z.infer<typeof ManagedVSwitch>;

export const HostScopedListQuery = PageQuery.extend({ host: ObjectRef.optional() });
export type HostScopedListQuery = z.input<typeof HostScopedListQuery>;

// ---------------------------------------------------------------------------------------------
// VMs

/** A VM as the manager knows it: the agent's view plus where it lives. */
/** current: the host's version; outdated: older; missing: no agent answered since the boot; not-answering: silent now. */
export const ToolsStatus = z.enum(['current', 'outdated', 'missing', 'not-answering']);
export type ToolsStatus = z.infer<typeof ToolsStatus>;

export const VmTools = z.object({
  /** null while the VM does not run, or boots and has not answered yet. */
  status: ToolsStatus.nullable(),
  /** The guest agent version last reported, if any ever answered. */
  installed: z.string().nullable(),
  /** The version on the tools disk of the VM's host; null when the host has none. */
  current: z.string().nullable(),
});
export type VmTools = z.infer<typeof VmTools>;

export const ManagedVm = Vm.extend({
  host: Name,
  hostId: z.uuid(),
  pool: Name.nullable(),
  /** The cluster of its host; null when the host is standalone. */
  cluster: Name.nullable(),
  ha: VmHa,
  /** Last time the manager's record of this VM changed. */
  updatedAt: Timestamp,
  /**
   * Other hosts reporting this VM while it lives on `host`: an incoming shell a failed move left
   * behind until its clean-up runs (`silobreak vm move --cleanup <vm>` removes it at once).
   */
  otherCopies: z.array(z.object({ host: Name, state: VmState, seenAt: Timestamp })).optional(),
  /** The guest tools: is the guest agent answering, and is it the host's version. */
  tools: VmTools.optional(),
});
export type ManagedVm = z.infer<typeof ManagedVm>;

export const VmListQuery = PageQuery.extend({
  host: ObjectRef.optional(),
  pool: ObjectRef.optional(),
  state: VmState.optional(),
  /** Substring of the VM's name. */
  name: z.string().max(64).optional(),
  /** Only VMs with this tools status: `outdated` lists the VMs whose guest tools need an upgrade. */
  tools: ToolsStatus.optional(),
});
export type VmListQuery = z.input<typeof VmListQuery>;

/** VmSpec as the manager takes it: the agent's own rules (src/api/agent.ts), one definition. */
export const CreateVmSpec = VmSpec;

/**
 * Creates a VM (as a job). Give `host`, or `pool` to let the manager pick the member host with the
 * most free memory. Disks that name no datastore go to the host's default datastore. A MAC must
 * not be used by any other VM the manager knows, on any host: the VM network is shared.
 */
export const CreateVmRequest = z
  .strictObject({ host: ObjectRef.optional(), pool: ObjectRef.optional(), spec: CreateVmSpec })
  .refine((r) => r.host !== undefined || r.pool !== undefined, {
    message: 'give host or pool',
    path: ['host'],
  });
export type CreateVmRequest = z.input<typeof CreateVmRequest>;

export const ShutdownVmRequest = z.strictObject({
  /** Seconds to wait after the ACPI request before forcing the VM off. */
  timeoutSeconds: z.number().int().min(0).max(3600).default(60),
});
export type ShutdownVmRequest = z.input<typeof ShutdownVmRequest>;

export const DeleteVmQuery = z.strictObject({
  /** Also delete the VM's disk images (default true). */
  deleteDisks: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true'),
});
export type DeleteVmQuery = z.input<typeof DeleteVmQuery>;

// ---------------------------------------------------------------------------------------------
// Moves: a VM to another host with its disks (live when running, cold when stopped), or its disks
// to another datastore of the same host. Both run as jobs; cancel them with the job cancel call.

/** Where the disks go: one datastore for all, or a datastore per disk id (others: the default). */
export const MoveDatastores = z.union([Name, z.record(Name, Name)]);
export type MoveDatastores = z.infer<typeof MoveDatastores>;

/** The convergence policy a move request may give: the agents' own, with its bounds (migration.ts). */
export const MovePolicy = MigrationPolicy;

export const MoveVmRequest = z.strictObject({
  /** The target host (id or name). */
  to: ObjectRef,
  /** Target datastore(s); the target host's default datastore when absent. */
  datastore: MoveDatastores.optional(),
  /**
   * Carry the disk mirror and the memory stream over TLS, the target accepting only the source's
   * certificate (default); false only for a trusted dedicated link. A cold move's copy always
   * runs over TLS with a secret of its own.
   */
  secure: z.boolean().default(true),
  /** Keep the source's disk files after the move. */
  keepSource: z.boolean().default(false),
  /**
   * Keep the source's disks as a retained copy (read-only, never started): a later move back to
   * that host sends only what changed. A move back onto a retained copy retains by itself.
   */
  retain: z.boolean().default(false),
  /** Convergence policy of the memory copy; Silobreak's defaults when absent. */
  policy: MovePolicy.optional(),
  /** Only check and plan: reply 200 with the plan and every failed check, change nothing. */
  dryRun: z.boolean().default(false),
});
export type MoveVmRequest = z.input<typeof MoveVmRequest>;

export const VmMoveStorageRequest = z.strictObject({
  /** The datastore of the VM's host the disks move to. */
  datastore: Name,
  /** Disk ids to move (a VM has at most 8); every disk not already there when absent. */
  disks: z
    .array(Name)
    .min(1)
    .max(8)
    .superRefine(uniqueItems('', (d) => d))
    .optional(),
  dryRun: z.boolean().default(false),
});
export type VmMoveStorageRequest = z.input<typeof VmMoveStorageRequest>;

/**
 * `POST /vms/:vm/move-cleanup`: what is left of the VM's failed moves on other hosts is removed
 * now (undos that waited for a host, incoming copies no move in flight names).
 */
export const MoveCleanupResult = z.object({
  vm: Name,
  /** The VM's host: never touched. */
  host: Name,
  removed: z.array(z.object({ host: Name, what: z.string(), migrationId: z.uuid().optional() })),
  /** What could not be done now (a host that does not answer); retried when it answers. */
  pending: z.array(z.object({ host: Name, what: z.string(), reason: z.string() })),
});
export type MoveCleanupResult = z.infer<typeof MoveCleanupResult>;

export const MoveCheck = z.object({
  /** e.g. `target-memory`, `datastore-space`. */
  check: z.string(),
  ok: z.boolean(),
  /** Passed, but worth knowing before the move (e.g. the guest tools are older than the target's). */
  warning: z.boolean().optional(),
  /** What was found, and for a failed check what to fix. */
  detail: z.string(),
  field: z.string().optional(),
});
export type MoveCheck = z.infer<typeof MoveCheck>;

export const MoveDiskPlan = z.object({
  diskId: Name,
  fromDatastore: Name,
  toDatastore: Name,
  virtualSizeBytes: z.number().int(),
  allocatedBytes: z.number().int(),
  /** Free space the move needs for this disk on the target datastore (see `spaceRule`); 0 when it stays. */
  requiredBytes: z.number().int(),
  /**
   * The disk stays where it is: its datastore is shared storage the target sees too (the target's
   * `toDatastore` carries the same `storageId`). Nothing of it is copied; the target opens the same
   * `file` (its path relative to the datastore's root).
   */
  stays: z.object({ storageId: StorageId, file: z.string().min(1) }).optional(),
});
export type MoveDiskPlan = z.infer<typeof MoveDiskPlan>;

/** A disk's route in a plan, for people: "stays on shared datastore X (memory-only)" or where it is copied. */
export function describeDiskRoute(d: Pick<MoveDiskPlan, 'toDatastore' | 'stays'>): string {
  return d.stays ? `stays on shared datastore ${d.toDatastore} (memory-only)` : `copied to ${d.toDatastore}`;
}

/** Job kinds that move a VM; while one runs, reconciliation leaves that VM's row to it. */
export const MOVE_JOB_KINDS = ['vm-move', 'vm-move-storage'] as const;

export const MovePlan = z.object({
  kind: z.enum(MOVE_JOB_KINDS),
  vm: z.object({ id: z.uuid(), name: Name }),
  /** live: the VM runs during the move; cold: it is stopped and only its disks and definition move. */
  mode: z.enum(['live', 'cold']),
  from: Name,
  to: Name,
  disks: z.array(MoveDiskPlan),
  /**
   * A live move whose every disk stays on shared storage both hosts see: only the guest's memory
   * (and device state) crosses the link. Absent from managers older than shared storage.
   */
  memoryOnly: z.boolean().default(false),
  /** Target memory the move needs (live moves). */
  memoryBytes: z.number().int(),
  /** How `requiredBytes` is computed. */
  spaceRule: z.string(),
  checks: z.array(MoveCheck),
  /** True when every check passed. */
  ok: z.boolean(),
  /** A live move to another host: only the changes since a retained copy, or everything, and why. */
  diskCopy: z
    .union([
      z.object({
        kind: z.literal('delta'),
        /** What the disks' tracking bitmaps mark now (the guest adds to it until the move). */
        bytes: z.number().int(),
        generationId: z.string(),
        /** When the VM left the target host, whose retained copy the delta goes onto. */
        retainedAt: z.iso.datetime(),
      }),
      z.object({ kind: z.literal('full'), reason: z.string() }),
    ])
    .optional(),
  /**
   * Live moves, dry run: how the source would encode the memory stream now, and why (its agent's
   * plan; absent when the source did not answer). The move itself chooses again when it starts.
   */
  stream: StreamCompression.optional(),
  /**
   * Live moves, dry run: the link rate the plan would use and where it came from (the caller's,
   * a probe made for this dry run, or the stored figure when the probe failed), or why none.
   */
  link: LinkChoice.optional(),
});
export type MovePlan = z.infer<typeof MovePlan>;

/** The wording of a plan's disk copy (dry run, job progress). */
export function describeDiskCopy(copy: NonNullable<MovePlan['diskCopy']>): string {
  if (copy.kind === 'full') return `full copy: ${copy.reason}`;
  const mib = (copy.bytes / 1024 / 1024).toFixed(copy.bytes < 10 * 1024 * 1024 ? 1 : 0);
  return `delta: ${mib} MiB to send (retained copy from ${copy.retainedAt})`;
}

/** A retained copy (issue 17) as the manager records it. */
export const RetainedCopyView = z.object({
  id: z.uuid(),
  vm: z.object({ id: z.uuid(), name: Name }),
  host: Name,
  generationId: z.string(),
  departedAt: z.iso.datetime(),
  expiresAt: z.iso.datetime(),
  /** Disk id -> the datastore of the host holding its image. */
  datastores: z.record(z.string(), Name),
  allocatedBytes: z.number().int(),
  /**
   * `usable`: a move of the VM back to this host sends only the delta; `stale`: the VM has moved
   * on since (its disks track another generation); `invalid`: the host's check failed (`reason`).
   */
  state: z.enum(['usable', 'stale', 'invalid']),
  reason: z.string().optional(),
});
export type RetainedCopyView = z.infer<typeof RetainedCopyView>;

export const RetainedCopyQuery = z.strictObject({
  /** Only this VM's copies (id or name). */
  vm: ObjectRef.optional(),
});
export type RetainedCopyQuery = z.input<typeof RetainedCopyQuery>;

/** The `result` of a succeeded vm-move / vm-move-storage job. */
export const MoveResult = z.object({
  vm: z.object({ id: z.uuid(), name: Name }),
  mode: z.enum(['live', 'cold']),
  from: Name,
  to: Name,
  totalTimeMs: z.number(),
  /** QEMU-reported downtime of the switchover (live moves). */
  downtimeMs: z.number().optional(),
  /**
   * How long the guest was paused (live moves between hosts): from the source QEMU's pause for the
   * switchover to the target's resume, by the two hosts' clocks (so only as good as their sync).
   */
  guestDowntimeMs: z.number().optional(),
  diskBytes: z.number().optional(),
  memoryBytes: z.number().optional(),
  throttlePeakPercent: z.number().optional(),
  throttleSeconds: z.number().optional(),
  keptSource: z.boolean(),
  /** Everything the engine measured. */
  stats: MigrationStats,
  /**
   * Live moves: the plan the copy ran on (the link rate and where it came from, the stream's cap,
   * channels and encoding, and the reasons for each).
   */
  plan: MigrationPlan.optional(),
  /** Set when a cancel came after the guest had already switched over (the move went through). */
  note: z.string().optional(),
});
export type MoveResult = z.infer<typeof MoveResult>;

// ---------------------------------------------------------------------------------------------
// Jobs

export const JobState = z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']);
export type JobState = z.infer<typeof JobState>;
export const TERMINAL_JOB_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

/** Job kinds: vm-create, vm-start, vm-shutdown, vm-stop, vm-delete, vm-move (open-ended). */
export const JobKind = z.string().regex(/^[a-z][a-z0-9-]{0,40}$/, 'must be a lowercase job kind');

/**
 * Kinds of inventory objects; `job` records a job ended by the manager itself (e.g. after a
 * restart); `token` records API tokens created and deleted (never their secrets).
 */
export const ObjectKind = z.enum([
  'pool',
  'host',
  'datastore',
  'vswitch',
  'vm',
  'disk',
  'nic',
  'job',
  'token',
  /** Placement's mode, settings and schedules (issue 18). */
  'placement',
  /** A cluster and its hosts (issue 30). */
  'cluster',
  /** A rolling upgrade of hosts (issue 30): the target of its `host-upgrade` job. */
  'upgrade',
]);
export type ObjectKind = z.infer<typeof ObjectKind>;

export const ObjectIdentity = z.object({ kind: ObjectKind, id: z.string(), name: z.string() });
export type ObjectIdentity = z.infer<typeof ObjectIdentity>;

export const JobProgress = z.object({
  phase: z.string(),
  /** 0-100, never decreasing over a job's life. */
  percent: z.number().min(0).max(100),
  message: z.string(),
  details: z.record(z.string(), z.unknown()),
});
export type JobProgress = z.infer<typeof JobProgress>;

export const JobError = z.object({ code: z.string(), detail: z.string() });
export type JobError = z.infer<typeof JobError>;

export const Job = z.object({
  id: z.uuid(),
  kind: JobKind,
  state: JobState,
  target: ObjectIdentity,
  /** Token name that created the job, or `system`. */
  createdBy: z.string(),
  progress: JobProgress,
  /** What the job produced when it succeeded (for VM jobs: the ManagedVm). */
  result: z.unknown().optional(),
  error: JobError.optional(),
  cancelRequested: z.boolean(),
  createdAt: Timestamp,
  startedAt: Timestamp.optional(),
  finishedAt: Timestamp.optional(),
  updatedAt: Timestamp,
});
export type Job = z.infer<typeof Job>;

/** Reply of every call that starts a job (HTTP 202, also in the Location header). */
export const JobAccepted = z.object({ job: Job, url: z.string() });
export type JobAccepted = z.infer<typeof JobAccepted>;

export const JobListQuery = PageQuery.extend({
  state: JobState.optional(),
  kind: JobKind.optional(),
  /** Id of the job's target object. */
  targetId: z.string().max(128).optional(),
});
export type JobListQuery = z.input<typeof JobListQuery>;

// ---------------------------------------------------------------------------------------------
// Change records

export const ChangeAction = z.enum(['created', 'deleted', 'state-changed', 'setting-changed']);
export type ChangeAction = z.infer<typeof ChangeAction>;

export const FieldChange = z.object({ field: z.string(), before: z.unknown(), after: z.unknown() });
export type FieldChange = z.infer<typeof FieldChange>;

export const ChangeRisk = z.enum(['low', 'medium', 'high']);
export type ChangeRisk = z.infer<typeof ChangeRisk>;

export const ChangeRecord = z.object({
  /** Increases with every record: a stable order even for records made in the same millisecond. */
  id: z.number().int(),
  at: Timestamp,
  /**
   * Token name; `agent:<host>` for what a host's agent reported that the manager did not do (drift:
   * a VM made or deleted on the agent directly); `system` for the manager's own observations.
   */
  actor: z.string(),
  object: ObjectIdentity,
  action: ChangeAction,
  /** For setting-changed and state-changed: each field's value before and after. */
  changes: z.array(FieldChange),
  /** Host the object lives on, when it lives on one. */
  host: Name.optional(),
  jobId: z.uuid().optional(),
  /** How risky the change is, by the documented rules (src/manager/change-risk.ts, README). */
  risk: ChangeRisk,
  /** The id of the rule that set `risk`. */
  riskRule: z.string(),
  /**
   * The manager that wrote the record (its `--name`; several managers may share a database);
   * null for records written before records named their manager.
   */
  manager: z.string().nullable(),
});
export type ChangeRecord = z.infer<typeof ChangeRecord>;

/** Without `since`, change queries cover this many days back from now (an admin's usual week). */
export const CHANGE_WINDOW_DAYS = 7;

/** A risk filter as people and query strings write it: `high`, or several joined by commas. */
export const RiskFilter = z
  .string()
  .regex(
    /^(low|medium|high)(,(low|medium|high)){0,2}$/,
    'must be low, medium or high, or several of them joined by commas',
  );

/** The filters of the change list and the change timeline. */
const ChangeFilters = {
  kind: ObjectKind.optional(),
  objectId: z.string().max(128).optional(),
  /**
   * The object's name, exactly (case-insensitive): the object and its parts, whose names start
   * with it and a slash (a VM's disks and NICs, a host's datastores and virtual switches).
   */
  object: z.string().min(1).max(200).optional(),
  actor: z.string().max(64).optional(),
  /** The name of the manager that wrote the record, exactly. */
  manager: ManagerName.optional(),
  /** One risk, or several joined by commas: `high` or `high,medium`. */
  risk: RiskFilter.transform((s) => [...new Set(s.split(','))] as ChangeRisk[]).optional(),
  /** Default: CHANGE_WINDOW_DAYS days before now. */
  since: z.iso.datetime().optional(),
  until: z.iso.datetime().optional(),
  /** Case-insensitive substring of the object's name, the fields or the values. */
  text: z.string().min(1).max(200).optional(),
};

export const ChangeListQuery = PageQuery.extend(ChangeFilters);
export type ChangeListQuery = z.input<typeof ChangeListQuery>;

export const TimelineBucket = z.enum(['hour', 'day']);
export type TimelineBucket = z.infer<typeof TimelineBucket>;
export const TimelineGrouping = z.enum(['kind', 'risk']);
export type TimelineGrouping = z.infer<typeof TimelineGrouping>;

/** Most buckets one timeline answers (31 days by the hour, 5 years by the day fit). */
export const MAX_TIMELINE_BUCKETS = 2000;

export const ChangeTimelineQuery = z.strictObject({
  ...ChangeFilters,
  bucket: TimelineBucket.default('hour'),
  by: TimelineGrouping.default('risk'),
});
export type ChangeTimelineQuery = z.input<typeof ChangeTimelineQuery>;

/**
 * Change counts per time bucket, one series per kind or risk, in the shape a chart draws: every
 * bucket of the window is present (zero when empty), `counts[i]` belongs to `buckets[i]`.
 */
export const ChangeTimeline = z.object({
  bucket: TimelineBucket,
  by: TimelineGrouping,
  /** The first bucket's start (the window's start, rounded down to the bucket). */
  start: Timestamp,
  /** The window's end (exclusive). */
  end: Timestamp,
  /** Each bucket's start. */
  buckets: z.array(Timestamp),
  series: z.array(z.object({ name: z.string(), counts: z.array(z.number().int()) })),
  /** All counts summed: the number of changes the list gives for the same filters and window. */
  total: z.number().int(),
});
export type ChangeTimeline = z.infer<typeof ChangeTimeline>;

// ---------------------------------------------------------------------------------------------

export const ManagerInfo = z.object({
  version: z.string(),
  hosts: z.number().int(),
  vms: z.number().int(),
  /** The calling token. */
  token: Token.pick({ name: true, role: true }),
});
export type ManagerInfo = z.infer<typeof ManagerInfo>;

/**
 * Several managers on one database (issue 31): the one leading holds the lease under `epoch`
 * (every agent call of it carries that epoch); the others answer reads and take writes.
 */
const ManagerEntry = z.object({ id: z.string(), name: z.string(), url: z.string() });
export const ManagersStatus = z.object({
  /** The manager that answered. */
  self: ManagerEntry.extend({ leading: z.boolean(), epoch: z.number().int().positive().optional() }),
  /** The current lease holder; absent while the lease has expired (a takeover is due). */
  leader: ManagerEntry.extend({
    epoch: z.number().int().positive(),
    since: z.iso.datetime(),
    expiresAt: z.iso.datetime(),
  }).optional(),
  /** Every manager that checked the lease lately (a stopped one leaves the list). */
  managers: z.array(
    ManagerEntry.extend({ version: z.string(), startedAt: z.iso.datetime(), seenAt: z.iso.datetime() }),
  ),
});
export type ManagersStatus = z.infer<typeof ManagersStatus>;

/** Problem `code`s the manager uses, with their HTTP status. */
export const MANAGER_ERROR_CODES = {
  'invalid-input': 400,
  'request-timeout': 408,
  'body-too-large': 413,
  'uri-too-long': 414,
  'unsupported-media-type': 415,
  'headers-too-large': 431,
  unauthorized: 401,
  forbidden: 403,
  'not-found': 404,
  conflict: 409,
  'insufficient-capacity': 409,
  'job-finished': 409,
  'upgrade-stranded': 422,
  'host-unreachable': 502,
  'agent-error': 502,
  'not-leader': 503,
  'database-unavailable': 503,
  internal: 500,
} as const;
export type ManagerErrorCode = keyof typeof MANAGER_ERROR_CODES;

/** Each code's problem title: its own words, so 413, 414, 415 and 431 are not "Invalid input". */
export const MANAGER_ERROR_TITLES: Readonly<Record<ManagerErrorCode, string>> = {
  'invalid-input': 'Invalid input',
  'request-timeout': 'Request timeout',
  'body-too-large': 'Content too large',
  'uri-too-long': 'URI too long',
  'unsupported-media-type': 'Unsupported media type',
  'headers-too-large': 'Request header fields too large',
  unauthorized: 'Unauthorized',
  forbidden: 'Forbidden',
  'not-found': 'Not found',
  conflict: 'Conflict',
  'insufficient-capacity': 'Insufficient capacity',
  'job-finished': 'Job already ended',
  'upgrade-stranded': 'Upgrade plan strands a VM',
  'host-unreachable': 'Host unreachable',
  'agent-error': 'Agent error',
  'not-leader': 'Not the leading manager',
  'database-unavailable': 'Database unavailable',
  internal: 'Internal error',
};

/** Whether the manager's answer was one of these errors: callers branch on codes, never on HTTP statuses. */
export function isManagerError(error: unknown, ...codes: ManagerErrorCode[]): error is ApiError {
  return error instanceof ApiError && (codes as string[]).includes(error.code);
}

import { z } from 'zod';
import { DatastoreSpec, DatastoreUpdate } from './agent.js';
import {
  AddHostRequest,
  API_PREFIX,
  CHANGE_WINDOW_DAYS,
  ChangeListQuery,
  ChangeRecord,
  ChangeTimeline,
  ChangeTimelineQuery,
  Cluster,
  ClusterHostRequest,
  CreateClusterRequest,
  CreatedToken,
  CreatePoolRequest,
  CreateTokenRequest,
  CreateVmRequest,
  DeleteVmQuery,
  EmptyBody,
  Host,
  HostListQuery,
  HostScopedListQuery,
  Job,
  JobAccepted,
  JobListQuery,
  ManagedDatastore,
  ManagedVm,
  ManagedVSwitch,
  ManagerName,
  MANAGER_ERROR_CODES,
  MANAGER_ERROR_TITLES,
  ManagerInfo,
  ManagersStatus,
  type ManagerErrorCode,
  MoveCleanupResult,
  MovePlan,
  MoveVmRequest,
  ObjectRef,
  Page,
  PageQuery,
  Pool,
  PoolHostRequest,
  ShutdownVmRequest,
  Token,
  TokenName,
  VmHaPatch,
  VmHaRequest,
  VmListQuery,
  VmMoveStorageRequest,
  RetainedCopyQuery,
  RetainedCopyView,
} from './manager.js';
import { HostLinks, ProbedLinks, ProbeLinksRequest } from './links.js';
import { FABRIC_EVENT_KINDS, FabricEventQuery } from './events.js';
import {
  DatastoreRef,
  DatastoreSeries,
  DatastoreThresholds,
  DiskSeries,
  DiskSeriesRef,
  StorageDatastoreQuery,
  StorageDatastoreRow,
  StorageDiskQuery,
  StorageDiskRow,
  StorageIssue,
  StorageIssueQuery,
  StorageSeriesQuery,
  StorageThresholdOverrides,
  StorageThresholdPatch,
  VmSeries,
} from './storage.js';
import {
  CreateScheduleRequest,
  PlacementConfig,
  PlacementModeBody,
  PlacementSchedule,
  PlacementSettingsOverrides,
  PlacementSettingsPatch,
  PlacementStatus,
  Recommendation,
  RecommendationQuery,
  RecommendationRef,
  ScheduleRef,
  SuggestRequest,
  SuggestResult,
  VmPlacement,
  VmPlacementPatch,
  VmPlacementRequest,
} from './placement.js';
import { HTTP_REFUSALS } from './problem.js';
import { UpgradePlan, UpgradePlanRequest, UpgradeRefusal, UpgradeRunRequest } from './upgrade.js';
import {
  defineRoute,
  OpenApiDocument,
  openApiDocument,
  type ErrorCatalogue,
  type OtherReply,
} from './route-table.js';

/*
 * The manager's REST API, declared once: the manager serves exactly these routes (validating each
 * part with these schemas), ManagerClient builds its calls from them and GET /api/v1/openapi.json
 * is generated from them. Every route needs a bearer token; a read-only one may only GET.
 *
 * Adding a route: an entry here, its handler in src/manager/http.ts's `handlers()` (a missing one
 * fails to compile), and a ManagerClient method calling `http.call(managerRoutes.<name>, ...)`.
 */

const route = defineRoute<ManagerErrorCode>();

/** What each code means, with its status (MANAGER_ERROR_CODES). */
const ABOUT: Record<ManagerErrorCode, string> = {
  'invalid-input': 'the request is not valid; `field` names the part at fault',
  'request-timeout': HTTP_REFUSALS['request-timeout'].about,
  'body-too-large': HTTP_REFUSALS['body-too-large'].about,
  'uri-too-long': HTTP_REFUSALS['uri-too-long'].about,
  'unsupported-media-type': HTTP_REFUSALS['unsupported-media-type'].about,
  'headers-too-large': HTTP_REFUSALS['headers-too-large'].about,
  unauthorized: 'no valid token (checked before anything else of the request)',
  forbidden: 'the token may not do this (read-only, or not admin)',
  'not-found': 'a named object does not exist',
  conflict: 'the object is in a state or has a name that does not allow this',
  'insufficient-capacity': 'no host or datastore has room for this',
  'job-finished': 'the job has ended already',
  'upgrade-stranded':
    'an upgrade plan would leave a VM with nowhere to go: `stranded` lists each VM, its host and every other host with the rules it fails',
  'host-unreachable': "the host's agent did not answer",
  'agent-error': "the host's agent refused or failed",
  'not-leader':
    'this manager does not lead the managers of its database, and only the leader acts on hosts: the detail names the leader to send the request to (GET /managers)',
  'database-unavailable':
    "no server of the manager's database takes writes now (its primary is gone and no standby is promoted yet): try again",
  internal: 'an unexpected failure of the manager',
};
/** The extension members of the codes that carry some. */
const MEMBERS: Partial<Record<ManagerErrorCode, z.ZodObject>> = { 'upgrade-stranded': UpgradeRefusal };
export const MANAGER_ERRORS: ErrorCatalogue<ManagerErrorCode> = Object.fromEntries(
  Object.entries(MANAGER_ERROR_CODES).map(([code, status]) => [
    code,
    {
      statuses: [status],
      about: ABOUT[code as ManagerErrorCode],
      title: MANAGER_ERROR_TITLES[code as ManagerErrorCode],
      ...(MEMBERS[code as ManagerErrorCode] ? { members: MEMBERS[code as ManagerErrorCode] } : {}),
    },
  ]),
) as unknown as ErrorCatalogue<ManagerErrorCode>;

/** The answers any route may give, whatever it does (listed once, not per route). */
export const MANAGER_COMMON_ERRORS = [
  'unauthorized',
  'invalid-input',
  'request-timeout',
  'body-too-large',
  'uri-too-long',
  'unsupported-media-type',
  'headers-too-large',
  // Several managers (issue 31): what acts on a host at once is done by the leader only.
  'not-leader',
  // A primary and its standbys (issue 31): while none takes writes, any request may get this.
  'database-unavailable',
  'internal',
] as const satisfies readonly ManagerErrorCode[];

const VmRef = z.object({ vm: ObjectRef });
const HostRef = z.object({ host: ObjectRef });
const PoolRef = z.object({ pool: ObjectRef });
const ClusterRef = z.object({ cluster: ObjectRef });
const JobRef = z.object({ id: z.uuid() });

const inMaintenanceReply: OtherReply = {
  status: 200,
  description: 'no VM runs on the host: it is in maintenance at once (no drain job)',
  schema: Host,
};

const dryRunReply: OtherReply = {
  status: 200,
  description: 'dryRun: the plan with every check; nothing was changed',
  schema: MovePlan,
};

// A change of a VM through its host's agent, run as a job.
const VM_JOB_ERRORS = ['forbidden', 'not-found', 'conflict'] as const;

export const managerRoutes = {
  getInfo: route({
    method: 'GET',
    path: `${API_PREFIX}/info`,
    summary: 'Manager version, inventory size and the calling token',
    status: 200,
    response: ManagerInfo,
    errors: [],
  }),
  getManagers: route({
    method: 'GET',
    path: `${API_PREFIX}/managers`,
    summary:
      'The managers of this database: which one leads (and its lease epoch), this one, and every one seen lately',
    status: 200,
    response: ManagersStatus,
    errors: [],
  }),
  getOpenApi: route({
    method: 'GET',
    path: `${API_PREFIX}/openapi.json`,
    summary: 'This API as an OpenAPI 3.1 document',
    status: 200,
    response: OpenApiDocument,
    errors: [],
  }),

  // Tokens
  listTokens: route({
    method: 'GET',
    path: `${API_PREFIX}/tokens`,
    summary: 'List API tokens (admin)',
    query: PageQuery,
    status: 200,
    response: Page(Token),
    errors: ['forbidden'],
  }),
  createToken: route({
    method: 'POST',
    path: `${API_PREFIX}/tokens`,
    summary: 'Create an API token (admin); the secret is in this reply only',
    body: CreateTokenRequest,
    status: 201,
    response: CreatedToken,
    errors: ['forbidden', 'conflict'],
  }),
  deleteToken: route({
    method: 'DELETE',
    path: `${API_PREFIX}/tokens/:name`,
    summary: 'Delete an API token (admin)',
    params: z.object({ name: TokenName }),
    status: 204,
    errors: ['forbidden', 'not-found', 'conflict'],
  }),

  // Hosts
  listHosts: route({
    method: 'GET',
    path: `${API_PREFIX}/hosts`,
    summary: 'List hosts',
    query: HostListQuery,
    status: 200,
    response: Page(Host),
    errors: [],
  }),
  addHost: route({
    method: 'POST',
    path: `${API_PREFIX}/hosts`,
    summary: 'Join a host: the manager reaches its agent with the token and takes its inventory',
    body: AddHostRequest,
    status: 201,
    response: Host,
    errors: ['forbidden', 'conflict', 'host-unreachable', 'agent-error'],
  }),
  getHost: route({
    method: 'GET',
    path: `${API_PREFIX}/hosts/:host`,
    summary: 'Show a host (by id or name)',
    params: HostRef,
    status: 200,
    response: Host,
    errors: ['not-found'],
  }),
  removeHost: route({
    method: 'DELETE',
    path: `${API_PREFIX}/hosts/:host`,
    summary: 'Forget a host and its inventory (its agent and VMs keep running)',
    params: HostRef,
    status: 204,
    errors: ['forbidden', 'not-found', 'conflict'],
  }),
  reconcileHost: route({
    method: 'POST',
    path: `${API_PREFIX}/hosts/:host/reconcile`,
    summary: "Poll the host's agent now",
    params: HostRef,
    body: EmptyBody,
    status: 200,
    response: Host,
    errors: ['forbidden', 'not-found', 'host-unreachable', 'agent-error'],
  }),
  renewHostCertificate: route({
    method: 'POST',
    path: `${API_PREFIX}/hosts/:host/certificate`,
    summary: "Renew the host's certificate now: a new key on the host, the old certificate revoked",
    params: HostRef,
    body: EmptyBody,
    status: 200,
    response: Host,
    errors: ['forbidden', 'not-found', 'host-unreachable', 'agent-error'],
  }),
  getHostLinks: route({
    method: 'GET',
    path: `${API_PREFIX}/hosts/:host/links`,
    summary:
      'The links between this host and each other host, both directions: rate, when and how it was obtained (probe, mirror, given), staleness',
    params: HostRef,
    status: 200,
    response: HostLinks,
    errors: ['not-found'],
  }),
  probeHostLinks: route({
    method: 'POST',
    path: `${API_PREFIX}/hosts/:host/links/probe`,
    summary:
      'Measure the links of this host now (with `to` only, or with every other host), both directions, one short probe each; failures are listed',
    params: HostRef,
    body: ProbeLinksRequest,
    status: 200,
    response: ProbedLinks,
    errors: ['forbidden', 'not-found'],
  }),

  enterHostMaintenance: route({
    method: 'POST',
    path: `${API_PREFIX}/hosts/:host/maintenance`,
    summary:
      'Put a host into maintenance: no new VMs, no placement, no moves to it. With running VMs: 202 and a drain job that moves them off live by HA priority (cluster peers first), within the move slots, then `in`; with none: 200 and the host, `in` at once. Stopped VMs stay. Recorded in the change log',
    params: HostRef,
    body: EmptyBody,
    status: 202,
    response: JobAccepted,
    otherReplies: [inMaintenanceReply],
    errors: ['forbidden', 'not-found', 'conflict'],
  }),
  resumeHost: route({
    method: 'DELETE',
    path: `${API_PREFIX}/hosts/:host/maintenance`,
    summary:
      "End a host's maintenance (a drain in progress is cancelled; its moves under way finish); recorded in the change log",
    params: HostRef,
    status: 200,
    response: Host,
    errors: ['forbidden', 'not-found'],
  }),

  // Clusters
  listClusters: route({
    method: 'GET',
    path: `${API_PREFIX}/clusters`,
    summary: 'List clusters with their hosts',
    query: PageQuery,
    status: 200,
    response: Page(Cluster),
    errors: [],
  }),
  createCluster: route({
    method: 'POST',
    path: `${API_PREFIX}/clusters`,
    summary: 'Create a cluster (hosts that share datastores); recorded in the change log',
    body: CreateClusterRequest,
    status: 201,
    response: Cluster,
    errors: ['forbidden', 'conflict'],
  }),
  getCluster: route({
    method: 'GET',
    path: `${API_PREFIX}/clusters/:cluster`,
    summary: 'Show a cluster with its hosts and their lease host ids',
    params: ClusterRef,
    status: 200,
    response: Cluster,
    errors: ['not-found'],
  }),
  deleteCluster: route({
    method: 'DELETE',
    path: `${API_PREFIX}/clusters/:cluster`,
    summary: 'Delete a cluster; refused while it has hosts (evict them first)',
    params: ClusterRef,
    status: 204,
    errors: ['forbidden', 'not-found', 'conflict'],
  }),
  joinCluster: route({
    method: 'POST',
    path: `${API_PREFIX}/clusters/:cluster/hosts`,
    summary:
      'Put a host into a cluster (a host is in at most one) with the lowest free lease host id (1-2000); recorded in the change log',
    params: ClusterRef,
    body: ClusterHostRequest,
    status: 200,
    response: Cluster,
    errors: ['forbidden', 'not-found', 'conflict'],
  }),
  evictClusterHost: route({
    method: 'DELETE',
    path: `${API_PREFIX}/clusters/:cluster/hosts/:host`,
    summary:
      'Take a host out of its cluster; refused while HA-protected VMs run on it (drain it or unprotect them first)',
    params: z.object({ cluster: ObjectRef, host: ObjectRef }),
    status: 200,
    response: Cluster,
    errors: ['forbidden', 'not-found', 'conflict'],
  }),

  // Pools
  listPools: route({
    method: 'GET',
    path: `${API_PREFIX}/pools`,
    summary: 'List resource pools',
    query: PageQuery,
    status: 200,
    response: Page(Pool),
    errors: [],
  }),
  createPool: route({
    method: 'POST',
    path: `${API_PREFIX}/pools`,
    summary: 'Create a resource pool',
    body: CreatePoolRequest,
    status: 201,
    response: Pool,
    errors: ['forbidden', 'conflict'],
  }),
  getPool: route({
    method: 'GET',
    path: `${API_PREFIX}/pools/:pool`,
    summary: 'Show a resource pool',
    params: PoolRef,
    status: 200,
    response: Pool,
    errors: ['not-found'],
  }),
  deletePool: route({
    method: 'DELETE',
    path: `${API_PREFIX}/pools/:pool`,
    summary: 'Delete an empty resource pool',
    params: PoolRef,
    status: 204,
    errors: ['forbidden', 'not-found', 'conflict'],
  }),
  addPoolHost: route({
    method: 'POST',
    path: `${API_PREFIX}/pools/:pool/hosts`,
    summary: 'Add a host to a pool (a host is in at most one pool)',
    params: PoolRef,
    body: PoolHostRequest,
    status: 200,
    response: Pool,
    errors: ['forbidden', 'not-found', 'conflict'],
  }),
  removePoolHost: route({
    method: 'DELETE',
    path: `${API_PREFIX}/pools/:pool/hosts/:host`,
    summary: 'Remove a host from a pool',
    params: z.object({ pool: ObjectRef, host: ObjectRef }),
    status: 200,
    response: Pool,
    errors: ['forbidden', 'not-found', 'conflict'],
  }),

  // Datastores, virtual switches
  listDatastores: route({
    method: 'GET',
    path: `${API_PREFIX}/datastores`,
    summary: 'List datastores of all hosts',
    query: HostScopedListQuery,
    status: 200,
    response: Page(ManagedDatastore),
    errors: [],
  }),
  getDatastore: route({
    method: 'GET',
    path: `${API_PREFIX}/datastores/:host/:datastore`,
    summary: 'Show a datastore: space, class, limits and its last I/O probe',
    params: DatastoreRef,
    status: 200,
    response: ManagedDatastore,
    errors: ['not-found'],
  }),
  addDatastore: route({
    method: 'POST',
    path: `${API_PREFIX}/hosts/:host/datastores`,
    summary:
      'Add a datastore (a directory on the host) with its class and limits; the agent keeps it in its configuration. Recorded in the change log',
    params: HostRef,
    body: DatastoreSpec,
    status: 201,
    response: ManagedDatastore,
    errors: ['forbidden', 'not-found', 'conflict', 'host-unreachable', 'agent-error'],
  }),
  updateDatastore: route({
    method: 'PATCH',
    path: `${API_PREFIX}/datastores/:host/:datastore`,
    summary:
      "Change a datastore's class or limits (limits: null lifts them); running VMs follow at once. Recorded in the change log",
    params: DatastoreRef,
    body: DatastoreUpdate,
    status: 200,
    response: ManagedDatastore,
    errors: ['forbidden', 'not-found', 'host-unreachable', 'agent-error'],
  }),
  removeDatastore: route({
    method: 'DELETE',
    path: `${API_PREFIX}/datastores/:host/:datastore`,
    summary:
      'Remove a datastore from its host (its directory stays); refused while a VM disk or retained image lives there',
    params: DatastoreRef,
    status: 204,
    errors: ['forbidden', 'not-found', 'conflict', 'host-unreachable', 'agent-error'],
  }),
  probeDatastore: route({
    method: 'POST',
    path: `${API_PREFIX}/datastores/:host/:datastore/probe`,
    summary: 'Measure the datastore with a short I/O probe (about 2 s) on its host',
    params: DatastoreRef,
    body: EmptyBody,
    status: 200,
    response: ManagedDatastore,
    errors: ['forbidden', 'not-found', 'host-unreachable', 'agent-error'],
  }),
  listVSwitches: route({
    method: 'GET',
    path: `${API_PREFIX}/vswitches`,
    summary: 'List virtual switches of all hosts',
    query: HostScopedListQuery,
    status: 200,
    response: Page(ManagedVSwitch),
    errors: [],
  }),

  // VMs
  listVms: route({
    method: 'GET',
    path: `${API_PREFIX}/vms`,
    summary: 'List VMs',
    query: VmListQuery,
    status: 200,
    response: Page(ManagedVm),
    errors: [],
  }),
  createVm: route({
    method: 'POST',
    path: `${API_PREFIX}/vms`,
    summary: 'Create a VM on a host, or on the best host of a pool (a job)',
    body: CreateVmRequest,
    status: 202,
    response: JobAccepted,
    errors: [...VM_JOB_ERRORS, 'insufficient-capacity'],
  }),
  getVm: route({
    method: 'GET',
    path: `${API_PREFIX}/vms/:vm`,
    summary: 'Show a VM (by id, or by name when unique)',
    params: VmRef,
    status: 200,
    response: ManagedVm,
    errors: ['not-found', 'conflict'],
  }),
  getVmSeries: route({
    method: 'GET',
    path: `${API_PREFIX}/vms/:vm/series`,
    summary: "A VM's I/O over a window (its disks summed), one point per bucket as the disk series",
    params: VmRef,
    query: StorageSeriesQuery,
    status: 200,
    response: VmSeries,
    errors: ['not-found', 'conflict'],
  }),
  startVm: route({
    method: 'POST',
    path: `${API_PREFIX}/vms/:vm/start`,
    summary: 'Start a VM (a job)',
    params: VmRef,
    body: EmptyBody,
    status: 202,
    response: JobAccepted,
    errors: VM_JOB_ERRORS,
  }),
  shutdownVm: route({
    method: 'POST',
    path: `${API_PREFIX}/vms/:vm/shutdown`,
    summary: 'Ask the guest to power off, forcing it after timeoutSeconds (a job)',
    params: VmRef,
    body: ShutdownVmRequest,
    status: 202,
    response: JobAccepted,
    errors: VM_JOB_ERRORS,
  }),
  stopVm: route({
    method: 'POST',
    path: `${API_PREFIX}/vms/:vm/stop`,
    summary: 'Force a VM off at once (a job)',
    params: VmRef,
    body: EmptyBody,
    status: 202,
    response: JobAccepted,
    errors: VM_JOB_ERRORS,
  }),
  insertVmTools: route({
    method: 'POST',
    path: `${API_PREFIX}/vms/:vm/tools/insert`,
    summary:
      'Insert the guest tools disk: hot-plugged into a running VM, attached at the next start of a stopped one (a job)',
    params: VmRef,
    body: EmptyBody,
    status: 202,
    response: JobAccepted,
    errors: VM_JOB_ERRORS,
  }),
  ejectVmTools: route({
    method: 'POST',
    path: `${API_PREFIX}/vms/:vm/tools/eject`,
    summary: 'Eject the guest tools disk (a job)',
    params: VmRef,
    body: EmptyBody,
    status: 202,
    response: JobAccepted,
    errors: VM_JOB_ERRORS,
  }),
  deleteVm: route({
    method: 'DELETE',
    path: `${API_PREFIX}/vms/:vm`,
    summary: 'Delete a VM, with its disks unless deleteDisks=false (a job)',
    params: VmRef,
    query: DeleteVmQuery,
    status: 202,
    response: JobAccepted,
    errors: VM_JOB_ERRORS,
  }),
  moveVm: route({
    method: 'POST',
    path: `${API_PREFIX}/vms/:vm/move`,
    summary:
      'Move a VM with its disks to another host (a job; cancel it with the job cancel call). With dryRun: 200 and the plan with every check, nothing changed',
    params: VmRef,
    body: MoveVmRequest,
    status: 202,
    response: JobAccepted,
    otherReplies: [dryRunReply],
    errors: [...VM_JOB_ERRORS, 'insufficient-capacity', 'host-unreachable', 'agent-error'],
  }),
  setVmHa: route({
    method: 'PUT',
    path: `${API_PREFIX}/vms/:vm/ha`,
    summary:
      "Replace a VM's HA settings: protected, priority (0-1000, higher first, default 500), preferred hosts (each must exist); recorded in the change log",
    params: VmRef,
    body: VmHaRequest,
    status: 200,
    response: ManagedVm,
    errors: ['forbidden', 'not-found', 'conflict'],
  }),
  patchVmHa: route({
    method: 'PATCH',
    path: `${API_PREFIX}/vms/:vm/ha`,
    summary:
      "Change some of a VM's HA settings: a JSON merge patch (RFC 7396; null restores a default); recorded in the change log",
    params: VmRef,
    body: VmHaPatch,
    status: 200,
    response: ManagedVm,
    errors: ['forbidden', 'not-found', 'conflict'],
  }),
  cleanUpVmMoves: route({
    method: 'POST',
    path: `${API_PREFIX}/vms/:vm/move-cleanup`,
    summary:
      "Remove what failed moves of a VM left on other hosts: kept undos run now, incoming copies no move in flight names are aborted; the VM's own host is never touched",
    params: VmRef,
    body: EmptyBody,
    status: 200,
    response: MoveCleanupResult,
    errors: [...VM_JOB_ERRORS, 'host-unreachable', 'agent-error'],
  }),
  moveVmStorage: route({
    method: 'POST',
    path: `${API_PREFIX}/vms/:vm/move-storage`,
    summary:
      "Move a running VM's disks to another datastore of its host (a job). With dryRun: 200 and the plan with every check, nothing changed",
    params: VmRef,
    body: VmMoveStorageRequest,
    status: 202,
    response: JobAccepted,
    otherReplies: [dryRunReply],
    errors: [...VM_JOB_ERRORS, 'insufficient-capacity', 'host-unreachable', 'agent-error'],
  }),

  // Jobs
  listJobs: route({
    method: 'GET',
    path: `${API_PREFIX}/jobs`,
    summary: 'List jobs, newest first',
    query: JobListQuery,
    status: 200,
    response: Page(Job),
    errors: [],
  }),
  getJob: route({
    method: 'GET',
    path: `${API_PREFIX}/jobs/:id`,
    summary: 'Show a job',
    params: JobRef,
    status: 200,
    response: Job,
    errors: ['not-found'],
  }),
  streamJobEvents: route({
    method: 'GET',
    path: `${API_PREFIX}/jobs/:id/events`,
    summary: "The job's snapshots as server-sent events (`data: <Job>`) until it ends",
    params: JobRef,
    status: 200,
    response: z.string(),
    produces: 'text/event-stream',
    errors: ['not-found'],
  }),
  cancelJob: route({
    method: 'POST',
    path: `${API_PREFIX}/jobs/:id/cancel`,
    summary: 'Cancel a job (a running one stops at its next safe point)',
    params: JobRef,
    body: EmptyBody,
    status: 200,
    response: Job,
    errors: ['forbidden', 'not-found', 'job-finished'],
  }),

  // Fabric events
  streamFabricEvents: route({
    method: 'GET',
    path: `${API_PREFIX}/events`,
    summary: `What changes in the fabric, as server-sent events until the manager stops: \`ready\` first (read the state then), then ${FABRIC_EVENT_KINDS.map((k) => `\`${k}\``).join(', ')}, each named by its kind with one JSON FabricEvent as data (the schema is in the API package); \`: keep-alive\` comments while quiet`,
    query: FabricEventQuery,
    status: 200,
    response: z.string(),
    produces: 'text/event-stream',
    errors: [],
  }),

  // Change records
  listChanges: route({
    method: 'GET',
    path: `${API_PREFIX}/changes`,
    summary: `List change records with their risk, newest first; without since, those of the last ${CHANGE_WINDOW_DAYS} days`,
    query: ChangeListQuery,
    status: 200,
    response: Page(ChangeRecord),
    errors: [],
  }),
  changeTimeline: route({
    method: 'GET',
    path: `${API_PREFIX}/changes/timeline`,
    summary: `Change counts per hour or day and per kind or risk, every bucket present (zero when empty), for a chart; the list's filters; without since, the last ${CHANGE_WINDOW_DAYS} days`,
    query: ChangeTimelineQuery,
    status: 200,
    response: ChangeTimeline,
    errors: [],
  }),

  // Metrics
  metrics: route({
    method: 'GET',
    path: `${API_PREFIX}/metrics`,
    summary:
      'Moves by outcome and their downtime (from the stored jobs) in the Prometheus text format; scrape it with a read-only token',
    status: 200,
    response: z.string(),
    produces: 'text/plain; version=0.0.4; charset=utf-8',
    errors: [],
  }),

  // Storage Explorer
  listStorageDatastores: route({
    method: 'GET',
    path: `${API_PREFIX}/storage/datastores`,
    summary:
      'Storage Explorer: every datastore with capacity, free, provisioned, allocated, over-commitment, days until full and I/O over a window; sortable by any column, searchable',
    query: StorageDatastoreQuery,
    status: 200,
    response: Page(StorageDatastoreRow),
    errors: [],
  }),
  listStorageDisks: route({
    method: 'GET',
    path: `${API_PREFIX}/storage/disks`,
    summary:
      'Storage Explorer: every VM disk with format, sizes, guest usage and I/O (IOPS, throughput, average and p90/p99 latency per direction) over a window',
    query: StorageDiskQuery,
    status: 200,
    response: Page(StorageDiskRow),
    errors: [],
  }),
  listStorageIssues: route({
    method: 'GET',
    path: `${API_PREFIX}/storage/issues`,
    summary:
      'Storage issues (alerts) the rules found, newest first: active ones, or all with those that ended',
    query: StorageIssueQuery,
    status: 200,
    response: Page(StorageIssue),
    errors: [],
  }),
  getStorageDiskSeries: route({
    method: 'GET',
    path: `${API_PREFIX}/storage/disks/:vm/:disk/series`,
    summary:
      "A VM disk's I/O over a window, one point per bucket (30 s, 5 min or 1 h, the finest the store keeps for the window, at most 300 points): IOPS, throughput, average and p90/p99 latency per direction",
    params: DiskSeriesRef,
    query: StorageSeriesQuery,
    status: 200,
    response: DiskSeries,
    errors: ['not-found', 'conflict'],
  }),
  getStorageDatastoreSeries: route({
    method: 'GET',
    path: `${API_PREFIX}/storage/datastores/:host/:datastore/series`,
    summary:
      "A datastore's I/O (its disks summed) and space (capacity, used, free) over a window, one point per bucket as the disk series",
    params: DatastoreRef,
    query: StorageSeriesQuery,
    status: 200,
    response: DatastoreSeries,
    errors: ['not-found'],
  }),
  getStorageThresholds: route({
    method: 'GET',
    path: `${API_PREFIX}/storage/datastores/:host/:datastore/thresholds`,
    summary: "A datastore's storage rule thresholds: effective, its overrides and the defaults",
    params: DatastoreRef,
    status: 200,
    response: DatastoreThresholds,
    errors: ['not-found'],
  }),
  listRetainedCopies: route({
    method: 'GET',
    path: `${API_PREFIX}/retained-copies`,
    summary:
      'Retained copies: disks VMs left on hosts they moved away from, kept so a move back sends only the delta',
    query: RetainedCopyQuery,
    status: 200,
    response: z.array(RetainedCopyView),
    errors: ['not-found'],
  }),
  releaseRetainedCopy: route({
    method: 'DELETE',
    path: `${API_PREFIX}/retained-copies/:id`,
    summary: 'Release a retained copy: its images are deleted on its host and the space is free again',
    params: JobRef,
    status: 204,
    errors: ['forbidden', 'not-found', 'conflict', 'host-unreachable', 'agent-error'],
  }),
  setStorageThresholds: route({
    method: 'PUT',
    path: `${API_PREFIX}/storage/datastores/:host/:datastore/thresholds`,
    summary:
      "Replace a datastore's threshold overrides as a whole ({} restores the defaults; no body is refused); recorded in the change log",
    params: DatastoreRef,
    body: StorageThresholdOverrides,
    status: 200,
    response: DatastoreThresholds,
    errors: ['forbidden', 'not-found'],
  }),
  patchStorageThresholds: route({
    method: 'PATCH',
    path: `${API_PREFIX}/storage/datastores/:host/:datastore/thresholds`,
    summary:
      "Change some of a datastore's threshold overrides: a JSON merge patch (RFC 7396), null drops an override; recorded in the change log",
    params: DatastoreRef,
    body: StorageThresholdPatch,
    status: 200,
    response: DatastoreThresholds,
    errors: ['forbidden', 'not-found'],
  }),

  // Placement (issue 18)
  getPlacementStatus: route({
    method: 'GET',
    path: `${API_PREFIX}/placement`,
    summary:
      "Placement: its mode, settings, last evaluation, pending recommendations, moves in flight and every VM's demand and placement settings",
    status: 200,
    response: PlacementStatus,
    errors: [],
  }),
  getPlacementConfig: route({
    method: 'GET',
    path: `${API_PREFIX}/placement/config`,
    summary: "Placement's mode and settings: effective, the overrides and the defaults",
    status: 200,
    response: PlacementConfig,
    errors: [],
  }),
  setPlacementMode: route({
    method: 'PUT',
    path: `${API_PREFIX}/placement/mode`,
    summary:
      'Set the placement mode: off, recommend (recommendations to apply) or automatic (moves started by the manager); recorded in the change log',
    body: PlacementModeBody,
    status: 200,
    response: PlacementConfig,
    errors: ['forbidden'],
  }),
  setPlacementSettings: route({
    method: 'PUT',
    path: `${API_PREFIX}/placement/settings`,
    summary:
      'Replace the placement setting overrides as a whole ({} restores the defaults; no body is refused): thresholds, holds, budget, cap; recorded in the change log',
    body: PlacementSettingsOverrides,
    status: 200,
    response: PlacementConfig,
    errors: ['forbidden'],
  }),
  patchPlacementSettings: route({
    method: 'PATCH',
    path: `${API_PREFIX}/placement/settings`,
    summary:
      'Change some placement setting overrides: a JSON merge patch (RFC 7396), null drops an override; recorded in the change log',
    body: PlacementSettingsPatch,
    status: 200,
    response: PlacementConfig,
    errors: ['forbidden'],
  }),
  evaluatePlacement: route({
    method: 'POST',
    path: `${API_PREFIX}/placement/evaluate`,
    summary:
      "Run one placement evaluation now (as the loop does): the round's recommendations; in automatic mode their moves are started",
    body: EmptyBody,
    status: 200,
    response: z.array(Recommendation),
    errors: ['forbidden'],
  }),
  listPlacementRecommendations: route({
    method: 'GET',
    path: `${API_PREFIX}/placement/recommendations`,
    summary:
      'Placement recommendations with their reasons and predicted target load, newest first (pending by default)',
    query: RecommendationQuery,
    status: 200,
    response: Page(Recommendation),
    errors: [],
  }),
  applyPlacementRecommendation: route({
    method: 'POST',
    path: `${API_PREFIX}/placement/recommendations/:id/apply`,
    summary: "Start a pending recommendation's move (a job; checked afresh like any move)",
    params: RecommendationRef,
    body: EmptyBody,
    status: 202,
    response: JobAccepted,
    errors: [...VM_JOB_ERRORS, 'insufficient-capacity', 'host-unreachable', 'agent-error'],
  }),
  dismissPlacementRecommendation: route({
    method: 'POST',
    path: `${API_PREFIX}/placement/recommendations/:id/dismiss`,
    summary:
      'Dismiss a pending recommendation (the next evaluation may make it again while its reason holds)',
    params: RecommendationRef,
    body: EmptyBody,
    status: 200,
    response: Recommendation,
    errors: ['forbidden', 'not-found', 'conflict'],
  }),
  listPlacementSchedules: route({
    method: 'GET',
    path: `${API_PREFIX}/placement/schedules`,
    summary: 'Placement schedules, each with its window in progress or next',
    query: PageQuery,
    status: 200,
    response: Page(PlacementSchedule),
    errors: [],
  }),
  createPlacementSchedule: route({
    method: 'POST',
    path: `${API_PREFIX}/placement/schedules`,
    summary:
      'Schedule a VM on a class: a cron expression (UTC) opens each window, which lasts `for`; the VM moves in ahead of it and back after',
    body: CreateScheduleRequest,
    status: 201,
    response: PlacementSchedule,
    errors: ['forbidden', 'not-found', 'conflict'],
  }),
  deletePlacementSchedule: route({
    method: 'DELETE',
    path: `${API_PREFIX}/placement/schedules/:id`,
    summary: 'Remove a placement schedule',
    params: ScheduleRef,
    status: 204,
    errors: ['forbidden', 'not-found'],
  }),
  getVmPlacement: route({
    method: 'GET',
    path: `${API_PREFIX}/vms/:vm/placement`,
    summary: "A VM's placement settings (priority, pinned, excluded, home) and demand streaks",
    params: VmRef,
    status: 200,
    response: VmPlacement,
    errors: ['not-found', 'conflict'],
  }),
  setVmPlacement: route({
    method: 'PUT',
    path: `${API_PREFIX}/vms/:vm/placement`,
    summary:
      "Replace a VM's placement settings, all four: priority, pinned, excluded, home; recorded in the change log",
    params: VmRef,
    body: VmPlacementRequest,
    status: 200,
    response: VmPlacement,
    errors: ['forbidden', 'not-found', 'conflict'],
  }),
  patchVmPlacement: route({
    method: 'PATCH',
    path: `${API_PREFIX}/vms/:vm/placement`,
    summary:
      "Change some of a VM's placement settings: a JSON merge patch (RFC 7396; home: null forgets the home); recorded in the change log",
    params: VmRef,
    body: VmPlacementPatch,
    status: 200,
    response: VmPlacement,
    errors: ['forbidden', 'not-found', 'conflict'],
  }),
  suggestPlacement: route({
    method: 'POST',
    path: `${API_PREFIX}/placement/suggest`,
    summary:
      'Where a new VM would go: every datastore that fits its memory and disk (optionally of a class, in a pool), ranked, with reasons; and those that do not fit, with why',
    body: SuggestRequest,
    status: 200,
    response: SuggestResult,
    errors: ['forbidden', 'not-found'],
  }),

  // Rolling host upgrades (issue 30)
  planUpgrade: route({
    method: 'POST',
    path: `${API_PREFIX}/upgrades/plan`,
    summary:
      'Plan a rolling upgrade of hosts (or of a cluster): their order, one at a time, and where each VM goes before its host is upgraded, checked as a drain would move it (memory, space, machine type, CPU model, a QEMU not older); 422 upgrade-stranded names each VM that would have nowhere to go. Changes nothing',
    body: UpgradePlanRequest,
    status: 200,
    response: UpgradePlan,
    errors: ['forbidden', 'not-found', 'conflict', 'upgrade-stranded'],
  }),
  runUpgrade: route({
    method: 'POST',
    path: `${API_PREFIX}/upgrades/run`,
    summary:
      "Run a rolling upgrade: plan it as /upgrades/plan does (refused alike, nothing changed), then a `host-upgrade` job takes the hosts one at a time in the plan's order: maintenance (a drain moves its VMs off), the agent's upgrade command, the host back with its new versions, maintenance ended; at the end each VM goes back to the host it ran on (returnVms). The first failure stops the run with that host left in maintenance, the error naming the host and the phase. One run at a time (409)",
    body: UpgradeRunRequest,
    status: 202,
    response: JobAccepted,
    errors: ['forbidden', 'not-found', 'conflict', 'upgrade-stranded'],
  }),
};
export type ManagerRoutes = typeof managerRoutes;
export type ManagerRouteName = keyof ManagerRoutes;

/**
 * The routes that act on a host at once (issue 31: only the leading manager calls agents). A
 * manager that does not lead forwards them to the leader as they came and answers with the
 * leader's answer; with no leader it can reach, `not-leader` (or, for a host's removal, what it
 * can do without the host).
 */
export const MANAGER_LEADER_ROUTES: ReadonlySet<ManagerRouteName> = new Set<ManagerRouteName>([
  'addHost',
  'removeHost',
  'reconcileHost',
  'renewHostCertificate',
  'probeHostLinks',
  'addDatastore',
  'updateDatastore',
  'removeDatastore',
  'probeDatastore',
  'cleanUpVmMoves',
  'releaseRetainedCopy',
]);

/**
 * Set by a manager that forwards a request to the leader: its name. A manager that does not lead
 * answers a forwarded request `not-leader` instead of forwarding it again (the lead moved meanwhile).
 */
export const MANAGER_FORWARDED_HEADER = 'silobreak-forwarded-by';
/** Set on the answer a follower passes on: the name of the leader that gave it. */
export const MANAGER_ANSWERED_BY_HEADER = 'silobreak-answered-by';

/** GET /api/v1/openapi.json of a manager of this version. */
export function managerOpenApiDocument(version: string): OpenApiDocument {
  return openApiDocument({
    title: 'Silobreak manager API',
    version,
    routes: managerRoutes,
    errors: MANAGER_ERRORS,
    commonErrors: MANAGER_COMMON_ERRORS,
    commonHeaders: [
      {
        name: MANAGER_FORWARDED_HEADER,
        description:
          'Set by a manager that forwarded the request to the leader (its name); a manager that does not lead answers such a request not-leader instead of forwarding it again',
        schema: ManagerName,
      },
    ],
    license: 'Apache-2.0',
    servedBy: 'this manager',
  });
}

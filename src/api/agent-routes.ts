import { z } from 'zod';
import {
  AgentCertificate,
  AgentCertificateRequest,
  CertificateRequestBody,
  InstallCertificateBody,
  RevocationListBody,
  AgentJournal,
  Datastore,
  DatastoreSpec,
  DatastoreUpdate,
  GuestExecRequest,
  GuestExecResult,
  GuestInfo,
  HostInfo,
  HostUpgradeResult,
  LockspaceSpec,
  LockspaceStatus,
  Name,
  ShutdownRequest,
  Vm,
  VmSpec,
  VSwitch,
} from './agent.js';
import { AGENT_ERRORS, type AgentErrorCode } from './agent-errors.js';
import {
  ColdClosed,
  ColdCopyStatus,
  ColdCopyRequest,
  ColdExport,
  ColdExportRequest,
  CompleteMigrationRequest,
  IncomingPrepared,
  MigrationId,
  MigrationPlan,
  MigrationStatus,
  MoveStorageRequest,
  PlanRequest,
  PrepareIncomingRequest,
  RetainedCopy,
  StartMigrationRequest,
} from './migration.js';
import { QueryInt } from './rules.js';
import { HostStats } from './stats.js';
import { LinkProbeRequest, LinkProbeResult, LinkSender, LinkSenderRequest } from './links.js';
import { defineRoute, OpenApiDocument, openApiDocument } from './route-table.js';

/*
 * The host agent's HTTP API, declared once: the agent serves exactly these routes (validating
 * each part with these schemas), AgentClient and AgentMigrationClient build their calls from them
 * and GET /v1/openapi.json is generated from them. Every route needs the bearer token.
 *
 * Adding a route: an entry here, its handler in the agent (a missing one fails to compile), and a
 * client method calling `http.call(agentRoutes.<name>, ...)`.
 */

const route = defineRoute<AgentErrorCode>();

const VmParams = z.object({ name: Name });
const DatastoreParams = z.object({ name: Name });
const MigrationParams = z.object({ id: MigrationId });

export const DeleteAgentVmQuery = z.object({
  /** Also delete the VM's disk images. */
  deleteDisks: z
    .enum(['true', 'false'], { error: 'must be true or false' })
    .default('false')
    .transform((v) => v === 'true'),
});

/**
 * Fencing of managers (issue 31): every call of a manager carries the leader epoch it acts under
 * in this header (a positive integer). The agent keeps the highest epoch it has seen (across its
 * restarts) and refuses a lower one with `stale-epoch`, so a manager that lost the lease cannot
 * act on a host once the new leader has called it. A call without the header (the break-glass
 * socket's tools) is not fenced.
 */
export const AGENT_EPOCH_HEADER = 'silobreak-manager-epoch';
export const ManagerEpoch = z
  .string()
  .regex(/^[1-9][0-9]{0,14}$/, { error: 'must be a positive integer' })
  .transform(Number);
/** The headers a manager's call carries under leader epoch `epoch`. */
export const epochHeaders = (epoch: number): Record<string, string> => ({
  [AGENT_EPOCH_HEADER]: String(epoch),
});

/** The answers any route may give, whatever it does (listed once, not per route). */
export const AGENT_COMMON_ERRORS = [
  'unauthorized',
  'stale-epoch',
  'forbidden',
  'not-enrolled',
  'invalid-input',
  'malformed-json',
  'invalid-request',
  'request-timeout',
  'body-too-large',
  'uri-too-long',
  'unsupported-media-type',
  'headers-too-large',
  'internal',
] as const satisfies readonly AgentErrorCode[];

// Errors of defining a VM (POST /v1/vms, and the target of a live move, which defines one too).
const DEFINE_ERRORS = [
  'vm-exists',
  'vm-id-in-use',
  'mac-in-use',
  'disk-file-exists',
  'datastore-not-found',
  'vswitch-not-found',
  'insufficient-capacity',
  'insufficient-memory',
  'host-command-failed',
] as const;
// Errors of starting a VM's QEMU.
const START_ERRORS = [
  'vm-state-conflict',
  'host-upgrading',
  'insufficient-memory',
  'qemu-start-failed',
  'guest-image-missing',
  'host-command-failed',
] as const;
/** Lists of codes joined, each code once. */
const union = (...lists: (readonly AgentErrorCode[])[]): AgentErrorCode[] => [...new Set(lists.flat())];
const GUEST_ERRORS = [
  'vm-not-found',
  'vm-state-conflict',
  'guest-agent-unavailable',
  'guest-command-failed',
] as const;

/** Host, VMs, guest agent, metrics and this document: served by every agent. */
export const agentVmRoutes = {
  getHost: route({
    method: 'GET',
    path: '/v1/host',
    summary: 'This host: name, fabric address, versions, accelerator, CPUs and memory',
    status: 200,
    response: HostInfo,
    errors: [],
  }),
  joinLockspace: route({
    method: 'PUT',
    path: '/v1/lockspace',
    summary:
      "Join a cluster's sanlock lockspace (idempotent; the join goes on in the background, GET /v1/host shows its state)",
    body: LockspaceSpec,
    status: 202,
    response: LockspaceStatus,
    errors: ['leases-unavailable', 'datastore-not-found'],
  }),
  leaveLockspace: route({
    method: 'DELETE',
    path: '/v1/lockspace',
    summary: 'Leave the lockspace; refused while a VM here holds a lease',
    status: 204,
    errors: ['leases-unavailable'],
  }),
  upgradeHost: route({
    method: 'POST',
    path: '/v1/host/upgrade',
    summary:
      "Upgrade this host: run its configured upgrade command (no shell) while no VM runs here, no VM starting meanwhile; the command's output and the versions installed afterwards",
    status: 200,
    response: HostUpgradeResult,
    errors: ['upgrade-unavailable', 'vms-running', 'host-upgrading', 'upgrade-failed'],
  }),
  listDatastores: route({
    method: 'GET',
    path: '/v1/datastores',
    summary: 'The datastores of this host with their capacity and free space',
    status: 200,
    response: z.array(Datastore),
    errors: [],
  }),
  addDatastore: route({
    method: 'POST',
    path: '/v1/datastores',
    summary: 'Add a datastore (a directory, made when missing), kept in the configuration file',
    body: DatastoreSpec,
    status: 201,
    response: Datastore,
    errors: ['datastore-exists', 'host-command-failed'],
  }),
  updateDatastore: route({
    method: 'PATCH',
    path: '/v1/datastores/:name',
    summary: "Change a datastore's class or limits; running VMs' throttle groups follow at once",
    params: DatastoreParams,
    body: DatastoreUpdate,
    status: 200,
    response: Datastore,
    errors: ['datastore-not-found'],
  }),
  removeDatastore: route({
    method: 'DELETE',
    path: '/v1/datastores/:name',
    summary:
      'Remove a datastore from the configuration (its directory stays); refused while images live there',
    params: DatastoreParams,
    status: 204,
    errors: ['datastore-not-found', 'datastore-in-use'],
  }),
  probeDatastore: route({
    method: 'POST',
    path: '/v1/datastores/:name/probe',
    summary: 'Measure the datastore with a short I/O probe (about 2 s) and keep the figures',
    params: DatastoreParams,
    status: 200,
    response: Datastore,
    errors: ['datastore-not-found', 'host-command-failed'],
  }),
  listVSwitches: route({
    method: 'GET',
    path: '/v1/vswitches',
    summary: 'The virtual switches of this host',
    status: 200,
    response: z.array(VSwitch),
    errors: [],
  }),
  listVms: route({
    method: 'GET',
    path: '/v1/vms',
    summary: 'The VMs defined on this host',
    status: 200,
    response: z.array(Vm),
    errors: [],
  }),
  createVm: route({
    method: 'POST',
    path: '/v1/vms',
    summary: 'Define a VM, creating its disks, and start it when asked; all or nothing',
    body: VmSpec,
    status: 201,
    response: Vm,
    errors: union(DEFINE_ERRORS, START_ERRORS),
  }),
  getVm: route({
    method: 'GET',
    path: '/v1/vms/:name',
    summary: 'Show a VM',
    params: VmParams,
    status: 200,
    response: Vm,
    errors: ['vm-not-found'],
  }),
  deleteVm: route({
    method: 'DELETE',
    path: '/v1/vms/:name',
    summary: 'Delete a stopped VM, and its disk images when deleteDisks=true',
    params: VmParams,
    query: DeleteAgentVmQuery,
    status: 204,
    errors: ['vm-not-found', 'vm-state-conflict'],
  }),
  startVm: route({
    method: 'POST',
    path: '/v1/vms/:name/start',
    summary: 'Start a VM',
    params: VmParams,
    status: 200,
    response: Vm,
    errors: ['vm-not-found', ...START_ERRORS],
  }),
  shutdownVm: route({
    method: 'POST',
    path: '/v1/vms/:name/shutdown',
    summary: 'Ask the guest to power off (ACPI), forcing it off after timeoutSeconds',
    params: VmParams,
    body: ShutdownRequest,
    status: 200,
    response: Vm,
    errors: ['vm-not-found', 'vm-state-conflict'],
  }),
  stopVm: route({
    method: 'POST',
    path: '/v1/vms/:name/stop',
    summary: 'Force a VM off at once',
    params: VmParams,
    status: 200,
    response: Vm,
    errors: ['vm-not-found'],
  }),
  guestInfo: route({
    method: 'GET',
    path: '/v1/vms/:name/guest',
    summary: "The guest agent's version, OS and filesystems",
    params: VmParams,
    status: 200,
    response: GuestInfo,
    errors: GUEST_ERRORS,
  }),
  insertTools: route({
    method: 'POST',
    path: '/v1/vms/:name/tools',
    summary: 'Insert the guest tools disk: hot-plugged while the VM runs, attached at the next start if not',
    params: VmParams,
    status: 200,
    response: Vm,
    errors: ['vm-not-found', 'vm-state-conflict', 'tools-disk-missing'],
  }),
  ejectTools: route({
    method: 'DELETE',
    path: '/v1/vms/:name/tools',
    summary: 'Eject the guest tools disk (the running guest is asked to release it)',
    params: VmParams,
    status: 200,
    response: Vm,
    errors: ['vm-not-found', 'vm-state-conflict', 'tools-unplug-timeout'],
  }),
  guestExec: route({
    method: 'POST',
    path: '/v1/vms/:name/guest-exec',
    summary: 'Run a command in the guest (through its guest agent) and wait for it, unless detached',
    params: VmParams,
    body: GuestExecRequest,
    status: 200,
    response: GuestExecResult,
    errors: [...GUEST_ERRORS, 'guest-exec-timeout'],
  }),
  getStats: route({
    method: 'GET',
    path: '/v1/stats',
    summary:
      "This host's storage statistics now: datastores, VM disks (cumulative counters, latency histograms), guest filesystems",
    status: 200,
    response: HostStats,
    errors: [],
  }),
  getJournal: route({
    method: 'GET',
    path: '/v1/journal',
    summary:
      'What appeared on or vanished from this host (VMs defined or deleted, datastores added or removed) after entry `after`, in order',
    query: z.object({ after: QueryInt(0, Number.MAX_SAFE_INTEGER).default(0) }),
    status: 200,
    response: AgentJournal,
    errors: [],
  }),
  metrics: route({
    method: 'GET',
    path: '/metrics',
    summary: 'Host, datastore and VM figures in the Prometheus text format',
    status: 200,
    response: z.string(),
    produces: 'text/plain; version=0.0.4; charset=utf-8',
    errors: [],
  }),
  openApi: route({
    method: 'GET',
    path: '/v1/openapi.json',
    summary: 'This API as an OpenAPI 3.1 document',
    status: 200,
    response: OpenApiDocument,
    errors: [],
  }),
};

/** Live moves between hosts and storage moves on one host (see the order of calls in migration.ts). */
export const agentMigrationRoutes = {
  planMigration: route({
    method: 'POST',
    path: '/v1/migrations/plan',
    summary: 'Source: choose the parameters of a move of this VM from the link and the VM',
    body: PlanRequest,
    status: 200,
    response: MigrationPlan,
    errors: ['vm-not-found'],
  }),
  listMigrations: route({
    method: 'GET',
    path: '/v1/migrations',
    summary: 'The moves this agent knows of, in any role',
    status: 200,
    response: z.array(MigrationStatus),
    errors: [],
  }),
  prepareIncoming: route({
    method: 'POST',
    path: '/v1/migrations/incoming',
    summary: 'Target: define the VM with empty disks, start QEMU waiting for the stream, export the disks',
    body: PrepareIncomingRequest,
    status: 201,
    response: IncomingPrepared,
    errors: union(['migration-conflict'], DEFINE_ERRORS, START_ERRORS),
  }),
  abortIncoming: route({
    method: 'POST',
    path: '/v1/migrations/incoming/:id/abort',
    summary: 'Target: kill the waiting QEMU, delete its disks and definition',
    params: MigrationParams,
    status: 200,
    response: MigrationStatus,
    errors: ['migration-not-found', 'migration-conflict'],
  }),
  finishIncoming: route({
    method: 'POST',
    path: '/v1/migrations/incoming/:id/finish',
    summary: 'Target: wait until the guest resumed here; the VM',
    params: MigrationParams,
    status: 200,
    response: Vm,
    errors: ['migration-not-found', 'migration-conflict', 'migration-failed'],
  }),
  startMigration: route({
    method: 'POST',
    path: '/v1/migrations',
    summary: 'Source: start the disk mirrors and the memory copy in the background',
    body: StartMigrationRequest,
    status: 202,
    response: MigrationStatus,
    errors: ['vm-not-found', 'migration-conflict'],
  }),
  getMigration: route({
    method: 'GET',
    path: '/v1/migrations/:id',
    summary: 'The state, progress and figures of a move',
    params: MigrationParams,
    status: 200,
    response: MigrationStatus,
    errors: ['migration-not-found'],
  }),
  cancelMigration: route({
    method: 'POST',
    path: '/v1/migrations/:id/cancel',
    summary: 'Source: cancel a move before its switchover (the VM keeps running here)',
    params: MigrationParams,
    status: 200,
    response: MigrationStatus,
    errors: ['migration-not-found'],
  }),
  completeMigration: route({
    method: 'POST',
    path: '/v1/migrations/:id/complete',
    summary: 'Source, after the switchover: quit the source QEMU, remove its disks unless kept',
    params: MigrationParams,
    body: CompleteMigrationRequest,
    status: 200,
    response: MigrationStatus,
    errors: ['migration-not-found', 'migration-conflict'],
  }),
  moveStorage: route({
    method: 'POST',
    path: '/v1/vms/:name/move-storage',
    summary: "Move a running VM's disks to another datastore of this host; poll it like any move",
    params: VmParams,
    body: MoveStorageRequest,
    status: 202,
    response: MigrationStatus,
    errors: ['vm-not-found', 'migration-conflict', 'datastore-not-found', 'insufficient-capacity'],
  }),
  listRetained: route({
    method: 'GET',
    path: '/v1/retained',
    summary: 'The retained copies this host keeps (disks VMs left behind), each checked as it is listed',
    status: 200,
    response: z.array(RetainedCopy),
    errors: [],
  }),
  releaseRetained: route({
    method: 'DELETE',
    path: '/v1/retained/:vmId',
    summary: "Release a VM's retained copy: its images are deleted",
    params: z.object({ vmId: z.uuid() }),
    status: 204,
    errors: ['retained-copy-not-found', 'migration-conflict'],
  }),
  openLinkSender: route({
    method: 'POST',
    path: '/v1/link-probe/sender',
    summary:
      'Link probe, source: a one-shot TCP sender on the fabric address that fills the one connection presenting its one-time secret (see links.ts)',
    body: LinkSenderRequest,
    status: 201,
    response: LinkSender,
    errors: ['link-probe-failed'],
  }),
  probeLink: route({
    method: 'POST',
    path: '/v1/link-probe',
    summary: "Link probe, target: receive from a source's sender; the rate it arrived at here",
    body: LinkProbeRequest,
    status: 200,
    response: LinkProbeResult,
    errors: ['link-probe-failed'],
  }),
};

/** Cold moves of a stopped VM (see cold moves in migration.ts). */
export const agentColdMoveRoutes = {
  coldExport: route({
    method: 'POST',
    path: '/v1/vms/:name/cold-export',
    summary: "Source: read-only NBD exports of the stopped VM's disks",
    params: VmParams,
    body: ColdExportRequest,
    status: 200,
    response: ColdExport,
    errors: ['vm-not-found', 'vm-state-conflict', 'migration-conflict', 'host-command-failed'],
  }),
  coldClose: route({
    method: 'POST',
    path: '/v1/migrations/cold/:id/close',
    summary: "End a cold move's exports (source) or stop its copy (target); idempotent",
    params: MigrationParams,
    status: 200,
    response: ColdClosed,
    errors: [],
  }),
  coldCopy: route({
    method: 'POST',
    path: '/v1/vms/:name/cold-copy',
    summary: 'Target: start copying every disk of the defined, stopped VM from the exports',
    params: VmParams,
    body: ColdCopyRequest,
    status: 202,
    response: ColdCopyStatus,
    errors: [
      'vm-not-found',
      'vm-state-conflict',
      'migration-conflict',
      'cold-source-refused',
      'host-command-failed',
    ],
  }),
  coldCopyStatus: route({
    method: 'GET',
    path: '/v1/migrations/cold/:id/copy',
    summary: "Target: a cold copy's state and progress",
    params: MigrationParams,
    status: 200,
    response: ColdCopyStatus,
    errors: ['migration-not-found'],
  }),
};

/*
 * The agent's certificate. Enrollment: `requestCertificate` then `installCertificate`, each with
 * the join secret, over TLS pinned to the bootstrap certificate (the only routes an unenrolled
 * agent answers). Renewal: the same two with a manager's certificate instead of the secret.
 */
export const agentPkiRoutes = {
  requestCertificate: route({
    method: 'POST',
    path: '/v1/pki/certificate-request',
    summary: 'A certificate request for a new key of this agent (enrollment: with the join secret)',
    body: CertificateRequestBody,
    status: 200,
    response: AgentCertificateRequest,
    errors: ['join-refused', 'host-command-failed'],
  }),
  installCertificate: route({
    method: 'PUT',
    path: '/v1/pki/certificate',
    summary: "Install the fabric CA, this agent's certificate for its pending key and the CRL",
    body: InstallCertificateBody,
    status: 200,
    response: AgentCertificate,
    errors: ['join-refused', 'certificate-rejected'],
  }),
  putRevocationList: route({
    method: 'PUT',
    path: '/v1/pki/crl',
    summary: "The fabric's certificate revocation list (a newer one replaces the older)",
    body: RevocationListBody,
    status: 204,
    errors: ['certificate-rejected'],
  }),
  leaveFabric: route({
    method: 'DELETE',
    path: '/v1/pki/certificate',
    summary: 'Forget the fabric: drop the certificate, back to bootstrap with a new join secret',
    status: 204,
    errors: [],
  }),
};

export const agentRoutes = {
  ...agentVmRoutes,
  ...agentMigrationRoutes,
  ...agentColdMoveRoutes,
  ...agentPkiRoutes,
};
export type AgentRoutes = typeof agentRoutes;
export type AgentRouteName = keyof AgentRoutes;

/** GET /v1/openapi.json of an agent of this version. */
export function agentOpenApiDocument(version: string): OpenApiDocument {
  return openApiDocument({
    title: 'Silobreak host agent API',
    version,
    routes: agentRoutes,
    errors: AGENT_ERRORS,
    commonErrors: AGENT_COMMON_ERRORS,
    commonHeaders: [
      {
        name: AGENT_EPOCH_HEADER,
        description:
          'The leader epoch of the calling manager; a lower one than this agent has seen is refused (stale-epoch)',
        schema: ManagerEpoch,
      },
    ],
    license: 'Apache-2.0',
    servedBy: 'this agent',
  });
}

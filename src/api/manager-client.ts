import type { DatastoreSpec, DatastoreUpdate } from './agent.js';
import { JsonHttpClient } from './http.js';
import {
  ChangeRecord,
  Cluster,
  CreatedToken,
  Host,
  Job,
  JobAccepted,
  ManagedDatastore,
  ManagedVm,
  ManagedVSwitch,
  ManagerInfo,
  ManagersStatus,
  MoveCleanupResult,
  MovePlan,
  Page,
  Pool,
  TERMINAL_JOB_STATES,
  Token,
  type AddHostRequest,
  type ChangeListQuery,
  type ChangeTimeline,
  type ChangeTimelineQuery,
  type CreateClusterRequest,
  type CreatePoolRequest,
  type CreateTokenRequest,
  type CreateVmRequest,
  type HostListQuery,
  type HostScopedListQuery,
  type JobListQuery,
  type VmMoveStorageRequest,
  type MoveVmRequest,
  type PageQuery,
  type VmHaPatch,
  type VmHaRequest,
  type VmListQuery,
  type RetainedCopyQuery,
  type RetainedCopyView,
} from './manager.js';
import { managerRoutes as routes } from './manager-routes.js';
import type { HostLinks, ProbedLinks, ProbeLinksRequest } from './links.js';
import type { UpgradePlan, UpgradePlanRequest, UpgradeRunRequest } from './upgrade.js';
import {
  DatastoreSeries,
  DatastoreThresholds,
  DiskSeries,
  StorageDatastoreRow,
  StorageDiskRow,
  StorageIssue,
  VmSeries,
  type StorageDatastoreQuery,
  type StorageDiskQuery,
  type StorageIssueQuery,
  type StorageSeriesQuery,
  type StorageThresholdOverrides,
  type StorageThresholdPatch,
} from './storage.js';
import {
  PlacementConfig,
  PlacementSchedule,
  PlacementStatus,
  Recommendation,
  SuggestResult,
  VmPlacement,
  type CreateScheduleRequest,
  type PlacementMode,
  type PlacementSettingsOverrides,
  type PlacementSettingsPatch,
  type RecommendationQuery,
  type SuggestRequest,
  type VmPlacementPatch,
  type VmPlacementRequest,
} from './placement.js';
import { routeUrl } from './route-table.js';
import { FabricEvent, type FabricEventQuery } from './events.js';

/** The data of each event of a server-sent event stream (comments and empty events skipped). */
async function* serverSentData(response: Response): AsyncGenerator<string> {
  if (!response.body) return;
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of response.body) {
    buffered += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      const data = block
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trimStart())
        .join('\n');
      if (data) yield data;
    }
  }
}

/** The query without its empty values (a flag the CLI left unset, an empty filter). */
function defined<Q extends object>(query: Q | undefined): Q {
  return Object.fromEntries(
    Object.entries(query ?? {}).filter(([, value]) => value !== undefined && value !== null && value !== ''),
  ) as Q;
}

/**
 * Typed client of the manager's REST API (/api/v1); every call is built from its route in
 * manager-routes.ts and every reply is validated.
 */
export class ManagerClient {
  readonly http: JsonHttpClient;
  constructor(baseUrl: string, token: string, timeoutMs?: number) {
    this.http = new JsonHttpClient({ baseUrl, token }, timeoutMs);
  }

  info(): Promise<ManagerInfo> {
    return this.http.call(routes.getInfo, {});
  }
  /** Which manager leads (issue 31), this one and the others seen. */
  managers(): Promise<ManagersStatus> {
    return this.http.call(routes.getManagers, {});
  }
  async openApi(): Promise<Record<string, unknown>> {
    return this.http.call(routes.getOpenApi, {});
  }

  // Tokens (admin only)
  listTokens(q?: PageQuery): Promise<Page<Token>> {
    return this.http.call(routes.listTokens, { query: defined(q) });
  }
  createToken(body: CreateTokenRequest): Promise<CreatedToken> {
    return this.http.call(routes.createToken, { body });
  }
  async deleteToken(name: string): Promise<void> {
    await this.http.call(routes.deleteToken, { params: { name } });
  }

  // Hosts
  listHosts(q?: HostListQuery): Promise<Page<Host>> {
    return this.http.call(routes.listHosts, { query: defined(q) });
  }
  getHost(ref: string): Promise<Host> {
    return this.http.call(routes.getHost, { params: { host: ref } });
  }
  /** Joins a host: the manager reaches its agent with the token and takes its inventory. */
  addHost(body: AddHostRequest): Promise<Host> {
    return this.http.call(routes.addHost, { body });
  }
  /** Forgets a host and its inventory; the agent and its VMs keep running. */
  async removeHost(ref: string): Promise<void> {
    await this.http.call(routes.removeHost, { params: { host: ref } });
  }
  /** Polls the host's agent now instead of waiting for the next reconciliation. */
  renewHostCertificate(ref: string): Promise<Host> {
    return this.http.call(routes.renewHostCertificate, { params: { host: ref }, body: {} });
  }
  reconcileHost(ref: string): Promise<Host> {
    return this.http.call(routes.reconcileHost, { params: { host: ref }, body: {} });
  }
  /** Both directions between the host and each other host (rate, age, source). */
  hostLinks(ref: string): Promise<HostLinks> {
    return this.http.call(routes.getHostLinks, { params: { host: ref } });
  }
  /** Measures the host's links now (one short probe per direction). */
  probeHostLinks(ref: string, request: ProbeLinksRequest = {}): Promise<ProbedLinks> {
    return this.http.call(
      routes.probeHostLinks,
      { params: { host: ref }, body: request },
      { timeoutMs: 600_000 },
    );
  }

  /**
   * Puts a host into maintenance: `{ host }` when it is `in` at once (no VM ran there), else the
   * drain job that moves its VMs off (follow it with waitForJob).
   */
  async enterMaintenance(ref: string): Promise<{ host: Host } | JobAccepted> {
    const route = routes.enterHostMaintenance;
    const response = await this.http.raw(route.method, routeUrl(route, { host: ref }), {});
    const reply: unknown = await response.json();
    return response.status === 200 ? { host: Host.parse(reply) } : JobAccepted.parse(reply);
  }
  /** Ends a host's maintenance (a drain in progress is cancelled). */
  resumeHost(ref: string): Promise<Host> {
    return this.http.call(routes.resumeHost, { params: { host: ref } });
  }

  // Clusters
  listClusters(q?: PageQuery): Promise<Page<Cluster>> {
    return this.http.call(routes.listClusters, { query: defined(q) });
  }
  getCluster(ref: string): Promise<Cluster> {
    return this.http.call(routes.getCluster, { params: { cluster: ref } });
  }
  createCluster(body: CreateClusterRequest): Promise<Cluster> {
    return this.http.call(routes.createCluster, { body });
  }
  async deleteCluster(ref: string): Promise<void> {
    await this.http.call(routes.deleteCluster, { params: { cluster: ref } });
  }
  joinCluster(cluster: string, host: string): Promise<Cluster> {
    return this.http.call(routes.joinCluster, { params: { cluster }, body: { host } });
  }
  evictClusterHost(cluster: string, host: string): Promise<Cluster> {
    return this.http.call(routes.evictClusterHost, { params: { cluster, host } });
  }

  // Pools
  listPools(q?: PageQuery): Promise<Page<Pool>> {
    return this.http.call(routes.listPools, { query: defined(q) });
  }
  getPool(ref: string): Promise<Pool> {
    return this.http.call(routes.getPool, { params: { pool: ref } });
  }
  createPool(body: CreatePoolRequest): Promise<Pool> {
    return this.http.call(routes.createPool, { body });
  }
  async deletePool(ref: string): Promise<void> {
    await this.http.call(routes.deletePool, { params: { pool: ref } });
  }
  addPoolHost(pool: string, host: string): Promise<Pool> {
    return this.http.call(routes.addPoolHost, { params: { pool }, body: { host } });
  }
  removePoolHost(pool: string, host: string): Promise<Pool> {
    return this.http.call(routes.removePoolHost, { params: { pool, host } });
  }

  // Datastores and virtual switches
  listDatastores(q?: HostScopedListQuery): Promise<Page<ManagedDatastore>> {
    return this.http.call(routes.listDatastores, { query: defined(q) });
  }
  getDatastore(host: string, datastore: string): Promise<ManagedDatastore> {
    return this.http.call(routes.getDatastore, { params: { host, datastore } });
  }
  addDatastore(host: string, spec: DatastoreSpec): Promise<ManagedDatastore> {
    return this.http.call(routes.addDatastore, { params: { host }, body: spec });
  }
  updateDatastore(host: string, datastore: string, update: DatastoreUpdate): Promise<ManagedDatastore> {
    return this.http.call(routes.updateDatastore, { params: { host, datastore }, body: update });
  }
  removeDatastore(host: string, datastore: string): Promise<void> {
    return this.http.call(routes.removeDatastore, { params: { host, datastore } });
  }
  probeDatastore(host: string, datastore: string): Promise<ManagedDatastore> {
    return this.http.call(routes.probeDatastore, { params: { host, datastore }, body: {} });
  }
  listVSwitches(q?: HostScopedListQuery): Promise<Page<ManagedVSwitch>> {
    return this.http.call(routes.listVSwitches, { query: defined(q) });
  }

  // VMs: changes run as jobs (202 + job)
  listVms(q?: VmListQuery): Promise<Page<ManagedVm>> {
    return this.http.call(routes.listVms, { query: defined(q) });
  }
  getVm(ref: string): Promise<ManagedVm> {
    return this.http.call(routes.getVm, { params: { vm: ref } });
  }
  createVm(body: CreateVmRequest): Promise<JobAccepted> {
    return this.http.call(routes.createVm, { body });
  }
  startVm(ref: string): Promise<JobAccepted> {
    return this.http.call(routes.startVm, { params: { vm: ref }, body: {} });
  }
  shutdownVm(ref: string, timeoutSeconds?: number): Promise<JobAccepted> {
    return this.http.call(routes.shutdownVm, { params: { vm: ref }, body: { timeoutSeconds } });
  }
  /** Forces the VM off at once (power cut). */
  stopVm(ref: string): Promise<JobAccepted> {
    return this.http.call(routes.stopVm, { params: { vm: ref }, body: {} });
  }
  insertVmTools(ref: string): Promise<JobAccepted> {
    return this.http.call(routes.insertVmTools, { params: { vm: ref }, body: {} });
  }
  ejectVmTools(ref: string): Promise<JobAccepted> {
    return this.http.call(routes.ejectVmTools, { params: { vm: ref }, body: {} });
  }
  deleteVm(ref: string, deleteDisks = true): Promise<JobAccepted> {
    return this.http.call(routes.deleteVm, {
      params: { vm: ref },
      query: { deleteDisks: deleteDisks ? 'true' : 'false' },
    });
  }

  /** Replaces a VM's HA settings (priority and preferred hosts default when left out). */
  setVmHa(ref: string, body: VmHaRequest): Promise<ManagedVm> {
    return this.http.call(routes.setVmHa, { params: { vm: ref }, body });
  }
  /** Changes some of a VM's HA settings (a merge patch: null restores a default). */
  patchVmHa(ref: string, patch: VmHaPatch): Promise<ManagedVm> {
    return this.http.call(routes.patchVmHa, { params: { vm: ref }, body: patch });
  }

  // Moves (cancel: cancelJob)
  /** Moves a VM with its disks to another host (a job). */
  moveVm(ref: string, body: MoveVmRequest): Promise<JobAccepted> {
    return this.http.call(routes.moveVm, { params: { vm: ref }, body: { ...body, dryRun: false } });
  }
  /** Checks and plans a move without changing anything; `ok` false lists every failed check. */
  planMove(ref: string, body: MoveVmRequest): Promise<MovePlan> {
    const url = routeUrl(routes.moveVm, { vm: ref });
    return this.http.request(routes.moveVm.method, url, MovePlan, { ...body, dryRun: true });
  }
  /** Removes what failed moves of the VM left on other hosts (`silobreak vm move --cleanup`). */
  cleanUpMoves(ref: string): Promise<MoveCleanupResult> {
    return this.http.call(routes.cleanUpVmMoves, { params: { vm: ref }, body: {} });
  }
  /** Moves a VM's disks to another datastore of its host while it runs (a job). */
  moveStorage(ref: string, body: VmMoveStorageRequest): Promise<JobAccepted> {
    return this.http.call(routes.moveVmStorage, { params: { vm: ref }, body: { ...body, dryRun: false } });
  }
  planMoveStorage(ref: string, body: VmMoveStorageRequest): Promise<MovePlan> {
    const url = routeUrl(routes.moveVmStorage, { vm: ref });
    return this.http.request(routes.moveVmStorage.method, url, MovePlan, { ...body, dryRun: true });
  }

  // Jobs
  listJobs(q?: JobListQuery): Promise<Page<Job>> {
    return this.http.call(routes.listJobs, { query: defined(q) });
  }
  getJob(id: string): Promise<Job> {
    return this.http.call(routes.getJob, { params: { id } });
  }
  cancelJob(id: string): Promise<Job> {
    return this.http.call(routes.cancelJob, { params: { id }, body: {} });
  }

  /**
   * The job's snapshots from its server-sent event stream: the current one first, then one per
   * change, ending after the job reaches a terminal state.
   */
  async *watchJob(id: string, timeoutMs = 3_600_000): AsyncGenerator<Job> {
    const url = routeUrl(routes.streamJobEvents, { id });
    const response = await this.http.raw(routes.streamJobEvents.method, url, undefined, { timeoutMs });
    for await (const data of serverSentData(response)) {
      const job = Job.parse(JSON.parse(data));
      yield job;
      if (TERMINAL_JOB_STATES.includes(job.state)) return;
    }
  }

  /**
   * The fabric's events (GET /api/v1/events), each validated: `ready` first, then what changes,
   * until the manager stops or `timeoutMs` passes (then the call fails).
   */
  async *watchFabric(q?: FabricEventQuery, timeoutMs = 3_600_000): AsyncGenerator<FabricEvent> {
    const url = routeUrl(routes.streamFabricEvents, {}, defined(q));
    const response = await this.http.raw(routes.streamFabricEvents.method, url, undefined, { timeoutMs });
    for await (const data of serverSentData(response)) yield FabricEvent.parse(JSON.parse(data));
  }

  /** Waits until the job ends and returns its last snapshot (whatever its outcome). */
  async waitForJob(id: string, timeoutMs = 3_600_000, onProgress?: (job: Job) => void): Promise<Job> {
    const deadline = Date.now() + timeoutMs;
    // The stream can end early (a manager restart); then re-attach until the job has ended.
    for (;;) {
      for await (const job of this.watchJob(id, Math.max(1, deadline - Date.now()))) {
        onProgress?.(job);
        if (TERMINAL_JOB_STATES.includes(job.state)) return job;
      }
      if (Date.now() >= deadline) throw new Error(`job ${id} did not end within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  // Change records
  listChanges(q?: ChangeListQuery): Promise<Page<ChangeRecord>> {
    return this.http.call(routes.listChanges, { query: defined(q) });
  }
  changeTimeline(q?: ChangeTimelineQuery): Promise<ChangeTimeline> {
    return this.http.call(routes.changeTimeline, { query: defined(q) });
  }
  /** The manager's Prometheus exposition (moves by outcome, downtime histograms). */
  metrics(): Promise<string> {
    return this.http.call(routes.metrics, {});
  }

  // Storage Explorer
  listStorageDatastores(q?: StorageDatastoreQuery): Promise<Page<StorageDatastoreRow>> {
    return this.http.call(routes.listStorageDatastores, { query: defined(q) });
  }
  listStorageDisks(q?: StorageDiskQuery): Promise<Page<StorageDiskRow>> {
    return this.http.call(routes.listStorageDisks, { query: defined(q) });
  }
  listStorageIssues(q?: StorageIssueQuery): Promise<Page<StorageIssue>> {
    return this.http.call(routes.listStorageIssues, { query: defined(q) });
  }
  /** A disk's I/O per bucket over a window (charts). */
  getDiskSeries(vm: string, disk: string, q?: StorageSeriesQuery): Promise<DiskSeries> {
    return this.http.call(routes.getStorageDiskSeries, { params: { vm, disk }, query: defined(q) });
  }
  /** A datastore's I/O and space per bucket over a window (charts). */
  getDatastoreSeries(host: string, datastore: string, q?: StorageSeriesQuery): Promise<DatastoreSeries> {
    return this.http.call(routes.getStorageDatastoreSeries, {
      params: { host, datastore },
      query: defined(q),
    });
  }
  /** A VM's I/O (its disks summed) per bucket over a window (charts). */
  getVmSeries(vm: string, q?: StorageSeriesQuery): Promise<VmSeries> {
    return this.http.call(routes.getVmSeries, { params: { vm }, query: defined(q) });
  }
  getStorageThresholds(host: string, datastore: string): Promise<DatastoreThresholds> {
    return this.http.call(routes.getStorageThresholds, { params: { host, datastore } });
  }
  listRetainedCopies(q?: RetainedCopyQuery): Promise<RetainedCopyView[]> {
    return this.http.call(routes.listRetainedCopies, { query: defined(q) });
  }
  releaseRetainedCopy(id: string): Promise<void> {
    return this.http.call(routes.releaseRetainedCopy, { params: { id } });
  }
  setStorageThresholds(
    host: string,
    datastore: string,
    overrides: StorageThresholdOverrides,
  ): Promise<DatastoreThresholds> {
    return this.http.call(routes.setStorageThresholds, { params: { host, datastore }, body: overrides });
  }
  /** Changes some overrides (a merge patch: null drops one). */
  patchStorageThresholds(
    host: string,
    datastore: string,
    patch: StorageThresholdPatch,
  ): Promise<DatastoreThresholds> {
    return this.http.call(routes.patchStorageThresholds, { params: { host, datastore }, body: patch });
  }

  // Placement
  placementStatus(): Promise<PlacementStatus> {
    return this.http.call(routes.getPlacementStatus, {});
  }
  placementConfig(): Promise<PlacementConfig> {
    return this.http.call(routes.getPlacementConfig, {});
  }
  setPlacementMode(mode: PlacementMode): Promise<PlacementConfig> {
    return this.http.call(routes.setPlacementMode, { body: { mode } });
  }
  setPlacementSettings(overrides: PlacementSettingsOverrides): Promise<PlacementConfig> {
    return this.http.call(routes.setPlacementSettings, { body: overrides });
  }
  /** Changes some overrides (a merge patch: null drops one). */
  patchPlacementSettings(patch: PlacementSettingsPatch): Promise<PlacementConfig> {
    return this.http.call(routes.patchPlacementSettings, { body: patch });
  }
  evaluatePlacement(): Promise<Recommendation[]> {
    return this.http.call(routes.evaluatePlacement, { body: {} });
  }
  listRecommendations(q?: RecommendationQuery): Promise<Page<Recommendation>> {
    return this.http.call(routes.listPlacementRecommendations, { query: defined(q) });
  }
  applyRecommendation(id: string): Promise<JobAccepted> {
    return this.http.call(routes.applyPlacementRecommendation, { params: { id }, body: {} });
  }
  dismissRecommendation(id: string): Promise<Recommendation> {
    return this.http.call(routes.dismissPlacementRecommendation, { params: { id }, body: {} });
  }
  listPlacementSchedules(q?: PageQuery): Promise<Page<PlacementSchedule>> {
    return this.http.call(routes.listPlacementSchedules, { query: defined(q) });
  }
  addPlacementSchedule(req: CreateScheduleRequest): Promise<PlacementSchedule> {
    return this.http.call(routes.createPlacementSchedule, { body: req });
  }
  removePlacementSchedule(id: string): Promise<void> {
    return this.http.call(routes.deletePlacementSchedule, { params: { id } });
  }
  vmPlacement(ref: string): Promise<VmPlacement> {
    return this.http.call(routes.getVmPlacement, { params: { vm: ref } });
  }
  setVmPlacement(ref: string, req: VmPlacementRequest): Promise<VmPlacement> {
    return this.http.call(routes.setVmPlacement, { params: { vm: ref }, body: req });
  }
  /** Changes some of a VM's placement settings (a merge patch: `home: null` forgets the home). */
  patchVmPlacement(ref: string, patch: VmPlacementPatch): Promise<VmPlacement> {
    return this.http.call(routes.patchVmPlacement, { params: { vm: ref }, body: patch });
  }
  suggestPlacement(req: SuggestRequest): Promise<SuggestResult> {
    return this.http.call(routes.suggestPlacement, { body: req });
  }

  // Rolling upgrades
  /**
   * The plan of a rolling upgrade; a plan that strands a VM is an ApiError `upgrade-stranded`
   * whose VMs strandedVms() reads.
   */
  planUpgrade(req: UpgradePlanRequest): Promise<UpgradePlan> {
    return this.http.call(routes.planUpgrade, { body: req });
  }

  /**
   * Starts a rolling upgrade (a `host-upgrade` job; follow it with waitForJob). Refused before
   * anything changes as planUpgrade is.
   */
  runUpgrade(req: UpgradeRunRequest): Promise<JobAccepted> {
    return this.http.call(routes.runUpgrade, { body: req });
  }
}

import { z } from 'zod';
import { JsonHttpClient } from './http.js';
import {
  API_PREFIX,
  ChangeRecord,
  CreatedToken,
  Host,
  Job,
  JobAccepted,
  ManagedDatastore,
  ManagedVm,
  ManagedVSwitch,
  ManagerInfo,
  MoveCleanupResult,
  MovePlan,
  Page,
  Pool,
  TERMINAL_JOB_STATES,
  Token,
  type AddHostRequest,
  type ChangeListQuery,
  type CreatePoolRequest,
  type CreateTokenRequest,
  type CreateVmRequest,
  type HostListQuery,
  type HostScopedListQuery,
  type JobListQuery,
  type VmMoveStorageRequest,
  type MoveVmRequest,
  type PageQuery,
  type VmListQuery,
} from './manager.js';

const seg = encodeURIComponent;

/** Query string of the defined, non-empty values. */
function query(params: object | undefined): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params ?? {})) {
    if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

/** Typed client of the manager's REST API (/api/v1); every reply is validated. */
export class ManagerClient {
  readonly http: JsonHttpClient;
  constructor(baseUrl: string, token: string, timeoutMs?: number) {
    this.http = new JsonHttpClient(baseUrl, token, timeoutMs);
  }

  private get<T extends z.ZodType>(path: string, schema: T): Promise<z.infer<T>> {
    return this.http.request('GET', API_PREFIX + path, schema);
  }
  private send<T extends z.ZodType>(method: string, path: string, schema: T, body: unknown = {}) {
    return this.http.request(method, API_PREFIX + path, schema, body);
  }

  info(): Promise<ManagerInfo> {
    return this.get('/info', ManagerInfo);
  }
  async openApi(): Promise<Record<string, unknown>> {
    return this.get('/openapi.json', z.record(z.string(), z.unknown()));
  }

  // Tokens (admin only)
  listTokens(q?: PageQuery): Promise<Page<Token>> {
    return this.get(`/tokens${query(q)}`, Page(Token));
  }
  createToken(body: CreateTokenRequest): Promise<CreatedToken> {
    return this.send('POST', '/tokens', CreatedToken, body);
  }
  async deleteToken(name: string): Promise<void> {
    await this.http.raw('DELETE', `${API_PREFIX}/tokens/${seg(name)}`);
  }

  // Hosts
  listHosts(q?: HostListQuery): Promise<Page<Host>> {
    return this.get(`/hosts${query(q)}`, Page(Host));
  }
  getHost(ref: string): Promise<Host> {
    return this.get(`/hosts/${seg(ref)}`, Host);
  }
  /** Joins a host: the manager reaches its agent with the token and takes its inventory. */
  addHost(body: AddHostRequest): Promise<Host> {
    return this.send('POST', '/hosts', Host, body);
  }
  /** Forgets a host and its inventory; the agent and its VMs keep running. */
  async removeHost(ref: string): Promise<void> {
    await this.http.raw('DELETE', `${API_PREFIX}/hosts/${seg(ref)}`);
  }
  /** Polls the host's agent now instead of waiting for the next reconciliation. */
  reconcileHost(ref: string): Promise<Host> {
    return this.send('POST', `/hosts/${seg(ref)}/reconcile`, Host);
  }

  // Pools
  listPools(q?: PageQuery): Promise<Page<Pool>> {
    return this.get(`/pools${query(q)}`, Page(Pool));
  }
  getPool(ref: string): Promise<Pool> {
    return this.get(`/pools/${seg(ref)}`, Pool);
  }
  createPool(body: CreatePoolRequest): Promise<Pool> {
    return this.send('POST', '/pools', Pool, body);
  }
  async deletePool(ref: string): Promise<void> {
    await this.http.raw('DELETE', `${API_PREFIX}/pools/${seg(ref)}`);
  }
  addPoolHost(pool: string, host: string): Promise<Pool> {
    return this.send('POST', `/pools/${seg(pool)}/hosts`, Pool, { host });
  }
  removePoolHost(pool: string, host: string): Promise<Pool> {
    return this.http.request('DELETE', `${API_PREFIX}/pools/${seg(pool)}/hosts/${seg(host)}`, Pool);
  }

  // Datastores and virtual switches
  listDatastores(q?: HostScopedListQuery): Promise<Page<ManagedDatastore>> {
    return this.get(`/datastores${query(q)}`, Page(ManagedDatastore));
  }
  listVSwitches(q?: HostScopedListQuery): Promise<Page<ManagedVSwitch>> {
    return this.get(`/vswitches${query(q)}`, Page(ManagedVSwitch));
  }

  // VMs: changes run as jobs (202 + job)
  listVms(q?: VmListQuery): Promise<Page<ManagedVm>> {
    return this.get(`/vms${query(q)}`, Page(ManagedVm));
  }
  getVm(ref: string): Promise<ManagedVm> {
    return this.get(`/vms/${seg(ref)}`, ManagedVm);
  }
  createVm(body: CreateVmRequest): Promise<JobAccepted> {
    return this.send('POST', '/vms', JobAccepted, body);
  }
  startVm(ref: string): Promise<JobAccepted> {
    return this.send('POST', `/vms/${seg(ref)}/start`, JobAccepted);
  }
  shutdownVm(ref: string, timeoutSeconds?: number): Promise<JobAccepted> {
    return this.send('POST', `/vms/${seg(ref)}/shutdown`, JobAccepted, { timeoutSeconds });
  }
  /** Forces the VM off at once (power cut). */
  stopVm(ref: string): Promise<JobAccepted> {
    return this.send('POST', `/vms/${seg(ref)}/stop`, JobAccepted);
  }
  deleteVm(ref: string, deleteDisks = true): Promise<JobAccepted> {
    return this.http.request('DELETE', `${API_PREFIX}/vms/${seg(ref)}${query({ deleteDisks })}`, JobAccepted);
  }

  // Moves (cancel: cancelJob)
  /** Moves a VM with its disks to another host (a job). */
  moveVm(ref: string, body: MoveVmRequest): Promise<JobAccepted> {
    return this.send('POST', `/vms/${seg(ref)}/move`, JobAccepted, { ...body, dryRun: false });
  }
  /** Checks and plans a move without changing anything; `ok` false lists every failed check. */
  planMove(ref: string, body: MoveVmRequest): Promise<MovePlan> {
    return this.send('POST', `/vms/${seg(ref)}/move`, MovePlan, { ...body, dryRun: true });
  }
  /** Removes what failed moves of the VM left on other hosts (`silobreak vm move --cleanup`). */
  cleanUpMoves(ref: string): Promise<MoveCleanupResult> {
    return this.send('POST', `/vms/${seg(ref)}/move-cleanup`, MoveCleanupResult, {});
  }
  /** Moves a VM's disks to another datastore of its host while it runs (a job). */
  moveStorage(ref: string, body: VmMoveStorageRequest): Promise<JobAccepted> {
    return this.send('POST', `/vms/${seg(ref)}/move-storage`, JobAccepted, { ...body, dryRun: false });
  }
  planMoveStorage(ref: string, body: VmMoveStorageRequest): Promise<MovePlan> {
    return this.send('POST', `/vms/${seg(ref)}/move-storage`, MovePlan, { ...body, dryRun: true });
  }

  // Jobs
  listJobs(q?: JobListQuery): Promise<Page<Job>> {
    return this.get(`/jobs${query(q)}`, Page(Job));
  }
  getJob(id: string): Promise<Job> {
    return this.get(`/jobs/${seg(id)}`, Job);
  }
  cancelJob(id: string): Promise<Job> {
    return this.send('POST', `/jobs/${seg(id)}/cancel`, Job);
  }

  /**
   * The job's snapshots from its server-sent event stream: the current one first, then one per
   * change, ending after the job reaches a terminal state.
   */
  async *watchJob(id: string, timeoutMs = 3_600_000): AsyncGenerator<Job> {
    const response = await this.http.raw('GET', `${API_PREFIX}/jobs/${seg(id)}/events`, undefined, {
      timeoutMs,
    });
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
        if (!data) continue;
        const job = Job.parse(JSON.parse(data));
        yield job;
        if (TERMINAL_JOB_STATES.includes(job.state)) return;
      }
    }
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
    return this.get(`/changes${query(q)}`, Page(ChangeRecord));
  }
}

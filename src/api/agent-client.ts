import type { z } from 'zod';
import { JsonHttpClient, type HttpEndpoint } from './http.js';
import type {
  AgentCertificate,
  AgentCertificateRequest,
  CertificateRequestBody,
  InstallCertificateBody,
  AgentJournal,
  Datastore,
  DatastoreSpec,
  DatastoreUpdate,
  GuestExecResult,
  GuestInfo,
  HostInfo,
  HostUpgradeResult,
  LockspaceSpec,
  LockspaceStatus,
  Vm,
  VSwitch,
  VmSpec,
} from './agent.js';
import { agentRoutes as routes } from './agent-routes.js';
import type { HostStats } from './stats.js';
import type { OpenApiDocument } from './route-table.js';

/** Typed client of one host agent's HTTP API; every call is a route of agent-routes.ts. */
export class AgentClient {
  readonly http: JsonHttpClient;
  /** On the fabric: HTTPS with the manager's certificate; on the host: the break-glass socket. */
  constructor(endpoint: HttpEndpoint, timeoutMs?: number) {
    this.http = new JsonHttpClient(endpoint, timeoutMs);
  }

  host(): Promise<HostInfo> {
    return this.http.call(routes.getHost, {});
  }
  joinLockspace(spec: z.input<typeof LockspaceSpec>): Promise<LockspaceStatus> {
    return this.http.call(routes.joinLockspace, { body: spec });
  }
  leaveLockspace(): Promise<void> {
    return this.http.call(routes.leaveLockspace, {});
  }
  /** Runs the host's upgrade command; it may take `timeoutMs` (the command's own timeout and more). */
  upgradeHost(timeoutMs: number): Promise<HostUpgradeResult> {
    return this.http.call(routes.upgradeHost, {}, { timeoutMs });
  }
  datastores(): Promise<Datastore[]> {
    return this.http.call(routes.listDatastores, {});
  }
  addDatastore(spec: DatastoreSpec): Promise<Datastore> {
    return this.http.call(routes.addDatastore, { body: spec });
  }
  updateDatastore(name: string, update: DatastoreUpdate): Promise<Datastore> {
    return this.http.call(routes.updateDatastore, { params: { name }, body: update });
  }
  removeDatastore(name: string): Promise<void> {
    return this.http.call(routes.removeDatastore, { params: { name } });
  }
  probeDatastore(name: string): Promise<Datastore> {
    return this.http.call(routes.probeDatastore, { params: { name } });
  }
  vswitches(): Promise<VSwitch[]> {
    return this.http.call(routes.listVSwitches, {});
  }
  listVms(): Promise<Vm[]> {
    return this.http.call(routes.listVms, {});
  }
  getVm(name: string): Promise<Vm> {
    return this.http.call(routes.getVm, { params: { name } });
  }
  createVm(spec: VmSpec): Promise<Vm> {
    return this.http.call(routes.createVm, { body: spec }, { timeoutMs: 300_000 });
  }
  startVm(name: string): Promise<Vm> {
    return this.http.call(routes.startVm, { params: { name } });
  }
  shutdownVm(name: string, timeoutSeconds = 60): Promise<Vm> {
    return this.http.call(
      routes.shutdownVm,
      { params: { name }, body: { timeoutSeconds } },
      { timeoutMs: (timeoutSeconds + 30) * 1000 },
    );
  }
  stopVm(name: string): Promise<Vm> {
    return this.http.call(routes.stopVm, { params: { name } });
  }
  deleteVm(name: string, deleteDisks: boolean): Promise<void> {
    return this.http.call(routes.deleteVm, {
      params: { name },
      query: { deleteDisks: deleteDisks ? 'true' : 'false' },
    });
  }
  guestExec(name: string, command: string[], timeoutSeconds = 30, detach = false): Promise<GuestExecResult> {
    return this.http.call(
      routes.guestExec,
      { params: { name }, body: { command, timeoutSeconds, detach } },
      { timeoutMs: (timeoutSeconds + 30) * 1000 },
    );
  }
  insertTools(name: string): Promise<Vm> {
    return this.http.call(routes.insertTools, { params: { name } });
  }
  ejectTools(name: string): Promise<Vm> {
    return this.http.call(routes.ejectTools, { params: { name } }, { timeoutMs: 60_000 });
  }
  guestInfo(name: string): Promise<GuestInfo> {
    return this.http.call(routes.guestInfo, { params: { name } });
  }
  stats(): Promise<HostStats> {
    return this.http.call(routes.getStats, {});
  }
  /** What appeared on or vanished from the host after journal entry `after`. */
  journal(after: number): Promise<AgentJournal> {
    return this.http.call(routes.getJournal, { query: { after } });
  }
  metrics(): Promise<string> {
    return this.http.call(routes.metrics, {});
  }
  /** A certificate request for a new key (enrollment with the join secret, or renewal). */
  requestCertificate(body: CertificateRequestBody): Promise<AgentCertificateRequest> {
    return this.http.call(routes.requestCertificate, { body });
  }
  installCertificate(body: InstallCertificateBody): Promise<AgentCertificate> {
    return this.http.call(routes.installCertificate, { body });
  }
  putRevocationList(crl: string): Promise<void> {
    return this.http.call(routes.putRevocationList, { body: { crl } });
  }
  /** The agent drops its certificate and waits for a new join (host remove). */
  leaveFabric(): Promise<void> {
    return this.http.call(routes.leaveFabric, {});
  }
  openApi(): Promise<OpenApiDocument> {
    return this.http.call(routes.openApi, {});
  }
}

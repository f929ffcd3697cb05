import type { JsonHttpClient } from './http.js';
import type { Vm } from './agent.js';
import { agentRoutes as routes } from './agent-routes.js';
import type {
  ColdClosed,
  ColdCopyStatus,
  ColdCopyRequest,
  ColdExport,
  CompleteMigrationRequest,
  IncomingPrepared,
  MigrationPlan,
  MigrationStatus,
  MoveStorageRequest,
  PlanRequest,
  PrepareIncomingRequest,
  RetainedCopy,
  StartMigrationRequest,
} from './migration.js';
import type { LinkProbeRequest, LinkProbeResult, LinkSender, LinkSenderRequest } from './links.js';

/** Typed client of one agent's move routes (see the order of calls in migration.ts). */
export class AgentMigrationClient {
  constructor(private readonly http: JsonHttpClient) {}

  plan(request: PlanRequest): Promise<MigrationPlan> {
    return this.http.call(routes.planMigration, { body: request });
  }
  list(): Promise<MigrationStatus[]> {
    return this.http.call(routes.listMigrations, {});
  }
  /** Target: define the VM with empty disks, start QEMU waiting for the stream, export the disks. */
  prepareIncoming(request: PrepareIncomingRequest): Promise<IncomingPrepared> {
    return this.http.call(routes.prepareIncoming, { body: request }, { timeoutMs: 180_000 });
  }
  /** Target: kill the waiting QEMU, delete its disks and definition. */
  abortIncoming(id: string): Promise<MigrationStatus> {
    // Stopping a QEMU and deleting its disks takes seconds; a longer wait is a host that is gone
    // (a request on a kept-alive connection over a cut link gets no answer, never a reset).
    return this.http.call(routes.abortIncoming, { params: { id } }, { timeoutMs: 30_000 });
  }
  /** Target: wait until the guest resumed here; returns the VM. */
  finishIncoming(id: string): Promise<Vm> {
    return this.http.call(routes.finishIncoming, { params: { id } }, { timeoutMs: 180_000 });
  }
  /** Source: start mirrors and memory copy in the background. */
  start(request: StartMigrationRequest): Promise<MigrationStatus> {
    return this.http.call(routes.startMigration, { body: request });
  }
  status(id: string): Promise<MigrationStatus> {
    return this.http.call(routes.getMigration, { params: { id } });
  }
  cancel(id: string): Promise<MigrationStatus> {
    return this.http.call(routes.cancelMigration, { params: { id } });
  }
  /** Live storage move on this host; poll status(id) like any move. */
  moveStorage(vmName: string, request: MoveStorageRequest): Promise<MigrationStatus> {
    return this.http.call(routes.moveStorage, { params: { name: vmName }, body: request });
  }
  /** Source, after the switchover: quit the source QEMU, remove its disks unless kept. */
  complete(id: string, request: CompleteMigrationRequest = {}): Promise<MigrationStatus> {
    return this.http.call(
      routes.completeMigration,
      { params: { id }, body: request },
      { timeoutMs: 120_000 },
    );
  }
  /** The retained copies this host keeps, each checked. */
  listRetained(): Promise<RetainedCopy[]> {
    return this.http.call(routes.listRetained, {}, { timeoutMs: 60_000 });
  }
  /** Deletes a VM's retained copy. */
  releaseRetained(vmId: string): Promise<void> {
    return this.http.call(routes.releaseRetained, { params: { vmId } });
  }

  /** Link probe, source: a one-shot sender on the fabric address (links.ts). */
  openLinkSender(request: LinkSenderRequest = {}): Promise<LinkSender> {
    return this.http.call(routes.openLinkSender, { body: request });
  }
  /** Link probe, target: receive from the source's sender; the rate it arrived at. */
  probeLink(request: LinkProbeRequest): Promise<LinkProbeResult> {
    return this.http.call(routes.probeLink, { body: request }, { timeoutMs: 30_000 });
  }

  /** Cold move, source: read-only NBD exports of the stopped VM's disks. */
  coldExport(vmName: string, migrationId: string): Promise<ColdExport> {
    return this.http.call(routes.coldExport, { params: { name: vmName }, body: { migrationId } });
  }
  /** Cold move: ends the exports (source) or stops the copy (target); idempotent. */
  coldClose(migrationId: string): Promise<ColdClosed> {
    return this.http.call(routes.coldClose, { params: { id: migrationId } });
  }
  /** Cold move, target: starts copying the disks from the exports into the defined, stopped VM. */
  coldCopy(vmName: string, request: ColdCopyRequest): Promise<ColdCopyStatus> {
    return this.http.call(routes.coldCopy, { params: { name: vmName }, body: request });
  }
  /** Cold move, target: the copy's state and progress. */
  coldStatus(migrationId: string): Promise<ColdCopyStatus> {
    return this.http.call(routes.coldCopyStatus, { params: { id: migrationId } });
  }
}

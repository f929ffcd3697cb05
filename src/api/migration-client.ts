import { z } from 'zod';
import type { JsonHttpClient } from './http.js';
import { Vm } from './agent.js';
import {
  ColdClosed,
  ColdCopied,
  ColdExport,
  IncomingPrepared,
  MigrationPlan,
  MigrationStatus,
  type ColdCopyRequest,
  type CompleteMigrationRequest,
  type MoveStorageRequest,
  type PlanRequest,
  type PrepareIncomingRequest,
  type StartMigrationRequest,
} from './migration.js';

/** Typed client of one agent's migration routes (see the order of calls in migration.ts). */
export class AgentMigrationClient {
  constructor(private readonly http: JsonHttpClient) {}

  plan(request: PlanRequest): Promise<MigrationPlan> {
    return this.http.request('POST', '/v1/migrations/plan', MigrationPlan, request);
  }
  list(): Promise<MigrationStatus[]> {
    return this.http.request('GET', '/v1/migrations', z.array(MigrationStatus));
  }
  /** Target: define the VM with empty disks, start QEMU waiting for the stream, export the disks. */
  prepareIncoming(request: PrepareIncomingRequest): Promise<IncomingPrepared> {
    return this.http.request('POST', '/v1/migrations/incoming', IncomingPrepared, request, {
      timeoutMs: 180_000,
    });
  }
  /** Target: kill the waiting QEMU, delete its disks and definition. */
  abortIncoming(id: string): Promise<MigrationStatus> {
    return this.http.request(
      'POST',
      `/v1/migrations/incoming/${id}/abort`,
      MigrationStatus,
      {},
      {
        timeoutMs: 120_000,
      },
    );
  }
  /** Target: wait until the guest resumed here; returns the VM. */
  finishIncoming(id: string): Promise<Vm> {
    return this.http.request('POST', `/v1/migrations/incoming/${id}/finish`, Vm, {}, { timeoutMs: 180_000 });
  }
  /** Source: start mirrors and memory copy in the background. */
  start(request: StartMigrationRequest): Promise<MigrationStatus> {
    return this.http.request('POST', '/v1/migrations', MigrationStatus, request);
  }
  status(id: string): Promise<MigrationStatus> {
    return this.http.request('GET', `/v1/migrations/${id}`, MigrationStatus);
  }
  cancel(id: string): Promise<MigrationStatus> {
    return this.http.request('POST', `/v1/migrations/${id}/cancel`, MigrationStatus, {});
  }
  /** Live storage move on this host; poll status(id) like any move. */
  moveStorage(vmName: string, request: MoveStorageRequest): Promise<MigrationStatus> {
    return this.http.request(
      'POST',
      `/v1/vms/${encodeURIComponent(vmName)}/move-storage`,
      MigrationStatus,
      request,
    );
  }
  /** Source, after the switchover: quit the source QEMU, remove its disks unless kept. */
  complete(id: string, request: CompleteMigrationRequest = {}): Promise<MigrationStatus> {
    return this.http.request('POST', `/v1/migrations/${id}/complete`, MigrationStatus, request, {
      timeoutMs: 120_000,
    });
  }

  /** Cold move, source: read-only NBD exports of the stopped VM's disks. */
  coldExport(vmName: string, migrationId: string): Promise<ColdExport> {
    return this.http.request('POST', `/v1/vms/${encodeURIComponent(vmName)}/cold-export`, ColdExport, {
      migrationId,
    });
  }
  /** Cold move, source: ends the exports (idempotent). */
  coldClose(migrationId: string): Promise<ColdClosed> {
    return this.http.request('POST', `/v1/migrations/cold/${migrationId}/close`, ColdClosed, {});
  }
  /** Cold move, target: copies the disks from the exports into the defined, stopped VM. */
  coldCopy(vmName: string, request: ColdCopyRequest): Promise<ColdCopied> {
    return this.http.request('POST', `/v1/vms/${encodeURIComponent(vmName)}/cold-copy`, ColdCopied, request, {
      timeoutMs: 6 * 3600_000,
    });
  }
}

// The manager's moves (issue 9, control plane): a VM to another host with its disks, as a job
// that drives the two agents' migration API through an explicit, persisted state machine.
import type { JobHandler } from '../jobs.js';
import { moveHandler } from './handler.js';
import type { MoveDeps } from './job.js';
import { moveStorageHandler } from './storage-job.js';

export { HostSlots } from './slots.js';
export { PendingUndoRunner, pendingUndos } from './pending-undos.js';
export { MoveService, type MoveAnswer } from './service.js';
export { retainedBytesOn, sweepRetainedCopies, RETAINED_COPY_DAYS } from './retained.js';
export type { MoveDeps } from './job.js';

export function moveJobHandlers(deps: MoveDeps): JobHandler<never>[] {
  return [moveHandler(deps), moveStorageHandler(deps)] as JobHandler<never>[];
}

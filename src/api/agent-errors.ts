import { ApiError, HTTP_REFUSALS } from './problem.js';
import type { ErrorCatalogue } from './route-table.js';

/*
 * Every error code a host agent answers with (the Problem's `code`), its HTTP statuses and what it
 * means. The agent's error classes take their codes from here and its one error-to-HTTP mapping
 * takes the statuses; the route table lists which codes each route may answer.
 */

export const AGENT_ERRORS = {
  // The request itself
  unauthorized: { statuses: [401], about: 'no or a wrong bearer token' },
  'invalid-input': {
    statuses: [400],
    about: 'the input fails its schema, has an unknown field or breaks a rule of this host; `field` names it',
  },
  'malformed-json': { statuses: [400], about: 'the request body is not JSON' },
  'invalid-request': { statuses: [400], about: 'the HTTP request itself is malformed' },
  // 408, 413, 414, 415, 431: the HTTP layer's, as the manager answers them.
  ...HTTP_REFUSALS,
  'route-not-found': { statuses: [404], about: 'no such method and path' },
  forbidden: {
    statuses: [403],
    about: "the caller's certificate is not a manager's: only a manager drives an agent",
  },
  'not-enrolled': {
    statuses: [403],
    about: 'this agent has no fabric certificate yet: only enrollment answers (silobreak host add)',
  },
  'join-refused': { statuses: [403], about: 'the join secret is wrong, or this agent has no join pending' },
  'stale-epoch': {
    statuses: [409],
    about:
      'the call carries a manager epoch older than one this agent has seen: its manager no longer leads (fencing; the leader of a newer epoch drives this agent)',
  },
  'certificate-rejected': {
    statuses: [422],
    about: "the certificate is not for this agent's pending key, or not signed by the fabric CA",
  },

  // VMs, datastores, switches
  'vm-not-found': { statuses: [404], about: 'no VM of that name is defined on this host' },
  'vm-exists': { statuses: [409], about: 'a VM of that name is defined already' },
  'vm-id-in-use': { statuses: [409], about: 'another VM on this host has that id' },
  'mac-in-use': { statuses: [409], about: 'another VM on this host has that MAC' },
  'disk-file-exists': { statuses: [409], about: 'a disk image file is in the way; it is never overwritten' },
  'vm-state-conflict': { statuses: [409], about: 'the VM is in a state that does not allow this' },
  'datastore-not-found': { statuses: [422], about: 'no datastore of that name on this host' },
  'datastore-exists': { statuses: [409], about: 'a datastore of that name or directory exists already' },
  'datastore-in-use': {
    statuses: [409],
    about: 'a VM disk or another image (a retained copy) lives on the datastore',
  },
  'vswitch-not-found': { statuses: [422], about: 'no virtual switch of that name on this host' },
  'insufficient-capacity': { statuses: [422], about: 'the datastore has not enough free space' },
  'insufficient-memory': {
    statuses: [422, 409],
    about: 'more memory than the host has at all (422) or has unpromised right now (409)',
  },
  'qemu-start-failed': { statuses: [500], about: 'QEMU did not start; the detail has its error output' },
  'lease-held': {
    statuses: [409],
    about:
      "the VM's lease is held by another host: the VM runs there, or that host is not yet known dead (its lease expires 8 I/O timeouts + 60 s after its last renewal)",
  },
  'leases-unavailable': {
    statuses: [409],
    about:
      'this host runs no sanlock (agent config `sanlock`), or is not in a lockspace, or is in another one',
  },
  'host-command-failed': { statuses: [500], about: 'a host command (qemu-img, ip, qemu-nbd) failed' },

  // Upgrades of the host
  'upgrade-unavailable': {
    statuses: [409],
    about: 'this host has no upgrade command (agent config `upgrade.command`)',
  },
  'vms-running': {
    statuses: [409],
    about: 'VMs run (or start) on this host: it is upgraded only with none (move them off first)',
  },
  'host-upgrading': {
    statuses: [409],
    about: 'the host is being upgraded: no VM starts here and no second upgrade begins until it ends',
  },
  'upgrade-failed': {
    statuses: [502],
    about: 'the upgrade command could not start, exited non-zero or timed out; the detail has its output',
  },
  'guest-image-missing': { statuses: [503], about: 'this host has no guest image to boot VMs from yet' },
  'tools-disk-missing': {
    statuses: [503],
    about: 'this host has no guest tools disk yet (silobreak guest build makes it)',
  },
  'tools-unplug-timeout': { statuses: [504], about: 'the guest did not release the tools disk in time' },
  'guest-agent-unavailable': { statuses: [503], about: 'the guest agent does not answer' },
  'guest-command-failed': { statuses: [502], about: 'the guest agent failed the command' },
  'guest-exec-timeout': { statuses: [504], about: 'the guest process did not exit in time' },

  // Moves
  'migration-not-found': { statuses: [404], about: 'no move of that id (in that role) on this host' },
  'migration-conflict': {
    statuses: [409],
    about: 'the request clashes with a move: one in flight already, or too late or too early for this',
  },
  'migration-cancelled': { statuses: [409], about: 'the move was cancelled' },
  'migration-failed': {
    statuses: [502],
    about: 'QEMU or the peer failed the move; the VM stays where it was',
  },
  'migration-stalled': { statuses: [502], about: 'the move made no progress with no lever left' },
  'migration-orphaned': { statuses: [502], about: 'no manager asked about this incoming move for too long' },
  'cold-source-refused': {
    statuses: [422],
    about:
      "a cold copy's exports do not serve this move: unreachable, not an NBD export of the disk's size, or the move's secret refused; nothing was written",
  },
  'retained-copy-not-found': { statuses: [404], about: 'this host keeps no retained copy of that VM' },
  'retained-copy-invalid': {
    statuses: [409],
    about: 'the retained copy is not provably the disk as it left (generation, size, time or content differ)',
  },
  'link-probe-failed': {
    statuses: [502],
    about:
      'a link probe failed: the sender could not be opened or reached, or too little arrived to tell a rate',
  },
  'source-restarted': {
    statuses: [502],
    about: 'the source QEMU died in the rollback and the VM was started again from its disk',
  },

  internal: { statuses: [500], about: 'an unexpected failure of the agent' },
} as const satisfies ErrorCatalogue<string>;

export type AgentErrorCode = keyof typeof AGENT_ERRORS;

/** Whether an agent's answer was one of these errors: callers branch on codes, never on HTTP statuses. */
export function isAgentError(error: unknown, ...codes: AgentErrorCode[]): error is ApiError {
  return error instanceof ApiError && (codes as string[]).includes(error.code);
}

/** The codes a MigrationFailed carries (also found in MigrationStatus.error.code). */
export type MigrationFailureCode =
  'migration-failed' | 'migration-stalled' | 'migration-orphaned' | 'source-restarted';

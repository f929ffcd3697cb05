import type { MigrationFailureCode } from '../../api/index.js';
import { AgentError } from '../errors.js';

/* Errors of moves; mapped to HTTP answers with the agent's other errors in http-errors.ts. */

export class MigrationNotFound extends AgentError {
  readonly code = 'migration-not-found';
  constructor(readonly migrationId: string) {
    super(`no migration ${migrationId} on this host`);
  }
}

/** The request clashes with a move's state: one already in flight, or too late to cancel. */
export class MigrationConflict extends AgentError {
  readonly code = 'migration-conflict';
}

/** QEMU or the peer failed the move; the VM stays (or was put back) where it was. */
export class MigrationFailed extends AgentError {
  readonly code: MigrationFailureCode;
  constructor(
    message: string,
    readonly phase: string,
    code: MigrationFailureCode = 'migration-failed',
  ) {
    super(message);
    this.code = code;
  }
}

/**
 * A cold copy's export did not answer as this move's source (wrong address, not an export, a
 * smaller disk, or the move's secret refused). The detail names the field, never the peer's words.
 */
export class ColdSourceRefused extends AgentError {
  readonly code = 'cold-source-refused';
  constructor(field: string, message: string) {
    super(`${field}: ${message}`, field);
  }
}

export class MigrationCancelled extends AgentError {
  readonly code = 'migration-cancelled';
  constructor(readonly phase: string) {
    super(`cancelled during ${phase}`);
  }
}

/** No retained copy of the VM on this host (released, expired, or never kept). */
export class RetainedCopyNotFound extends AgentError {
  readonly code = 'retained-copy-not-found';
  constructor(readonly vmId: string) {
    super(`no retained copy of VM ${vmId} on this host`);
  }
}

/** A retained copy that is not provably the disk as it left: a delta onto it could be wrong. */
export class RetainedCopyInvalid extends AgentError {
  readonly code = 'retained-copy-invalid';
  constructor(
    readonly vmId: string,
    readonly reason: string,
  ) {
    super(`the retained copy of VM ${vmId} cannot be used: ${reason}`);
  }
}

import type { AgentErrorCode } from '../api/index.js';

/*
 * Domain errors of the host agent. The core throws these with the context a caller needs;
 * problemFor() in http-errors.ts is the one place that turns them into HTTP answers. Their codes
 * are the contract's (AGENT_ERRORS in src/api/agent-errors.ts), so a code unknown there fails to compile.
 */

export abstract class AgentError extends Error {
  /** Stable machine code, also the Problem's `code`. */
  abstract readonly code: AgentErrorCode;
  /** The request field to blame, when one is. */
  readonly field: string | undefined;
  constructor(message: string, field?: string) {
    super(message);
    this.name = new.target.name;
    this.field = field;
  }
}

/** Input that passed the schema but breaks a rule of this host (or failed the schema). */
export class InvalidInput extends AgentError {
  readonly code = 'invalid-input';
}

export class VmNotFound extends AgentError {
  readonly code = 'vm-not-found';
  constructor(readonly vm: string) {
    super(`no VM named "${vm}" is defined on this host`);
  }
}

export class VmAlreadyExists extends AgentError {
  readonly code = 'vm-exists';
  constructor(readonly vm: string) {
    super(`a VM named "${vm}" is already defined on this host`, 'name');
  }
}

export class VmIdInUse extends AgentError {
  readonly code = 'vm-id-in-use';
  constructor(
    readonly id: string,
    readonly vm: string,
  ) {
    super(`id ${id} already belongs to VM "${vm}" on this host`, 'id');
  }
}

export class DatastoreNotFound extends AgentError {
  readonly code = 'datastore-not-found';
  constructor(datastore: string, field: string) {
    super(`${field}: no datastore named "${datastore}" on this host`, field);
  }
}

export class DatastoreExists extends AgentError {
  readonly code = 'datastore-exists';
  constructor(what: string, field: string) {
    super(`${field}: ${what}`, field);
  }
}

export class DatastoreInUse extends AgentError {
  readonly code = 'datastore-in-use';
  constructor(
    readonly datastore: string,
    readonly users: string[],
  ) {
    super(
      `datastore "${datastore}" still holds ${users.join(', ')}: move or delete them first (silobreak vm move-storage)`,
      'name',
    );
  }
}

export class VSwitchNotFound extends AgentError {
  readonly code = 'vswitch-not-found';
  constructor(vswitch: string, field: string) {
    super(`${field}: no virtual switch named "${vswitch}" on this host`, field);
  }
}

export class InsufficientCapacity extends AgentError {
  readonly code = 'insufficient-capacity';
  constructor(
    readonly datastore: string,
    readonly requestedBytes: number,
    readonly freeBytes: number,
    field: string,
  ) {
    super(
      `${field}: ${requestedBytes} bytes requested on datastore "${datastore}" but only ${freeBytes} bytes are free`,
      field,
    );
  }
}

/** The VM wants more memory than the host has at all (define) or has unpromised (start). */
export class InsufficientMemory extends AgentError {
  readonly code = 'insufficient-memory';
  constructor(
    readonly requestedBytes: number,
    readonly availableBytes: number,
    readonly what: 'host memory' | 'unpromised host memory',
  ) {
    super(
      `memoryMiB: ${requestedBytes} bytes requested but the ${what} is ${availableBytes} bytes`,
      'memoryMiB',
    );
  }
}

export class DiskFileExists extends AgentError {
  readonly code = 'disk-file-exists';
  constructor(
    readonly path: string,
    field: string,
  ) {
    super(`${field}: the disk file ${path} already exists; refusing to overwrite it`, field);
  }
}

/** The operation needs the VM in another state (e.g. delete while running). */
export class VmStateConflict extends AgentError {
  readonly code = 'vm-state-conflict';
  constructor(
    readonly vm: string,
    readonly state: string,
    action: string,
  ) {
    super(`cannot ${action} VM "${vm}" while it is ${state}`);
  }
}

export class QemuStartFailed extends AgentError {
  readonly code = 'qemu-start-failed';
  constructor(
    readonly vm: string,
    readonly stderr: string,
  ) {
    super(`QEMU for VM "${vm}" did not start: ${stderr.trim() || 'no error output'}`);
  }
}

export class GuestAgentUnavailable extends AgentError {
  readonly code = 'guest-agent-unavailable';
  constructor(
    readonly vm: string,
    reason: string,
  ) {
    super(`the guest agent of VM "${vm}" does not answer: ${reason}`);
  }
}

export class GuestCommandFailed extends AgentError {
  readonly code = 'guest-command-failed';
  constructor(
    readonly vm: string,
    readonly command: string,
    reason: string,
  ) {
    super(`guest agent command ${command} failed in VM "${vm}": ${reason}`);
  }
}

export class GuestExecTimeout extends AgentError {
  readonly code = 'guest-exec-timeout';
  constructor(
    readonly vm: string,
    readonly pid: number,
    readonly timeoutSeconds: number,
  ) {
    super(`guest process ${pid} in VM "${vm}" did not exit within ${timeoutSeconds} s`, 'timeoutSeconds');
  }
}

/** A host command (qemu-img, ip, ...) failed: the host, not the request, is at fault. */
export class HostCommandFailed extends AgentError {
  readonly code = 'host-command-failed';
  constructor(
    readonly command: string,
    readonly stderr: string,
  ) {
    super(`${command} failed: ${stderr.trim() || 'no error output'}`);
  }
}

export class MacInUse extends AgentError {
  readonly code = 'mac-in-use';
  constructor(
    readonly mac: string,
    readonly vm: string,
    field: string,
  ) {
    super(`${field}: MAC ${mac} already belongs to VM "${vm}" on this host`, field);
  }
}

/** The host has no guest tools disk to insert (the set-up builds it with the guest image). */
export class ToolsDiskMissing extends AgentError {
  readonly code = 'tools-disk-missing';
  constructor() {
    super('this host has no guest tools disk: run `silobreak guest build` on it');
  }
}

/** The guest did not let go of the tools disk (PCIe unplug) in time; it stays inserted. */
export class ToolsUnplugTimeout extends AgentError {
  readonly code = 'tools-unplug-timeout';
  constructor(
    readonly vm: string,
    seconds: number,
  ) {
    super(`the guest of "${vm}" did not release the tools disk within ${seconds} s; it stays inserted`);
  }
}

/** A certificate that is not a manager's called the agent API. */
export class Forbidden extends AgentError {
  readonly code = 'forbidden';
}

/** The agent has no fabric certificate yet; only enrollment answers. */
export class NotEnrolled extends AgentError {
  readonly code = 'not-enrolled';
}

/** A wrong join secret, or none pending (enrolled already, or used). */
export class JoinRefused extends AgentError {
  readonly code = 'join-refused';
  constructor(
    message = 'joinSecret: not the join secret this agent has pending (silobreak agent join-token prints it)',
  ) {
    super(message, 'joinSecret');
  }
}

export class CertificateRejected extends AgentError {
  readonly code = 'certificate-rejected';
}

export class LeaseHeld extends AgentError {
  readonly code = 'lease-held';
  constructor(
    readonly vm: string,
    detail: string,
  ) {
    super(
      `the lease of VM "${vm}" is held by another host (${detail}): it runs there, or that host is not yet known dead`,
    );
  }
}

export class LeasesUnavailable extends AgentError {
  readonly code = 'leases-unavailable';
  constructor(detail: string) {
    super(detail);
  }
}

/** The host has no upgrade command configured (AgentConfig.upgrade). */
export class UpgradeUnavailable extends AgentError {
  readonly code = 'upgrade-unavailable';
  constructor() {
    super('this host has no upgrade command: set `upgrade.command` in its agent configuration');
  }
}

/** An upgrade was asked while VMs run (or start) here. */
export class VmsRunning extends AgentError {
  readonly code = 'vms-running';
  constructor(readonly vms: readonly string[]) {
    super(
      `VMs run on this host (${vms.join(', ')}): it is upgraded only with none running; move them off first (silobreak host drain)`,
    );
  }
}

/** The host is being upgraded: no VM starts, no second upgrade. */
export class HostUpgrading extends AgentError {
  readonly code = 'host-upgrading';
  constructor(what: string) {
    super(`the host is being upgraded: ${what} waits until the upgrade has ended`);
  }
}

/** The upgrade command could not start, exited non-zero or timed out. */
export class UpgradeFailed extends AgentError {
  readonly code = 'upgrade-failed';
  constructor(detail: string) {
    super(detail);
  }
}

/** A manager's call under an older leader epoch than this agent has seen (fencing, epoch.ts). */
export class StaleEpoch extends AgentError {
  readonly code = 'stale-epoch';
  constructor(
    readonly given: number,
    readonly highest: number,
  ) {
    super(
      `manager epoch ${given} is older than epoch ${highest} seen here: the calling manager no longer leads, and the leader of epoch ${highest} or newer drives this host`,
    );
  }
}

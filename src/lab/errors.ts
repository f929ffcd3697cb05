/*
 * The lab's typed errors. The CLI maps them to exit codes in one place (commands.ts):
 * bad usage is 2, everything else 1.
 */

export class LabError extends Error {
  readonly code: string;
  readonly usage: boolean;
  constructor(code: string, message: string, options: { usage?: boolean; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.usage = options.usage ?? false;
  }
}

/** Input that breaks a rule; names the field and the rule, and nothing was changed. */
export class LabInvalidInput extends LabError {
  readonly field: string | undefined;
  constructor(field: string | undefined, rule: string) {
    super('invalid-input', field ? `${field}: ${rule}` : rule, { usage: true });
    this.field = field;
  }
}

export class LabNotFound extends LabError {
  constructor(readonly lab: string) {
    super('lab-not-found', `lab '${lab}' is not up; start it with 'silobreak lab up --name ${lab}'`);
  }
}

export class LabTargetNotFound extends LabError {
  constructor(
    readonly lab: string,
    readonly target: string,
  ) {
    super(
      'target-not-found',
      `lab '${lab}' has no namespace for '${target}'; see 'silobreak lab status --name ${lab}'`,
    );
  }
}

export class LabAlreadyUp extends LabError {
  constructor(readonly lab: string) {
    super('lab-already-up', `lab '${lab}' is already up; run 'silobreak lab down --name ${lab}' first`);
  }
}

export class LabNeedsRoot extends LabError {
  constructor() {
    super('needs-root', 'the lab creates network namespaces and bridges: run it as root');
  }
}

export class LabNoFreeIndex extends LabError {
  constructor(max: number) {
    super('no-free-index', `all ${max + 1} lab indexes are taken; remove a lab with 'silobreak lab down'`);
  }
}

/** A system command the lab relies on (ip, ping, ...) failed. */
export class LabCommandFailed extends LabError {
  constructor(
    readonly command: string[],
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(
      'command-failed',
      `'${command.join(' ')}' failed (exit ${exitCode}): ${stderr.trim() || 'no output'}`,
    );
  }
}

/** An agent (or the manager) did not come up; the message carries the tail of its log. */
export class LabProcessFailed extends LabError {
  constructor(what: string, detail: string, logTail: string) {
    super('process-failed', `${what} ${detail}${logTail ? `; last lines of its log:\n${logTail}` : ''}`);
  }
}

/** `lab up` was interrupted (Ctrl-C); what it had created was removed. */
export class LabInterrupted extends LabError {
  constructor() {
    super('interrupted', 'interrupted; what the lab had created was removed');
  }
}

export class LabTimeout extends LabError {
  constructor(what: string, seconds: number) {
    super('timeout', `${what} did not happen within ${seconds} s`);
  }
}

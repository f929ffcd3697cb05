/** QEMU answered a command with `{"error": {"class", "desc"}}`. */
export class QmpError extends Error {
  readonly command: string;
  /** QEMU's error class, e.g. `GenericError`, `CommandNotFound`, `DeviceNotFound`. */
  readonly errorClass: string;
  readonly desc: string;
  constructor(command: string, errorClass: string, desc: string) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`);
    this.name = 'QmpError';
    this.command = command;
    this.errorClass = errorClass;
    this.desc = desc;
  }
}

/** No reply (or no awaited event) arrived within the deadline. */
export class QmpTimeoutError extends Error {
  /** The command, or `event:<NAME>` for `waitForEvent`, or `connect` for the handshake. */
  readonly command: string;
  readonly timeoutMs: number;
  constructor(command: string, timeoutMs: number) {
    super(`QMP ${command}: no answer within ${timeoutMs} ms`);
    this.name = 'QmpTimeoutError';
    this.command = command;
    this.timeoutMs = timeoutMs;
  }
}

/** The connection is closed (by `close()`, by QEMU, or by a socket error) before an answer came. */
export class QmpClosedError extends Error {
  readonly command: string | undefined;
  constructor(message: string, command?: string, options?: { cause?: unknown }) {
    super(command === undefined ? message : `QMP ${command}: ${message}`, options);
    this.name = 'QmpClosedError';
    this.command = command;
  }
}

/**
 * QEMU sent something that is not QMP (bad JSON, an unknown message shape), or a reply's `return`
 * did not match the schema the caller asked for. The former also closes the connection.
 */
export class QmpProtocolError extends Error {
  readonly command: string | undefined;
  constructor(message: string, command?: string, options?: { cause?: unknown }) {
    super(command === undefined ? message : `QMP ${command}: ${message}`, options);
    this.name = 'QmpProtocolError';
    this.command = command;
  }
}

/** The QMP socket could not be reached (no such file, nobody listening, ...). */
export class QmpConnectError extends Error {
  readonly socketPath: string;
  /** The system error code, e.g. `ENOENT`, `ECONNREFUSED`, `EACCES`. */
  readonly code: string | undefined;
  constructor(socketPath: string, cause: NodeJS.ErrnoException) {
    super(`cannot connect to QMP socket ${socketPath}: ${cause.message}`, { cause });
    this.name = 'QmpConnectError';
    this.socketPath = socketPath;
    this.code = cause.code;
  }
}

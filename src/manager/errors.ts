import {
  ApiError,
  describeZodError,
  MANAGER_ERROR_CODES,
  type ManagerErrorCode,
  type Problem,
} from '../api/index.js';
import type { z } from 'zod';

/*
 * The manager's typed domain errors. The core throws them with their context; toProblem() is the
 * one place that turns any thrown value into the API's problem details.
 */

export class ManagerError extends Error {
  constructor(
    readonly code: ManagerErrorCode,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class InvalidInput extends ManagerError {
  constructor(detail: string, field?: string) {
    super('invalid-input', detail, field);
  }
  static fromZod(error: z.ZodError): InvalidInput {
    const { field, detail } = describeZodError(error);
    return new InvalidInput(detail, field);
  }
}

export class Unauthorized extends ManagerError {
  constructor(detail = 'a valid API token is required: send "Authorization: Bearer <token>"') {
    super('unauthorized', detail);
  }
}

export class Forbidden extends ManagerError {
  constructor(tokenName: string, action: string) {
    super('forbidden', `token "${tokenName}" is read-only and cannot ${action}`);
  }
}

export type NotFoundKind = 'host' | 'pool' | 'vm' | 'job' | 'token' | 'datastore';

export class NotFound extends ManagerError {
  constructor(
    readonly kind: NotFoundKind,
    readonly ref: string,
    field?: string,
  ) {
    super('not-found', `${kind} "${ref}" not found`, field);
  }
}
export class VmNotFound extends NotFound {
  constructor(ref: string, field?: string) {
    super('vm', ref, field);
  }
}
export class HostNotFound extends NotFound {
  constructor(ref: string, field?: string) {
    super('host', ref, field);
  }
}
export class PoolNotFound extends NotFound {
  constructor(ref: string, field?: string) {
    super('pool', ref, field);
  }
}
export class JobNotFound extends NotFound {
  constructor(ref: string) {
    super('job', ref);
  }
}

export class Conflict extends ManagerError {
  constructor(detail: string, field?: string) {
    super('conflict', detail, field);
  }
}

export class InsufficientCapacity extends ManagerError {
  constructor(detail: string, field?: string) {
    super('insufficient-capacity', detail, field);
  }
}

export class JobFinished extends ManagerError {
  constructor(jobId: string, state: string) {
    super('job-finished', `job ${jobId} has already ended (${state})`);
  }
}

/** The agent could not be reached at all (connection refused, timeout). */
export class HostUnreachable extends ManagerError {
  constructor(
    readonly host: string,
    reason: string,
  ) {
    super('host-unreachable', `host ${host} is unreachable: ${reason}`);
  }
}

/** The agent answered with an error. */
export class AgentFailed extends ManagerError {
  constructor(
    readonly host: string,
    readonly agentCode: string,
    readonly agentStatus: number,
    detail: string,
    field?: string,
  ) {
    super('agent-error', `host ${host}: ${detail}`, field);
  }
}

/** Wraps whatever an AgentClient call threw into a domain error naming the host. */
export function agentError(host: string, error: unknown): ManagerError {
  if (error instanceof ManagerError) return error;
  if (error instanceof ApiError)
    return new AgentFailed(host, error.code, error.status, error.message, error.field);
  const reason =
    error instanceof Error
      ? error.name === 'TimeoutError'
        ? 'no answer in time'
        : ((error.cause instanceof Error ? error.cause.message : undefined) ?? error.message)
      : String(error);
  return new HostUnreachable(host, reason);
}

const TITLES: Record<ManagerErrorCode, string> = {
  'invalid-input': 'Invalid input',
  unauthorized: 'Unauthorized',
  forbidden: 'Forbidden',
  'not-found': 'Not found',
  conflict: 'Conflict',
  'insufficient-capacity': 'Insufficient capacity',
  'job-finished': 'Job already ended',
  'host-unreachable': 'Host unreachable',
  'agent-error': 'Agent error',
  internal: 'Internal error',
};

function problemOf(code: ManagerErrorCode, detail: string, field?: string): Problem {
  return {
    type: 'about:blank',
    title: TITLES[code],
    status: MANAGER_ERROR_CODES[code],
    code,
    detail,
    ...(field !== undefined ? { field } : {}),
  };
}

/** Framework errors that carry a 4xx status (bad JSON, body too large, unknown route). */
interface HttpishError {
  statusCode: number;
  message: string;
}
function isHttpish(error: unknown): error is HttpishError {
  return (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as { statusCode?: unknown }).statusCode === 'number' &&
    typeof (error as { message?: unknown }).message === 'string'
  );
}

/** Maps any thrown value to problem details; unknown errors never leak their message or stack. */
export function toProblem(error: unknown): Problem {
  if (error instanceof ManagerError) return problemOf(error.code, error.message, error.field);
  // The parser's own message quotes the body, which may hold a secret: name the rule only.
  if (error instanceof SyntaxError && isHttpish(error) && error.statusCode === 400) {
    const proto = /prototype/.test(error.message);
    return problemOf(
      'invalid-input',
      proto ? 'body: must not hold __proto__ or constructor.prototype keys' : 'body: is not valid JSON',
      'body',
    );
  }
  if (isHttpish(error) && error.statusCode >= 400 && error.statusCode < 500) {
    if (error.statusCode === 404) return problemOf('not-found', error.message);
    return { ...problemOf('invalid-input', error.message), status: error.statusCode };
  }
  return problemOf('internal', 'internal error; see the manager log');
}

import {
  ApiError,
  describeZodError,
  MANAGER_ERROR_CODES,
  MANAGER_ERROR_TITLES,
  type ManagerErrorCode,
  type Problem,
} from '../api/index.js';
import type { z } from 'zod';
import { unstorableText } from './db.js';
import { DatabaseUnavailable } from './db-primary.js';

/*
 * The manager's typed domain errors. The core throws them with their context; toProblem() is the
 * one place that turns any thrown value into the API's problem details.
 */

export class ManagerError extends Error {
  constructor(
    readonly code: ManagerErrorCode,
    message: string,
    readonly field?: string,
    /** Extension members of the problem (RFC 9457 §3.2), as its code's schema declares them. */
    readonly members?: Readonly<Record<string, unknown>>,
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

export type NotFoundKind =
  | 'host'
  | 'pool'
  | 'cluster'
  | 'vm'
  | 'disk'
  | 'job'
  | 'token'
  | 'datastore'
  | 'retained copy'
  | 'recommendation'
  | 'schedule'
  | 'cluster';

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
export class ClusterNotFound extends NotFound {
  constructor(ref: string, field?: string) {
    super('cluster', ref, field);
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

/**
 * A host in maintenance (entering or in) takes no new VM, no start and no move to it; `action`
 * says what was refused (e.g. `start web1`).
 */
export class HostInMaintenance extends ManagerError {
  constructor(
    readonly host: string,
    readonly maintenance: 'entering' | 'in',
    action: string,
    field?: string,
  ) {
    super(
      'conflict',
      `${field ? `${field}: ` : ''}host ${host} is ${maintenance === 'in' ? 'in' : 'entering'} maintenance: cannot ${action} there; choose another host, or end its maintenance (silobreak host resume ${host})`,
      field,
    );
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

/**
 * This manager does not lead (any more), or an agent refused its epoch as older than one it has
 * seen (fencing, leader.ts): it does not act on hosts; the leader does.
 */
export class NotLeader extends ManagerError {
  constructor(detail: string) {
    super('not-leader', detail);
  }
}

/** Whether `error` is a fencing refusal: this manager does not lead, or an agent said so. */
export const isFenced = (error: unknown): boolean =>
  error instanceof NotLeader || (error instanceof ApiError && error.code === 'stale-epoch');

/** Wraps whatever an AgentClient call threw into a domain error naming the host. */
export function agentError(host: string, error: unknown): ManagerError {
  if (error instanceof ManagerError) return error;
  if (error instanceof ApiError && error.code === 'stale-epoch')
    return new NotLeader(`host ${host}: ${error.message}`);
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

function problemOf(code: ManagerErrorCode, detail: string, field?: string): Problem {
  return {
    type: 'about:blank',
    title: MANAGER_ERROR_TITLES[code],
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
  /** Fastify's error code, e.g. FST_ERR_CTP_INVALID_JSON_BODY. */
  code?: string;
}
function isHttpish(error: unknown): error is HttpishError {
  return (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as { statusCode?: unknown }).statusCode === 'number' &&
    typeof (error as { message?: unknown }).message === 'string'
  );
}

/** Fastify's refusals of a request body: the code each stands for, the field and the rule. */
const BODY_ERRORS: Record<string, { code: ManagerErrorCode; field: string; rule: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: {
    code: 'invalid-input',
    field: 'body',
    rule: 'is not valid JSON, or holds a __proto__ or constructor.prototype key',
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: {
    code: 'invalid-input',
    field: 'body',
    rule: 'is empty: send {} (or no content-type)',
  },
  FST_ERR_CTP_BODY_TOO_LARGE: {
    code: 'body-too-large',
    field: 'body',
    rule: 'is larger than the manager takes (1 MiB)',
  },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    code: 'unsupported-media-type',
    field: 'content-type',
    rule: 'must be application/json (a PATCH may be application/merge-patch+json)',
  },
};
/** The code of a refusal that comes with an HTTP status only (the router's, Node's). */
const STATUS_CODES: Partial<Record<number, ManagerErrorCode>> = {
  404: 'not-found',
  408: 'request-timeout',
  413: 'body-too-large',
  414: 'uri-too-long',
  415: 'unsupported-media-type',
  431: 'headers-too-large',
};

/** Maps any thrown value to problem details; unknown errors never leak their message or stack. */
export function toProblem(error: unknown): Problem {
  if (error instanceof ManagerError)
    return { ...error.members, ...problemOf(error.code, error.message, error.field) };
  if (isHttpish(error) && error.statusCode >= 400 && error.statusCode < 500) {
    const body = error.code !== undefined ? BODY_ERRORS[error.code] : undefined;
    if (body) return problemOf(body.code, `${body.field}: ${body.rule}`, body.field);
    const code = STATUS_CODES[error.statusCode];
    if (code) return problemOf(code, error.message);
    return { ...problemOf('invalid-input', error.message), status: error.statusCode };
  }
  if (error instanceof DatabaseUnavailable) return problemOf('database-unavailable', error.message);
  if (unstorableText(error))
    return problemOf('invalid-input', 'text with a NUL character (U+0000) is not valid here');
  return problemOf('internal', 'internal error; see the manager log');
}

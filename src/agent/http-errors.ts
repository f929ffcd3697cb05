import { z } from 'zod';
import { describeZodError, type Problem } from '../api/index.js';
import { GuestImageMissing } from '../guest/index.js';
import {
  AgentError,
  DatastoreNotFound,
  DiskFileExists,
  GuestAgentUnavailable,
  GuestCommandFailed,
  GuestExecTimeout,
  InsufficientCapacity,
  InsufficientMemory,
  InvalidInput,
  MacInUse,
  VmAlreadyExists,
  VmIdInUse,
  VmNotFound,
  VmStateConflict,
  VSwitchNotFound,
} from './errors.js';
import {
  MigrationCancelled,
  MigrationConflict,
  MigrationFailed,
  MigrationNotFound,
} from './migration/errors.js';

/*
 * The one place where the agent's errors become HTTP answers (RFC 9457 problem details).
 * Anything unexpected is a 500 whose detail never carries a stack trace.
 */

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function problem(status: number, code: string, detail: string, field?: string): Problem {
  return {
    type: 'about:blank',
    title: TITLES[status] ?? 'Error',
    status,
    code,
    detail,
    ...(field === undefined ? {} : { field }),
  };
}

function statusOf(error: AgentError): number {
  if (error instanceof InvalidInput) return 400;
  if (error instanceof VmNotFound) return 404;
  if (
    error instanceof VmAlreadyExists ||
    error instanceof VmIdInUse ||
    error instanceof DiskFileExists ||
    error instanceof MacInUse
  )
    return 409;
  if (error instanceof VmStateConflict) return 409;
  if (error instanceof DatastoreNotFound || error instanceof VSwitchNotFound) return 422;
  if (error instanceof InsufficientCapacity) return 422;
  // More than the host has at all is a bad request; more than is unpromised right now is a conflict.
  if (error instanceof InsufficientMemory) return error.what === 'host memory' ? 422 : 409;
  if (error instanceof MigrationNotFound) return 404;
  if (error instanceof MigrationConflict || error instanceof MigrationCancelled) return 409;
  // The peer, its QEMU or the link between the hosts failed the move.
  if (error instanceof MigrationFailed) return 502;
  if (error instanceof GuestAgentUnavailable) return 503;
  if (error instanceof GuestCommandFailed) return 502;
  if (error instanceof GuestExecTimeout) return 504;
  // QemuStartFailed, HostCommandFailed: the host, not the request, is at fault.
  return 500;
}

/** Errors that Fastify itself raises before a handler runs (body parsing, limits). */
const FastifyClientError = z.object({
  statusCode: z.number().int().min(400).max(499),
  code: z.string(),
  message: z.string(),
});

export function problemFor(error: unknown): Problem {
  if (error instanceof AgentError) return problem(statusOf(error), error.code, error.message, error.field);
  // The host is not set up to boot guests yet; the message says how to fix it.
  if (error instanceof GuestImageMissing) return problem(503, 'guest-image-missing', error.message);
  if (error instanceof z.ZodError) {
    const { field, detail } = describeZodError(error);
    return problem(400, 'invalid-input', detail, field);
  }
  const client = FastifyClientError.safeParse(error);
  if (client.success) {
    const { statusCode, code, message } = client.data;
    // Body parser failures (FST_ERR_CTP_INVALID_JSON_BODY, FST_ERR_CTP_EMPTY_JSON_BODY): bad JSON.
    if (statusCode === 400 && code.startsWith('FST_ERR_CTP_'))
      return problem(400, 'malformed-json', `request body: ${message}`);
    return problem(statusCode, code.toLowerCase().replaceAll('_', '-'), message);
  }
  return problem(500, 'internal', error instanceof Error ? error.message : 'unexpected error');
}

import { z } from 'zod';
import {
  AGENT_ERRORS,
  describeZodError,
  STATUS_TITLES,
  type AgentErrorCode,
  type Problem,
} from '../api/index.js';
import { GuestImageMissing } from '../guest/index.js';
import { AgentError, InsufficientMemory } from './errors.js';

/*
 * The one place where the agent's errors become HTTP answers (RFC 9457 problem details), with the
 * statuses the contract gives each code (AGENT_ERRORS). Anything unexpected is a 500 whose detail
 * never carries a stack trace.
 */

export function problem(status: number, code: AgentErrorCode, detail: string, field?: string): Problem {
  return {
    type: 'about:blank',
    title: STATUS_TITLES[status] ?? 'Error',
    status,
    code,
    detail,
    ...(field === undefined ? {} : { field }),
  };
}

function statusOf(error: AgentError): number {
  // More than the host has at all is a bad request; more than is unpromised right now is a conflict.
  if (error instanceof InsufficientMemory) return error.what === 'host memory' ? 422 : 409;
  return AGENT_ERRORS[error.code].statuses[0];
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
    if (statusCode === 413) return problem(413, 'body-too-large', message);
    if (statusCode === 414) return problem(414, 'uri-too-long', message);
    if (statusCode === 415)
      return problem(
        415,
        'unsupported-media-type',
        'content-type: the body must be application/json (a PATCH may be application/merge-patch+json)',
        'content-type',
      );
    return problem(statusCode, 'invalid-request', message);
  }
  return problem(500, 'internal', error instanceof Error ? error.message : 'unexpected error');
}

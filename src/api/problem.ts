import { z } from 'zod';

/**
 * The error body of both HTTP APIs (RFC 9457 problem details): a stable machine `code`, a human
 * `detail`, and the offending `field` when one is to blame. Never a stack trace.
 */
export const Problem = z.object({
  type: z.string().default('about:blank'),
  title: z.string(),
  status: z.number().int(),
  code: z.string(),
  detail: z.string(),
  field: z.string().optional(),
});
export type Problem = z.infer<typeof Problem>;

/** A problem reported by the other side of an HTTP API call, as a typed exception. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | undefined;
  /**
   * `body`: the problem as it came, extension members included (RFC 9457 §3.2: e.g. a refused
   * upgrade plan's `stranded`), for the caller to read with the schema of that code.
   */
  constructor(
    problem: Problem,
    readonly body?: unknown,
  ) {
    super(problem.detail);
    this.name = 'ApiError';
    this.status = problem.status;
    this.code = problem.code;
    this.field = problem.field;
  }
}

/** Turns a zod failure into one line that names the field and the rule. */
export function describeZodError(error: z.ZodError): { field: string | undefined; detail: string } {
  const issue = error.issues[0];
  if (!issue) return { field: undefined, detail: 'invalid input' };
  // An unknown key is blamed on itself, not on the object holding it: a typo such as `dryrun`
  // must be named, since silently dropping it would run what the caller meant to only check.
  const path =
    issue.code === 'unrecognized_keys' && issue.keys[0] !== undefined
      ? [...issue.path, issue.keys[0]]
      : issue.path;
  const message =
    issue.code === 'unrecognized_keys'
      ? 'is not a field of this request (check its spelling)'
      : issue.message;
  const field = path.length ? path.map(String).join('.') : undefined;
  return { field, detail: field ? `${field}: ${message}` : message };
}

/** RFC 9110's reason phrases: a problem's title where its API gives none of its own. */
export const STATUS_TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Content Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/**
 * Refusals of the HTTP layer itself, before any route: the same codes, statuses and titles on
 * both APIs (issue 28, row 10: the manager answered all four titled "Invalid input").
 */
export const HTTP_REFUSALS = {
  'request-timeout': { statuses: [408], about: 'the request did not arrive in time' },
  'body-too-large': { statuses: [413], about: 'the request body is over 1 MiB' },
  'uri-too-long': { statuses: [414], about: 'a path segment is over 1024 characters' },
  'unsupported-media-type': {
    statuses: [415],
    about: 'the request body is not application/json (a PATCH may be application/merge-patch+json)',
  },
  'headers-too-large': { statuses: [431], about: 'the request line and headers are over 16 KiB' },
} as const;
export type HttpRefusal = keyof typeof HTTP_REFUSALS;

/** Longest path parameter both servers' routers hand on (longer: 414 uri-too-long). */
export const MAX_PATH_PARAM_LENGTH = 1024;

/**
 * What a server answers on a connection whose request Node could not even parse (its clientError
 * event: a head over 16 KiB, a timeout, not HTTP): the whole HTTP/1.1 reply with the problem the
 * server's `build` makes of the status and detail, or undefined when the peer is gone.
 */
export function clientErrorReply(
  errorCode: string | undefined,
  build: (status: number, detail: string) => Problem,
): string | undefined {
  if (errorCode === 'ECONNRESET') return undefined;
  const problem =
    errorCode === 'HPE_HEADER_OVERFLOW'
      ? build(431, 'the request line and headers exceed 16 KiB')
      : errorCode === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? build(408, 'the request did not arrive in time')
        : build(400, 'the request is not valid HTTP');
  const body = JSON.stringify(problem);
  return (
    `HTTP/1.1 ${problem.status} ${STATUS_TITLES[problem.status] ?? 'Error'}\r\nContent-Type: application/problem+json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nX-Content-Type-Options: nosniff\r\n` +
    `Cache-Control: no-store\r\nConnection: close\r\n\r\n${body}`
  );
}

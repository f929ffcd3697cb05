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
  constructor(problem: Problem) {
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

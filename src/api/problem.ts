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
  const field = issue.path.length ? issue.path.map(String).join('.') : undefined;
  return { field, detail: field ? `${field}: ${issue.message}` : issue.message };
}

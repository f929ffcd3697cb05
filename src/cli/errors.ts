// The one place where every failure becomes a message on stderr and an exit code.
import { ApiError, describeZodError } from '../api/index.js';
import { z } from 'zod';

/** 0 done, 1 the operation failed, 2 bad usage: the convention of qm, virsh and most Unix tools. */
export const ExitCode = { ok: 0, failed: 1, usage: 2 } as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The command line itself is wrong (a flag's value, a missing setting); nothing was changed. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The operation was attempted and did not succeed (e.g. its job failed or was cancelled). */
export class OperationFailed extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'OperationFailed';
  }
}

export interface Failure {
  exitCode: ExitCode;
  message: string;
  hint?: string;
}

/**
 * What to tell the user about `error`, and how the process ends. `url` is the manager's; `noun`
 * (e.g. `vm`) the command's, for hints like `silobreak vm list`.
 */
export function describeFailure(error: unknown, url?: string, noun?: string): Failure {
  if (error instanceof UsageError) return withHint(ExitCode.usage, error.message, error.hint);
  if (error instanceof OperationFailed) return withHint(ExitCode.failed, error.message, error.hint);
  if (error instanceof ApiError) return describeApiError(error, url, noun);
  if (error instanceof z.ZodError) {
    // Our own inputs are validated before any call, so a ZodError here is a reply off the contract.
    return withHint(
      ExitCode.failed,
      `the manager's reply did not match the API this CLI expects (${describeZodError(error).detail})`,
      'use a CLI of the same version as the manager',
    );
  }
  const unreachable = connectionProblem(error);
  if (unreachable) {
    return withHint(
      ExitCode.failed,
      `cannot reach the manager at ${url ?? 'its URL'} (${unreachable})`,
      'check that it is running and that --url / SILOBREAK_URL points at it',
    );
  }
  return withHint(ExitCode.failed, error instanceof Error ? error.message : String(error));
}

function describeApiError(error: ApiError, url: string | undefined, noun: string | undefined): Failure {
  const where = url ? ` at ${url}` : '';
  switch (error.status) {
    case 401:
      return withHint(
        ExitCode.failed,
        `the manager${where} rejected the token (401 unauthorized): ${error.message}`,
        'pass a valid --token, set SILOBREAK_TOKEN, or fix the token in ~/.config/silobreak/config.json',
      );
    case 403:
      return withHint(
        ExitCode.failed,
        `not allowed (403 forbidden): ${error.message}`,
        'this needs an admin token; a read-only token can only look',
      );
    case 404: {
      const list = noun ? `silobreak ${noun} list` : 'the list command';
      return withHint(ExitCode.failed, `not found: ${error.message}`, `check the name or id with ${list}`);
    }
    default: {
      const field = error.field ? ` [${error.field}]` : '';
      const hint = error.status >= 500 ? "the manager's log may say more" : undefined;
      return withHint(ExitCode.failed, `${error.message}${field} (${error.status} ${error.code})`, hint);
    }
  }
}

/**
 * Why the manager could not be reached or stopped answering, if that is what `error` says. fetch()
 * reports refused connections as a TypeError whose cause holds the code, and a reply cut off
 * mid-stream (e.g. the manager restarted) as a TypeError 'terminated'.
 */
export function connectionProblem(error: unknown): string | undefined {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return 'no answer in time';
  }
  if (error instanceof TypeError && error.message === 'fetch failed') {
    const cause: unknown = error.cause;
    if (cause instanceof Error) {
      const code = (cause as Error & { code?: unknown }).code;
      return typeof code === 'string' ? code : cause.message;
    }
    return 'connection failed';
  }
  if (error instanceof TypeError && error.message === 'terminated') return 'connection lost';
  return undefined;
}

function withHint(exitCode: ExitCode, message: string, hint?: string): Failure {
  return hint === undefined ? { exitCode, message } : { exitCode, message, hint };
}

/** The text written to stderr for a failure. */
export function formatFailure(failure: Failure): string {
  return `silobreak: ${failure.message}\n${failure.hint ? `hint: ${failure.hint}\n` : ''}`;
}

/** Turns a zod failure of a command's arguments into a UsageError naming the flag and the rule. */
export function usageErrorFromZod(
  error: z.ZodError,
  positional: readonly string[],
  usage: string,
): UsageError {
  const issue = error.issues[0];
  const key = issue?.path[0];
  const rest = issue?.path.slice(1).map(String) ?? [];
  let subject = 'arguments';
  if (typeof key === 'string') subject = positional.includes(key) ? `<${key}>` : `--${kebab(key)}`;
  const where = rest.length ? ` (${rest.join('.')})` : '';
  return new UsageError(`${subject}${where}: ${issue?.message ?? 'invalid value'}`, `see: ${usage} --help`);
}

export function kebab(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

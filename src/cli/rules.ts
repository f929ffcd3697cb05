// Input rules shared by the commands' zod schemas, with messages that say what is allowed.
import { z } from 'zod';
import { UsageError } from './errors.js';

/** A zod string rule from a parser that returns a value or an error message. */
export function fromParser<T>(parse: (text: string) => T | { error: string }) {
  return z.string().transform((text, ctx) => {
    const result = parse(text);
    if (typeof result === 'object' && result !== null && 'error' in result) {
      ctx.issues.push({ code: 'custom', message: String(result.error), input: text });
      return z.NEVER;
    }
    return result as T;
  });
}

export const input = {
  /** A host, pool, VM or job reference: its name or id. */
  ref: z.string().min(1, 'must not be empty').max(64, 'must be at most 64 characters'),
  count: (min: number, max: number) =>
    z
      .string()
      .regex(/^\d+$/, `must be a whole number from ${min} to ${max}`)
      .transform(Number)
      .refine((n) => n >= min && n <= max, `must be a whole number from ${min} to ${max}`),
  limit: z
    .string()
    .regex(/^[1-9]\d*$/, 'must be a positive whole number')
    .transform(Number)
    .optional(),
};

/**
 * `--set field=value` pairs into an object, naming the bad pair: values are numbers, or (with
 * `text`) a word such as `p99` or `fast` where a number does not parse. The API checks the rest.
 */
export function parseFieldSettings(
  settings: readonly string[],
  fields: readonly string[],
  example: string,
  text: boolean,
): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const s of settings) {
    const m = /^([A-Za-z0-9]+)=(.+)$/.exec(s);
    if (!m?.[1] || m[2] === undefined)
      throw new UsageError(`--set: '${s}' is not field=value`, `e.g. --set ${example}`);
    if (!fields.includes(m[1]))
      throw new UsageError(`--set: no setting '${m[1]}'`, `one of: ${fields.join(', ')}`);
    const number = /^-?[0-9]+(?:\.[0-9]+)?$/.test(m[2]) ? Number(m[2]) : undefined;
    if (number === undefined && !(text && /^[a-z0-9-]{1,31}$/.test(m[2])))
      throw new UsageError(
        `--set: '${s}' needs a number${text ? ' or a word' : ''}`,
        `e.g. --set ${example}`,
      );
    out[m[1]] = number ?? m[2];
  }
  return out;
}

/** `--unset field` (repeatable): the fields whose overrides go, as a merge patch's nulls. */
export function parseUnsetFields(names: readonly string[], fields: readonly string[]): Record<string, null> {
  const out: Record<string, null> = {};
  for (const name of names) {
    if (!fields.includes(name))
      throw new UsageError(`--unset: no setting '${name}'`, `one of: ${fields.join(', ')}`);
    out[name] = null;
  }
  return out;
}

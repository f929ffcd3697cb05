// Input rules shared by the commands' zod schemas, with messages that say what is allowed.
import { z } from 'zod';

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

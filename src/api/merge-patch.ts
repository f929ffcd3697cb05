import { z } from 'zod';

/*
 * JSON merge patch (RFC 7396), the one way to change part of a document (PATCH): a member of the
 * patch replaces the document's, `null` removes it (an override goes back to its default), an
 * object merges into the document's member. A PUT replaces the whole document instead and needs
 * a body: a missing or null body is refused, never read as "no overrides".
 */

/** Media type of a merge patch; PATCH routes take it (and application/json, the same bytes). */
export const MERGE_PATCH_TYPE = 'application/merge-patch+json';

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** RFC 7396 §2: the target with `patch` applied (neither is changed). */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const result: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = applyMergePatch(result[key], value);
  }
  return result;
}

/** The schema an object's own schema gives, its wrappers (optional, nullable, default) taken off. */
function unwrapped(schema: z.ZodType): z.ZodType {
  if (schema instanceof z.ZodOptional || schema instanceof z.ZodNullable || schema instanceof z.ZodDefault)
    return unwrapped(schema.def.innerType as z.ZodType);
  return schema;
}

/**
 * The merge patches of documents of `schema` (a strict object): every member optional, `null`
 * allowed (it removes), nested objects patches themselves. The merged document is checked against
 * `schema` itself, so a patch that leaves it incomplete or out of order names the field then.
 */
export function MergePatchOf(schema: z.ZodObject): z.ZodObject<Record<string, z.ZodType>> {
  const shape: Record<string, z.ZodType> = {};
  for (const [key, field] of Object.entries(schema.shape as Record<string, z.ZodType>)) {
    const inner = unwrapped(field);
    shape[key] = (inner instanceof z.ZodObject ? MergePatchOf(inner) : inner).nullable().optional();
  }
  return z.strictObject(shape);
}

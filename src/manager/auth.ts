import { createHash, randomBytes } from 'node:crypto';
import { bearerToken, type TokenRole } from '../api/index.js';
import { Forbidden } from './errors.js';

/*
 * API tokens: random secrets of which the manager stores only a SHA-256 hash (the secrets are
 * long and random, so a slow password hash would add nothing). Roles: `admin` may do everything,
 * `read-only` may only read.
 */

export function newSecret(): string {
  return `sb_${randomBytes(32).toString('base64url')}`;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** The secret of an `Authorization: Bearer <secret>` header, by the rule agents follow too. */
export const bearerSecret = bearerToken;

export interface Caller {
  name: string;
  role: TokenRole;
}

const READ_METHODS = new Set(['GET', 'HEAD']);

/**
 * Throws Forbidden unless `caller` may make this call: read-only tokens may read anything except
 * the token list; only admins change things.
 */
export function authorize(caller: Caller, method: string, routePath: string): void {
  if (caller.role === 'admin') return;
  const reading = READ_METHODS.has(method.toUpperCase());
  if (reading && !routePath.includes('/tokens')) return;
  throw new Forbidden(caller.name, reading ? 'list tokens' : `${method.toUpperCase()} ${routePath}`);
}

import { z } from 'zod';

/*
 * Rules both sides apply: the manager at its front door and every agent at its own, from one
 * definition (issue 28: an agent reached directly must refuse what the manager refuses). This
 * file imports nothing but zod, so agent.ts, manager.ts and migration.ts can all build on it.
 */

export const MacAddress = z
  .string()
  .regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, 'must be a lowercase MAC like 52:54:00:12:34:56');

/**
 * A locally administered QEMU-style MAC (52:54:00:xx:xx:xx) whose free bytes come from `seed`: what
 * an agent gives a NIC defined without one, and the manager a NIC it creates without one.
 */
export function macFromBytes(seed: Uint8Array): string {
  if (seed.length < 3) throw new RangeError('a MAC needs 3 seed bytes');
  const tail = Array.from(seed.subarray(0, 3), (b) => b.toString(16).padStart(2, '0'));
  return ['52', '54', '00', ...tail].join(':');
}

/** A NIC's own address: multicast (first octet odd, broadcast included) and all-zero MACs are not. */
export const UnicastMac = MacAddress.refine(
  (mac) => (parseInt(mac.slice(0, 2), 16) & 1) === 0,
  'must be a unicast MAC: the first octet must be even (this one is multicast)',
).refine((mac) => mac !== '00:00:00:00:00:00', 'must not be all zeros');

/** C0/C1 controls and DEL (a terminal obeys them) and bidirectional overrides (they reorder text). */
const CONTROL = /[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

/** The first control character or bidirectional override in `text`, as a rule's message. */
export function controlCharacterProblem(text: string): string | undefined {
  const found = CONTROL.exec(text);
  if (!found) return undefined;
  const code = (found[0].codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0');
  return `must not contain control characters or bidirectional overrides (U+${code} at ${found.index})`;
}

/** A string without control characters or bidirectional overrides, at most `max` long. */
export function PlainText(max: number) {
  return z
    .string()
    .max(max, `must be at most ${max} characters`)
    .superRefine((text, ctx) => {
      const message = controlCharacterProblem(text);
      if (message) ctx.addIssue({ code: 'custom', message });
    });
}

/** Free text shown to people (descriptions): one line, no control characters. */
export const DisplayText = PlainText;

/**
 * A directory on a host, as a request names it: absolute, no control characters (a NUL would reach
 * the filesystem calls; ESC or RLO would disguise the path in every listing). Where it may be, and
 * what it resolves to, is the agent's to check (src/agent/datastore-roots.ts).
 */
export const HostPath = PlainText(4096).min(1, 'must not be empty').regex(/^\//, 'must be an absolute path');

/** Each item's key (when it has one) must differ from every other item's. */
export function uniqueItems<T>(what: string, key: (item: T) => string | undefined) {
  return (items: T[], ctx: z.RefinementCtx) => {
    const seen = new Map<string, number>();
    items.forEach((item, i) => {
      const k = key(item);
      if (k === undefined) return;
      const first = seen.get(k);
      if (first === undefined) seen.set(k, i);
      else
        ctx.addIssue({
          code: 'custom',
          path: [i, ...(what ? [what] : [])],
          message: `${k} is already item ${first}'s${what ? ` ${what}` : ''}: must be unique`,
        });
    });
  };
}

/** A query-string integer in decimal digits only (Number() would also take "0x10", " 5" or "1e3"). */
export function QueryInt(min: number, max: number) {
  return z.preprocess(
    (v) => (typeof v === 'string' && /^[0-9]{1,15}$/.test(v) ? Number(v) : v),
    z
      .number({ error: (issue) => (issue.code === 'invalid_type' ? 'must be a decimal integer' : undefined) })
      .int()
      .min(min)
      .max(max),
  );
}

/**
 * The token of an `Authorization: Bearer <token>` header, one rule for both APIs: the scheme is
 * case-insensitive (RFC 7235 §2.1), one or more spaces before the token, nothing after it.
 */
export function bearerToken(header: string | undefined): string | undefined {
  return /^Bearer +([\x21-\x7e]+) *$/i.exec(header ?? '')?.[1];
}

/** Query parameters whose values are secrets, whatever a client put there. */
const SECRET_PARAM = /token|secret|passw|key|auth|credential|signature|session/i;

/**
 * A request URL as a log may keep it: the values of query parameters that may hold a secret
 * replaced (`GET /v1/host?token=...` once wrote the token into agent.log).
 */
export function redactUrl(url: string): string {
  const at = url.indexOf('?');
  if (at < 0) return url;
  const pairs = url
    .slice(at + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const name = eq < 0 ? pair : pair.slice(0, eq);
      let decoded = name;
      try {
        decoded = decodeURIComponent(name.replace(/\+/g, ' '));
      } catch {
        // an undecodable name is judged as it is
      }
      return eq >= 0 && SECRET_PARAM.test(decoded) ? `${name}=<redacted>` : pair;
    });
  return `${url.slice(0, at)}?${pairs.join('&')}`;
}

import { z } from 'zod';
import { GuestOptionInvalid } from './errors.js';

export const GuestNetworkOptions = z.strictObject({
  /** Address of eth0 with prefix length, e.g. `10.77.0.10/24`. */
  ip: z.cidrv4({ error: 'must be an IPv4 address with a prefix length, e.g. 10.0.0.5/24' }).optional(),
  /** Default gateway, e.g. `10.77.0.1`. */
  gateway: z.ipv4({ error: 'must be an IPv4 address, e.g. 10.0.0.1' }).optional(),
  /** Host name: one label (agent VM names, which may end in a dash, fit). */
  hostname: z
    .string()
    .regex(/^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}$/, {
      error: 'must be 1-63 letters, digits or dashes, starting with a letter or digit',
    })
    .optional(),
});
export type GuestNetworkOptions = z.infer<typeof GuestNetworkOptions>;

// Why each option: the serial console carries the ready marker; `quiet` keeps slow TCG serial
// output short; no speculative-execution mitigations (a throwaway test guest, and TCG pays for
// them); skip probing a PS/2 mouse; trust the CPU's RNG so nothing waits for entropy; skip the
// crypto self-tests and audit at boot (CPU time under TCG); no IPv6, so the guest sends nothing
// on the lab segment (router solicitations, MLD) that tests did not ask for.
const BASE_OPTIONS = [
  'console=ttyS0',
  'quiet',
  'mitigations=off',
  'i8042.noaux',
  'random.trust_cpu=on',
  'cryptomgr.notests=1',
  'audit=0',
  'ipv6.disable=1',
];

/** The `-append` string for the guest kernel; `sb.*` options are read by the guest's boot script. */
export function guestKernelCommandLine(options: GuestNetworkOptions = {}): string {
  const parsed = GuestNetworkOptions.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.map(String).join('.') || 'options';
    throw new GuestOptionInvalid(field, issue?.message ?? 'invalid');
  }
  const { ip, gateway, hostname } = parsed.data;
  if (gateway !== undefined && ip === undefined) {
    throw new GuestOptionInvalid('gateway', 'needs ip as well (the guest has no other address)');
  }
  const parts = [...BASE_OPTIONS];
  if (ip !== undefined) parts.push(`sb.ip=${ip}`);
  if (gateway !== undefined) parts.push(`sb.gw=${gateway}`);
  if (hostname !== undefined) parts.push(`sb.hostname=${hostname}`);
  return parts.join(' ');
}

// The flags of `vm create`, validated and turned into the API's CreateVmRequest. Pure.
import { z } from 'zod';
import { Cidr, Ipv4, MacAddress, Name, type CreateVmRequest } from '../api/index.js';
import { fromParser, input } from './rules.js';
import { parseSize } from './units.js';

/** `--disk 2G` or `--disk 2G@fast`: a size and an optional datastore. */
export function parseDiskOption(text: string): { sizeBytes: number; datastore?: string } | { error: string } {
  const at = text.lastIndexOf('@');
  const sizeText = at >= 0 ? text.slice(0, at) : text;
  const size = parseSize(sizeText);
  if ('error' in size) return { error: `${size.error}; the form is SIZE[@DATASTORE], e.g. 2G@local` };
  if (size.bytes < 1024 * 1024) return { error: `'${sizeText}' is below the smallest disk, 1M` };
  if (at < 0) return { sizeBytes: size.bytes };
  const datastore = Name.safeParse(text.slice(at + 1));
  if (!datastore.success)
    return { error: `datastore '${text.slice(at + 1)}' ${datastore.error.issues[0]?.message}` };
  return { sizeBytes: size.bytes, datastore: datastore.data };
}

/** `--nic vmsw0` or `--nic vmsw0=52:54:00:12:34:56`: a virtual switch and an optional MAC. */
export function parseNicOption(text: string): { vswitch: string; mac?: string } | { error: string } {
  const [switchText = '', macText, ...rest] = text.split('=');
  if (rest.length) return { error: `'${text}' has more than one '='; the form is VSWITCH[=MAC]` };
  const vswitch = Name.safeParse(switchText);
  if (!vswitch.success) {
    return {
      error: `virtual switch '${switchText}' ${vswitch.error.issues[0]?.message}; the form is VSWITCH[=MAC]`,
    };
  }
  if (macText === undefined) return { vswitch: vswitch.data };
  const mac = MacAddress.safeParse(macText.toLowerCase());
  if (!mac.success) return { error: `MAC '${macText}' ${mac.error.issues[0]?.message}` };
  return { vswitch: vswitch.data, mac: mac.data };
}

/** `--memory 512M`: whole MiB from 64 MiB to 1 TiB, as the agent's VmSpec allows. */
export function parseMemoryOption(text: string): { memoryMiB: number } | { error: string } {
  const size = parseSize(text);
  if ('error' in size) return size;
  const MiB = 1024 * 1024;
  if (size.bytes % MiB !== 0) return { error: `'${text}' is not a whole number of MiB` };
  const memoryMiB = size.bytes / MiB;
  if (memoryMiB < 64 || memoryMiB > 1024 * 1024) return { error: `'${text}' is outside 64M..1T` };
  return { memoryMiB };
}

/** Flags as commander gives them (strings; repeatable ones as arrays), keyed like the flags. */
export const VmCreateFlags = z
  .object({
    name: Name,
    host: z.string().min(1).max(64).optional(),
    pool: z.string().min(1).max(64).optional(),
    vcpus: z.string().default('1').pipe(input.count(1, 64)),
    memory: z.string().default('512M').pipe(fromParser(parseMemoryOption)),
    disk: z.array(fromParser(parseDiskOption)).max(8, 'at most 8 disks').default([]),
    nic: z.array(fromParser(parseNicOption)).max(8, 'at most 8 NICs').default([]),
    ip: Cidr.optional(),
    gateway: Ipv4.optional(),
    start: z.boolean().default(false),
    detach: z.boolean().default(false),
  })
  .refine((f) => f.host !== undefined || f.pool !== undefined, {
    message: 'is required: the host to create the VM on (or --pool to let the manager pick one)',
    path: ['host'],
  })
  .refine((f) => f.gateway === undefined || f.ip !== undefined, {
    message: 'needs --ip too (the gateway is configured with the address)',
    path: ['gateway'],
  });
export type VmCreateFlags = z.output<typeof VmCreateFlags>;

export function createVmRequest(f: VmCreateFlags): CreateVmRequest {
  return {
    ...(f.host !== undefined ? { host: f.host } : {}),
    ...(f.pool !== undefined ? { pool: f.pool } : {}),
    spec: {
      name: f.name,
      vcpus: f.vcpus,
      memoryMiB: f.memory.memoryMiB,
      disks: f.disk,
      nics: f.nic,
      ...(f.ip !== undefined ? { guestIp: f.ip } : {}),
      ...(f.gateway !== undefined ? { guestGateway: f.gateway } : {}),
      start: f.start,
    },
  };
}

import { createHash } from 'node:crypto';
import { z } from 'zod';
import {
  DEFAULT_DATASTORE_CLASS,
  Name,
  type DatastoreLimits,
  type PlacementSettingsOverrides,
} from '../api/index.js';

/*
 * The pure naming and addressing plan of a lab: which namespaces, bridges, veths and addresses a
 * lab of a given name, index and size owns. `lab up` creates exactly these, and `lab down` (even
 * without a state file) recognises exactly these and nothing else.
 */

export const LabName = Name;
export const MAX_HOSTS = 20;
/** Labs get subnets 10.250.<index>.0/24 and 10.251.<index>.0/24. */
export const MAX_LAB_INDEX = 255;
/** Agents listen on this port on their fabric address. */
export const AGENT_PORT = 8470;
/** Port the lab's manager listens on, on 127.0.0.1, plus the lab index so labs can coexist. */
export const MANAGER_BASE_PORT = 18000;

/**
 * `lab up --beast <host>`: the other hosts' datastores get the limits of a slower (SAN-like) tier,
 * and the Beast's none, so a VM's I/O is measurably faster there (issue 18).
 */
export const STANDARD_TIER_LIMITS = {
  iops: 400,
  // 80 MiB/s: binary, like every size the CLI takes (`--bandwidth 80M/s`) and shows.
  bytesPerSecond: 80 * 1024 * 1024,
} as const satisfies DatastoreLimits;
export const FAST_CLASS = 'fast';

/** Names of interfaces inside a host namespace: fixed, as each namespace has its own. */
export const HOST_FABRIC_IF = 'fabric0';
export const HOST_UPLINK_IF = 'uplink0';
export const HOST_VSWITCH = 'vmsw0';
export const CLIENT_IF = 'eth0';

const IFNAMSIZ = 15;
const MAX_TAG = 8;

/**
 * A short tag for root-namespace interface names (the kernel allows 15 characters). Short lab
 * names are used as they are; longer ones become a prefix plus a hash, joined by `_`, which a lab
 * name cannot contain, so a hashed tag never equals a literal one.
 */
export function labTag(name: string): string {
  if (name.length <= MAX_TAG) return name;
  const hash = BigInt('0x' + createHash('sha256').update(name).digest('hex').slice(0, 12))
    .toString(36)
    .slice(-4)
    .padStart(4, '0');
  return `${name.slice(0, MAX_TAG - 5)}_${hash}`;
}

/**
 * Every root-namespace link of a lab is `sb<tag>-<suffix>` with a suffix without dashes, so the
 * last dash splits a name unambiguously and no lab's pattern matches another lab's links.
 */
const LINK_SUFFIX = '(fab|vm|vc|st|f[0-9]+|v[0-9]+)';
const NS_SUFFIX = '(client|storage|host[0-9]+)';

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function linkPattern(tag: string): RegExp {
  return new RegExp(`^sb${escape(tag)}-${LINK_SUFFIX}$`);
}
export function namespacePattern(name: string): RegExp {
  return new RegExp(`^sb-${escape(name)}-${NS_SUFFIX}$`);
}
/** Matches the links of any lab; group 1 is the tag. */
export const anyLabLink = new RegExp(`^sb([a-z0-9_-]{1,${MAX_TAG}})-${LINK_SUFFIX}$`);
/** Matches the namespaces of any lab; group 1 is the lab name. */
export const anyLabNamespace = new RegExp(`^sb-([a-z0-9-]{1,31})-${NS_SUFFIX}$`);

export interface HostPlan {
  /** Host name inside the lab (the agent's hostName). */
  name: string;
  namespace: string;
  fabricAddress: string;
  agentUrl: string;
  /** Root end of the veth to the fabric bridge (inner end: HOST_FABRIC_IF). */
  fabricVeth: string;
  /** Root end of the veth to the VM L2 bridge (inner end: HOST_UPLINK_IF, uplink of vmsw0). */
  uplinkVeth: string;
  /** Class and limits of every datastore of the host (none without a Beast). */
  storage: { class: string; limits?: DatastoreLimits };
}

export interface LabPlan {
  name: string;
  index: number;
  tag: string;
  fabric: { bridge: string; subnet: string; prefixLength: number; rootAddress: string };
  vmNet: { bridge: string; subnet: string; prefixLength: number };
  client: { namespace: string; veth: string; address: string };
  /** The shared storage server's namespace on the fabric (created by `lab up --shared-storage` only). */
  storage: { namespace: string; veth: string; address: string };
  hosts: HostPlan[];
  managerUrl: string;
}

export const PlanInput = z.object({
  name: LabName,
  index: z.number().int().min(0).max(MAX_LAB_INDEX),
  hosts: z.number().int().min(1).max(MAX_HOSTS),
  /** The host with fast storage (`host<N>`); the others' datastores are limited. */
  beast: z
    .string()
    .regex(/^host[1-9][0-9]?$/, 'must be a host of the lab, like host3')
    .optional(),
});

/** The placement settings that are durations: the only ones a lab test shortens. */
type PlacementDurations = Pick<
  PlacementSettingsOverrides,
  | 'evaluationIntervalSeconds'
  | 'demandWindowSeconds'
  | 'holdSeconds'
  | 'coolHoldSeconds'
  | 'minStaySeconds'
  | 'moveOverheadSeconds'
>;

/**
 * Placement durations short enough for a lab episode to take about a minute each way (the lab
 * tests of the Beast and bench/beast); every threshold stays the default, so the tests see what
 * users get. Evaluation every 2 s; a 30-s demand window (the shortest: one bucket of the Storage
 * Explorer's finest tier); holds of 4 rounds; no minimum stay; a schedule's lead 15 s plus the
 * copy time. Only durations: the type refuses any other setting.
 */
export const LAB_PLACEMENT_SETTINGS = {
  evaluationIntervalSeconds: 2,
  demandWindowSeconds: 30,
  holdSeconds: 8,
  coolHoldSeconds: 8,
  minStaySeconds: 0,
  moveOverheadSeconds: 15,
} as const satisfies PlacementDurations;

/** The storage of each host: all `standard` and unlimited, or with a Beast as described above. */
function hostStorage(host: string, beast: string | undefined): HostPlan['storage'] {
  if (beast === undefined) return { class: DEFAULT_DATASTORE_CLASS };
  return host === beast
    ? { class: FAST_CLASS }
    : { class: DEFAULT_DATASTORE_CLASS, limits: { ...STANDARD_TIER_LIMITS } };
}

export function planLab(input: z.input<typeof PlanInput>): LabPlan {
  const { name, index, hosts, beast } = PlanInput.parse(input);
  if (beast !== undefined && Number(beast.slice('host'.length)) > hosts)
    throw new RangeError(`beast: the lab has host1 to host${hosts}, not ${beast}`);
  const tag = labTag(name);
  const link = (suffix: string) => {
    const ifname = `sb${tag}-${suffix}`;
    // Guaranteed by MAX_TAG and MAX_HOSTS; kept as a check because the kernel would truncate silently.
    if (ifname.length > IFNAMSIZ) throw new Error(`interface name too long: ${ifname}`);
    return ifname;
  };
  const fabricNet = `10.250.${index}`;
  const vmNet = `10.251.${index}`;
  return {
    name,
    index,
    tag,
    fabric: {
      bridge: link('fab'),
      subnet: `${fabricNet}.0/24`,
      prefixLength: 24,
      rootAddress: `${fabricNet}.1`,
    },
    vmNet: { bridge: link('vm'), subnet: `${vmNet}.0/24`, prefixLength: 24 },
    client: { namespace: `sb-${name}-client`, veth: link('vc'), address: `${vmNet}.2` },
    storage: { namespace: `sb-${name}-storage`, veth: link('st'), address: `${fabricNet}.5` },
    hosts: Array.from({ length: hosts }, (_, i) => {
      const n = i + 1;
      const fabricAddress = `${fabricNet}.${10 + n}`;
      return {
        name: `host${n}`,
        namespace: `sb-${name}-host${n}`,
        fabricAddress,
        agentUrl: `https://${fabricAddress}:${AGENT_PORT}`,
        fabricVeth: link(`f${n}`),
        uplinkVeth: link(`v${n}`),
        storage: hostStorage(`host${n}`, beast),
      };
    }),
    managerUrl: `http://127.0.0.1:${MANAGER_BASE_PORT + index}`,
  };
}

/** Addresses 10.251.<index>.101 ... .250 are for VMs: the n-th VM (from 1) gets .100+n. */
export function vmAddress(index: number, n: number): { ip: string; cidr: string } {
  if (!Number.isInteger(n) || n < 1 || n > 150) {
    throw new RangeError(`VM number must be an integer from 1 to 150, got ${n}`);
  }
  const ip = `10.251.${index}.${100 + n}`;
  return { ip, cidr: `${ip}/24` };
}

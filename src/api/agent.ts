import { z } from 'zod';
import { HostPath, MacAddress, PlainText, UnicastMac, uniqueItems } from './rules.js';

/*
 * The host agent's HTTP API (served under /v1 by every agent, bearer token required) and the
 * agent's own configuration file. The manager, the lab and tests reach an agent only through
 * these schemas and AgentClient.
 */

export const Name = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9-]{0,30}$/,
    'must be 1-31 lowercase letters, digits or dashes, starting with a letter or digit',
  );
export const Cidr = z.cidrv4({
  error: 'must be an IPv4 address with prefix length, like 10.251.0.101/24',
});
export const Ipv4 = z.ipv4({ error: 'must be an IPv4 address, like 10.251.0.1' });

/**
 * A datastore's class: `fast`, `standard` or a name an administrator chose. Placement prefers
 * hosts and datastores of the class a VM asks for; the lab gives its Beast `fast`.
 */
export const DatastoreClass = Name;
export const DEFAULT_DATASTORE_CLASS = 'standard';

/**
 * Performance limits of a datastore, as a slower storage tier would impose: every VM disk on it
 * goes through a QEMU throttle group of these limits (per VM and datastore: QEMU throttle groups
 * live inside one QEMU process). Absent fields are unlimited.
 */
export const DatastoreLimits = z.strictObject({
  iops: z.number().int().min(1).max(10_000_000).optional(),
  bytesPerSecond: z
    .number()
    .int()
    .min(4096)
    .max(1024 ** 4)
    .optional(),
});
export type DatastoreLimits = z.infer<typeof DatastoreLimits>;

/**
 * Where a datastore's files live: `local`, a directory only this host sees (the default), or
 * `shared`, a network filesystem (NFS, CephFS, sshfs) other hosts mount too. A shared
 * datastore's identity is the marker file SHARED_STORAGE_MARKER in its root, `{"storageId":
 * "<uuid>"}`, written by the first agent that adds it and read by every other: two hosts see the
 * same storage when their datastores' storageIds are equal (their names may differ; a disk file
 * has the same path relative to the root on each). A VM whose disks all stay on storage the
 * target sees moves by its memory alone.
 */
export const DatastoreKind = z.enum(['local', 'shared']);
export type DatastoreKind = z.infer<typeof DatastoreKind>;
export const StorageId = z.uuid({ error: 'must be a storage id (a UUID, as a shared datastore reports it)' });
export const SHARED_STORAGE_MARKER = '.silobreak-storage.json';

// Configuration files are strict like requests: a misspelt field is an error, not ignored.
export const DatastoreConfig = z.strictObject({
  name: Name,
  path: HostPath,
  default: z.boolean().default(false),
  class: DatastoreClass.default(DEFAULT_DATASTORE_CLASS),
  limits: DatastoreLimits.optional(),
  kind: DatastoreKind.default('local'),
});
export type DatastoreConfig = z.output<typeof DatastoreConfig>;

/**
 * Where datastores may be made through the API when the config says nothing: the places an admin
 * mounts a disk for VMs (`/srv`, `/mnt`) and Silobreak's own directory for them. A datastore is a
 * directory at or under one of these (after symlinks are resolved), never a system directory or
 * the agent's state (src/agent/datastore-roots.ts). The lab gives each host its own directory.
 */
export const DEFAULT_DATASTORE_ROOTS = ['/srv', '/mnt', '/var/lib/silobreak/datastores'] as const;

/**
 * The agent's break-glass unix socket in its state directory (config breakGlassToken): the API
 * for the host's root, with that token; the lab's and recovery's way in.
 */
export const agentSocketPath = (stateDir: string): string => `${stateDir.replace(/\/+$/, '')}/agent.sock`;

/** The longest a host's upgrade command may run (its config's `upgrade.timeoutSeconds` at most). */
export const UPGRADE_TIMEOUT_MAX_SECONDS = 7200;

export const AgentConfig = z.strictObject({
  hostName: Name,
  /** The agent API, HTTPS: mutual TLS with the fabric's certificates once enrolled (pki.ts). */
  listen: z.strictObject({ address: z.string(), port: z.number().int().min(1).max(65535) }),
  /**
   * Break-glass access for the lab and recovery: when set, the agent also serves its API on a unix
   * socket in its state directory (`agent.sock`, owner-only), to requests bearing this token. Off
   * when absent (the default); it never works over the network, where only a manager's
   * certificate does.
   */
  breakGlassToken: z
    .string()
    .min(16)
    .max(1024)
    .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII')
    .optional(),
  /** Address of this host on the fabric: NBD exports and migration streams listen here. */
  fabricAddress: Ipv4,
  /** Definitions, QMP sockets, pidfiles and logs of this host's VMs. */
  stateDir: z.string(),
  datastores: z.array(DatastoreConfig).min(1),
  /** Directories under which POST /v1/datastores may make a datastore (DEFAULT_DATASTORE_ROOTS). */
  datastoreRoots: z
    .array(HostPath)
    .min(1)
    .default([...DEFAULT_DATASTORE_ROOTS]),
  vswitches: z.array(
    z.strictObject({ name: Name, bridge: z.string().max(15), uplink: z.string().max(15).optional() }),
  ),
  accelerator: z.enum(['auto', 'kvm', 'tcg']).default('auto'),
  /**
   * A move on this host that no manager asked about for this long is an orphan: an incoming VM or
   * a cold copy is removed (an incoming guest whose copy completed is resumed here instead). The
   * manager asks every 10 s while it follows a move; its restart takes seconds to minutes.
   */
  orphanMoveSeconds: z.number().int().min(10).max(86_400).default(600),
  /**
   * This host runs sanlock (Debian's `sanlock` service; the lab runs one per host): it may join a
   * cluster's lockspace (PUT /v1/lockspace), and then every VM with a disk on a shared datastore
   * runs holding its lease (leases.ts). Absent: no leases, and no HA restart of this host's VMs.
   */
  sanlock: z.strictObject({ runDir: HostPath.default('/run/sanlock') }).optional(),
  /**
   * How this host upgrades itself when the manager asks (POST /v1/host/upgrade, one step of a
   * rolling upgrade): a program and its arguments, run without a shell while no VM runs here, e.g.
   * `["/usr/bin/apt-get", "install", "-y", "silobreak", "qemu-system-x86"]`. A command that
   * replaces the agent also restarts it, detached from the agent (the answer goes out first).
   * Absent: the manager cannot upgrade this host.
   */
  upgrade: z
    .strictObject({
      command: z.array(z.string().min(1).max(4096)).min(1).max(64),
      timeoutSeconds: z.number().int().min(10).max(UPGRADE_TIMEOUT_MAX_SECONDS).default(1800),
    })
    .optional(),
});
export type AgentConfig = z.infer<typeof AgentConfig>;

/**
 * sanlock's I/O timeout for a cluster's lockspace. A host that cannot renew its lease for 8 of
 * these is fenced by its own sanlock (its leased QEMUs are killed); the others may take its leases
 * 60 s after that (sanlock's fixed watchdog time). sanlock's own default, 10 s, suits SANs with
 * multipath failover; a LAN file server answers within 2 s or is gone.
 */
export const DEFAULT_LEASE_IO_TIMEOUT_SECONDS = 2;

/** A cluster's lockspace as a host joins it: the manager assigns the name and the host id. */
export const LockspaceSpec = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'must be 1-40 lowercase letters, digits and dashes'),
  /** sanlock's host id: unique among the hosts of the lockspace. */
  hostId: z.number().int().min(1).max(2000),
  /** The shared datastore that holds the lockspace (and the cluster's VM leases). */
  datastore: Name,
  ioTimeoutSeconds: z.number().int().min(1).max(60).default(DEFAULT_LEASE_IO_TIMEOUT_SECONDS),
});
export type LockspaceSpec = z.infer<typeof LockspaceSpec>;

export const LockspaceStatus = z.object({
  name: z.string(),
  hostId: z.number().int(),
  datastore: z.string(),
  ioTimeoutSeconds: z.number().int(),
  /** joining: sanlock is acquiring the host's lease (about 10 I/O timeouts); lost: renewal failed, leased VMs were killed. */
  state: z.enum(['joining', 'joined', 'lost', 'failed']),
  error: z.string().optional(),
});
export type LockspaceStatus = z.infer<typeof LockspaceStatus>;
/** A configuration as written (defaults not yet applied). */
export type AgentConfigInput = z.input<typeof AgentConfig>;

export const Accelerator = z.enum(['kvm', 'tcg']);
export type Accelerator = z.infer<typeof Accelerator>;

export const HostInfo = z.object({
  name: Name,
  fabricAddress: Ipv4,
  agentVersion: z.string(),
  qemuVersion: z.string(),
  accelerator: Accelerator,
  /** Why the preferred accelerator was not used, when it was not (e.g. the KVM boot probe hung). */
  acceleratorWarning: z.string().optional(),
  cpus: z.number().int(),
  memoryBytes: z.number().int(),
  /** Host memory not yet promised to defined VMs that are running. */
  memoryFreeBytes: z.number().int(),
  machineType: z.string(),
  cpuModel: z.string(),
  /** The guest agent version of this host's tools disk; absent when it has none. */
  toolsVersion: z.string().optional(),
  /**
   * The host holds the fabric certificates a TLS move needs (<stateDir>/tls: CA, host certificate
   * and key; migration/tls.ts). Absent from agents that do not say.
   */
  moveTls: z.boolean().optional(),
  /** The host runs sanlock (AgentConfig.sanlock). */
  sanlock: z.boolean().optional(),
  /** The cluster lockspace this host is in, when it is in one. */
  lockspace: LockspaceStatus.optional(),
});
export type HostInfo = z.infer<typeof HostInfo>;

/** An agent's and its QEMU's versions. */
export const SoftwareVersions = z.object({ agentVersion: z.string(), qemuVersion: z.string() });
export type SoftwareVersions = z.infer<typeof SoftwareVersions>;

/** The answer of POST /v1/host/upgrade: what the upgrade command did, and the versions after. */
export const HostUpgradeResult = z.object({
  command: z.array(z.string()),
  exitCode: z.number().int(),
  durationMs: z.number().int(),
  /** The command's output, the last 64 KiB of each stream (also in the agent's log). */
  stdout: z.string(),
  stderr: z.string(),
  /** What ran when the upgrade began. */
  before: SoftwareVersions,
  /**
   * What the host has installed now: QEMU's own version (VMs start on it from now on, and the
   * agent reports it) and the agent package's version on disk.
   */
  after: SoftwareVersions,
  /** The agent on disk is not the one running: it reports `after` once restarted (the command's job). */
  agentRestartNeeded: z.boolean(),
});
export type HostUpgradeResult = z.infer<typeof HostUpgradeResult>;

/** What a short I/O probe of a datastore measured (datastore-probe.ts). */
export const DatastoreProbe = z.object({
  /** Random 4 KiB writes and reads, each followed by fdatasync for writes: operations per second. */
  iops: z.number().min(0),
  /** Sequential 1 MiB writes with fdatasync at the end: bytes per second. */
  bytesPerSecond: z.number().min(0),
  probedAt: z.iso.datetime(),
  durationMs: z.number().int().min(0),
});
export type DatastoreProbe = z.infer<typeof DatastoreProbe>;

export const Datastore = z
  .object({
    name: Name,
    path: z.string(),
    default: z.boolean(),
    capacityBytes: z.number().int(),
    freeBytes: z.number().int(),
    /** Defaulted for agents older than classes, so a newer manager still reads them. */
    class: DatastoreClass.default(DEFAULT_DATASTORE_CLASS),
    /** Absent: no limits. */
    limits: DatastoreLimits.optional(),
    /** The last probe since the agent started, if any. */
    probe: DatastoreProbe.optional(),
    /** Defaulted for agents older than shared storage. */
    kind: DatastoreKind.default('local'),
    /** A shared datastore's storage (its marker file's id); always present for one, never for a local one. */
    storageId: StorageId.optional(),
  })
  .superRefine((d, ctx) => {
    if ((d.kind === 'shared') !== (d.storageId !== undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['storageId'],
        message: 'must be present for a shared datastore and absent for a local one',
      });
  });
export type Datastore = z.infer<typeof Datastore>;

/** Adds a datastore at runtime; kept in the agent's configuration file. */
export const DatastoreSpec = z.strictObject({
  name: Name,
  /** An absolute directory under one of the agent's datastore roots; made when missing. */
  path: HostPath,
  class: DatastoreClass.optional(),
  limits: DatastoreLimits.optional(),
  default: z.boolean().optional(),
  /**
   * `shared`: a network filesystem other hosts mount too; its marker file is read, or written with
   * a new storage id when absent (default `local`).
   */
  kind: DatastoreKind.optional(),
  /** Run the I/O probe right after adding (default true). */
  probe: z.boolean().optional(),
});
export type DatastoreSpec = z.infer<typeof DatastoreSpec>;

/** Changes a datastore's settings; `limits: null` lifts every limit. Running VMs follow at once. */
export const DatastoreUpdate = z.strictObject({
  class: DatastoreClass.optional(),
  limits: DatastoreLimits.nullable().optional(),
  default: z.literal(true).optional(),
});
export type DatastoreUpdate = z.infer<typeof DatastoreUpdate>;

export const VSwitch = z.object({ name: Name, bridge: z.string(), uplink: z.string().optional() });
export type VSwitch = z.infer<typeof VSwitch>;

/**
 * A disk file's path relative to its datastore's root, as on every host that mounts the storage:
 * no leading `/`, no `.` or `..` or empty segment, no control characters.
 */
export const DatastoreFile = PlainText(1024)
  .min(1, 'must not be empty')
  .refine(
    (f) => f.split('/').every((part) => part !== '' && part !== '.' && part !== '..'),
    "must be a path inside the datastore, like vms/web-1-root.qcow2 (no leading '/', no '.' or '..')",
  );

/** A disk that stays on shared storage: the storage (its marker's id) and the file on it. */
export const SharedDiskRef = z.strictObject({ storageId: StorageId, file: DatastoreFile });
export type SharedDiskRef = z.infer<typeof SharedDiskRef>;

export const DiskSpec = z.strictObject({
  id: Name.optional(),
  datastore: Name.optional(),
  sizeBytes: z.number().int().positive(),
  /**
   * The disk is an existing image on shared storage, opened where it is (an HA restart on another
   * host of the cluster): `datastore` must be a shared datastore here of that storage, the file a
   * qcow2 image of `sizeBytes` inside it. Nothing is created, and a failed define deletes nothing.
   */
  shared: SharedDiskRef.optional(),
});
/** A MAC given must be unicast; one left out is generated (unicast, locally administered). */
export const NicSpec = z.strictObject({ id: Name.optional(), vswitch: Name, mac: UnicastMac.optional() });

/**
 * A VM to define: the same rules at the manager's front door (CreateVmRequest.spec) and at every
 * agent's (POST /v1/vms): strict, disk ids, NIC ids and MACs unique within the VM. That a MAC is
 * used by no other VM is checked by each side against what it knows: the agent against its host,
 * the manager against the whole VM network (and its database holds it: manager/db.ts 0012).
 */
export const VmSpec = z.strictObject({
  /** Kept across hosts: a VM that moves keeps its id. Generated when absent. */
  id: z.uuid().optional(),
  name: Name,
  vcpus: z.number().int().min(1).max(64),
  memoryMiB: z
    .number()
    .int()
    .min(64)
    .max(1024 * 1024),
  disks: z
    .array(DiskSpec)
    .max(8)
    .superRefine(uniqueItems('id', (d) => d.id))
    .default([]),
  nics: z
    .array(NicSpec)
    .max(8)
    .superRefine(uniqueItems('id', (n) => n.id))
    .superRefine(uniqueItems('mac', (n) => n.mac))
    .default([]),
  /** Configured in the guest from the kernel command line. */
  guestIp: Cidr.optional(),
  guestGateway: Ipv4.optional(),
  start: z.boolean().default(false),
});
export type VmSpec = z.input<typeof VmSpec>;
export type ValidVmSpec = z.output<typeof VmSpec>;

export const VmState = z.enum([
  'stopped',
  'starting',
  'running',
  'paused',
  'shutting-down',
  'incoming',
  'migrating',
  'crashed',
]);
export type VmState = z.infer<typeof VmState>;

export const VmDisk = z.object({
  id: Name,
  datastore: Name,
  path: z.string(),
  format: z.enum(['qcow2', 'raw']),
  virtualSizeBytes: z.number().int(),
  allocatedBytes: z.number().int(),
  /** QEMU block node name of the format layer (what blockdev-mirror and NBD exports address). */
  nodeName: z.string(),
});
export type VmDisk = z.infer<typeof VmDisk>;

export const VmNic = z.object({ id: Name, vswitch: Name, mac: MacAddress, tap: z.string() });
export type VmNic = z.infer<typeof VmNic>;

export const Vm = z.object({
  id: z.uuid(),
  name: Name,
  state: VmState,
  pid: z.number().int().optional(),
  vcpus: z.number().int(),
  memoryMiB: z.number().int(),
  disks: z.array(VmDisk),
  nics: z.array(VmNic),
  guestIp: Cidr.optional(),
  guestGateway: Ipv4.optional(),
  machineType: z.string(),
  cpuModel: z.string(),
  accelerator: Accelerator,
  createdAt: z.iso.datetime(),
  startedAt: z.iso.datetime().optional(),
  /** The guest tools disk is inserted (attached now if the VM runs, at its next start if not). */
  toolsDisk: z.boolean().optional(),
});
export type Vm = z.infer<typeof Vm>;

export const ShutdownRequest = z.object({
  /** Seconds to wait after the ACPI request before forcing the VM off. */
  timeoutSeconds: z.number().int().min(0).max(3600).default(60),
});
export const GuestExecRequest = z.object({
  command: z.array(z.string()).min(1),
  timeoutSeconds: z.number().int().min(1).max(3600).default(30),
  /** Start and return at once with the guest pid instead of waiting for the exit. */
  detach: z.boolean().default(false),
});
export const GuestExecResult = z.object({
  pid: z.number().int(),
  exitCode: z.number().int().optional(),
  stdout: z.string().optional(),
  stderr: z.string().optional(),
});
export type GuestExecResult = z.infer<typeof GuestExecResult>;

export const GuestInfo = z.object({
  agentVersion: z.string(),
  osInfo: z.record(z.string(), z.unknown()).optional(),
  filesystems: z
    .array(
      z.object({
        mountpoint: z.string(),
        type: z.string(),
        totalBytes: z.number().optional(),
        usedBytes: z.number().optional(),
      }),
    )
    .optional(),
});
export type GuestInfo = z.infer<typeof GuestInfo>;

/**
 * What appeared on or vanished from this host, in order (GET /v1/journal): every VM defined or
 * deleted and every datastore added or removed, whoever asked. The manager reads it at each poll,
 * so that a VM made and deleted between two polls is still seen (issue 28: drift). Kept in memory,
 * the last JOURNAL_ENTRIES; `bootId` changes when the agent restarts (and `seq` starts again).
 */
export const JournalEntry = z.object({
  seq: z.number().int().min(1),
  at: z.iso.datetime(),
  kind: z.enum(['vm', 'datastore']),
  action: z.enum(['created', 'deleted']),
  name: Name,
  /** A VM's id. */
  id: z.uuid().optional(),
});
export type JournalEntry = z.infer<typeof JournalEntry>;

export const JOURNAL_ENTRIES = 1000;

export const AgentJournal = z.object({
  bootId: z.uuid(),
  /** Ask with `after` = this next time. */
  next: z.number().int().min(0),
  /** False when entries after `after` were dropped already (more than JOURNAL_ENTRIES since). */
  complete: z.boolean(),
  entries: z.array(JournalEntry),
});
export type AgentJournal = z.infer<typeof AgentJournal>;

/*
 * Enrollment and certificates (the agent's side of the fabric CA; see src/agent/pki.ts). A join
 * token, printed on the host by `silobreak agent join-token`, is `<joinSecret>.<fingerprint>`:
 * the one-time secret and the SHA-256 of the agent's bootstrap certificate, which pins the first
 * connection.
 */
const Pem = (what: string) =>
  z
    .string()
    .max(64 * 1024, 'must be at most 64 KiB')
    .regex(
      new RegExp(`^-----BEGIN ${what}-----\\r?\\n[\\s\\S]+-----END ${what}-----\\s*$`),
      `must be one PEM ${what}`,
    );
export const CertificatePem = Pem('CERTIFICATE');
export const CrlPem = Pem('X509 CRL');
export const JoinSecret = z
  .string()
  .regex(/^[A-Za-z0-9_-]{22,64}$/, 'must be the secret part of a join token (base64url)');

export const JoinToken = z
  .string()
  .max(200, 'must be at most 200 characters')
  .regex(
    /^[A-Za-z0-9_-]{22,64}\.[A-Za-z0-9_-]{43}$/,
    'must be a join token as `silobreak agent join-token` prints it on the host (<secret>.<fingerprint>)',
  );
export type JoinToken = z.infer<typeof JoinToken>;

export const CertificateRequestBody = z.strictObject({
  /** Required until the agent is enrolled; a manager renewing its certificate sends none. */
  joinSecret: JoinSecret.optional(),
});
export type CertificateRequestBody = z.input<typeof CertificateRequestBody>;

export const AgentCertificateRequest = z.object({
  hostName: Name,
  fabricAddress: Ipv4,
  /** A PKCS#10 request for a new key the agent keeps; the manager issues the certificate. */
  csr: z.string().regex(/^-----BEGIN CERTIFICATE REQUEST-----/, 'must be a PEM certificate request'),
});
export type AgentCertificateRequest = z.infer<typeof AgentCertificateRequest>;

export const InstallCertificateBody = z.strictObject({
  joinSecret: JoinSecret.optional(),
  caCertificate: CertificatePem,
  certificate: CertificatePem,
  crl: CrlPem,
});
export type InstallCertificateBody = z.input<typeof InstallCertificateBody>;

export const RevocationListBody = z.strictObject({ crl: CrlPem });
export type RevocationListBody = z.input<typeof RevocationListBody>;

export const AgentCertificate = z.object({
  subject: z.string(),
  serial: z.string(),
  notAfter: z.iso.datetime(),
});
export type AgentCertificate = z.infer<typeof AgentCertificate>;

import { z } from 'zod';
import { Cidr, Ipv4, Name, SharedDiskRef } from './agent.js';
import { LinkFigure, PeerSecret } from './links.js';
import { UnicastMac, uniqueItems } from './rules.js';

/*
 * The agents' migration API (under /v1/migrations, bearer token as for the rest of the agent API).
 * A live move is driven by the manager in this order:
 *   1. source  POST /v1/migrations/plan            -> MigrationPlan (parameters chosen from link + VM)
 *   2. target  POST /v1/migrations/incoming        -> IncomingPrepared (disks created, QEMU waiting
 *                                                     paused with -incoming, NBD exports, stream port;
 *                                                     a disk on shared storage both hosts see is opened
 *                                                     where it is: no copy, no export)
 *   3. source  POST /v1/migrations                 -> MigrationStatus (mirrors + memory copy run in
 *                                                     the background; poll GET /v1/migrations/:id)
 *   4. target  resumes the guest by itself the moment the incoming copy completes (NBD server
 *      stopped, `cont`, announce-self): no round trip in the guest's pause.
 *   5. target  POST /v1/migrations/incoming/:id/finish -> the VM, now defined on the target
 *      source  POST /v1/migrations/:id/complete        -> source QEMU gone, disks removed unless kept
 * Cancel before switchover: source POST /v1/migrations/:id/cancel, then target .../incoming/:id/abort.
 * Storage-only moves on one host: POST /v1/vms/:name/move-storage.
 */

export const MigrationId = z.uuid();

export const MigrationPhase = z.enum([
  'validate',
  'prepare',
  'mirror-disks',
  'copy-memory',
  'switchover',
  'clean-up',
  'done',
]);
export type MigrationPhase = z.infer<typeof MigrationPhase>;

export const MigrationState = z.enum(['running', 'completed', 'failed', 'cancelled']);
export type MigrationState = z.infer<typeof MigrationState>;

export const MigrationRole = z.enum(['source', 'target', 'storage']);
export type MigrationRole = z.infer<typeof MigrationRole>;

export const DiskProgress = z.object({
  diskId: Name,
  bytesDone: z.number(),
  bytesTotal: z.number(),
  bytesRemaining: z.number(),
  /** The mirror is in sync (write-blocking from here on). */
  ready: z.boolean(),
  rateBytesPerSecond: z.number(),
});
export type DiskProgress = z.infer<typeof DiskProgress>;

export const MemoryProgress = z.object({
  bytesTransferred: z.number(),
  bytesRemaining: z.number(),
  bytesTotal: z.number(),
  passes: z.number().int(),
  rateBytesPerSecond: z.number(),
  dirtyRateBytesPerSecond: z.number(),
});
export type MemoryProgress = z.infer<typeof MemoryProgress>;

export const MigrationHealth = z.enum(['progressing', 'slow', 'stalled']);
export type MigrationHealth = z.infer<typeof MigrationHealth>;

export const MigrationProgress = z.object({
  phase: MigrationPhase,
  /** 0-100, never goes down. */
  percent: z.number(),
  disks: z.array(DiskProgress),
  memory: MemoryProgress.optional(),
  rateBytesPerSecond: z.number(),
  dirtyRateBytesPerSecond: z.number(),
  /** Absent when unknown (e.g. the guest dirties memory as fast as it is sent). */
  etaSeconds: z.number().optional(),
  health: MigrationHealth,
  /** Why the move is slow or stalled, when it is. */
  healthReason: z.string().optional(),
  throttlePercent: z.number(),
});
export type MigrationProgress = z.infer<typeof MigrationProgress>;

/**
 * How the memory stream is encoded (src/agent/migration/compression.ts chooses): as is, compressed
 * per page by multifd channels (zstd, or zlib), or as XOR deltas against a cache of pages already
 * sent (xbzrle, source only). multifd compression must be the same on both sides.
 */
export const StreamCompressionMode = z.enum(['plain', 'multifd-zstd', 'multifd-zlib', 'xbzrle']);
export type StreamCompressionMode = z.infer<typeof StreamCompressionMode>;

export const StreamCompression = z.strictObject({
  mode: StreamCompressionMode,
  /** The rule that chose it, with the figures it read, for people. */
  why: z.string(),
});
export type StreamCompression = z.infer<typeof StreamCompression>;

/** Figures measured during the move (QEMU's own where QEMU reports them). */
export const MigrationStats = z.object({
  totalTimeMs: z.number().optional(),
  mirrorTimeMs: z.number().optional(),
  diskBytes: z.number().optional(),
  memoryTimeMs: z.number().optional(),
  memoryBytes: z.number().optional(),
  setupTimeMs: z.number().optional(),
  /** QEMU-reported downtime of the switchover. */
  downtimeMs: z.number().optional(),
  /** When QEMU paused the guest for the switchover (its pre-switchover event), ms precision. */
  switchoverAt: z.iso.datetime().optional(),
  /** Target side: when the guest ran again here (QEMU's `cont` answered), ms precision. */
  resumedAt: z.iso.datetime().optional(),
  iterations: z.number().int().optional(),
  /** The guest's dirty rate measured with calc-dirty-rate (page sampling) before the copy. */
  dirtyRateBeforeBytesPerSecond: z.number().optional(),
  /** The highest dirty rate QEMU reported during the copy. */
  dirtyRatePeakBytesPerSecond: z.number().optional(),
  throttlePeakPercent: z.number().optional(),
  throttleSeconds: z.number().optional(),
  downtimeLimitMs: z.number().optional(),
  multifdChannels: z.number().int().optional(),
  /** A delta return move (issue 17): the changed clusters sent from the tracking bitmap. */
  deltaBytes: z.number().optional(),
  /** A delta return move: what the guest wrote during the move, mirrored on top of the delta. */
  deltaOverlayBytes: z.number().optional(),
  /** How the memory stream was encoded, and why (the plan's choice). */
  compression: StreamCompression.optional(),
});
export type MigrationStats = z.infer<typeof MigrationStats>;

export const PolicyEvent = z.object({
  at: z.iso.datetime(),
  action: z.string(),
  reason: z.string(),
});
export type PolicyEvent = z.infer<typeof PolicyEvent>;

export const MigrationStatus = z.object({
  id: MigrationId,
  role: MigrationRole,
  vmName: Name,
  state: MigrationState,
  progress: MigrationProgress,
  stats: MigrationStats,
  /** What the convergence policy did and why. */
  policyLog: z.array(PolicyEvent),
  error: z.object({ code: z.string(), detail: z.string() }).optional(),
  startedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime().optional(),
});
export type MigrationStatus = z.infer<typeof MigrationStatus>;

/**
 * Who chooses the parameters and runs the convergence loop: Silobreak, or (for the benchmark
 * bench/migration) the policy of a system users would pick instead, over the same QMP machinery
 * (see src/agent/migration/baselines.ts). `libvirt-multifd-zstd` is libvirt's strongest stock
 * setting (`virsh migrate --parallel --compressed --comp-methods zstd`).
 */
export const MigrationStrategy = z.enum([
  'silobreak',
  'qemu-defaults',
  'libvirt-like',
  'libvirt-multifd-zstd',
  'proxmox-like',
]);
export type MigrationStrategy = z.infer<typeof MigrationStrategy>;

/** The move policy's defaults: the one place they are written (the agent's convergence uses them). */
export const MIGRATION_POLICY_DEFAULTS = {
  targetDowntimeMs: 30,
  maxDowntimeMs: 300,
  allowThrottle: true,
  /**
   * QEMU's throttle stops the vCPUs for p/(1-p) x 10 ms at a time (cpu-throttle.c): 90 ms at
   * 90 %, 190 at 95, 990 at 99. The guest answers nothing meanwhile, and a sleep that spans the
   * switchover adds to the downtime its network sees (the 1,172 ms ping gap beside QEMU's 138 ms
   * came from a throttle of 99 %). At 90 % the guest keeps a tenth of its CPU, which converges a
   * guest dirtying up to 5 x the stream; past that the downtime lever is the cheaper trade.
   */
  maxThrottlePercent: 90,
  allowPostcopy: false,
  stallWindowSeconds: 60,
  compression: 'auto',
} as const;

const D = MIGRATION_POLICY_DEFAULTS;
/**
 * The convergence policy of a move, with the same bounds wherever it is given (the manager's move
 * request, an agent's plan and start): strict, the link rate within what a live move can use, and
 * the downtime target no more than its limit (both after defaults). An agent once took a link of
 * 1e-300 bit/s and planned a bandwidth of 0 (issue 28, row 9).
 */
export const MigrationPolicy = z
  .strictObject({
    /** Raw rate of the link between the hosts (bits/s), when measured; unknown = assume fast. */
    linkBitsPerSecond: z
      .number()
      .min(1e6, 'must be at least 1e6 (1 Mbit/s): slower links cannot carry a live move')
      .max(1e13, 'must be at most 1e13 (10 Tbit/s)')
      .optional(),
    targetDowntimeMs: z.number().int().min(1).max(10_000).default(D.targetDowntimeMs),
    maxDowntimeMs: z.number().int().min(1).max(60_000).default(D.maxDowntimeMs),
    allowThrottle: z.boolean().default(D.allowThrottle),
    maxThrottlePercent: z.number().int().min(5).max(99).default(D.maxThrottlePercent),
    allowPostcopy: z.boolean().default(D.allowPostcopy),
    /** No progress for this long with no lever left = stalled (cancelled). */
    stallWindowSeconds: z.number().int().min(5).max(3600).default(D.stallWindowSeconds),
    strategy: MigrationStrategy.default('silobreak'),
    /**
     * `auto`: the source chooses the memory stream's encoding from the link, the guest's dirty rate
     * and its idle CPU (plain, multifd-zstd or xbzrle); `off`: always plain.
     */
    compression: z.enum(['auto', 'off']).default(D.compression),
    /** The memory copy gives up ("not converged") after this long, whatever the strategy; none by default. */
    timeLimitSeconds: z.number().int().min(5).max(86_400).optional(),
  })
  .superRefine((p, ctx) => {
    if (p.targetDowntimeMs > p.maxDowntimeMs)
      ctx.addIssue({
        code: 'custom',
        path: ['targetDowntimeMs'],
        message: `must be at most maxDowntimeMs (${p.maxDowntimeMs})`,
      });
  });
export type MigrationPolicy = z.input<typeof MigrationPolicy>;

/**
 * A delta return move's generation (issue 17): the arrival from which a VM's disks track their
 * changes; the host it left then keeps its disks as a retained copy of that generation.
 */
export const GenerationId = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/,
    'must be 1-64 letters, digits, "-" or "_", starting with a letter or digit',
  );
export type GenerationId = z.infer<typeof GenerationId>;

export const PlanRequest = z.object({
  vmName: Name,
  policy: MigrationPolicy.prefault({}),
  /** The target holds a retained copy of this generation: can the disks go as a delta? */
  deltaGeneration: GenerationId.optional(),
  /**
   * With deltaGeneration: the disks the move would copy (those staying on shared storage carry
   * no tracking bitmap and are left out); every disk of the VM when absent.
   */
  deltaDisks: z
    .array(Name)
    .max(8)
    .superRefine(uniqueItems('', (d) => d))
    .optional(),
  /**
   * The link's rate as the manager knows it (probed now, or stored), used when the policy gives no
   * `linkBitsPerSecond` (a caller's figure wins).
   */
  link: LinkFigure.optional(),
});
export type PlanRequest = z.input<typeof PlanRequest>;

export const MigrationPlan = z.object({
  slowLink: z.boolean(),
  maxBandwidthBytesPerSecond: z.number(),
  multifdChannels: z.number().int().min(0).max(16),
  xbzrleCacheBytes: z.number().int().optional(),
  postcopy: z.boolean(),
  targetDowntimeMs: z.number().int(),
  maxDowntimeMs: z.number().int(),
  mirrorBufSizeBytes: z.number().int(),
  /** The memory stream's encoding; absent = plain (plans made before the choice existed). */
  compression: StreamCompression.optional(),
  /** The link rate the plan was made for, and where it came from; absent = unknown. */
  link: LinkFigure.optional(),
  reasons: z.array(z.string()),
  /**
   * Asked with a deltaGeneration: the disks' tracking bitmaps are usable (`bytes`: what they
   * marked when planned), or why not (the move then copies everything).
   */
  delta: z
    .union([
      z.object({ usable: z.literal(true), generationId: GenerationId, bytes: z.number().int().min(0) }),
      z.object({ usable: z.literal(false), generationId: GenerationId, reason: z.string() }),
    ])
    .optional(),
});
export type MigrationPlan = z.infer<typeof MigrationPlan>;

export const IncomingDisk = z
  .object({
    id: Name,
    format: z.enum(['qcow2', 'raw']),
    virtualSizeBytes: z.number().int().positive(),
    /** Target datastore; the target's default when absent. */
    datastore: Name.optional(),
    /**
     * The disk stays on shared storage both hosts see: the target opens this file of `datastore`
     * (a shared datastore of that storage) as it is, creates nothing, exports nothing of it over
     * NBD and never deletes it; `late-block-activate` keeps its QEMU off the image until the
     * switchover.
     */
    shared: SharedDiskRef.optional(),
  })
  .superRefine((d, ctx) => {
    if (d.shared !== undefined && d.datastore === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['datastore'],
        message: "is required with shared: the target's datastore of that storage",
      });
  });

/** What the target needs to recreate the VM's hardware exactly (a migration needs identical devices). */
export const IncomingVm = z.object({
  id: z.uuid(),
  name: Name,
  vcpus: z.number().int().min(1).max(64),
  memoryMiB: z.number().int().min(64),
  disks: z.array(IncomingDisk).max(8),
  nics: z.array(z.object({ id: Name, vswitch: Name, mac: UnicastMac })).max(8),
  guestIp: Cidr.optional(),
  guestGateway: Ipv4.optional(),
  machineType: z.string(),
  cpuModel: z.string(),
});
export type IncomingVm = z.infer<typeof IncomingVm>;

export const PrepareIncomingRequest = z.object({
  migrationId: MigrationId,
  vm: IncomingVm,
  /** From the source's plan: both sides must agree on the stream's capabilities. */
  plan: MigrationPlan,
  /** The source host: on a secure move the only certificate the target's NBD server and stream accept. */
  sourceHost: Name,
  /**
   * NBD and the memory stream over TLS with the fabric's certificates (both sides must agree). The
   * manager always says (its moves are secure unless asked not to); absent = plain.
   */
  secure: z.boolean().default(false),
  /** The source keeps its disks as a retained copy: the arrived disks track changes from the switchover. */
  track: GenerationId.optional(),
  /** Delta move: the target's disks are its retained copy of this generation (checked, else refused). */
  fromRetained: GenerationId.optional(),
});
export type PrepareIncomingRequest = z.input<typeof PrepareIncomingRequest>;

export const NbdExport = z.object({
  diskId: Name,
  exportName: z.string(),
  virtualSizeBytes: z.number().int(),
  datastore: Name,
  path: z.string(),
});
export type NbdExport = z.infer<typeof NbdExport>;

/** A disk the target opened where it is, on shared storage (IncomingDisk.shared): the source mirrors nothing of it. */
export const SharedDisk = SharedDiskRef.extend({ diskId: Name, datastore: Name });
export type SharedDisk = z.infer<typeof SharedDisk>;

export const IncomingPrepared = z.object({
  migrationId: MigrationId,
  /** The NBD server of the exports; absent when every disk stays on shared storage (none is exported). */
  nbd: z.object({ host: Ipv4, port: z.number().int() }).optional(),
  exports: z.array(NbdExport),
  /** The disks that stay on shared storage, as the target opened them (absent: none, older agents). */
  shared: z.array(SharedDisk).default([]),
  /** The stream address the source migrates to, e.g. `tcp:10.250.0.2:49153`. */
  migrationUri: z.string(),
  /** Present: the exports hold the retained copy of this generation, so the source sends the delta. */
  retainedGeneration: GenerationId.optional(),
});
export type IncomingPrepared = z.infer<typeof IncomingPrepared>;

export const StartMigrationRequest = z.object({
  migrationId: MigrationId,
  vmName: Name,
  plan: MigrationPlan,
  policy: MigrationPolicy.prefault({}),
  target: IncomingPrepared,
  /** As on the target's prepare (the manager always says; absent = plain). */
  secure: z.boolean().default(false),
});
export type StartMigrationRequest = z.input<typeof StartMigrationRequest>;

export const CompleteMigrationRequest = z.object({
  /** Keep the source's disk files after the move (they are removed by default). */
  keepSource: z.boolean().default(false),
  /** Keep the source's disks as a retained copy of this generation (a later return sends the delta). */
  retain: GenerationId.optional(),
});
export type CompleteMigrationRequest = z.input<typeof CompleteMigrationRequest>;

export const MoveStorageRequest = z.object({
  migrationId: MigrationId.optional(),
  datastore: Name,
  /** Disks to move; all of the VM's disks when absent. */
  diskIds: z.array(Name).min(1).optional(),
});
export type MoveStorageRequest = z.input<typeof MoveStorageRequest>;

/*
 * Cold moves of a stopped VM (see src/agent/migration/cold.ts): source POST
 * /v1/vms/:name/cold-export -> ColdExport (the exports and the move's secret); target: the VM is
 * defined with POST /v1/vms (start false), then POST /v1/vms/:name/cold-copy {migrationId, disks,
 * secret} checks that every export answers with the move's secret and starts copying every disk
 * from them in the background, followed with GET /v1/migrations/cold/:id/copy (ColdCopyStatus);
 * POST /v1/migrations/cold/:id/close ends the exports (source) or stops the copy (target), and
 * DELETE /v1/vms/:name removes the source VM.
 */
export const ColdExportRequest = z.object({ migrationId: MigrationId });
export type ColdExportRequest = z.input<typeof ColdExportRequest>;

const NBD_URI = /^nbd:\/\/([^/:]+):(\d{1,5})\/(.+)$/;
const NBD_URI_RULE = 'must be nbd://<IPv4 address>:<port>/<export name>, like nbd://10.250.0.11:50000/root';

/** An export of the source: `nbd://<IPv4>:<port>/<disk id>` (nothing else is ever fetched). */
export const NbdUri = z.string().superRefine((uri, ctx) => {
  const [, host = '', port = '', name = ''] = NBD_URI.exec(uri) ?? [];
  const ok =
    Ipv4.safeParse(host).success &&
    Number(port) >= 1 &&
    Number(port) <= 65535 &&
    Name.safeParse(name).success;
  if (!ok) ctx.addIssue({ code: 'custom', message: NBD_URI_RULE });
});

/** The parts of a valid NbdUri. */
export function nbdUriParts(uri: string): { host: string; port: number; exportName: string } {
  const [, host = '', port = '', exportName = ''] = NBD_URI.exec(uri) ?? [];
  return { host, port: Number(port), exportName };
}

export const ColdExportDisk = z.strictObject({ diskId: Name, uri: NbdUri });

export const ColdExport = z.object({
  migrationId: MigrationId,
  /** One read-only NBD export per disk, e.g. `nbd://10.250.0.11:50000/root`. */
  disks: z.array(ColdExportDisk),
  /**
   * The move's secret: the exports serve only a client presenting it (TLS with it as the
   * pre-shared key), so only this move's target reads the disks.
   */
  secret: PeerSecret,
});
export type ColdExport = z.infer<typeof ColdExport>;

export const ColdCopyRequest = z.strictObject({
  /** The move's id: its copy is followed and stopped by it. */
  migrationId: MigrationId,
  /** The source's exports (ColdExport.disks): one per disk of the VM, all on the source's address. */
  disks: z
    .array(ColdExportDisk)
    .min(1)
    .max(8)
    .superRefine(uniqueItems('diskId', (d) => d.diskId))
    .superRefine((disks, ctx) => {
      const host = nbdUriParts(disks[0]?.uri ?? '').host;
      disks.forEach((d, i) => {
        const other = nbdUriParts(d.uri).host;
        if (other !== host)
          ctx.addIssue({
            code: 'custom',
            path: [i, 'uri'],
            message: `is on ${other}, item 0's on ${host}: every export of a move is on its source`,
          });
      });
    }),
  /** ColdExport.secret: the copy reads only from exports that accept it. */
  secret: PeerSecret,
  /**
   * No byte from the exports for this long = stalled: the copy stops (the move's
   * policy.stallWindowSeconds; a cut link otherwise hangs a read for as long as TCP retries).
   */
  stallWindowSeconds: MigrationPolicy.shape.stallWindowSeconds,
});
export type ColdCopyRequest = z.input<typeof ColdCopyRequest>;

/** A cold copy on its target. A copy that fails removes the half-made VM with its disks. */
export const ColdCopyStatus = z.object({
  migrationId: MigrationId,
  vmName: Name,
  state: MigrationState,
  /** How far the disks were gone through (0-100; zero areas are skipped, not sent). */
  percent: z.number().min(0).max(100),
  /** Bytes received from the source's exports so far. */
  receivedBytes: z.number().int().min(0),
  error: z.object({ code: z.string(), detail: z.string() }).optional(),
  startedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime().optional(),
});
export type ColdCopyStatus = z.infer<typeof ColdCopyStatus>;

export const ColdClosed = z.object({ migrationId: MigrationId, closed: z.boolean() });
export type ColdClosed = z.infer<typeof ColdClosed>;

/*
 * Retained copies (issue 17): the disks a VM left behind on a host, kept read-only and never
 * started, so that a move back sends only what changed since.
 */
export const RetainedDisk = z.object({
  diskId: Name,
  datastore: Name,
  path: z.string(),
  virtualSizeBytes: z.number().int(),
  allocatedBytes: z.number().int(),
});
export type RetainedDisk = z.infer<typeof RetainedDisk>;

export const RetainedCopy = z.object({
  vmId: z.uuid(),
  vmName: Name,
  generationId: GenerationId,
  departedAt: z.iso.datetime(),
  disks: z.array(RetainedDisk),
  /** Bytes the copy holds on the host's datastores. */
  allocatedBytes: z.number().int(),
  /** Whether the copy is provably as it was at departure (size, time and sampled content). */
  check: z.union([
    z.object({ valid: z.literal(true) }),
    z.object({ valid: z.literal(false), reason: z.string() }),
  ]),
});
export type RetainedCopy = z.infer<typeof RetainedCopy>;

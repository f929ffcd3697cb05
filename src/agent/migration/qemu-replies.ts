import { z } from 'zod';
import type { MigrationSample } from './convergence.js';

/* The parts of QEMU 7.2's replies the migration engine reads (qapi/migration.json, block-core.json). */

export const MigrateInfo = z.looseObject({
  status: z.string().optional(),
  ram: z
    .looseObject({
      transferred: z.number(),
      remaining: z.number(),
      total: z.number(),
      'dirty-pages-rate': z.number().default(0),
      'page-size': z.number().default(4096),
      mbps: z.number().default(0),
      'dirty-sync-count': z.number().default(0),
    })
    .optional(),
  'total-time': z.number().optional(),
  'setup-time': z.number().optional(),
  downtime: z.number().optional(),
  'expected-downtime': z.number().optional(),
  'cpu-throttle-percentage': z.number().optional(),
  'error-desc': z.string().optional(),
});
export type MigrateInfo = z.infer<typeof MigrateInfo>;

export const BlockJobs = z.array(
  z.looseObject({
    device: z.string(),
    type: z.string(),
    len: z.number(),
    offset: z.number(),
    ready: z.boolean().default(false),
    status: z.string().optional(),
    error: z.string().optional(),
  }),
);
export type BlockJobs = z.infer<typeof BlockJobs>;

export const DirtyRateInfo = z.looseObject({
  status: z.string(),
  'dirty-rate': z.number().optional(),
});

export const StatusInfo = z.looseObject({ status: z.string(), running: z.boolean() });

export function sampleOf(info: MigrateInfo, atMs: number): MigrationSample | undefined {
  const ram = info.ram;
  if (ram === undefined || info.status === undefined) return undefined;
  return {
    atMs,
    status: info.status,
    transferredBytes: ram.transferred,
    remainingBytes: ram.remaining,
    totalBytes: ram.total,
    dirtyPagesRate: ram['dirty-pages-rate'],
    pageSize: ram['page-size'],
    mbps: ram.mbps,
    dirtySyncCount: ram['dirty-sync-count'],
    ...(info['expected-downtime'] !== undefined ? { expectedDowntimeMs: info['expected-downtime'] } : {}),
    cpuThrottlePercentage: info['cpu-throttle-percentage'] ?? 0,
  };
}

/** `query-yank`: the instances whose connections QEMU can shut down (yank.json). */
export const YankInstances = z.array(
  z.object({
    type: z.enum(['block-node', 'chardev', 'migration']),
    'node-name': z.string().optional(),
    id: z.string().optional(),
  }),
);

/** `query-version`. */
export const QemuVersion = z.looseObject({
  qemu: z.object({ major: z.number(), minor: z.number(), micro: z.number() }),
});

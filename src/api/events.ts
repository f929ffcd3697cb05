import { z } from 'zod';
import { ChangeRecord, Job } from './manager.js';
import { StorageIssue } from './storage.js';

/*
 * The fabric event stream (manager, GET /api/v1/events): server-sent events telling a console
 * what changed, so it refreshes what it shows instead of polling. Each event's SSE name is its
 * payload's `kind` and its data one JSON FabricEvent. Events are news, not a log: a client that
 * (re)connects gets `ready` first and then re-reads what it shows; what happened while it was away
 * is not replayed.
 */

const Timestamp = z.iso.datetime().describe('ISO-8601 UTC time');

/** The kinds a client may ask for (`ready` comes always). */
export const FABRIC_EVENT_KINDS = ['inventory', 'job', 'issue', 'change'] as const;
export type FabricEventKind = (typeof FABRIC_EVENT_KINDS)[number];

/** Sent first: the stream is listening; read the state now, later events are changes to it. */
export const ReadyEvent = z.object({ kind: z.literal('ready'), at: Timestamp });

/** Objects of the inventory an event names (a VM's disks and NICs are changes of the VM). */
export const InventoryObjectKind = z.enum(['host', 'vm', 'datastore', 'pool', 'vswitch']);
export type InventoryObjectKind = z.infer<typeof InventoryObjectKind>;

/** An inventory object was added, changed (state or settings) or removed; from its change record. */
export const InventoryEvent = z.object({
  kind: z.literal('inventory'),
  object: InventoryObjectKind,
  action: z.enum(['added', 'changed', 'removed']),
  id: z.string(),
  name: z.string(),
  /** The host it is on (or is), when it has one. */
  host: z.string().nullable(),
  /** The change record it comes from (GET /api/v1/changes). */
  changeId: z.number().int(),
});
export type InventoryEvent = z.infer<typeof InventoryEvent>;

/** A job was created or changed state or progress: its whole snapshot, as its own event stream sends. */
export const JobEvent = z.object({ kind: z.literal('job'), id: z.uuid(), job: Job });
export type JobEvent = z.infer<typeof JobEvent>;

/** A storage issue opened, changed (severity, figure) or ended. */
export const IssueEvent = z.object({
  kind: z.literal('issue'),
  action: z.enum(['opened', 'updated', 'ended']),
  id: z.number().int(),
  issue: StorageIssue,
});
export type IssueEvent = z.infer<typeof IssueEvent>;

/** A change record was written (the Change Explorer's list). */
export const ChangeEvent = z.object({
  kind: z.literal('change'),
  id: z.number().int(),
  change: ChangeRecord,
});
export type ChangeEvent = z.infer<typeof ChangeEvent>;

export const FabricEvent = z.discriminatedUnion('kind', [
  ReadyEvent,
  InventoryEvent,
  JobEvent,
  IssueEvent,
  ChangeEvent,
]);
export type FabricEvent = z.infer<typeof FabricEvent>;

const KIND = FABRIC_EVENT_KINDS.join('|');
export const FabricEventQuery = z.strictObject({
  /** Only these kinds, joined by commas (`job,inventory`); all without it. */
  kinds: z
    .string()
    .regex(
      new RegExp(`^(${KIND})(,(${KIND}))*$`),
      `must be ${FABRIC_EVENT_KINDS.join(', ')} or several joined by commas`,
    )
    .transform((s) => [...new Set(s.split(','))] as FabricEventKind[])
    .optional(),
});
export type FabricEventQuery = z.input<typeof FabricEventQuery>;

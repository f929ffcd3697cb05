import { EventEmitter } from 'node:events';

/*
 * Notes of writes the fabric event stream follows (fabric-events.ts): the writers of change
 * records and storage issues call noteWritten, the stream's source reads what is new. Apart from
 * the source so the writers do not import it.
 */

/** Tables whose writers note their writes. */
export type NotedTable = 'changes' | 'storage_issues';

// Process-wide, as the writers are: a transaction does not know its manager. An emitter reading
// another manager's note finds nothing new in its own database.
export const writes = new EventEmitter().setMaxListeners(0);

/** Called by the writers of change records and storage issues; costs nothing while nobody listens. */
export function noteWritten(table: NotedTable): void {
  if (writes.listenerCount(table) > 0) writes.emit(table);
}

import { randomUUID } from 'node:crypto';
import { JOURNAL_ENTRIES, type AgentJournal, type JournalEntry } from '../api/index.js';

/**
 * The host's journal of VMs and datastores that appeared or vanished (GET /v1/journal), in memory:
 * the last JOURNAL_ENTRIES, under a boot id that tells a reader the agent restarted.
 */
export class ChangeJournal {
  readonly bootId = randomUUID();
  #seq = 0;
  #entries: JournalEntry[] = [];

  record(entry: Omit<JournalEntry, 'seq' | 'at'>): void {
    this.#entries.push({ seq: ++this.#seq, at: new Date().toISOString(), ...entry });
    if (this.#entries.length > JOURNAL_ENTRIES)
      this.#entries.splice(0, this.#entries.length - JOURNAL_ENTRIES);
  }

  /** The entries after `after` (0: all kept), and whether none after it was dropped. */
  since(after: number): AgentJournal {
    const entries = this.#entries.filter((e) => e.seq > after);
    const oldest = this.#entries[0]?.seq ?? this.#seq + 1;
    return { bootId: this.bootId, next: this.#seq, complete: after >= oldest - 1, entries };
  }
}

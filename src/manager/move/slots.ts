import type { JobContext } from '../jobs.js';

/*
 * At most N moves at once per host (default 2, like Hyper-V's default of simultaneous live
 * migrations): a move holds a slot on its source and on its target for its whole life. A move
 * whose hosts are full waits in arrival order, but never behind a move that waits for other
 * hosts (no head-of-line blocking between unrelated hosts). In memory: one manager runs the moves.
 */

interface Waiter {
  hosts: string[];
  grant: () => void;
}

export class HostSlots {
  readonly #used = new Map<string, number>();
  readonly #waiting: Waiter[] = [];

  constructor(readonly limit = 2) {
    if (!(limit >= 1)) throw new Error('the move limit per host must be at least 1');
  }

  /** The hosts among `hosts` that have no free slot now. */
  full(hosts: string[]): string[] {
    return [...new Set(hosts)].filter((h) => (this.#used.get(h) ?? 0) >= this.limit);
  }

  /** True when acquire() would not wait. */
  canTakeNow(hosts: string[]): boolean {
    const unique = [...new Set(hosts)];
    return this.full(unique).length === 0 && !this.#waiting.some((w) => overlaps(w.hosts, unique));
  }

  inUse(host: string): number {
    return this.#used.get(host) ?? 0;
  }

  /**
   * Takes a slot on every host once all have one free; the returned function gives them back
   * (once). An aborted signal stops the wait with its reason. `force` takes the slots at once,
   * even over the limit: for a move that already held them before a manager restart.
   */
  acquire(hosts: string[], signal?: AbortSignal, force = false): Promise<() => void> {
    const unique = [...new Set(hosts)];
    const take = () => {
      for (const h of unique) this.#used.set(h, (this.#used.get(h) ?? 0) + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        for (const h of unique) {
          const n = (this.#used.get(h) ?? 1) - 1;
          if (n > 0) this.#used.set(h, n);
          else this.#used.delete(h);
        }
        this.#admit();
      };
    };
    if (force || this.canTakeNow(unique)) {
      return Promise.resolve(take());
    }
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        hosts: unique,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(take());
        },
      };
      const onAbort = () => {
        const i = this.#waiting.indexOf(waiter);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(signal?.reason as Error);
        this.#admit();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(waiter);
    });
  }

  /** Grants waiting moves in arrival order; one that cannot go yet keeps its hosts for itself. */
  #admit(): void {
    const blocked = new Set<string>();
    for (const waiter of [...this.#waiting]) {
      const fits = this.full(waiter.hosts).length === 0 && !waiter.hosts.some((h) => blocked.has(h));
      if (fits) {
        this.#waiting.splice(this.#waiting.indexOf(waiter), 1);
        waiter.grant();
      } else for (const h of waiter.hosts) blocked.add(h);
    }
  }
}

const overlaps = (a: string[], b: string[]) => a.some((x) => b.includes(x));

/**
 * A move job's slots on its hosts: taken at once when free (or by force for a move resumed after a
 * restart, which held them before), else the job shows `queued` with the reason until they free.
 */
export function takeMoveSlots(
  slots: HostSlots,
  ctx: Pick<JobContext<unknown>, 'signal' | 'waitQueued'>,
  hosts: { id: string; name: string }[],
  resumed: boolean,
): Promise<() => void> {
  const ids = hosts.map((h) => h.id);
  const nameOf = (id: string) => hosts.find((h) => h.id === id)?.name ?? id;
  if (resumed) return slots.acquire(ids, undefined, true);
  if (slots.canTakeNow(ids)) return slots.acquire(ids, ctx.signal);
  return ctx.waitQueued(
    `waiting for a free move slot: ${slots.full(ids).map(nameOf).join(' and ')} ` +
      `already at the limit of ${slots.limit} moves`,
    (signal) => slots.acquire(ids, signal),
  );
}

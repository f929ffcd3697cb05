// The memory-copy time limit every contender gets (pure). The bench enforces it from outside, as a
// user would with `vm move --cancel`: the product path's request carries no policy, so the agents'
// own `timeLimitSeconds` cannot be the rule for it, and one rule for all keeps the rows fair.

/** A move's job phase as the bench sees it in the job's event stream. */
export interface JobSighting {
  phase: string;
  state: string;
}

export class CopyLimit {
  #copyFromMs: number | undefined;
  #fired = false;

  constructor(readonly limitMs: number) {}

  /** The memory copy began when the job was first seen in `copy-memory`. */
  see(job: JobSighting, nowMs: number): void {
    if (this.#copyFromMs === undefined && job.phase === 'copy-memory' && job.state === 'running')
      this.#copyFromMs = nowMs;
  }

  /** True once, when the copy has run for the limit: then cancel the job ("not converged"). */
  due(nowMs: number): boolean {
    if (this.#fired || this.#copyFromMs === undefined || nowMs - this.#copyFromMs < this.limitMs)
      return false;
    this.#fired = true;
    return true;
  }

  /** Whether the bench cancelled the job for the limit. */
  get fired(): boolean {
    return this.#fired;
  }
}

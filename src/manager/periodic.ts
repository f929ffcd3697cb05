/**
 * Runs `round` again `intervalMs` after the previous round ended (rounds never overlap), until
 * stopped; `stop` waits for a round in progress. The reconciler and the statistics collector each
 * run on one. A round's failure is the round's own business: it must catch what it can handle.
 */
export class PeriodicLoop {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(
    private readonly round: () => Promise<void>,
    private readonly intervalMs: number,
  ) {}

  /** Whether stop() was called: long rounds check it to end early. */
  get stopped(): boolean {
    return this.#stopped;
  }

  start(firstDelayMs = this.intervalMs): void {
    this.#stopped = false;
    this.#schedule(firstDelayMs);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.round().finally(() => {
        this.#running = undefined;
        this.#schedule(this.intervalMs);
      });
    }, delayMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }
}

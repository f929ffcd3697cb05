/** Runs tasks one after another, in the order they were queued, whatever their outcome. */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();
  #pending = 0;

  /** True when no task runs or waits: a new one would start at once. */
  get idle(): boolean {
    return this.#pending === 0;
  }

  run<T>(task: () => Promise<T>): Promise<T> {
    this.#pending++;
    const result = this.#tail.then(task, task).finally(() => this.#pending--);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}

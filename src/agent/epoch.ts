import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from './definitions.js';
import { StaleEpoch } from './errors.js';

/*
 * Fencing of managers (issue 31): the highest leader epoch any manager's call carried, kept in
 * `<stateDir>/manager-epoch` so an agent restart does not let a deposed manager back in. A call
 * under a lower epoch is refused; a higher one is written down before the call goes on (a crash
 * right after must not forget it), one write at a time.
 */
export class ManagerEpochs {
  #highest: number;
  #writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly file: string,
    highest: number,
  ) {
    this.#highest = highest;
  }

  static async open(stateDir: string): Promise<ManagerEpochs> {
    const file = path.join(stateDir, 'manager-epoch');
    let highest = 0;
    try {
      const text = (await readFile(file, 'utf8')).trim();
      // A file this code did not write (torn writes it cannot make): the safe reading is none.
      if (/^[0-9]{1,15}$/.test(text)) highest = Number(text);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    return new ManagerEpochs(file, highest);
  }

  /** The highest epoch seen (0: none yet). */
  get highest(): number {
    return this.#highest;
  }

  /**
   * Forgets the epochs seen: the agent left its fabric or joined one (a new fabric's managers
   * count from 1 again).
   */
  async reset(): Promise<void> {
    this.#highest = 0;
    await this.#persist();
  }

  /** Resolves once a call under `epoch` may go on; throws StaleEpoch for an older one. */
  async admit(epoch: number): Promise<void> {
    if (epoch < this.#highest) throw new StaleEpoch(epoch, this.#highest);
    if (epoch === this.#highest) return;
    this.#highest = epoch;
    await this.#persist();
  }

  #persist(): Promise<void> {
    const write = this.#writing.then(async () => {
      // The newest value is written; a later change's write queues behind this one.
      await mkdir(path.dirname(this.file), { recursive: true });
      await writeFileAtomic(this.file, `${this.#highest}\n`);
    });
    this.#writing = write.catch(() => undefined);
    return write;
  }
}

import { existsSync, readFileSync } from 'node:fs';

/*
 * After a live move a guest that fails its checks has often told why on its serial console: its
 * kernel died on the target (a lost memory update shows as an oops jumping into a data page, a
 * panic or a lockup). Tests say so first, since that points at the memory copy rather than at the
 * check that noticed. (QEMU 7.2 under TCG did this to 1 in 6 plain migrations here; Silobreak
 * needs QEMU 10, see src/agent/migration/README.md.)
 */

const KERNEL_DIED =
  /Kernel panic|Oops: |BUG: |general protection fault|soft lockup|hard LOCKUP|rcu: INFO|detected stalls/;

/** The first line of a guest's serial console that shows its kernel died, if any. */
export function kernelCrashLine(consoleText: string): string | undefined {
  return consoleText.split('\n').find((line) => KERNEL_DIED.test(line));
}

/** A moved guest failed its checks and its console shows its kernel died. */
export class GuestKernelDied extends Error {
  constructor(
    readonly consoleFile: string,
    readonly crashLine: string,
    options: { cause: unknown },
  ) {
    const failed = options.cause instanceof Error ? options.cause.message : String(options.cause);
    super(
      `the guest's kernel died after the move (${consoleFile}: ${crashLine.trim()}); failed check: ${failed}`,
      options,
    );
    this.name = 'GuestKernelDied';
  }
}

/** Runs a test's checks on a guest after a move; a failure whose guest console shows a dead kernel becomes GuestKernelDied. */
export async function checkMovedGuest<T>(consoleFile: string, checks: () => Promise<T>): Promise<T> {
  try {
    return await checks();
  } catch (error) {
    const crash = existsSync(consoleFile) ? kernelCrashLine(readFileSync(consoleFile, 'utf8')) : undefined;
    if (crash === undefined) throw error;
    throw new GuestKernelDied(consoleFile, crash, { cause: error });
  }
}

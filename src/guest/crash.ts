import { existsSync, readFileSync } from 'node:fs';

/**
 * A known defect outside Silobreak: QEMU 7.2 under TCG can lose guest memory updates made during
 * a live migration's pre-copy, and the guest then dies on the target within about a second (a
 * kernel oops that jumps into a data page, a panic, or a lockup). Reproduced here with a plain
 * QEMU migration (shared disk file, no NBD mirror, none of Silobreak's tuning): 1 of 6 freshly
 * booted guests died on the target, 0 of 6 when the guest was paused for the copy; through
 * Silobreak's engine 2-3 of 10 such moves, with or without multifd, single- or multi-threaded TCG.
 * KVM tracks dirty memory in the kernel instead, but KVM guests cannot boot on these machines, so
 * that path is untested here.
 *
 * Lab tests that move a live guest report exactly this outcome (the guest's own console shows its
 * kernel died) as a TODO naming the defect; any other failure after a move stays a failure.
 */
export const TCG_MIGRATION_DEFECT =
  'known QEMU 7.2 TCG defect (see src/guest/crash.ts): the guest kernel died on the target after a completed live migration';

const KERNEL_DIED =
  /Kernel panic|Oops: |BUG: |general protection fault|soft lockup|hard LOCKUP|rcu: INFO|detected stalls/;

/** The first line of a guest's serial console that shows its kernel died, if any. */
export function kernelCrashLine(consoleText: string): string | undefined {
  return consoleText.split('\n').find((line) => KERNEL_DIED.test(line));
}

/**
 * For a test whose check failed after a live move: the TODO note naming the known defect when the
 * moved guest's console (file) shows its kernel died, otherwise undefined (a plain failure).
 */
export function knownDefectNote(consoleFile: string): string | undefined {
  const crash = existsSync(consoleFile) ? kernelCrashLine(readFileSync(consoleFile, 'utf8')) : undefined;
  return crash === undefined ? undefined : `${TCG_MIGRATION_DEFECT}: ${crash.trim()}`;
}

/**
 * Runs a test's checks on a guest after a live move. When they fail and the moved guest's console
 * shows the known defect, the test is marked TODO with that note (the failure is still reported).
 */
export async function checkMovedGuest<T>(
  todo: (note: string) => void,
  consoleFile: string,
  checks: () => Promise<T>,
): Promise<T> {
  try {
    return await checks();
  } catch (error) {
    const note = knownDefectNote(consoleFile);
    if (note !== undefined) todo(note);
    throw error;
  }
}

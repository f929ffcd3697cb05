import type { Command } from 'commander';
import { buildGuestImage } from './build.js';
import { GuestBuildFailed, GuestImageMissing, GuestOptionInvalid } from './errors.js';

/** The guest part's errors as CLI exit codes (2: bad usage, 1: the operation failed). */
function exitCodeFor(error: unknown): number {
  if (error instanceof GuestOptionInvalid) return 2;
  if (error instanceof GuestBuildFailed || error instanceof GuestImageMissing) return 1;
  throw error;
}

async function reportErrors(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (error) {
    process.exitCode = exitCodeFor(error);
    console.error(`silobreak: ${(error as Error).message}`);
  }
}

export function registerGuestCommands(program: Command): void {
  const guest = program
    .command('guest')
    .description('The test guest: kernel + initramfs built from Debian packages');
  guest
    .command('build')
    .description('Build (or reuse) the guest image in the cache and print its paths')
    .option('--force', 'rebuild even when the cached image matches every input')
    .option('--json', 'print the result as JSON')
    .action((opts: { force?: boolean; json?: boolean }) =>
      reportErrors(async () => {
        const started = Date.now();
        const image = await buildGuestImage({
          force: opts.force === true,
          log: opts.json ? undefined : (line) => console.log(`guest: ${line}`),
        });
        if (opts.json) {
          console.log(JSON.stringify(image, null, 2));
          return;
        }
        const seconds = ((Date.now() - started) / 1000).toFixed(1);
        console.log(
          [
            image.reused
              ? `guest image up to date (key ${image.key})`
              : `guest image built in ${seconds} s (key ${image.key})`,
            `  kernel  ${image.kernel} (${image.kernelVersion})`,
            `  initrd  ${image.initrd} (${(image.initrdBytes / 1024 / 1024).toFixed(1)} MiB)`,
          ].join('\n'),
        );
      }),
    );
}

import type { Command } from 'commander';
import { buildGuestImage, GUEST_AGENT_CHOICES, type GuestAgentChoice } from './build.js';
import { buildToolsDisk } from './tools.js';
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
    .option(
      '--agent-version <which>',
      `guest agent inside: old (the host's Debian package) or current (the tools disk's)`,
      'old',
    )
    .action((opts: { force?: boolean; json?: boolean; agentVersion: string }) =>
      reportErrors(async () => {
        const started = Date.now();
        if (!(GUEST_AGENT_CHOICES as readonly string[]).includes(opts.agentVersion))
          throw new GuestOptionInvalid('--agent-version', `must be one of ${GUEST_AGENT_CHOICES.join(', ')}`);
        const log = opts.json ? undefined : (line: string) => console.log(`guest: ${line}`);
        const tools = await buildToolsDisk({ ...(log ? { log } : {}) });
        const image = await buildGuestImage({
          force: opts.force === true,
          agentVersion: opts.agentVersion as GuestAgentChoice,
          ...(log ? { log } : {}),
        });
        if (opts.json) {
          console.log(JSON.stringify({ ...image, tools }, null, 2));
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
            `  tools   ${tools.iso} (guest agent ${tools.version})`,
          ].join('\n'),
        );
      }),
    );
}

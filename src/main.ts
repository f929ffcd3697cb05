// The `silobreak` command: the one place where every part's commands are put together.
// Each part is loaded only when its noun is used, so `silobreak vm list` does not pay for
// starting the agent's, lab's and manager's code (about half of a CLI call's start-up time).
import { Command } from 'commander';

type Register = (program: Command) => void;

// One loader per part, shared by its nouns: help loads each part once (commander refuses a command
// registered twice).
const agentPart = async (): Promise<Register> => (await import('./agent/index.js')).registerAgentCommands;
const serverParts: Record<string, () => Promise<Register>> = {
  agent: agentPart,
  'agent-join-token': agentPart,
  guest: async () => (await import('./guest/index.js')).registerGuestCommands,
  lab: async () => (await import('./lab/index.js')).registerLabCommands,
  manager: async () => {
    const [{ registerManagerCommands }, { WEB_CONSOLE_DIR }] = await Promise.all([
      import('./manager/index.js'),
      import('./web/index.js'),
    ]);
    return (program) => registerManagerCommands(program, { consoleDir: WEB_CONSOLE_DIR });
  },
};
const cliPart = async (): Promise<Register> => (await import('./cli/index.js')).registerCliCommands;

/** The parts a command line needs: its noun's part, or all of them for help and unknown words. */
function partsFor(noun: string | undefined): Array<() => Promise<Register>> {
  const all = [...new Set(Object.values(serverParts)), cliPart];
  if (noun === undefined || noun.startsWith('-') || noun === 'help') return all;
  const server = serverParts[noun];
  return server ? [server] : [cliPart];
}

const program = new Command('silobreak').description(
  'Shared-nothing live migration for standalone KVM hosts',
);
// Usage errors of the root command (an unknown noun) exit 2 like every other usage error; help exits 0.
program.exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2));
for (const load of partsFor(process.argv[2])) (await load())(program);
await program.parseAsync(process.argv);

// The `silobreak` command: the one place where every part's commands are put together.
import { Command } from 'commander';
import { registerAgentCommands } from './agent/index.js';
import { registerGuestCommands } from './guest/index.js';
import { registerLabCommands } from './lab/index.js';
import { registerManagerCommands } from './manager/index.js';
import { registerCliCommands } from './cli/index.js';

const program = new Command('silobreak').description(
  'Shared-nothing live migration for standalone KVM hosts',
);
registerAgentCommands(program);
registerGuestCommands(program);
registerLabCommands(program);
registerManagerCommands(program);
registerCliCommands(program);
await program.parseAsync(process.argv);

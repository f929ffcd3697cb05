// The CLI part: `silobreak <noun> <verb>` commands that talk to the manager through src/api only.
import type { Command } from 'commander';
import { registerChangeCommands } from './commands/change.js';
import { registerClusterCommands } from './commands/cluster.js';
import { registerDatastoreCommands } from './commands/datastore.js';
import { registerHostCommands } from './commands/host.js';
import { registerHostUpgradeCommand } from './commands/host-upgrade.js';
import { registerJobCommands } from './commands/job.js';
import { registerMoveCommands } from './commands/move.js';
import { registerPlacementCommands } from './commands/placement.js';
import { registerPoolCommands } from './commands/pool.js';
import { registerReportCommand } from './commands/report.js';
import { registerStorageCommands } from './commands/storage.js';
import { registerManagersCommands } from './commands/managers.js';
import { registerTokenCommands } from './commands/token.js';
import { registerVmCommands } from './commands/vm.js';
import { registerVSwitchCommands } from './commands/vswitch.js';

/**
 * Each command file adds its verbs to a noun (see `noun`/`verb`/`act` in program.ts); a new file,
 * e.g. one adding `vm move`, needs only one more entry here.
 */
const commandFiles: ((program: Command) => void)[] = [
  registerHostCommands,
  registerHostUpgradeCommand,
  registerPoolCommands,
  registerDatastoreCommands,
  registerVSwitchCommands,
  registerVmCommands,
  registerMoveCommands,
  registerClusterCommands,
  registerJobCommands,
  registerChangeCommands,
  registerStorageCommands,
  registerPlacementCommands,
  registerManagersCommands,
  registerTokenCommands,
  registerReportCommand,
];

export function registerCliCommands(program: Command): void {
  for (const register of commandFiles) register(program);
}

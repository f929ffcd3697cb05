export { registerLabCommands } from './commands.js';
export {
  labDown,
  labExec,
  labList,
  labStatus,
  labUp,
  restartLabAgent,
  restartLabManager,
  waitForPing,
  type Lab,
  type LabDownOptions,
  type LabDownReport,
  type LabHost,
  type LabHostStatus,
  type LabStatus,
  type LabSummary,
  type LabUpOptions,
  type LabVmStatus,
} from './lab.js';
export {
  LabAlreadyUp,
  LabCommandFailed,
  LabError,
  LabInvalidInput,
  LabNeedsRoot,
  LabNoFreeIndex,
  LabNotFound,
  LabProcessFailed,
  LabTargetNotFound,
  LabTimeout,
} from './errors.js';
export { planLab, vmAddress, type HostPlan, type LabPlan } from './plan.js';
export { inGuest, labAgent, labCli, type CliRun } from './test-kit.js';

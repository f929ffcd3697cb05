export {
  decideHa,
  DEFAULT_HA_DEAD_AFTER_SECONDS,
  type HaDecision,
  type HaHost,
  type HaVm,
} from './decide.js';
export {
  HA_LEASE_WAIT_SECONDS,
  HA_RESTART_JOB_KIND,
  haRestartHandler,
  type HaRestartResult,
} from './restart-job.js';
export { HA_ACTOR, HA_ROUND_MS, HaService, lockspaceName } from './service.js';

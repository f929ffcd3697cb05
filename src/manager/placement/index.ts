// Demand-driven placement (issue 18): the pure planner, schedules, suggest, and the service that
// runs the loop and answers the placement API (see each file's header).
export {
  plan,
  isHot,
  isCool,
  estimatedMoveSeconds,
  fitOn,
  type PlanInput,
  type PlannedMove,
} from './planner.js';
export { cronProblem, currentOrNextWindow } from './schedule.js';
export { rankSuggestions } from './suggest.js';
export { datastoreClass, datastoreIopsBudget, IOPS_BUDGET_COLUMNS } from './facts.js';
export { PlacementService, PLACEMENT_ACTOR, RETAIN_ON_PLACEMENT_MOVE } from './service.js';

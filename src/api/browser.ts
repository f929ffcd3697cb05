// The half of this part that runs in a browser too (schemas, route tables, problems; no node:
// modules): what the web console imports. index.ts exports it and the node-only clients.
export * from './problem.js';
export * from './rules.js';
export * from './merge-patch.js';
export * from './agent.js';
export * from './manager.js';
export * from './migration.js';
export * from './links.js';
export * from './route-table.js';
export * from './agent-errors.js';
export * from './agent-routes.js';
export * from './manager-routes.js';
export * from './stats.js';
export * from './storage.js';
export * from './placement.js';
export * from './events.js';
export * from './job-figures.js';
export * from './upgrade.js';

export * from './problem.js';
export * from './http.js';
export * from './agent.js';
export * from './agent-client.js';
export * from './manager.js';
export * from './manager-client.js';
export * from './cli-config.js';
export * from './migration.js';

export * from './problem.js';
export * from './http.js';
export * from './agent.js';
export * from './agent-client.js';

export * from './browser.js';
export * from './http.js';
export * from './agent-client.js';
export * from './manager-client.js';
export * from './cli-config.js';
export * from './migration-client.js';
export * from './fabric-tls.js';

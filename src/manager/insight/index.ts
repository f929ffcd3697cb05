// The metrics store, the Storage Explorer's views and its issue rules (see each file's header).
export { Collector, DEFAULT_STATS_INTERVAL_SECONDS, type CollectionResult } from './collector.js';
export { listStorageDatastores, listStorageDisks } from './explorer.js';
export { evaluateIssues, listStorageIssues } from './issues.js';
export { getThresholds, setThresholds } from './thresholds.js';
export { ingestHostStats, ingestMany, prune, IO_TIERS, DS_TIERS, RETENTION_SECONDS } from './store.js';

// The metrics store, the Storage Explorer's views and its issue rules (see each file's header).
export { Collector, DEFAULT_STATS_INTERVAL_SECONDS, type CollectionResult } from './collector.js';
export { listStorageDatastores, listStorageDisks } from './explorer.js';
export { datastoreSeries, diskSeries, seriesStep, vmSeries } from './series.js';
export { evaluateIssues, listStorageIssues } from './issues.js';
export { getThresholds, setThresholds } from './thresholds.js';
export {
  ingestHostStats,
  ingestMany,
  loadDatastorePoints,
  loadSeries,
  maintainWindows,
  WINDOWS,
  prune,
  DS_TIERS,
  IO_TIERS,
  RETENTION_SECONDS,
  SUBJECT_DATASTORE,
  SUBJECT_DISK,
  type SeriesRow,
} from './store.js';
export { addSums, emptySums, type IoSums } from './rates.js';

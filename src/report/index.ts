// The report part: the weekly HTML report (storage, changes, moves) rendered from data the CLI
// gathers through the API. Pure: no I/O, no network.
export { renderReport, escapeHtml } from './html.js';
export {
  ReportData,
  Band,
  bandOf,
  DAYS_UNTIL_FULL_BANDS,
  Risk,
  Severity,
  type ChangeTimeline,
  type DatastoreFill,
  type MoveFigures,
  type NotableChange,
  type StorageIssue,
  type TimelineSeries,
} from './schema.js';

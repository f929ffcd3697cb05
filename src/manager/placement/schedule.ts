/*
 * Schedules ("temporal demands"): a five-field cron expression (UTC) opens a window that lasts a
 * duration. The planner needs, for each schedule, the window in progress or else the next one.
 * Parsing is cron-parser's (the common npm parser: ranges, steps, lists, names).
 */
import { CronExpressionParser } from 'cron-parser';

export interface Window {
  start: number;
  end: number;
}

/** Why the expression is not a five-field cron expression, or undefined when it is. */
export function cronProblem(expression: string): string | undefined {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5)
    return `must have 5 fields (minute hour day-of-month month day-of-week), like "0 1 * * *"; got ${fields.length}`;
  try {
    CronExpressionParser.parse(expression, { tz: 'UTC' });
    return undefined;
  } catch (error) {
    return `is not a cron expression: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/**
 * The window in progress at `now` (it opened less than `durationSeconds` ago), else the next one;
 * epoch ms. Throws on an invalid expression (stored ones were checked by cronProblem).
 */
export function currentOrNextWindow(expression: string, durationSeconds: number, now: number): Window {
  const length = durationSeconds * 1000;
  const previous = CronExpressionParser.parse(expression, { currentDate: new Date(now + 1), tz: 'UTC' })
    .prev()
    .getTime();
  if (now < previous + length) return { start: previous, end: previous + length };
  const next = CronExpressionParser.parse(expression, { currentDate: new Date(now), tz: 'UTC' })
    .next()
    .getTime();
  return { start: next, end: next + length };
}

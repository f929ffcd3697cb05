import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ManagerName } from '../api/index.js';
import { parseDatabaseUrls } from './db-primary.js';
import { DEFAULT_STATS_INTERVAL_SECONDS } from './insight/index.js';
import { startManager } from './manager.js';
import { RETAINED_COPY_DAYS } from './move/index.js';

export {
  startManager,
  adminTokenPath,
  MANAGER_VERSION,
  type ManagerOptions,
  type RunningManager,
} from './manager.js';
export type { JobContext, JobHandler, ProgressUpdate } from './jobs.js';
export type { VmJobDeps } from './vm-jobs.js';
/** The metrics store and the change log as functions on a database (bench/insight uses them). */
export * as insight from './insight/index.js';
export { isPostgresUrl, openDatabase, type Db } from './db.js';
/**
 * Tests outside the manager: their manager on PostgreSQL under SILOBREAK_TEST_DATABASE=postgres,
 * or a database of the test process's own PostgreSQL (managers.lab's two managers).
 */
export {
  createTestDatabase,
  startReplicatedPair,
  testDatabase,
  type ReplicatedPair,
} from './test-postgres.js';
export { changeTimeline, listChanges, recordChanges, SYSTEM } from './changes.js';
/** A host and its report put into the inventory as a join does (bench/insight: the series' VMs). */
export { insertHost } from './inventory.js';
export { applySnapshot, type AgentSnapshot } from './reconcile.js';
/** When the HA loop holds a host dead (bench/ha prints it beside the restart times it measures). */
export { DEFAULT_HA_DEAD_AFTER_SECONDS } from './ha/index.js';
/** The managers' lease (several managers, one leader): its timing, for tests and benchmarks. */
export { LEASE_CHECK_MS, LEASE_EXPIRY_MS, LEASE_RENEW_MS, LEASE_STEP_DOWN_MS } from './leader.js';
/** How long a database call waits for a primary (a standby's promotion) before it answers 503. */
export { DATABASE_WAIT_MS } from './db-primary.js';

/** `--listen 127.0.0.1:7100` -> host and port. */
export function parseListen(value: string): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(value);
  const port = Number(match?.[2]);
  if (!match?.[1] || !(port >= 0 && port <= 65535)) {
    throw new Error(`--listen: must be address:port, like 127.0.0.1:7100 (got "${value}")`);
  }
  return { host: match[1].replace(/^\[|\]$/g, ''), port };
}

/** The `silobreak manager` flags as commander hands them over (strings, before checking). */
export interface ManagerFlags {
  dataDir: string;
  listen: string;
  reconcileInterval: string;
  statsInterval: string;
  retainDays: string;
  tokenFile?: string;
  name?: string;
  database?: string;
  advertiseUrl?: string;
}

/**
 * `--database`: PostgreSQL URLs, one or several joined by commas (a primary and its standbys, as
 * the CLI's other lists are joined); passwords better in PGPASSWORD or ~/.pgpass than here.
 */
const DatabaseUrls = z.string().transform((value, ctx) => {
  try {
    return parseDatabaseUrls(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: error instanceof Error ? error.message : String(error) });
    return z.NEVER;
  }
});

/**
 * The flags checked and turned into the manager's settings; a bad one throws naming the flag. Kept
 * apart from the command so the shipped systemd unit's command line is checked by the same rules
 * (src/deploy.test.ts).
 */
export function managerSettings(opts: ManagerFlags) {
  const interval = Number(opts.reconcileInterval);
  if (!(interval > 0)) throw new Error('--reconcile-interval: must be a positive number of seconds');
  const statsInterval = Number(opts.statsInterval);
  if (!(statsInterval >= 1)) throw new Error('--stats-interval: must be a number of seconds, at least 1');
  const retainDays = Number(opts.retainDays);
  if (!(retainDays > 0 && retainDays <= 365))
    throw new Error('--retain-days: must be a number of days, more than 0 and at most 365');
  const { host, port } = parseListen(opts.listen);
  let database: string[] | undefined;
  if (opts.database !== undefined) {
    const parsed = DatabaseUrls.safeParse(opts.database);
    if (!parsed.success) throw new Error(`--database: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    database = parsed.data;
  }
  return {
    dataDir: opts.dataDir,
    ...(database ? { database } : {}),
    host,
    port,
    reconcileIntervalSeconds: interval,
    statsIntervalSeconds: statsInterval,
    retainedCopyDays: retainDays,
    ...(opts.name !== undefined ? { name: managerName(opts.name) } : {}),
    ...(opts.advertiseUrl !== undefined ? { advertiseUrl: advertiseUrl(opts.advertiseUrl) } : {}),
  };
}

/** `--advertise-url`: an http(s) URL with host and port and nothing after, like http://m1:7100. */
function advertiseUrl(value: string): string {
  const url = URL.canParse(value) ? new URL(value) : undefined;
  if (!url || !['http:', 'https:'].includes(url.protocol) || url.pathname !== '/' || url.search || url.hash)
    throw new Error(
      `--advertise-url: must be an http:// or https:// URL with no path, like http://m1.example:7100 (got "${value}")`,
    );
  return url.origin;
}

/** A manager's name (issue 31: unique among the managers of one database). */
function managerName(value: string): string {
  const parsed = ManagerName.safeParse(value);
  if (!parsed.success) throw new Error(`--name: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}

/** `consoleDir`: the web console's static files, served by the manager at `/`. */
export function registerManagerCommands(program: Command, options: { consoleDir?: string } = {}): void {
  program
    .command('manager')
    .description('Run the manager: inventory, jobs and the REST API (/api/v1) for all joined hosts')
    .requiredOption(
      '--data-dir <dir>',
      'where the database (unless --database), CA and admin-token file live',
    )
    .option(
      '--database <urls>',
      'a PostgreSQL database (postgres://user@host/db; password in PGPASSWORD or ~/.pgpass) instead of SQLite in the data dir; a primary and its standbys joined by commas: the one taking writes is used',
    )
    .option('--listen <address:port>', 'address and port of the REST API', '127.0.0.1:7100')
    .option('--reconcile-interval <seconds>', 'seconds between polls of every agent', '30')
    .option(
      '--stats-interval <seconds>',
      "seconds between collections of every agent's storage statistics",
      String(DEFAULT_STATS_INTERVAL_SECONDS),
    )
    .option(
      '--retain-days <days>',
      'days a retained copy (vm move --retain) is kept before it is released',
      String(RETAINED_COPY_DAYS),
    )
    .option(
      '--name <name>',
      "this manager's name among the managers sharing its database (each its own; default: the host name)",
    )
    .option(
      '--advertise-url <url>',
      'the URL other managers reach this one at (default: the --listen address; for 0.0.0.0 or :: the host name)',
    )
    .option(
      '--token-file <path>',
      'file holding the admin token secret to use (else $SILOBREAK_MANAGER_TOKEN, else generated on first start)',
    )
    .action(async (opts: ManagerFlags) => {
      const settings = managerSettings(opts);
      const adminToken = opts.tokenFile
        ? (await readFile(opts.tokenFile, 'utf8')).trim()
        : process.env.SILOBREAK_MANAGER_TOKEN || undefined;
      const manager = await startManager({
        ...settings,
        ...(options.consoleDir ? { consoleDir: options.consoleDir } : {}),
        ...(adminToken ? { adminToken } : {}),
      });
      console.error(
        `manager: listening on ${manager.url}/api/v1 (admin token in ${opts.dataDir}/admin-token)`,
      );
      const stop = () => {
        manager.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}

import type { PostgresPool, PostgresPoolClient } from 'kysely';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

/*
 * A PostgreSQL primary and its standbys (issue 31: "A replica"). `--database` may name several
 * servers, joined by commas; the manager uses the one that takes writes (`pg_is_in_recovery()`
 * false, as libpq's target_session_attrs=read-write picks it; node-postgres has no multi-host
 * URLs; of several, the one on the newest timeline). When that server goes (connection refused or lost, or it answers that it is read-only or
 * in recovery), its pool is dropped and the next connection looks again among the URLs, for up to
 * DATABASE_WAIT_MS; a query meanwhile fails with DatabaseUnavailable (HTTP 503), never hangs.
 * Nothing here promotes a standby: that is the operator's (or a tool's) decision (README).
 */

/** How long one database call waits for a read-write server before DatabaseUnavailable. */
export const DATABASE_WAIT_MS = 10_000;
/** Between two looks for the primary while none answers. */
export const DATABASE_PROBE_INTERVAL_MS = 500;
/** One connection attempt (a server that is gone off the network would else hold it for minutes). */
export const DATABASE_CONNECT_TIMEOUT_MS = 5_000;

/** No server of the list takes writes now: the request may be tried again (HTTP 503). */
export class DatabaseUnavailable extends Error {
  readonly code = 'database-unavailable';
  constructor(detail: string, options?: { cause?: unknown }) {
    super(detail, options);
    this.name = 'DatabaseUnavailable';
  }
}

/** A postgres:// or postgresql:// URL. */
export const isPostgresUrl = (value: string) => /^postgres(ql)?:\/\//.test(value);

/**
 * `--database`'s value as its URLs: one, or several joined by commas (a comma splits only where
 * the next URL begins, scheme://, so a comma inside a URL's query stays). Throws a message naming
 * the rule broken and the URL at fault (by position when there are several).
 */
export function parseDatabaseUrls(value: string): string[] {
  const urls = value.split(/,(?=\s*[a-z][a-z0-9+.-]*:\/\/)/i).map((u) => u.trim());
  const which = (i: number) => (urls.length > 1 ? `URL ${i + 1} of ${urls.length} ` : '');
  urls.forEach((url, i) => {
    if (!isPostgresUrl(url))
      throw new Error(`${which(i)}must be a postgres:// or postgresql:// URL (several joined by commas)`);
    if (!URL.canParse(url))
      throw new Error(`${which(i)}must be a valid URL, like postgres://silobreak@db.example/silobreak`);
    // libpq's own multi-host form (postgres://a,b/db): node-postgres would take "a,b" as one host.
    if (new URL(url).hostname.includes(','))
      throw new Error(
        `${which(i)}names several hosts in one URL (libpq's form), which this manager cannot use: give each server its own postgres:// URL, joined by commas`,
      );
  });
  const seen = new Set<string>();
  urls.forEach((url, i) => {
    if (seen.has(url)) throw new Error(`${which(i)}is given twice`);
    seen.add(url);
  });
  return urls;
}

/** What a look at one server found; a primary's timeline (it goes up by one at each promotion). */
export type ServerLook =
  { url: string; state: 'primary'; timeline: number } | { url: string; state: 'standby' | 'unreachable' };

/**
 * The server to use: the one that takes writes; of several (an old primary started again beside
 * the standby promoted in its place), the one on the newest timeline, which the promotion began;
 * on one timeline, the first in the list. None while every one is down or a standby.
 */
export function choosePrimary(looks: readonly ServerLook[]): string | undefined {
  let best: (ServerLook & { state: 'primary' }) | undefined;
  for (const look of looks)
    if (look.state === 'primary' && (!best || look.timeline > best.timeline)) best = look;
  return best?.url;
}

/** Node's socket errors that mean the server is not there (or no longer). */
const GONE_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOENT',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * Whether an error of a database call means the server in use cannot serve us any more: `lost`
 * (gone, shutting down, connection broken) or `read-only` (a standby, or a primary demoted); else
 * undefined (the statement itself failed: a constraint, a syntax error).
 */
export function serverFailure(error: unknown): 'lost' | 'read-only' | undefined {
  if (!(error instanceof Error)) return undefined;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    // 25006 read_only_sql_transaction; class 08 connection exceptions; 57P01-03 shutdown,
    // crash, cannot connect now (starting, or recovering).
    if (code === '25006') return 'read-only';
    if (code.startsWith('08') || /^57P0[123]$/.test(code) || GONE_ERRNOS.has(code)) return 'lost';
  }
  // node-postgres's own words for a connection that broke or never came.
  if (
    /Connection terminated|connection timeout|not queryable|timeout exceeded when trying to connect/i.test(
      error.message,
    )
  )
    return 'lost';
  return undefined;
}

export interface PrimaryPoolOptions {
  /** The servers, in the order they are looked at. */
  urls: readonly string[];
  /** A pool on one server (the manager's settings: size, types). */
  makePool: (url: string) => pg.Pool;
  log?: (message: string) => void;
}

/** Where a URL's server is, for messages: never its password. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    const socket = u.searchParams.get('host');
    return `${u.hostname}${u.port ? `:${u.port}` : ''}${socket ? ` (${socket})` : ''}${u.pathname}`;
  } catch {
    return '(an invalid URL)';
  }
}

/** A WAL file's name begins with its timeline, 8 hex digits. */
const timelineOf = (walFile: string) => parseInt(walFile.slice(0, 8), 16);

/** Asks one server whether it takes writes, and a primary for its timeline. */
async function look(url: string): Promise<ServerLook> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: DATABASE_CONNECT_TIMEOUT_MS,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    // pg_current_wal_lsn() fails during recovery: asked of a primary only. Any role may call both.
    const { rows } = await client.query<{ wal: string | null }>(
      'select case when pg_is_in_recovery() then null else pg_walfile_name(pg_current_wal_lsn()) end as wal',
    );
    const wal = rows[0]?.wal;
    return typeof wal === 'string'
      ? { url, state: 'primary', timeline: timelineOf(wal) }
      : { url, state: 'standby' };
  } catch {
    return { url, state: 'unreachable' };
  } finally {
    await client.end().catch(() => {});
  }
}

interface InUse {
  url: string;
  pool: pg.Pool;
}

/**
 * Kysely's pool over the list of servers: connections come from a pool on the current primary;
 * a failure that says the primary is gone or read-only drops that pool, and the next connection
 * looks for the primary again.
 */
export class PrimaryPool implements PostgresPool {
  #inUse: InUse | undefined;
  #looking: Promise<InUse | undefined> | undefined;
  #ended = false;
  /** Each pg client's wrapper, so that Kysely keeps one connection object per client. */
  readonly #wrapped = new WeakMap<pg.PoolClient, PostgresPoolClient>();

  constructor(private readonly options: PrimaryPoolOptions) {}

  /** The URL of the server in use now (undefined while looking). */
  get primary(): string | undefined {
    return this.#inUse?.url;
  }

  async connect(): Promise<PostgresPoolClient> {
    const deadline = Date.now() + DATABASE_WAIT_MS;
    let last: unknown;
    for (;;) {
      if (this.#ended) throw new Error('the database is closed');
      const inUse = this.#inUse ?? (await this.#look());
      if (inUse) {
        try {
          return this.#wrap(await inUse.pool.connect(), inUse);
        } catch (error) {
          if (!serverFailure(error)) throw error;
          last = error;
          this.#drop(inUse, error);
        }
      }
      if (Date.now() + DATABASE_PROBE_INTERVAL_MS > deadline) throw this.#unavailable(last);
      await sleep(DATABASE_PROBE_INTERVAL_MS);
    }
  }

  async end(): Promise<void> {
    this.#ended = true;
    const inUse = this.#inUse;
    this.#inUse = undefined;
    await inUse?.pool.end();
  }

  #unavailable(cause: unknown): DatabaseUnavailable {
    const { urls } = this.options;
    return new DatabaseUnavailable(
      `no database server takes writes (${urls.length === 1 ? 'the one configured' : `none of the ${urls.length} configured`}` +
        ` within ${DATABASE_WAIT_MS / 1000} s: ${urls.map(redact).join(', ')}); try again once the primary is back or a standby is promoted`,
      { cause },
    );
  }

  /** One look at every server (shared by the callers waiting meanwhile). */
  #look(): Promise<InUse | undefined> {
    this.#looking ??= (async () => {
      const { urls } = this.options;
      const looks = await Promise.all(urls.map(look));
      const url = choosePrimary(looks);
      const primaries = looks.filter((l) => l.state === 'primary');
      if (primaries.length > 1)
        this.options.log?.(
          `database: ${primaries.length} servers take writes (${primaries.map((l) => `${redact(l.url)} on timeline ${l.timeline}`).join(', ')}): ` +
            'using the newest timeline; an old primary started again must become a standby',
        );
      if (url === undefined || this.#ended) return undefined;
      const inUse = { url, pool: this.options.makePool(url) };
      this.#inUse = inUse;
      if (urls.length > 1) this.options.log?.(`database: the primary is ${redact(url)}`);
      return inUse;
    })().finally(() => {
      this.#looking = undefined;
    });
    return this.#looking;
  }

  /** Stops using a server that failed (once: other connections of it fail alike). */
  #drop(inUse: InUse, error: unknown): void {
    if (this.#inUse !== inUse) return;
    this.#inUse = undefined;
    this.options.log?.(
      `database: ${redact(inUse.url)} cannot serve (${error instanceof Error ? error.message : String(error)}); looking for the primary`,
    );
    inUse.pool.end().catch(() => {});
  }

  #wrap(client: pg.PoolClient, inUse: InUse): PostgresPoolClient {
    let wrapped = this.#wrapped.get(client);
    if (wrapped) return wrapped;
    // The server's own farewell ("terminating connection due to unexpected postmaster exit")
    // comes as an event while no query runs: pg-pool listens only to idle clients, and an
    // unheard 'error' event would end the process.
    client.on('error', (error: Error) => {
      if (serverFailure(error)) this.#drop(inUse, error);
    });
    const query = (sqlOrCursor: unknown, parameters?: readonly unknown[]): unknown => {
      if (typeof sqlOrCursor !== 'string') return client.query(sqlOrCursor as pg.Submittable) as unknown;
      return client.query(sqlOrCursor, parameters ? [...parameters] : []).catch((error: unknown) => {
        const failure = serverFailure(error);
        if (!failure) throw error;
        this.#drop(inUse, error);
        throw new DatabaseUnavailable(
          failure === 'read-only'
            ? `the database server ${redact(inUse.url)} no longer takes writes (a standby now); looking for the primary: try again`
            : `the connection to the database server ${redact(inUse.url)} was lost (a change under way may or may not have been made); looking for the primary: try again`,
          { cause: error },
        );
      });
    };
    wrapped = {
      query: query as PostgresPoolClient['query'],
      release: (destroy?: boolean) => client.release(destroy),
    };
    this.#wrapped.set(client, wrapped);
    return wrapped;
  }
}

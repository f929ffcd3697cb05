import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, chown, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import assert from 'node:assert/strict';
import { constraintViolation, openDatabase, type Db } from './db.js';

/*
 * A PostgreSQL cluster owned by the test process (issue 31): made on first use in a temp
 * directory, reached only through a unix socket there (no TCP port), one fresh database per test
 * manager. The server runs under a small shell that waits on a pipe from this process: however
 * this process ends (even SIGKILL), the pipe closes and the shell stops the server and removes the
 * directory. Durability settings are off: this is a throwaway test cluster, not the product's.
 * startReplicatedPair makes a primary and its synchronous standby the same way (issue 31: "A replica").
 */

/** Where Debian's postgresql package puts the server binaries (scripts/setup.sh installs it). */
const BIN_ROOT = '/usr/lib/postgresql';
/** The socket file's name is .s.PGSQL.<port>; nothing listens on TCP. */
const PORT = 5432;

interface Cluster {
  dir: string;
  /** The server's data directory (pg_ctl -D). */
  data: string;
  guard: ChildProcess;
  admin: pg.Pool;
}

let starting: Promise<Cluster> | undefined;
let databases = 0;

function binDir(): string {
  const fromEnv = process.env.SILOBREAK_PG_BIN;
  if (fromEnv) return fromEnv;
  const versions = spawnSync('ls', [BIN_ROOT], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  const dir = versions[0] && path.join(BIN_ROOT, versions[0], 'bin');
  if (!dir || !existsSync(path.join(dir, 'initdb')))
    throw new Error(
      `test PostgreSQL: no server under ${BIN_ROOT} (scripts/setup.sh installs Debian's postgresql)`,
    );
  return dir;
}

/** initdb and postgres refuse to run as root: as root they run as the `postgres` user. */
const asServerUser = (argv: string[]) =>
  process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--', ...argv] : argv;

/** Runs one of the server's programs (initdb, pg_basebackup, pg_ctl) as the server's user. */
function runServerProgram(program: string, args: string[]): void {
  const [cmd, ...rest] = asServerUser([path.join(binDir(), program), ...args]);
  const run = spawnSync(cmd!, rest, { encoding: 'utf8' });
  if (run.status !== 0)
    throw new Error(`test PostgreSQL: ${program} failed: ${run.stderr || run.stdout || String(run.error)}`);
}

/** A temp directory for one server (its socket and data), owned by the server's user. */
async function serverDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'silobreak-pg-'));
  if (process.getuid?.() === 0) {
    const user = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const group = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    await chown(dir, Number(user.stdout), Number(group.stdout));
  }
  return dir;
}

/** A new cluster's data directory in `dir` (initdb, trust on the unix socket only). */
function initCluster(dir: string): string {
  const data = path.join(dir, 'data');
  runServerProgram('initdb', [
    '-D',
    data,
    '-U',
    'postgres',
    '-A',
    'trust',
    '-E',
    'UTF8',
    '--locale=C',
    '--no-sync',
  ]);
  return data;
}

/**
 * Settings of every test server: its socket in its own directory, no TCP. `durable`: commits wait
 * for the WAL (and a synchronous standby); else they do not (a throwaway cluster). fsync stays off
 * either way: no test crashes the machine, and a crashed server here is never started again.
 */
const serverSettings = (dir: string, durable: boolean) => [
  "listen_addresses = ''",
  `unix_socket_directories = '${dir}'`,
  `port = ${PORT}`,
  'fsync = off',
  `synchronous_commit = ${durable ? 'on' : 'off'}`,
  // A base backup forces full page writes while it runs anyway; off only where nothing replicates.
  `full_page_writes = ${durable ? 'on' : 'off'}`,
  'max_connections = 300',
  "log_min_messages = 'fatal'",
];

const adminPool = (dir: string) => {
  const admin = new pg.Pool({
    host: dir,
    port: PORT,
    user: 'postgres',
    database: 'postgres',
    max: 2,
    allowExitOnIdle: true,
  });
  admin.on('error', () => {});
  return admin;
};

/**
 * Runs the server on `data` (its settings appended to postgresql.auto.conf: later lines win)
 * under the guard, and waits until it answers.
 */
async function runServer(dir: string, data: string, settings: string[]): Promise<Cluster> {
  await appendFile(path.join(data, 'postgresql.auto.conf'), ['', ...settings, ''].join('\n'));
  const server = asServerUser([path.join(binDir(), 'postgres'), '-D', data])
    .map((a) => `'${a}'`)
    .join(' ');
  // The guard: runs the server, waits for its stdin to close (this process gone), stops it
  // (immediate shutdown) and removes the directory.
  const guard = spawn(
    'sh',
    [
      '-c',
      `${server} >'${dir}/server.log' 2>&1 & pid=$!; cat >/dev/null; ` +
        // The postmaster itself (runuser does not pass SIGQUIT on): immediate shutdown.
        `kill -QUIT $(head -1 '${data}/postmaster.pid') 2>/dev/null; wait $pid; rm -rf '${dir}'`,
    ],
    { stdio: ['pipe', 'ignore', 'ignore'] },
  );
  guard.unref();
  // The pipe must not keep the event loop alive.
  (guard.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  const admin = adminPool(dir);
  for (let i = 0; ; i++) {
    try {
      await admin.query('select 1');
      break;
    } catch (error) {
      if (i >= 300 || guard.exitCode !== null)
        throw new Error(`test PostgreSQL did not start in ${dir}: ${String(error)}`, { cause: error });
      await sleep(20);
    }
  }
  return { dir, data, guard, admin };
}

async function startCluster(): Promise<Cluster> {
  const dir = await serverDir();
  return runServer(dir, initCluster(dir), serverSettings(dir, false));
}

/** A database `name` of the server in `dir`, as a postgres:// URL (its unix socket). */
const databaseUrl = (dir: string, name: string) =>
  `postgres://postgres@localhost/${name}?host=${encodeURIComponent(dir)}&port=${PORT}`;

/** The standby's name: its replication slot and its application_name, which the primary waits for. */
const STANDBY = 'standby';

/** One server of a replicated pair. */
export interface PairServer {
  /** Its socket's directory. */
  dir: string;
  /** Its data directory (pg_ctl -D). */
  data: string;
  /** Its admin connections (the `postgres` database). */
  admin: pg.Pool;
}

/** A primary and its standby (streaming replication, synchronous), owned by this process. */
export interface ReplicatedPair {
  primary: PairServer;
  standby: PairServer;
  /** A new, empty database (made on the primary, replicated): its URL on each server. */
  createDatabase(): Promise<{ primary: string; standby: string }>;
  /** The primary's postmaster SIGKILLed, as a crash (its backends notice and exit). */
  killPrimary(): number;
  /** The README's promotion command: `pg_ctl promote -D <standby data>` (waits until it is done). */
  promoteStandby(): void;
}

/**
 * A primary and a standby made from it by `pg_basebackup -R -S standby` (a replication slot, the
 * connection settings written for the standby), the primary waiting for the standby on every
 * commit (synchronous_standby_names = 'standby', synchronous_commit on): a commit the primary
 * acknowledged is on the standby too. The standby has no synchronous standby of its own: once
 * promoted, it commits alone (else every commit would wait for a standby that is not there).
 * Each server runs under its own guard, as the test cluster does. A new pair on every call.
 */
export async function startReplicatedPair(): Promise<ReplicatedPair> {
  const primaryDir = await serverDir();
  const primary = await runServer(primaryDir, initCluster(primaryDir), serverSettings(primaryDir, true));
  // initdb's pg_hba.conf with -A trust lets local replication connections in already.
  await primary.admin.query('select pg_create_physical_replication_slot($1)', [STANDBY]);
  const standbyDir = await serverDir();
  const standbyData = path.join(standbyDir, 'data');
  runServerProgram('pg_basebackup', [
    '-D',
    standbyData,
    '-R',
    '-S',
    STANDBY,
    '-X',
    'stream',
    '--no-sync',
    '-d',
    `host=${primaryDir} port=${PORT} user=postgres application_name=${STANDBY}`,
  ]);
  const standby = await runServer(standbyDir, standbyData, [
    ...serverSettings(standbyDir, true),
    "synchronous_standby_names = ''",
  ]);
  // Only now does the primary wait for its standby (the base backup copied its settings).
  await primary.admin.query(`alter system set synchronous_standby_names = '${STANDBY}'`);
  await primary.admin.query('select pg_reload_conf()');
  for (let i = 0; ; i++) {
    const { rows } = await primary.admin.query<{ sync_state: string }>(
      'select sync_state from pg_stat_replication where application_name = $1',
      [STANDBY],
    );
    if (rows[0]?.sync_state === 'sync') break;
    if (i >= 500)
      throw new Error(`test PostgreSQL: the standby is not a synchronous standby: ${JSON.stringify(rows)}`);
    await sleep(20);
  }
  let pairDatabases = 0;
  const server = (c: Cluster): PairServer => ({ dir: c.dir, data: c.data, admin: c.admin });
  return {
    primary: server(primary),
    standby: server(standby),
    async createDatabase() {
      const name = `r${process.pid}_${++pairDatabases}`;
      await primary.admin.query(`create database ${name}`);
      return { primary: databaseUrl(primary.dir, name), standby: databaseUrl(standby.dir, name) };
    },
    killPrimary() {
      const pid = Number(readFileSync(path.join(primary.data, 'postmaster.pid'), 'utf8').split('\n')[0]);
      process.kill(pid, 'SIGKILL');
      return pid;
    },
    promoteStandby() {
      runServerProgram('pg_ctl', ['promote', '-w', '-D', standby.data]);
    },
  };
}

/**
 * A new, empty database in this process's test cluster (started on the first call): its
 * postgres:// URL (a unix socket).
 */
export async function createTestDatabase(): Promise<string> {
  starting ??= startCluster();
  const cluster = await starting;
  const name = `t${process.pid}_${++databases}`;
  await cluster.admin.query(`create database ${name}`);
  return databaseUrl(cluster.dir, name);
}

/** Drops a database createTestDatabase made (its connections must be closed). */
export async function dropTestDatabase(url: string): Promise<void> {
  const cluster = await starting;
  const name = new URL(url).pathname.slice(1);
  if (cluster && /^t\d+_\d+$/.test(name))
    await cluster.admin.query(`drop database if exists ${name} with (force)`);
}

/** Which database the DB-touching tests run on: SILOBREAK_TEST_DATABASE=postgres, else SQLite. */
export const testDatabaseKind = (): 'sqlite' | 'postgres' =>
  process.env.SILOBREAK_TEST_DATABASE === 'postgres' ? 'postgres' : 'sqlite';

const byDataDir = new Map<string, Promise<string>>();

/**
 * The `database` option of a test manager on `dataDir`: under SILOBREAK_TEST_DATABASE=postgres a
 * new database of the test cluster (the same one again for the same data dir: a restart finds
 * its rows), else none (SQLite in the data dir).
 */
export async function testDatabase(dataDir: string): Promise<{ database?: string }> {
  if (testDatabaseKind() !== 'postgres') return {};
  let url = byDataDir.get(dataDir);
  if (!url) byDataDir.set(dataDir, (url = createTestDatabase()));
  return { database: await url };
}

/** The manager's database for a test on `dataDir`, on the database SILOBREAK_TEST_DATABASE names. */
export async function testDb(dataDir: string): Promise<Db> {
  return openDatabase((await testDatabase(dataDir)).database ?? dataDir);
}

/**
 * assert.rejects' check: the error broke a rule of that kind. `fraction`: a non-integer where the
 * rule wants an integer, which PostgreSQL's bigint column refuses before any CHECK (22P02).
 */
export const violates =
  (rule: 'unique' | 'foreign-key' | 'check', what = '', fraction = false) =>
  (error: unknown) => {
    const code = (error as { code?: unknown }).code;
    if (
      constraintViolation(error) === rule ||
      (fraction && testDatabaseKind() === 'postgres' && code === '22P02')
    )
      return true;
    assert.fail(`expected a ${rule} violation${what ? ` of ${what}` : ''}, got ${String(error)}`);
  };

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdtemp, writeFile } from 'node:fs/promises';
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
 */

/** Where Debian's postgresql package puts the server binaries (scripts/setup.sh installs it). */
const BIN_ROOT = '/usr/lib/postgresql';
/** The socket file's name is .s.PGSQL.<port>; nothing listens on TCP. */
const PORT = 5432;

interface Cluster {
  dir: string;
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

async function startCluster(): Promise<Cluster> {
  const bin = binDir();
  const dir = await mkdtemp(path.join(tmpdir(), 'silobreak-pg-'));
  const data = path.join(dir, 'data');
  if (process.getuid?.() === 0) {
    const user = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const group = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    await chown(dir, Number(user.stdout), Number(group.stdout));
  }
  const [initCmd, ...initArgs] = asServerUser([
    path.join(bin, 'initdb'),
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
  const init = spawnSync(initCmd!, initArgs, { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`test PostgreSQL: initdb failed: ${init.stderr || init.stdout}`);
  await writeFile(
    path.join(data, 'postgresql.auto.conf'),
    [
      "listen_addresses = ''",
      `unix_socket_directories = '${dir}'`,
      `port = ${PORT}`,
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      'max_connections = 300',
      "log_min_messages = 'fatal'",
      '',
    ].join('\n'),
  );
  const server = asServerUser([path.join(bin, 'postgres'), '-D', data])
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
  const admin = new pg.Pool({
    host: dir,
    port: PORT,
    user: 'postgres',
    database: 'postgres',
    max: 2,
    allowExitOnIdle: true,
  });
  admin.on('error', () => {});
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
  return { dir, guard, admin };
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
  return `postgres://postgres@localhost/${name}?host=${encodeURIComponent(cluster.dir)}&port=${PORT}`;
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

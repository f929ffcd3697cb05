import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { AgentClient, type ContractBreach } from '../api/index.js';
import { nameWriter, openDatabase, type Db } from './db.js';
import { isPostgresUrl, redact } from './db-primary.js';
import { FabricEvents } from './fabric-events.js';
import { buildServer } from './http.js';
import { serveConsole } from './console.js';
import type { HostRow } from './inventory.js';
import { JobRunner, type JobHandler } from './jobs.js';
import { KeyedMutex } from './locks.js';
import { Collector, DEFAULT_STATS_INTERVAL_SECONDS, type CollectionResult } from './insight/index.js';
import {
  HostSlots,
  moveJobHandlers,
  MoveService,
  PendingUndoRunner,
  RETAINED_COPY_DAYS,
  sweepRetainedCopies,
} from './move/index.js';
import { PlacementService } from './placement/index.js';
import { LinkService } from './links.js';
import { Reconciler } from './reconcile.js';
import { agentEndpoint, pushRevocationList, renewalDue, renewHostCertificate } from './enrollment.js';
import { FabricCa } from './fabric-ca.js';
import { ManagerService } from './service.js';
import { ClusterService } from './clusters.js';
import { drainHandler } from './drain.js';
import { upgradeRunHandler } from './upgrade/index.js';
import { HA_LEASE_WAIT_SECONDS, HA_ROUND_MS, haRestartHandler, HaService } from './ha/index.js';
import { vmJobHandlers, type VmJobDeps } from './vm-jobs.js';
import { Leadership } from './leader.js';

export const MANAGER_VERSION = '0.1.0';

export interface ManagerOptions {
  dataDir: string;
  /**
   * postgres:// URLs: the database is there instead of SQLite in the data dir (issue 31); several:
   * a primary and its standbys, the one taking writes is used (db-primary.ts).
   */
  database?: string | readonly string[];
  /** Address to listen on (loopback or a lab address); port 0 picks a free one. */
  host?: string;
  port?: number;
  /** Seconds between reconciliation polls of every host. */
  reconcileIntervalSeconds?: number;
  /** Seconds between collections of every host's storage statistics (the Storage Explorer's samples). */
  statsIntervalSeconds?: number;
  /** Secret to use as the `admin` token (else one is generated on the first start). */
  adminToken?: string;
  /** Extra job kinds (e.g. moves) to register next to the VM jobs, built from the same deps. */
  jobHandlers?: (deps: VmJobDeps) => JobHandler<never>[];
  /** Days a retained copy is kept before it is released (default RETAINED_COPY_DAYS). */
  retainedCopyDays?: number;
  /** Moves at once per host (as source or target); more wait queued. Default 2. */
  maxMovesPerHost?: number;
  /** How long a host may take to answer with its new versions in a rolling upgrade (default 300 s). */
  upgradeReconnectSeconds?: number;
  /** How long a clean stop waits for running jobs before leaving them to the next start. */
  drainSeconds?: number;
  log?: (message: string) => void;
  /** Folder of the web console's static files, served at `/`; no console when absent. */
  consoleDir?: string;
  /** Told of every API answer outside the route table (tests: they expect none). */
  onContractBreach?: (breach: ContractBreach) => void;
  /**
   * This manager's name among the managers of its database (leader.ts): unique among them.
   * Default: the machine's host name.
   */
  name?: string;
  /**
   * The base URL other managers reach this one at (requests a follower forwards to the leader,
   * `managers list`). Default: the listening address; for a wildcard one (0.0.0.0, ::) the
   * machine's host name with the port.
   */
  advertiseUrl?: string;
}

export interface RunningManager {
  /** Base URL, e.g. http://127.0.0.1:7100 (the API is under /api/v1). */
  url: string;
  /** The admin secret, when this start set it or `<dataDir>/admin-token` holds it. */
  adminToken: string | undefined;
  db: Db;
  jobs: JobRunner;
  /** Polls every host now (tests use this instead of waiting for the interval). */
  reconcileNow(): Promise<void>;
  /** Collects every host's stats now and evaluates the storage rules (tests use this). */
  collectStatsNow(): Promise<CollectionResult>;
  /** The placement loop's service (tests call its evaluate() instead of waiting a round). */
  placement: PlacementService;
  /** Its side of the managers' lease: whether (and under which epoch) it leads. */
  leadership: Leadership;
  /** The fabric CA it issues with (the database's) and its own client certificate. */
  ca: FabricCa;
  /** Stops polling and listening, waits for running jobs, closes the database. */
  close(): Promise<void>;
}

export const adminTokenPath = (dataDir: string) => path.join(dataDir, 'admin-token');

async function readSecret(file: string): Promise<string | undefined> {
  try {
    return (await readFile(file, 'utf8')).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The database as messages name it: the SQLite file, or the PostgreSQL servers (no password). */
const databaseName = (where: string | readonly string[]): string =>
  typeof where === 'string' && !isPostgresUrl(where)
    ? path.join(where, 'manager.db')
    : (typeof where === 'string' ? [where] : where).map(redact).join(', ');

export async function startManager(options: ManagerOptions): Promise<RunningManager> {
  const log = options.log ?? ((message: string) => console.error(`manager: ${message}`));
  // Owner-only, also when the directory already existed with a looser mode: it holds secrets.
  await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  await chmod(options.dataDir, 0o700);
  const where = options.database ?? options.dataDir;
  const db = await openDatabase(where, { log });
  // The fabric CA, the database's (made at the first start): agents answer only its certificates.
  let ca: FabricCa;
  try {
    ca = await FabricCa.open(options.dataDir, db, databaseName(where));
  } catch (error) {
    await db.destroy();
    throw error;
  }
  const name = options.name ?? hostname();
  // Its change records name it (several managers may share the database).
  nameWriter(db, name);
  const hostLocks = new KeyedMutex();
  // Several managers may share the database (issue 31); only the leader acts on agents, each call
  // under its epoch (leader.ts). Made before anything can call an agent; it leads from start().
  let url = '';
  let advertised = '';
  const leadership = new Leadership({
    db,
    name,
    url: () => advertised,
    version: MANAGER_VERSION,
    log,
    onGain: (epoch) => lead(epoch),
    onLose: () => follow(),
  });
  const epoch = () => leadership.fence();
  const clientFor = (host: HostRow) => new AgentClient(agentEndpoint(ca, host.agent_url, epoch), 15_000);
  const jobs = new JobRunner(db, log);
  // Until it leads, a manager only writes the jobs it is given down (queued, for the leader).
  jobs.follow();
  const pendingUndos = new PendingUndoRunner({ db, jobs, clientFor, log });
  const reconciler = new Reconciler({
    db,
    hostLocks,
    clientFor,
    intervalMs: (options.reconcileIntervalSeconds ?? 30) * 1000,
    log,
    onAnswered: async (host) => {
      // A poll that ended after this manager stopped leading: the next leader does the rest.
      if (leadership.epoch === undefined) return;
      // A host that missed a revocation (down at a host remove) gets the list now; a certificate
      // near its end is renewed.
      await pushRevocationList(db, ca, host, clientFor(host)).catch((error: unknown) =>
        log(
          `revocation list not sent to ${host.name}: ${error instanceof Error ? error.message : String(error)}`,
        ),
      );
      if (renewalDue(host))
        await renewHostCertificate(db, ca, host, clientFor(host)).then(
          (c) => log(`renewed the certificate of ${host.name} (serial ${c.serial}, until ${c.notAfter})`),
          (error: unknown) =>
            log(
              `certificate of ${host.name} not renewed: ${error instanceof Error ? error.message : String(error)}`,
            ),
        );
      await pendingUndos.runFor(host);
      await sweepRetainedCopies({ db, hostLocks, clientFor }, host).catch((error: unknown) =>
        log(
          `retained copies on ${host.name} not swept: ${error instanceof Error ? error.message : String(error)}`,
        ),
      );
    },
  });
  const collector = new Collector({
    db,
    clientFor,
    intervalMs: (options.statsIntervalSeconds ?? DEFAULT_STATS_INTERVAL_SECONDS) * 1000,
    log,
  });
  const links = new LinkService({ db, clientFor, log });
  const service = new ManagerService({ db, jobs, reconciler, hostLocks, clientFor, ca, links, epoch });
  const deps: VmJobDeps = { db, hostLocks, clientFor };
  const moveDeps = {
    ...deps,
    links,
    slots: new HostSlots(options.maxMovesPerHost ?? 2),
    retainedCopyDays: options.retainedCopyDays ?? RETAINED_COPY_DAYS,
  };
  const moves = new MoveService({ ...moveDeps, jobs, pendingUndos });
  const placement = new PlacementService({ db, moves, log });
  const clusters = new ClusterService({ db, jobs });
  const ha = new HaService({
    db,
    jobs,
    clientFor,
    // A probe answers within a round or counts as silence.
    probeClientFor: (host) => new AgentClient(agentEndpoint(ca, host.agent_url, epoch), HA_ROUND_MS),
    log,
  });
  for (const handler of [
    ...vmJobHandlers(deps),
    ...moveJobHandlers(moveDeps),
    haRestartHandler({
      db,
      clientFor,
      patientClientFor: (host) =>
        new AgentClient(agentEndpoint(ca, host.agent_url, epoch), (HA_LEASE_WAIT_SECONDS + 30) * 1000),
    }) as JobHandler<never>,
    drainHandler({
      db,
      jobs,
      moves,
      moveLimit: moveDeps.slots.limit,
      poll: (hostId) => reconciler.pollHost(hostId),
    }) as JobHandler<never>,
    upgradeRunHandler({
      db,
      jobs,
      clusters,
      moves,
      clientFor,
      poll: (hostId) => reconciler.pollHost(hostId),
      ...(options.upgradeReconnectSeconds !== undefined
        ? { reconnectSeconds: options.upgradeReconnectSeconds }
        : {}),
    }) as JobHandler<never>,
    ...(options.jobHandlers?.(deps) ?? []),
  ]) {
    jobs.register(handler);
  }

  const tokenFile = adminTokenPath(options.dataDir);
  const setSecret = await service.ensureAdminToken(options.adminToken);
  if (setSecret !== undefined) {
    await writeFile(tokenFile, `${setSecret}\n`, { mode: 0o600 });
    await chmod(tokenFile, 0o600);
  }
  const adminToken = setSecret ?? (await readSecret(tokenFile));

  const app = buildServer(
    {
      db,
      service,
      jobs,
      events: new FabricEvents(db, jobs, log),
      moves,
      placement,
      links,
      clusters,
      version: MANAGER_VERSION,
      managers: () => leadership.view(),
      onContractBreach: options.onContractBreach,
      // A follower passes what acts on hosts on to the leader (as the lease names it).
      forwarding: {
        name,
        leading: () => leadership.epoch !== undefined,
        leader: async () => {
          const { leader } = await leadership.view();
          return leader && leader.id !== leadership.me.id
            ? { name: leader.name, url: leader.url }
            : undefined;
        },
      },
    },
    log,
  );
  if (options.consoleDir) await serveConsole(app, options.consoleDir, log);
  await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host ?? '127.0.0.1';
  url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  // A wildcard address is no address to call from another machine.
  advertised =
    options.advertiseUrl ?? (['0.0.0.0', '::'].includes(host) ? `http://${hostname()}:${port}` : url);

  // What only the leader runs: the jobs (queued by any manager, or left running by an earlier
  // leader: resumed or rolled back as after a restart, jobs.recover), polls, collection, links,
  // placement, HA. Started when it takes the lease; stopped when it loses it, after the fence has
  // closed (Leadership.fence throws from that moment, before any further agent call).
  let loopsRunning = false;
  // Set by close(): a lease gained while closing starts nothing (close gives it up again).
  let stopping = false;
  async function lead(epoch: number): Promise<void> {
    if (stopping) return;
    await jobs.lead(epoch);
    reconciler.start();
    collector.start();
    links.start();
    await placement.start();
    ha.start();
    loopsRunning = true;
  }
  async function stopLoops(): Promise<void> {
    if (!loopsRunning) return;
    loopsRunning = false;
    await reconciler.stop();
    await collector.stop();
    await links.stop();
    await placement.stop();
    await ha.stop();
  }
  async function follow(): Promise<void> {
    jobs.follow();
    await stopLoops();
  }
  // A single manager leads at once (the lease is free, or held by its own name's previous run).
  await leadership.start();

  let closing: Promise<void> | undefined;
  return {
    url,
    adminToken,
    db,
    jobs,
    reconcileNow: () => reconciler.pollAll(),
    collectStatsNow: () => collector.collect(),
    placement,
    leadership,
    ca,
    close: () =>
      (closing ??= (async () => {
        stopping = true;
        await stopLoops();
        await app.close();
        // Still leading while running jobs end (the lease is renewed meanwhile); then it is given
        // up, and jobs still running are the next leader's.
        await jobs.drain((options.drainSeconds ?? 30) * 1000);
        jobs.follow();
        await leadership.stop();
        await db.destroy();
      })()),
  };
}

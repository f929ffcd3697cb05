/*
 * The fabric knows its links (issue 27): the manager has the agents measure the rate between each
 * ordered pair of hosts (src/api/links.ts: the source opens a sender, the target receives) and
 * keeps one figure per pair, with when and how it was obtained (link-figures.ts has the rules).
 *
 * - When a host joins, each pair with it is probed, both directions, in the background.
 * - The periodic work probes again every pair whose figure is missing or stale, skipping hosts
 *   with a move running (its traffic would both disturb the move and understate the link).
 * - Every live move probes its pair afresh (the short probe, beside its checks) and falls back to
 *   the stored figure when the probe fails; after the move, the rate its disks mirrored at is
 *   recorded (a lower bound of the link).
 * - People see the figures in `host show` and GET /api/v1/hosts/:host/links, and re-measure with
 *   POST .../links/probe.
 *
 * Probes run one at a time, fabric-wide: two at once would share links and CPUs and each read
 * low. Background work queues one probe at a time, so a move's probe waits for at most one.
 */
import { setImmediate as turn } from 'node:timers/promises';
import {
  AgentMigrationClient,
  LINK_PROBE_MS,
  type AgentClient,
  type HostLink,
  type HostLinks,
  type LinkChoice,
  type LinkFigure,
  MOVE_JOB_KINDS,
} from '../api/index.js';
import { nowIso } from './changes.js';
import type { Db } from './db.js';
import { agentError } from './errors.js';
import { hostRow, type HostRow } from './inventory.js';
import {
  afterGiven,
  afterMirror,
  afterProbe,
  chooseLink,
  isStale,
  rowOf,
  stateOf,
  type LinkState,
  type ProbeOutcome,
} from './link-figures.js';
import { KeyedMutex } from './locks.js';
import { PeriodicLoop } from './periodic.js';

/** How often the periodic work looks for stale figures (each stale pair then gets one probe). */
export const LINK_REFRESH_INTERVAL_MS = 5 * 60_000;

/** Pairs looked at between two turns of the event loop in the periodic work. */
const PAIRS_PER_TURN = 2000;

export interface LinkDeps {
  db: Db;
  clientFor: (host: HostRow) => AgentClient;
  log: (message: string) => void;
}

export interface ProbeFailure {
  from: string;
  to: string;
  reason: string;
}

export class LinkService {
  readonly #probes = new KeyedMutex();
  readonly #loop: PeriodicLoop;
  /** Hosts that joined, waiting for their pairs' first probes (probeJoined). */
  readonly #joined: string[] = [];
  #joinWorker: Promise<void> | undefined;

  constructor(
    private readonly deps: LinkDeps,
    options: { refreshIntervalMs?: number } = {},
  ) {
    this.#loop = new PeriodicLoop(
      () => this.refreshStale().catch((error: unknown) => deps.log(`link refresh: ${text(error)}`)),
      options.refreshIntervalMs ?? LINK_REFRESH_INTERVAL_MS,
    );
  }

  start(): void {
    this.#loop.start();
  }

  async stop(): Promise<void> {
    await this.#loop.stop();
    await this.#joinWorker;
  }

  /** Measures `from` -> `to` now and stores the outcome; a failure is an outcome, never thrown. */
  probe(from: HostRow, to: HostRow, durationMs: number = LINK_PROBE_MS.default): Promise<ProbeOutcome> {
    return this.#probes.run('fabric', async () => {
      let outcome: ProbeOutcome;
      let step: HostRow = from;
      try {
        const sender = await new AgentMigrationClient(this.deps.clientFor(from).http).openLinkSender({
          durationMs,
        });
        step = to;
        const result = await new AgentMigrationClient(this.deps.clientFor(to).http).probeLink({
          sender: { address: sender.address, port: sender.port, secret: sender.secret },
          durationMs,
        });
        outcome = {
          ok: true,
          figure: { bitsPerSecond: result.bitsPerSecond, source: 'probe', measuredAt: nowIso() },
        };
      } catch (error) {
        outcome = { ok: false, reason: agentError(step.name, error).message };
      }
      await this.#change(from.id, to.id, (state) => afterProbe(state, outcome, nowIso()));
      return outcome;
    });
  }

  /**
   * The link figure for a live move `from` -> `to`: the caller's, else a fresh probe, else the
   * stored figure. Never throws.
   */
  async forMove(from: HostRow, to: HostRow, givenBitsPerSecond?: number): Promise<LinkChoice> {
    if (givenBitsPerSecond !== undefined)
      return chooseLink({ givenBitsPerSecond, stored: null, now: Date.now() });
    try {
      const probe = await this.probe(from, to);
      const stored = probe.ok ? null : (await this.#state(from.id, to.id)).figure;
      return chooseLink({ probe, stored, now: Date.now() });
    } catch (error) {
      // The database failed us: the move goes on, on what the agent would assume.
      return chooseLink({ probe: { ok: false, reason: text(error) }, stored: null, now: Date.now() });
    }
  }

  /** A caller gave the link's rate for a move: kept as the pair's latest figure. */
  recordGiven(fromId: string, toId: string, bitsPerSecond: number): Promise<void> {
    return this.#change(fromId, toId, (state) => afterGiven(state, bitsPerSecond, nowIso()));
  }

  /** The rate a move's disks mirrored at (a lower bound of the link). */
  recordMirror(fromId: string, toId: string, bitsPerSecond: number): Promise<void> {
    return this.#change(fromId, toId, (state) => afterMirror(state, bitsPerSecond, nowIso()));
  }

  /** Both directions between `ref` and each other host. */
  async list(ref: string): Promise<HostLinks> {
    const host = await hostRow(this.deps.db, ref);
    const peers = await this.deps.db
      .selectFrom('hosts')
      .select(['id', 'name'])
      .where('id', '!=', host.id)
      .orderBy('name')
      .execute();
    const rows = await this.deps.db
      .selectFrom('host_links')
      .selectAll()
      .where((eb) => eb.or([eb('from_host_id', '=', host.id), eb('to_host_id', '=', host.id)]))
      .execute();
    const find = (from: string, to: string) =>
      stateOf(rows.find((r) => r.from_host_id === from && r.to_host_id === to));
    const now = Date.now();
    const view = (from: { name: string }, to: { name: string }, state: LinkState): HostLink => ({
      from: from.name,
      to: to.name,
      ...state,
      stale: isStale(state.figure, now),
    });
    return {
      host: host.name,
      links: peers.flatMap((peer) => [
        view(host, peer, find(host.id, peer.id)),
        view(peer, host, find(peer.id, host.id)),
      ]),
    };
  }

  /** Measures the links of `ref` now (with `to` only, or with every other host), both directions. */
  async probeHost(
    ref: string,
    q: { to?: string | undefined; durationMs: number },
  ): Promise<HostLinks & { failures: ProbeFailure[] }> {
    const host = await hostRow(this.deps.db, ref);
    const peers = q.to
      ? [await hostRow(this.deps.db, q.to, 'to')]
      : await this.deps.db
          .selectFrom('hosts')
          .selectAll()
          .where('id', '!=', host.id)
          .orderBy('name')
          .execute();
    const failures: ProbeFailure[] = [];
    for (const peer of peers.filter((p) => p.id !== host.id)) {
      for (const [from, to] of [
        [host, peer],
        [peer, host],
      ] as const) {
        const outcome = await this.probe(from, to, q.durationMs);
        if (!outcome.ok) failures.push({ from: from.name, to: to.name, reason: outcome.reason });
      }
    }
    return { ...(await this.list(host.id)), failures };
  }

  /**
   * A host joined: each pair with it, both directions, in the background (one probe at a time).
   * Joined hosts wait in one queue for one worker: a loop per join, each holding the list of every
   * host, was n lists of n rows while n hosts joined (a fabric joining 10,000 hosts ran out of
   * memory), and probed each pair of hosts that joined together twice.
   */
  probeJoined(hostId: string): void {
    if (!this.#joined.includes(hostId)) this.#joined.push(hostId);
    this.#joinWorker ??= this.#probeJoinedHosts();
  }

  /** Resolves when every joined host's pairs have been probed (or the service stopped). */
  async joinedProbed(): Promise<void> {
    await this.#joinWorker;
  }

  async #probeJoinedHosts(): Promise<void> {
    // probeJoined stores this promise before the loop below may end (it may, with no await, once stopped).
    await null;
    // Pairs probed since the queue was last empty: hosts that joined together share them.
    const probed = new Set<string>();
    for (let id = this.#joined.shift(); id !== undefined; id = this.#joined.shift()) {
      if (this.#loop.stopped) continue;
      try {
        const host = await hostRow(this.deps.db, id);
        const peers = await this.#connected();
        const busy = await hostsMoving(this.deps.db);
        for (const peer of peers) {
          if (peer.id === host.id || busy.has(peer.id) || this.#loop.stopped) continue;
          for (const [from, to] of [
            [host, peer],
            [peer, host],
          ] as const) {
            if (probed.has(`${from.id} ${to.id}`)) continue;
            probed.add(`${from.id} ${to.id}`);
            await this.probe(from, to);
          }
        }
      } catch (error) {
        this.deps.log(`link probes after a host joined: ${text(error)}`);
      }
    }
    // Set in the same turn as the last shift found the queue empty: a join after it starts anew.
    this.#joinWorker = undefined;
  }

  /** Probes every pair of connected hosts whose figure is missing or stale, one at a time. */
  async refreshStale(): Promise<void> {
    const hosts = await this.#connected();
    const rows = await this.deps.db.selectFrom('host_links').selectAll().execute();
    // By pair: a search of every row per pair was a million times a million steps at 1,000 hosts.
    const rowOfPair = new Map(rows.map((r) => [`${r.from_host_id} ${r.to_host_id}`, r]));
    let looked = 0;
    for (const from of hosts) {
      for (const to of hosts) {
        if (from.id === to.id || this.#loop.stopped) continue;
        // Fresh pairs go by without an await: the event loop turns every so many (API requests wait).
        if (++looked % PAIRS_PER_TURN === 0) await turn();
        const row = rowOfPair.get(`${from.id} ${to.id}`);
        if (!isStale(stateOf(row).figure, Date.now())) continue;
        // Asked per pair: a move may have started meanwhile.
        const busy = await hostsMoving(this.deps.db);
        if (busy.has(from.id) || busy.has(to.id)) continue;
        await this.probe(from, to);
      }
    }
  }

  async stored(fromId: string, toId: string): Promise<LinkFigure | null> {
    return (await this.#state(fromId, toId)).figure;
  }

  #connected(): Promise<HostRow[]> {
    return this.deps.db
      .selectFrom('hosts')
      .selectAll()
      .where('state', '=', 'connected')
      .orderBy('name')
      .execute();
  }

  async #state(fromId: string, toId: string): Promise<LinkState> {
    const row = await this.deps.db
      .selectFrom('host_links')
      .selectAll()
      .where('from_host_id', '=', fromId)
      .where('to_host_id', '=', toId)
      .executeTakeFirst();
    return stateOf(row);
  }

  /** Reads, changes and writes one pair's row in a transaction; a host removed meanwhile is no error. */
  async #change(fromId: string, toId: string, change: (state: LinkState) => LinkState): Promise<void> {
    try {
      await this.deps.db.transaction().execute(async (tx) => {
        const row = await tx
          .selectFrom('host_links')
          .selectAll()
          .where('from_host_id', '=', fromId)
          .where('to_host_id', '=', toId)
          .executeTakeFirst();
        const next = rowOf(change(stateOf(row)));
        await tx
          .insertInto('host_links')
          .values({ from_host_id: fromId, to_host_id: toId, ...next })
          .onConflict((oc) => oc.columns(['from_host_id', 'to_host_id']).doUpdateSet(next))
          .execute();
      });
    } catch (error) {
      const gone = await this.deps.db
        .selectFrom('hosts')
        .select('id')
        .where('id', 'in', [fromId, toId])
        .execute();
      if (gone.length === 2) throw error;
    }
  }
}

/** Hosts taking part in a running move (as source, target, or the host of a storage move). */
async function hostsMoving(db: Db): Promise<Set<string>> {
  const jobs = await db
    .selectFrom('jobs')
    .select('params')
    .where('kind', 'in', [...MOVE_JOB_KINDS])
    .where('state', '=', 'running')
    .execute();
  const ids = new Set<string>();
  for (const job of jobs) {
    const params = JSON.parse(job.params) as Record<string, unknown>;
    for (const key of ['sourceHostId', 'targetHostId', 'hostId'])
      if (typeof params[key] === 'string') ids.add(params[key]);
  }
  return ids;
}

const text = (error: unknown) => (error instanceof Error ? error.message : String(error));

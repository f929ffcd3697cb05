// The fabric the Beast's lab tests run on (placement*.lab.test.ts): a manager and three lab
// agents, host3 of class `fast`, the others limited like a SAN tier (as `lab up --beast host3`
// makes them), and what both files ask of it: commands in a guest wherever it runs now, data
// checksums, the placement moves of a VM and the time bounds of an episode. At the root because
// it joins two parts: the manager and the agent's lab agents.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DEFAULT_PLACEMENT_SETTINGS,
  ManagerClient,
  type ChangeRecord,
  type DatastoreLimits,
  type GuestExecResult,
  type PlacementSettings,
} from './api/index.js';
import { startLabAgent, type LabAgent } from './agent/index.js';
import { insight, startManager } from './manager/index.js';
import { STANDARD_TIER_LIMITS } from './lab/index.js';

export const BEAST_FABRIC_HOSTS = ['host1', 'host2', 'host3'] as const;
export type BeastFabricHost = (typeof BEAST_FABRIC_HOSTS)[number];

/** How often the fabric's manager samples the agents' statistics. */
export const BEAST_FABRIC_STATS_SECONDS = 2;

export interface BeastFabric {
  api: ManagerClient;
  agents: Map<BeastFabricHost, LabAgent>;
  /** The manager's log lines, each with its time: what a failed assertion prints. */
  log: string[];
  /** Each VM's demand as the placement status showed it every 2 s (the last 90 looks). */
  demandTrace: Map<string, string[]>;
  /** Stops the VMs named, the manager and the agents, and removes what they wrote. */
  close(vms: readonly string[]): Promise<void>;
}

/** `beastLimits`: the Beast's own limits (none by default: it is the fast one). */
export async function startBeastFabric(
  prefix: string,
  token: string,
  beastLimits?: DatastoreLimits,
): Promise<BeastFabric> {
  const dataDir = await mkdtemp(path.join(tmpdir(), `${prefix}manager-`));
  const log: string[] = [];
  const manager = await startManager({
    dataDir,
    statsIntervalSeconds: BEAST_FABRIC_STATS_SECONDS,
    reconcileIntervalSeconds: 2,
    log: (line) => log.push(`${new Date().toISOString()} ${line}`),
  });
  const api = new ManagerClient(manager.url, manager.adminToken ?? '');
  const agents = new Map<BeastFabricHost, LabAgent>();
  const demandTrace = new Map<string, string[]>();
  const tracing = new AbortController();
  const trace = (async () => {
    while (!tracing.signal.aborted) {
      const status = await api.placementStatus().catch(() => undefined);
      for (const v of status?.vms ?? []) {
        const lines = demandTrace.get(v.vm) ?? [];
        lines.push(
          `${new Date().toISOString()} ${v.host}: ${v.demand} ${v.iops ?? '-'} IOPS p90 ${v.latencyMs ?? '-'} ms (${v.demandReason ?? ''}), moves today ${v.movesToday}${v.waitingReason ? `; not moved: ${v.waitingReason}` : ''}`,
        );
        demandTrace.set(v.vm, lines.slice(-90));
      }
      await sleep(2000, undefined, { signal: tracing.signal }).catch(() => undefined);
    }
  })();
  const close = async (vms: readonly string[]) => {
    tracing.abort();
    await trace;
    await manager.close();
    for (const agent of agents.values())
      for (const vm of vms) await agent.client.stopVm(vm).catch(() => undefined);
    for (const agent of agents.values()) await agent.close();
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    for (const hostName of BEAST_FABRIC_HOSTS) {
      const agent = await startLabAgent({ prefix: `${prefix}${hostName}-`, hostName, token });
      agents.set(hostName, agent);
      await api.addHost(await agent.join());
    }
    await api.updateDatastore('host3', 'ds1', {
      class: 'fast',
      ...(beastLimits ? { limits: beastLimits } : {}),
    });
    for (const host of ['host1', 'host2'])
      await api.updateDatastore(host, 'ds1', { limits: STANDARD_TIER_LIMITS });
  } catch (error) {
    await close([]);
    throw error;
  }
  return { api, agents, log, demandTrace, close };
}

/** The host the manager has the VM on now. */
export async function hostOf(fabric: BeastFabric, vm: string): Promise<BeastFabricHost> {
  const host = (await fabric.api.getVm(vm)).host;
  assert.ok((BEAST_FABRIC_HOSTS as readonly string[]).includes(host), `${vm} on ${host}`);
  return host as BeastFabricHost;
}

/** A command in the VM's guest wherever it runs now (asked again if it moved meanwhile). */
export async function inGuestOf(
  fabric: BeastFabric,
  vm: string,
  argv: string[],
  timeoutSeconds = 60,
  detach = false,
): Promise<GuestExecResult> {
  for (let attempt = 1; ; attempt++) {
    const agent = fabric.agents.get(await hostOf(fabric, vm));
    try {
      assert.ok(agent, `no lab agent for ${vm}'s host`);
      return await agent.client.guestExec(vm, argv, timeoutSeconds, detach);
    } catch (error) {
      if (attempt >= 5) throw error;
      await sleep(2000);
    }
  }
}

/** Writes `mib` MiB of random data to `file` in the guest, flushed to its disk. */
export async function writeRandomData(fabric: BeastFabric, vm: string, file: string, mib: number) {
  const out = await inGuestOf(fabric, vm, [
    '/bin/dd',
    'if=/dev/urandom',
    `of=${file}`,
    'bs=1M',
    `count=${mib}`,
    'conv=fsync',
  ]);
  assert.equal(out.exitCode, 0, out.stderr);
}

/**
 * The SHA-256 of a file in the guest as its disk holds it: the page cache is dropped first, so
 * after a move the guest reads what the move put on the disk it runs on now.
 */
export async function diskChecksum(fabric: BeastFabric, vm: string, file: string): Promise<string> {
  const out = await inGuestOf(
    fabric,
    vm,
    ['/bin/sh', '-c', `sync && echo 3 > /proc/sys/vm/drop_caches && /usr/bin/sha256sum ${file}`],
    120,
  );
  assert.equal(out.exitCode, 0, out.stderr);
  const sum = out.stdout?.split(' ')[0] ?? '';
  assert.match(sum, /^[0-9a-f]{64}$/);
  return sum;
}

/** The VM's placement moves in the change log (newest first), each with its reason's kind. */
export async function placementMovesOf(fabric: BeastFabric, vm: string) {
  const changes = await fabric.api.listChanges({ actor: 'placement', object: vm, limit: 100 });
  return changes.items
    .filter((c) => c.changes.some((f) => f.field === 'placement'))
    .map((c: ChangeRecord) => {
      const reason = String(c.changes.find((f) => f.field === 'placement.reason')?.after ?? '');
      return { kind: reason.split(':')[0] ?? '', reason, jobId: c.jobId, at: c.at };
    })
    .sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
}

/**
 * The VM's placement moves (newest first) that did not fail, and the failed ones with their jobs'
 * errors: a move that fails and is tried again at a later round is the product working (the test
 * prints why it failed); two moves that both went through are not.
 */
export async function placementMovesDone(fabric: BeastFabric, vm: string) {
  const moves = await Promise.all(
    (await placementMovesOf(fabric, vm)).map(async (m) => ({
      ...m,
      job: m.jobId ? await fabric.api.waitForJob(m.jobId, 120_000) : undefined,
    })),
  );
  return {
    done: moves.filter((m) => m.job?.state !== 'failed'),
    failed: moves
      .filter((m) => m.job?.state === 'failed')
      .map((m) => `${m.at} ${m.reason}: ${JSON.stringify(m.job?.error)}`),
  };
}

/**
 * What the manager did about a VM, for a failed assertion's message: its placement moves with
 * their jobs' outcomes, its recommendations and the manager's last log lines.
 */
export async function placementStoryOf(fabric: BeastFabric, vm: string): Promise<string> {
  const moves = await placementMovesOf(fabric, vm);
  const jobs = await Promise.all(
    moves.map(async (m) => {
      const job = m.jobId ? await fabric.api.getJob(m.jobId).catch(() => undefined) : undefined;
      return `${m.at} ${m.reason} -> job ${job?.state ?? '?'} ${job?.error ? JSON.stringify(job.error) : ''}`;
    }),
  );
  const recs = (await fabric.api.listRecommendations({ state: 'all' })).items
    .filter((r) => r.vm === vm)
    .map((r) => `${r.createdAt} ${r.kind} ${r.state}: ${r.reason.text}`);
  const placement = await fabric.api.vmPlacement(vm).catch(() => undefined);
  const changes = (await fabric.api.listChanges({ object: vm, limit: 30 })).items.map(
    (c) =>
      `${c.at} ${c.actor} ${c.action} ${c.host ?? ''}: ${c.changes.map((f) => `${f.field} ${JSON.stringify(f.before)} -> ${JSON.stringify(f.after)}`).join(', ')}`,
  );
  const stores = (await fabric.api.listDatastores({ limit: 100 })).items.map(
    (d) =>
      `${d.host}/${d.name} ${d.class}: limits ${JSON.stringify(d.limits ?? null)}, probe ${JSON.stringify(d.probe ?? null)}`,
  );
  const fast = await fabric.api.suggestPlacement({ memoryBytes: 256 * 2 ** 20, diskBytes: 0, class: 'fast' });
  return [
    `datastores:`,
    ...stores,
    `suggest (fast): ${JSON.stringify(fast)}`,
    `${vm}'s placement: ${JSON.stringify(placement)}`,
    `${vm}'s demand, every 2 s:`,
    ...(fabric.demandTrace.get(vm) ?? []).slice(-45),
    `${vm}'s change records (newest first):`,
    ...changes,
    `${vm}'s placement moves:`,
    ...jobs,
    `recommendations:`,
    ...recs,
    `the manager's last log lines:`,
    ...fabric.log.slice(-40),
  ].join('\n');
}

/** `wait`, or on failure an assertion error with the VM's placement story (the tests' waits). */
export async function explained<T>(fabric: BeastFabric, vm: string, wait: Promise<T>): Promise<T> {
  try {
    return await wait;
  } catch (error) {
    assert.fail(`${String(error)}\n${await placementStoryOf(fabric, vm)}`);
  }
}

/**
 * A placement move of a lab test VM (256 MiB of memory, a 256 MiB disk), job start to the VM
 * running on its target: 3-5 s measured here (bench/beast), up to ~12 s for a busy guest on a
 * loaded machine; the bound leaves room for that twice over, and stays far below the holds and
 * windows that would hide a late move.
 */
export const PLACEMENT_MOVE_MAX_MS = 30_000;

/** The time bounds of an episode under the settings `s` (the defaults and the lab's overrides). */
export function episodeBounds(overrides: Partial<PlacementSettings>) {
  const s = { ...DEFAULT_PLACEMENT_SETTINGS, ...overrides };
  const round = s.evaluationIntervalSeconds * 1000;
  const sample = BEAST_FABRIC_STATS_SECONDS * 1000;
  // A window covers its length plus up to one bucket of the Storage Explorer's finest tier.
  const window = (s.demandWindowSeconds + insight.IO_TIERS[0].res) * 1000;
  return {
    /** Load at its limit from onset to hot: the window full of it, a sample and a round. */
    onsetToHotMs: window + sample + round,
    /** Hot to running on the Beast: the hold, a round, one move. */
    hotToBeastMs: s.holdSeconds * 1000 + 2 * round + PLACEMENT_MOVE_MAX_MS,
    /** Load stopped to home: the window emptied of it, the cool hold, a round, one move. */
    stopToHomeMs: window + sample + s.coolHoldSeconds * 1000 + 2 * round + PLACEMENT_MOVE_MAX_MS,
    /** Past the hold by a few rounds: a VM hot that long would have a move started by now. */
    holdAndRoundsMs: s.holdSeconds * 1000 + 3 * round,
    /** A round and a move: a recommendation already held, applied by the next round. */
    roundAndMoveMs: 2 * round + PLACEMENT_MOVE_MAX_MS,
  };
}

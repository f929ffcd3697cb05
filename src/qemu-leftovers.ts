// For lab tests: what a move may not leave behind in the QEMU a VM runs in once the move has
// ended (completed, failed or rolled back), read over that QEMU's own QMP monitor. The agent
// holds the monitor and QEMU serves one client at a time, so the host's agent is stopped for the
// query (SIGTERM: it lets go of its QEMUs and leaves them running) and started again right
// after, before it could tidy anything up itself.
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { vmPaths } from './agent/index.js';
import { labAgent, restartLabAgent, type LabHost } from './lab/index.js';
import { QmpClient, queryBlockJobs, queryMigrate, queryNamedBlockNodes, queryStatus } from './qmp/index.js';

/**
 * Name prefixes of the engine's QEMU objects of a move: mirror jobs and NBD client nodes
 * (`mig-`, src/agent/migration/outgoing.ts), a delta move's overlay, backup and NBD nodes (`dlt-`,
 * delta.ts).
 */
const MOVE_OBJECT_PREFIXES = ['mig-', 'dlt-'];
const ACTIVE_MIGRATION = ['setup', 'active', 'pre-switchover', 'device', 'cancelling', 'postcopy-active'];

export interface QemuLeftovers {
  status: string;
  blockJobs: string[];
  /** Nodes named by a move, or NBD client nodes (a disk's connection to another host). */
  moveNodes: string[];
  /** Block exports (a target's NBD exports of its disks). */
  exports: string[];
  migration: string;
}

async function gone(pid: number, ms: number): Promise<boolean> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(100)) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (!stat || state === 'Z' || state === 'X') return true;
  }
  return false;
}

/** Reads the move objects left in the QEMU of `vm` on `host` (its agent is stopped meanwhile). */
export async function qemuLeftovers(host: LabHost, vm: string): Promise<QemuLeftovers> {
  const pid = host.pid;
  if (pid === undefined || pid <= 0) throw new Error(`the lab knows no agent pid of ${host.name}`);
  process.kill(pid, 'SIGTERM');
  if (!(await gone(pid, 30_000))) throw new Error(`the agent of ${host.name} did not stop on SIGTERM`);
  try {
    const qmp = await QmpClient.connect(vmPaths(host.stateDir, vm).qmp, {
      timeoutMs: 10_000,
      retryUntilMs: Date.now() + 10_000,
    });
    try {
      const exports = z
        .array(z.looseObject({ id: z.string() }))
        .parse(await qmp.execute('query-block-exports'));
      const moveObject = (name: string | undefined) =>
        name !== undefined && MOVE_OBJECT_PREFIXES.some((p) => name.startsWith(p));
      return {
        status: (await queryStatus(qmp)).status,
        blockJobs: (await queryBlockJobs(qmp)).map((j) => `${j.device} (${j.type}, ${j.status})`),
        moveNodes: (await queryNamedBlockNodes(qmp))
          .filter((n) => moveObject(n['node-name']) || n.drv === 'nbd')
          .map((n) => `${n['node-name'] ?? '?'} (${n.drv ?? '?'})`),
        exports: exports.map((e) => e.id),
        migration: (await queryMigrate(qmp)).status ?? 'none',
      };
    } finally {
      await qmp.close();
    }
  } finally {
    await startAgentAgain(host, vm);
  }
}

/** The lab starts the host's agent as before; it answers about `vm` again. */
async function startAgentAgain(host: LabHost, vm: string): Promise<void> {
  restartLabAgent(host);
  for (let i = 0; ; i++) {
    try {
      await labAgent(host).getVm(vm);
      return;
    } catch (error) {
      if (i >= 300) throw error;
      await sleep(200);
    }
  }
}

/**
 * The QEMU of `vm` on `host` runs, with no block job, no node or export of a move and no
 * migration going on: nothing of an ended move is left in it.
 */
export async function assertNoMoveLeftovers(host: LabHost, vm: string): Promise<QemuLeftovers> {
  const left = await qemuLeftovers(host, vm);
  const problems = [
    left.status === 'running' ? '' : `status ${left.status}`,
    left.blockJobs.length ? `block jobs ${left.blockJobs.join(', ')}` : '',
    left.moveNodes.length ? `nodes ${left.moveNodes.join(', ')}` : '',
    left.exports.length ? `exports ${left.exports.join(', ')}` : '',
    ACTIVE_MIGRATION.includes(left.migration) ? `migration ${left.migration}` : '',
  ].filter(Boolean);
  if (problems.length) throw new Error(`the QEMU of ${vm} on ${host.name} holds ${problems.join('; ')}`);
  return left;
}

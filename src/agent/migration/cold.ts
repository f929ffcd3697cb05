/*
 * Cold moves of a stopped VM (the manager drives them; nothing runs in the guest): the source
 * exports each disk read-only over NBD (qemu-nbd on the fabric address; its shared read lock keeps
 * the VM from being started meanwhile), the target defines the VM with empty disks through the
 * usual VM API and copies every disk from those exports into its images (qemu-img convert, zero
 * areas skipped, disks in parallel), then the source closes its exports and the manager deletes
 * the source VM. The exports use their own port range, apart from the live moves' allocator.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import type {
  agentColdMoveRoutes,
  ColdClosed,
  ColdCopied,
  ColdCopyRequest,
  ColdExport,
  RouteHandlers,
} from '../../api/index.js';
import type { AgentCore } from '../core.js';
import { HostCommandFailed, InvalidInput, VmStateConflict } from '../errors.js';
import { MigrationConflict } from './errors.js';
import { PortAllocator, type PortLease } from './ports.js';
import type { AgentRoutePlugin } from '../server.js';

const run = promisify(execFile);
const READY_MS = 15_000;

interface Exported {
  vmName: string;
  processes: ChildProcess[];
  leases: PortLease[];
}

async function answers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

export class ColdMoves {
  readonly #exports = new Map<string, Exported>();
  readonly #ports = new PortAllocator([50000, 50999]);

  constructor(private readonly core: AgentCore) {}

  /** Source: exports the stopped VM's disks read-only. */
  async export(vmName: string, migrationId: string): Promise<ColdExport> {
    if (this.#exports.has(migrationId))
      throw new MigrationConflict(`cold move ${migrationId} exists already`);
    const runtime = this.core.vms.runtime(vmName);
    if (runtime.active)
      throw new VmStateConflict(vmName, 'running', 'export the disks of (a cold move needs it stopped)');
    const address = this.core.config.fabricAddress;
    const entry: Exported = { vmName, processes: [], leases: [] };
    this.#exports.set(migrationId, entry);
    try {
      const disks = [];
      for (const disk of runtime.def.disks) {
        const lease = await this.#ports.allocate(address);
        entry.leases.push(lease);
        const child = spawn(
          'qemu-nbd',
          [
            '--read-only',
            '--persistent',
            '--shared=4',
            '-f',
            disk.format,
            '-b',
            address,
            '-p',
            String(lease.port),
            '-x',
            disk.id,
            disk.path,
          ],
          { stdio: 'ignore' },
        );
        entry.processes.push(child);
        const deadline = Date.now() + READY_MS;
        while (!(await answers(address, lease.port))) {
          if (child.exitCode !== null || Date.now() > deadline) {
            throw new HostCommandFailed('qemu-nbd', `export of disk ${disk.id} did not come up`);
          }
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        disks.push({ diskId: disk.id, uri: `nbd://${address}:${lease.port}/${disk.id}` });
      }
      return { migrationId, disks };
    } catch (error) {
      this.close(migrationId);
      throw error;
    }
  }

  /** Source: stops the exports (idempotent). */
  close(migrationId: string): ColdClosed {
    const entry = this.#exports.get(migrationId);
    if (!entry) return { migrationId, closed: false };
    for (const child of entry.processes) if (child.exitCode === null) child.kill('SIGTERM');
    for (const lease of entry.leases) lease.release();
    this.#exports.delete(migrationId);
    return { migrationId, closed: true };
  }

  /** Target: copies every disk of the (stopped, just defined) VM from the source's exports. */
  async copy(vmName: string, { disks }: ColdCopyRequest): Promise<ColdCopied> {
    const runtime = this.core.vms.runtime(vmName);
    if (runtime.active) throw new VmStateConflict(vmName, 'running', 'copy disks into');
    const jobs = disks.map((source, i) => {
      const disk = runtime.def.disks.find((d) => d.id === source.diskId);
      if (!disk)
        throw new InvalidInput(
          `disks.${i}.diskId: VM "${vmName}" has no disk "${source.diskId}"`,
          `disks.${i}.diskId`,
        );
      // -n: into the image the VM definition created; --target-is-zero: a fresh image reads as
      // zeroes, so zero areas of the source are skipped and the copy stays thin.
      return run(
        'qemu-img',
        ['convert', '-n', '--target-is-zero', '-f', 'raw', '-O', disk.format, source.uri, disk.path],
        { timeout: 6 * 3600_000 },
      ).catch((error: unknown) => {
        throw new HostCommandFailed('qemu-img convert', `disk ${disk.id}: ${String(error)}`);
      });
    });
    await Promise.all(jobs);
    return { vmName, copiedDisks: disks.map((d) => d.diskId) };
  }

  closeAll(): void {
    for (const id of [...this.#exports.keys()]) this.close(id);
  }
}

/** The cold-move routes (agentColdMoveRoutes in src/api/agent-routes.ts). */
export function coldMoveRoutes(): AgentRoutePlugin {
  return (app, core): RouteHandlers<typeof agentColdMoveRoutes> => {
    const cold = new ColdMoves(core);
    app.addHook('onClose', async () => cold.closeAll());
    return {
      coldExport: ({ params, body }) => cold.export(params.name, body.migrationId),
      coldClose: ({ params }) => cold.close(params.id),
      coldCopy: ({ params, body }) => cold.copy(params.name, body),
    };
  };
}

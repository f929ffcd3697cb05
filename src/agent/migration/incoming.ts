/*
 * The target side of a live move, over the paused `-incoming defer -S` QEMU's QMP connection:
 *
 *   capabilities (late-block-activate: disks stay inactive until `cont`; events; multifd/post-copy
 *   as the source's plan says) -> nbd-server-start on the fabric address -> block-export-add,
 *   writable, per disk -> migrate-incoming on the allocated stream port.
 *
 * Disks on shared storage both hosts see are not among `disks`: nothing of them is exported (no
 * NBD server at all when none is left). The QEMU opened their images inactive (`-incoming` with
 * late-block-activate): it takes no write lock and caches nothing until the source has flushed
 * and let go of them at the switchover, and `cont` activates them here.
 *
 * When the incoming copy reports `completed` the target resumes the guest by itself, without a
 * round trip to the manager: nbd-server-stop (the source dropped its NBD nodes before it let the
 * last state go, so no client is left; stopping the server before `cont` avoids QEMU's
 * "Permission conflict" of an export still holding write access), `cont`, then announce-self so
 * the switches learn the guest's MACs on this host. The guest's pause is thus QEMU's downtime
 * plus two QMP commands.
 */
import type { MigrationPlan } from '../../api/index.js';
import type { QmpClient, QmpEvent } from '../../qmp/index.js';
import { startTracking } from './delta.js';
import { compressionParameters } from './compression.js';
import { MigrationFailed } from './errors.js';

export interface IncomingDisk {
  diskId: string;
  nodeName: string;
}

export interface IncomingOptions {
  qmp: QmpClient;
  disks: IncomingDisk[];
  address: string;
  /** The NBD server's port; absent when no disk is exported (all stay on shared storage). */
  nbdPort: number | undefined;
  migrationPort: number;
  plan: MigrationPlan;
  /**
   * The source keeps a retained copy: each arrived disk tracks its changes in this persistent
   * bitmap from the switchover on (delta.ts), so a move back sends only those.
   */
  trackingBitmap?: string | undefined;
  /**
   * TLS move: QEMU x509 directory (tls.ts) and the one peer accepted, the source host's certificate
   * subject (hostDn); NBD and the memory stream then require TLS from that certificate alone.
   */
  tls?: { dir: string; peerDn: string } | undefined;
  log: (msg: string, fields?: Record<string, unknown>) => void;
  /** Runs before the guest resumes: a leased VM's target takes the lease the source gave up. */
  beforeResume?: (() => Promise<void>) | undefined;
}

export type IncomingOutcome =
  { state: 'resumed'; resumeMs: number; resumedAt: string } | { state: 'failed'; reason: string };

export class IncomingMigration {
  readonly exports: { diskId: string; exportName: string }[];
  readonly migrationUri: string;
  #stopWatching: (() => void) | undefined;
  readonly outcome: Promise<IncomingOutcome>;
  #settle!: (outcome: IncomingOutcome) => void;

  constructor(readonly options: IncomingOptions) {
    this.exports = options.disks.map((d) => ({ diskId: d.diskId, exportName: d.diskId }));
    this.migrationUri = `tcp:${options.address}:${options.migrationPort}`;
    this.outcome = new Promise((resolve) => (this.#settle = resolve));
  }

  /** The QOM ids of the TLS objects (unique per QEMU: one incoming move per target QEMU). */
  get #tls(): { creds: string; authz: string; dir: string; peerDn: string } | undefined {
    const { tls, migrationPort } = this.options;
    return tls && { ...tls, creds: `mig-tls-${migrationPort}`, authz: `mig-authz-${migrationPort}` };
  }

  async prepare(): Promise<void> {
    const { qmp, plan, disks, address, nbdPort } = this.options;
    const capabilities: Record<string, boolean> = {
      'late-block-activate': true,
      events: true,
      multifd: plan.multifdChannels > 0,
      'postcopy-ram': plan.postcopy,
    };
    await qmp.execute('migrate-set-capabilities', {
      capabilities: Object.entries(capabilities).map(([capability, state]) => ({ capability, state })),
    });
    const tls = this.#tls;
    if (tls) {
      await qmp.execute('object-add', {
        'qom-type': 'tls-creds-x509',
        id: tls.creds,
        dir: tls.dir,
        endpoint: 'server',
        'verify-peer': true,
      });
      // Any certificate of the fabric CA passes verify-peer; only the announced source passes this.
      await qmp.execute('object-add', { 'qom-type': 'authz-simple', id: tls.authz, identity: tls.peerDn });
    }
    await qmp.execute('migrate-set-parameters', {
      'tls-creds': tls?.creds ?? '',
      ...(tls ? { 'tls-authz': tls.authz } : {}),
      ...(plan.multifdChannels > 0 ? { 'multifd-channels': plan.multifdChannels } : {}),
      // The same multifd compression as the source, or the channels' packets are refused.
      ...compressionParameters(plan.compression),
    });
    if (nbdPort !== undefined)
      await qmp.execute('nbd-server-start', {
        addr: { type: 'inet', data: { host: address, port: String(nbdPort) } },
        ...(tls ? { 'tls-creds': tls.creds, 'tls-authz': tls.authz } : {}),
      });
    else if (disks.length) throw new MigrationFailed('no NBD port for the disks to export', 'prepare');
    for (const disk of disks) {
      await qmp.execute('block-export-add', {
        type: 'nbd',
        id: `mig-export-${disk.diskId}`,
        'node-name': disk.nodeName,
        name: disk.diskId,
        writable: true,
      });
    }
    this.#stopWatching = qmp.onEvent((event) => this.#onEvent(event));
    // Closed with an error: QEMU died. Closed cleanly: the agent let go of it (shutting down).
    qmp.onClose((error) => {
      if (error) this.#settle({ state: 'failed', reason: 'the target QEMU went away' });
    });
    await qmp.execute('migrate-incoming', { uri: this.migrationUri });
    this.options.log('incoming migration ready', { uri: this.migrationUri, nbdPort });
  }

  #onEvent(event: QmpEvent): void {
    if (event.event !== 'MIGRATION') return;
    const status = event.data.status;
    if (status === 'completed') {
      const at = Date.now();
      this.#resume().then(
        (resumedAt) => this.#settle({ state: 'resumed', resumeMs: Date.now() - at, resumedAt }),
        (error: unknown) => this.#settle({ state: 'failed', reason: `resume failed: ${String(error)}` }),
      );
    } else if (status === 'failed' || status === 'cancelled') {
      this.#settle({ state: 'failed', reason: `incoming migration ${String(status)}` });
    }
  }

  /** Resumes the guest; returns when it ran again (`cont` answered), the end of its pause. */
  async #resume(): Promise<string> {
    const { qmp, log } = this.options;
    this.#stopWatching?.();
    if (this.options.nbdPort !== undefined) await qmp.execute('nbd-server-stop');
    // Before `cont`: the source's writes have all landed and the guest has not run yet.
    const bitmap = this.options.trackingBitmap;
    if (bitmap !== undefined) {
      for (const disk of this.options.disks) {
        await startTracking(qmp, disk.nodeName, bitmap).catch((error: unknown) => {
          // No bitmap = no delta later: the move back finds none and copies everything.
          log('tracking not started', { disk: disk.diskId, error: String(error) });
        });
      }
    }
    await this.options.beforeResume?.();
    await qmp.execute('cont');
    const resumedAt = new Date().toISOString();
    log('target resumed');
    // Network: gratuitous ARP/RARP for every NIC, so traffic follows the guest.
    await qmp
      .execute('announce-self', { initial: 50, max: 550, rounds: 5, step: 100 })
      .catch((error: unknown) => {
        log('announce-self failed', { error: String(error) });
      });
    await this.#dropTls().catch((error: unknown) => {
      log('TLS objects not dropped', { error: String(error) });
    });
    return resumedAt;
  }

  /**
   * After the move the stream and the NBD server are gone: the credentials and the authz go too
   * (the guest's QEMU lives on; a later move out of it makes its own).
   */
  async #dropTls(): Promise<void> {
    const tls = this.#tls;
    if (!tls) return;
    const { qmp } = this.options;
    await qmp.execute('migrate-set-parameters', { 'tls-creds': '', 'tls-authz': '' });
    await qmp.execute('object-del', { id: tls.authz });
    await qmp.execute('object-del', { id: tls.creds });
  }

  /** Waits for the resumed guest, or throws why the move did not arrive. */
  async resumed(timeoutMs: number): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<IncomingOutcome>((resolve) => {
      timer = setTimeout(
        () => resolve({ state: 'failed', reason: `not completed within ${timeoutMs} ms` }),
        timeoutMs,
      );
    });
    const outcome = await Promise.race([this.outcome, timeout]);
    clearTimeout(timer);
    if (outcome.state === 'failed') throw new MigrationFailed(outcome.reason, 'switchover');
    return outcome.resumeMs;
  }

  close(): void {
    this.#stopWatching?.();
  }
}

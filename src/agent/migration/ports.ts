/*
 * Ports for NBD servers and migration streams, allocated without races between concurrent moves.
 *
 * Two moves starting at the same moment must never be handed the same port (Proxmox #4501). Every
 * allocation in this agent goes through one allocator, which keeps its leases in-process: a port is
 * handed out only if no live lease holds it AND a probe bind on the listen address succeeds (so a
 * port some other program holds is skipped). The probe is closed before QEMU binds; should another
 * program grab the port in that instant, QEMU's bind fails and the caller asks again
 * (`withPort` retries with a fresh port). Leases are released when the move finishes or is
 * cancelled; releasing twice is harmless.
 */
import net from 'node:net';

export class PortsExhausted extends Error {
  constructor(
    readonly address: string,
    readonly range: readonly [number, number],
  ) {
    super(`no free port in ${range[0]}-${range[1]} on ${address}`);
    this.name = 'PortsExhausted';
  }
}

export interface PortLease {
  readonly address: string;
  readonly port: number;
  release(): void;
}

export class PortAllocator {
  private readonly leased = new Set<string>();
  private next: number;

  constructor(readonly range: readonly [number, number] = [49152, 49999]) {
    if (range[0] < 1 || range[1] > 65535 || range[0] > range[1]) {
      throw new RangeError(`port range ${range[0]}-${range[1]} must lie within 1-65535, low to high`);
    }
    this.next = range[0];
  }

  /** Leases a port free on `address`; the probe and the reservation happen before any await returns. */
  async allocate(address: string): Promise<PortLease> {
    const size = this.range[1] - this.range[0] + 1;
    for (let tried = 0; tried < size; tried++) {
      const port = this.next;
      this.next = port >= this.range[1] ? this.range[0] : port + 1;
      const key = `${address}:${port}`;
      if (this.leased.has(key)) continue;
      // Reserve before probing so a concurrent allocate() skips this port while we wait.
      this.leased.add(key);
      if (await canBind(address, port)) {
        let released = false;
        return {
          address,
          port,
          release: () => {
            if (released) return;
            released = true;
            this.leased.delete(key);
          },
        };
      }
      this.leased.delete(key);
    }
    throw new PortsExhausted(address, this.range);
  }

  /** Runs `use` with a leased port, retrying with a new port when the bind was lost to someone else. */
  async withPort<T>(
    address: string,
    use: (lease: PortLease) => Promise<T>,
    isAddressInUse: (error: unknown) => boolean,
    attempts = 3,
  ): Promise<{ lease: PortLease; result: T }> {
    for (let attempt = 1; ; attempt++) {
      const lease = await this.allocate(address);
      try {
        return { lease, result: await use(lease) };
      } catch (error) {
        lease.release();
        if (attempt >= attempts || !isAddressInUse(error)) throw error;
      }
    }
  }

  get leasedCount(): number {
    return this.leased.size;
  }
}

function canBind(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: address, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

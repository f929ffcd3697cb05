import type { HostStats } from '../api/index.js';
import type { Db } from './db.js';

/**
 * Records what a host's statistics poll learnt of its guests' agents: the version of each that
 * answered (tied to the VM's current start), and which stayed silent. No change records: an
 * agent answering or not is state, like a VM's pid; tools-status.ts turns it into a status.
 */
export async function recordGuestAgents(db: Db, hostId: string, stats: HostStats): Promise<void> {
  if (stats.guests.length === 0) return;
  await db.transaction().execute(async (tx) => {
    for (const guest of stats.guests) {
      const row = tx.updateTable('vms').where('id', '=', guest.vmId).where('host_id', '=', hostId);
      if (guest.agentVersion === null) await row.set({ tools_answering: 0 }).execute();
      else
        await row
          .set((eb) => ({
            tools_answering: 1,
            tools_version: guest.agentVersion,
            tools_started_at: eb.ref('started_at'),
          }))
          .execute();
    }
  });
}

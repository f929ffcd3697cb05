import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { VmSpec } from '../api/index.js';
import { InsufficientCapacity } from './errors.js';
import { seedHost } from './test-inventory.js';
import { testDb } from './test-postgres.js';
import { placeInPool } from './vm-jobs.js';

const MiB = 1024 * 1024;

test('pool placement: the member with the most memory free that is connected, out of maintenance and has what the spec names', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'sb-pool-placement-'));
  const db = await testDb(dir);
  try {
    await db
      .insertInto('pools')
      .values([
        { id: 'p', name: 'p', description: '', created_at: new Date().toISOString() },
        { id: 'q', name: 'q', description: '', created_at: new Date().toISOString() },
      ])
      .execute();
    // Most memory first: a lacks datastore local, b vswitch vmsw0, c is in maintenance, d is not
    // connected, e and f tie (e by name), g is in the other pool with the most memory of all.
    const hosts = { a: 9000, b: 8000, c: 7000, d: 6000, f: 5000, e: 5000, g: 99000 };
    let port = 20000;
    for (const [name, free] of Object.entries(hosts)) {
      await seedHost(db, name, port++, []);
      await db
        .updateTable('hosts')
        .set({ pool_id: name === 'g' ? 'q' : 'p', memory_free_bytes: free * MiB, state: 'connected' })
        .where('name', '=', name)
        .execute();
    }
    const id = async (name: string) =>
      (await db.selectFrom('hosts').select('id').where('name', '=', name).executeTakeFirstOrThrow()).id;
    await db
      .deleteFrom('datastores')
      .where('host_id', '=', await id('a'))
      .execute();
    await db
      .deleteFrom('vswitches')
      .where('host_id', '=', await id('b'))
      .execute();
    await db.updateTable('hosts').set({ maintenance: 'in' }).where('name', '=', 'c').execute();
    await db.updateTable('hosts').set({ state: 'unreachable' }).where('name', '=', 'd').execute();

    const place = async (spec: Record<string, unknown>) =>
      (await placeInPool(db, 'p', 'p', VmSpec.parse({ name: 'v', vcpus: 1, ...spec }))).name;
    const disk = { datastore: 'local', sizeBytes: 2 ** 30 };
    assert.equal(await place({ memoryMiB: 64 }), 'a', 'nothing named: the most memory free');
    assert.equal(await place({ memoryMiB: 64, nics: [{ vswitch: 'vmsw0' }] }), 'a');
    assert.equal(await place({ memoryMiB: 64, disks: [disk] }), 'b', 'a has no datastore local');
    assert.equal(
      await place({ memoryMiB: 64, disks: [disk, disk], nics: [{ vswitch: 'vmsw0' }, { vswitch: 'vmsw0' }] }),
      'e',
      'b has no vswitch vmsw0, c is in maintenance, d not connected; e before f by name',
    );
    assert.equal(await place({ memoryMiB: 8500, nics: [{ vswitch: 'vmsw0' }] }), 'a', 'memory');
    await assert.rejects(
      place({ memoryMiB: 8500, disks: [disk] }),
      (error) => error instanceof InsufficientCapacity && error.field === 'pool',
    );
    await assert.rejects(
      place({ memoryMiB: 64, nics: [{ vswitch: 'other' }] }),
      (error) => error instanceof InsufficientCapacity && error.field === 'pool',
    );
  } finally {
    await db.destroy();
    await rm(dir, { recursive: true, force: true });
  }
});

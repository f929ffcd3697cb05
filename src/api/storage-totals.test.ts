// A shared storage seen by several hosts is counted once in the totals (storageKey is the one key).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { storageKey, storageTotals } from './storage.js';

const GiB = 2 ** 30;
const STORE = '2c9a4f0e-5b1d-4e7a-8c3f-0d6e9b2a7f41';

test('3 hosts seeing one 100-GiB shared storage: 100 GiB in the totals, not 300', () => {
  const rows = ['host1', 'host2', 'host3'].map((host) => ({
    host,
    name: 'shared',
    storageId: STORE,
    capacityBytes: 100 * GiB,
    freeBytes: 60 * GiB,
  }));
  assert.deepEqual(storageTotals(rows), {
    storages: 1,
    datastores: 3,
    capacityBytes: 100 * GiB,
    freeBytes: 60 * GiB,
    usedBytes: 40 * GiB,
  });
});

test('local datastores each count; a shared one once with the least free space a host saw; names do not matter', () => {
  const totals = storageTotals([
    { host: 'host1', name: 'local', storageId: null, capacityBytes: 50 * GiB, freeBytes: 10 * GiB },
    { host: 'host2', name: 'local', capacityBytes: 50 * GiB, freeBytes: 20 * GiB },
    { host: 'host1', name: 'san', storageId: STORE, capacityBytes: 100 * GiB, freeBytes: 61 * GiB },
    // host2 names the same storage otherwise, and measured a moment later.
    { host: 'host2', name: 'nas', storageId: STORE, capacityBytes: 100 * GiB, freeBytes: 60 * GiB },
  ]);
  assert.deepEqual(totals, {
    storages: 3,
    datastores: 4,
    capacityBytes: 200 * GiB,
    freeBytes: 90 * GiB,
    usedBytes: 110 * GiB,
  });
  assert.equal(storageKey({ host: 'host2', name: 'nas', storageId: STORE }), `storage ${STORE}`);
  assert.equal(storageKey({ host: 'host2', name: 'local', storageId: null }), 'host2/local');
  assert.deepEqual(storageTotals([]), {
    storages: 0,
    datastores: 0,
    capacityBytes: 0,
    freeBytes: 0,
    usedBytes: 0,
  });
});

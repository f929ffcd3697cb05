import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LEASE_HOST_ID } from '../api/index.js';
import { lowestFreeLeaseId } from './clusters.js';

test("a joining host gets the lowest free lease host id of its cluster (sanlock's 1-2000), none when all are taken", () => {
  assert.equal(lowestFreeLeaseId([]), 1);
  assert.equal(lowestFreeLeaseId([1, 2, 4]), 3);
  assert.equal(lowestFreeLeaseId([2, 3]), 1);
  const all = Array.from({ length: LEASE_HOST_ID.max }, (_, i) => i + 1);
  assert.equal(lowestFreeLeaseId(all.filter((i) => i !== LEASE_HOST_ID.max)), LEASE_HOST_ID.max);
  assert.equal(lowestFreeLeaseId(all), undefined);
});

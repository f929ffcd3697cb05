import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CopyLimit } from './limit.js';

test('the limit counts from the first sighting of the memory copy and fires once', () => {
  const limit = new CopyLimit(60_000);
  limit.see({ phase: 'mirror-disks', state: 'running' }, 0);
  assert.equal(limit.due(100_000), false); // the mirror does not count
  limit.see({ phase: 'copy-memory', state: 'running' }, 10_000);
  limit.see({ phase: 'copy-memory', state: 'running' }, 30_000); // later sightings move nothing
  assert.equal(limit.due(69_999), false);
  assert.equal(limit.fired, false);
  assert.equal(limit.due(70_000), true);
  assert.equal(limit.fired, true);
  assert.equal(limit.due(80_000), false);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lockspaceFile, parseSanlockStatus, vmLeaseFile } from './leases.js';

test('sanlock client status: lockspaces (also being removed) and the leases each pid holds', () => {
  const text = [
    'daemon host2',
    'p -1 helper',
    'p -1 listener',
    'p 19800 ',
    'p -1 status',
    's c1:2:/mnt/shared/.silobreak/lockspace-c1:0',
    's old:7:/mnt/other/.silobreak/lockspace-old:0 REM',
    'r c1:bd4b0e0d-2d20-4996-aca8-1b9313288a2a:/mnt/shared/.silobreak/leases/bd4b0e0d-2d20-4996-aca8-1b9313288a2a:0:1 p 19800',
  ].join('\n');
  assert.deepEqual(parseSanlockStatus(text), {
    lockspaces: [
      { name: 'c1', hostId: 2, path: '/mnt/shared/.silobreak/lockspace-c1', removing: false },
      { name: 'old', hostId: 7, path: '/mnt/other/.silobreak/lockspace-old', removing: true },
    ],
    resources: [{ lockspace: 'c1', resource: 'bd4b0e0d-2d20-4996-aca8-1b9313288a2a', pid: 19800 }],
  });
});

test('a daemon in no lockspace holds nothing', () => {
  assert.deepEqual(parseSanlockStatus('daemon host1\np -1 helper\np -1 listener\np -1 status\n'), {
    lockspaces: [],
    resources: [],
  });
});

test('lease files live in the datastore root, by lockspace name and VM id', () => {
  assert.equal(lockspaceFile('/mnt/shared/', 'c1'), '/mnt/shared/.silobreak/lockspace-c1');
  assert.equal(vmLeaseFile('/mnt/shared', 'abc'), '/mnt/shared/.silobreak/leases/abc');
});

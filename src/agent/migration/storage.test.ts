// A live storage move's QMP conversation against a stand-in QEMU: the new chain gets the target
// datastore's throttle group (made when the QEMU has none) between its qcow2 and file nodes, the
// mirror runs from the guest's format node, and after the pivot the old format, throttle and file
// nodes go, top down.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { QmpClient, QmpEvent } from '../../qmp/index.js';
import { nodesUnder, StorageMove } from './storage.js';

test('the nodes under a format node: the agent names and a moved disk`s', () => {
  assert.deepEqual(nodesUnder('disk-root'), ['thr-root', 'file-root']);
  assert.deepEqual(nodesUnder('mab12root'), ['tab12root', 'nab12root']);
});

test('a storage move builds the new chain with the target group and drops the old one', async () => {
  const sent: [string, Record<string, unknown> | undefined][] = [];
  const jobs: { device: string; type: string; len: number; offset: number; ready: boolean }[] = [];
  const fake = {
    async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
      sent.push([command, args]);
      if (command === 'qom-set') throw new Error("Device '/objects/tg-fast' not found");
      if (command === 'blockdev-mirror')
        jobs.push({ device: String(args?.['job-id']), type: 'mirror', len: 100, offset: 100, ready: true });
      if (command === 'query-block-jobs') return jobs;
      return {};
    },
    waitForEvent(name: string): Promise<QmpEvent> {
      return Promise.resolve({
        event: name,
        data: { device: jobs[0]?.device ?? '' },
        timestamp: { seconds: 0, microseconds: 0 },
      });
    },
  };
  const move = new StorageMove({
    migrationId: 'ab12cd34-0000-4000-8000-000000000001',
    qmp: fake as unknown as QmpClient,
    disks: [
      {
        diskId: 'root',
        nodeName: 'disk-root',
        oldPath: '/nonexistent/old.qcow2',
        newPath: '/nonexistent/new.qcow2',
      },
    ],
    datastore: 'fast',
    limits: undefined,
    bufSizeBytes: 1 << 20,
    stallAfterMs: 30_000,
    log: () => {},
  });
  const nodes = await move.run();
  assert.deepEqual([...nodes], [['root', 'mab12root']]);
  const commands = sent.filter(([c]) => c !== 'query-block-jobs');
  assert.deepEqual(commands, [
    ['qom-set', { path: '/objects/tg-fast', property: 'limits', value: { 'iops-total': 0, 'bps-total': 0 } }],
    [
      'object-add',
      { 'qom-type': 'throttle-group', id: 'tg-fast', limits: { 'iops-total': 0, 'bps-total': 0 } },
    ],
    ['blockdev-add', { driver: 'file', 'node-name': 'nab12root', filename: '/nonexistent/new.qcow2' }],
    [
      'blockdev-add',
      { driver: 'throttle', 'node-name': 'tab12root', 'throttle-group': 'tg-fast', file: 'nab12root' },
    ],
    ['blockdev-add', { driver: 'qcow2', 'node-name': 'mab12root', file: 'tab12root' }],
    [
      'blockdev-mirror',
      {
        'job-id': 'sm-ab12-root',
        device: 'disk-root',
        target: 'mab12root',
        sync: 'full',
        'copy-mode': 'write-blocking',
        'buf-size': 1 << 20,
        'auto-finalize': true,
      },
    ],
    ['block-job-complete', { device: 'sm-ab12-root' }],
    ['blockdev-del', { 'node-name': 'disk-root' }],
    ['blockdev-del', { 'node-name': 'thr-root' }],
    ['blockdev-del', { 'node-name': 'file-root' }],
  ]);
});

// `storage explorer` and `storage issues` against a stand-in manager. A guest names its own
// mountpoints, so an issue about one may carry terminal control codes: they print escaped.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import type { Page, StorageDatastoreRow, StorageDiskRow, StorageIssue } from '../../api/index.js';
import { UsageError } from '../errors.js';
import { parseThresholdSettings } from './storage.js';

const bin = path.join(import.meta.dirname, '../../../bin/silobreak.js');
let server: Server;
let url: string;
const seen: string[] = [];

const hostileMount = '/mnt/\x1b]0;pwned\x07\x1b[2J';
const issue: StorageIssue = {
  id: 1,
  rule: 'vm-low-disk-space',
  severity: 'critical',
  subject: { kind: 'vm', name: `web1:${hostileMount}`, host: 'h1' },
  message: `guest filesystem ${hostileMount} is 96.0 % full`,
  value: 96,
  threshold: 95,
  active: true,
  startedAt: new Date().toISOString(),
  endedAt: null,
  updatedAt: new Date().toISOString(),
};
const direction = {
  iops: 100,
  bytesPerSecond: 409_600,
  avgLatencyMs: 1.5,
  p90LatencyMs: 1.9,
  p99LatencyMs: 2,
};
const disk: StorageDiskRow = {
  vm: 'web1',
  vmId: '00000000-0000-4000-8000-000000000001',
  disk: 'root',
  host: 'h1',
  datastore: 'local',
  format: 'qcow2',
  formatVersion: '0.10',
  virtualSizeBytes: 2 ** 31,
  allocatedBytes: 2 ** 20,
  read: direction,
  write: { iops: null, bytesPerSecond: null, avgLatencyMs: null, p90LatencyMs: null, p99LatencyMs: null },
  iops: 100,
  throughputBytesPerSecond: 409_600,
  coveredSeconds: 3600,
  flushAvgLatencyMs: null,
  guestUsedBytes: null,
  guestSizeBytes: null,
  guestFullestPercent: null,
  sampledAt: new Date().toISOString(),
};

const GiB = 2 ** 30;
/** host1-3 see one 100-GiB shared storage (named otherwise on host3); host1 has a 50-GiB local one. */
const dsRow = (host: string, name: string, storageId: string | null, capacity: number, free: number) =>
  ({
    host,
    name,
    kind: storageId ? 'shared' : 'local',
    storageId,
    fsType: storageId ? 'fuse.sshfs' : 'ext4',
    capacityBytes: capacity,
    freeBytes: free,
    freePercent: (free / capacity) * 100,
    provisionedBytes: 0,
    allocatedBytes: 0,
    overcommitRatio: 0,
    daysUntilFull: null,
    disks: 0,
    read: disk.write,
    write: disk.write,
    iops: null,
    throughputBytesPerSecond: null,
    coveredSeconds: 0,
    issues: 0,
    sampledAt: new Date().toISOString(),
  }) satisfies StorageDatastoreRow;
const STORE = '2c9a4f0e-5b1d-4e7a-8c3f-0d6e9b2a7f41';
const datastoreRows = [
  dsRow('host1', 'local', null, 50 * GiB, 10 * GiB),
  ...['host1', 'host2'].map((h) => dsRow(h, 'shared', STORE, 100 * GiB, 60 * GiB)),
  dsRow('host3', 'nas', STORE, 100 * GiB, 60 * GiB),
];

before(async () => {
  server = createServer((request, response) => {
    seen.push(request.url ?? '');
    response.setHeader('content-type', 'application/json');
    const page = <T>(items: T[]): Page<T> => ({ items, nextCursor: null });
    if (request.url?.startsWith('/api/v1/storage/issues')) response.end(JSON.stringify(page([issue])));
    else if (request.url?.startsWith('/api/v1/storage/disks')) response.end(JSON.stringify(page([disk])));
    else if (request.url?.startsWith('/api/v1/storage/datastores'))
      response.end(JSON.stringify(page(datastoreRows)));
    else response.end(JSON.stringify(page([])));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

const run = (...args: string[]) =>
  promisify(execFile)(process.execPath, [bin, ...args, '--url', url, '--token', 'sb_test-token'], {
    env: { ...process.env, NO_COLOR: '1' },
  });

test('storage issues prints a hostile mountpoint escaped, never raw', async () => {
  const { stdout } = await run('storage', 'issues');
  assert.ok(!stdout.includes('\x1b'), 'no raw ESC');
  assert.ok(!stdout.includes('\x07'), 'no raw BEL');
  assert.match(stdout, /\\x1b\]0;pwned\\x07/);
  assert.match(stdout, /critical\s+vm-low-disk-space/);
});

test('storage explorer --disks: figures per direction, unknown as -, query passed on', async () => {
  const { stdout } = await run(
    'storage',
    'explorer',
    '--disks',
    '--sort',
    'iops',
    '--window',
    '15m',
    '--search',
    'web',
  );
  assert.match(stdout, /qcow2 0\.10/);
  assert.match(stdout, /1\.5\/1\.9\/2\.0/);
  assert.match(seen.at(-1) ?? '', /sort=iops/);
  assert.match(seen.at(-1) ?? '', /window=15m/);
  assert.match(seen.at(-1) ?? '', /q=web/);
  const json = await run('storage', 'explorer', '--disks', '--json');
  assert.equal((JSON.parse(json.stdout) as StorageDiskRow[])[0]?.guestUsedBytes, null);
});

test('bad flags are usage errors (exit 2) naming the flag', async () => {
  for (const [flag, args] of [
    ['--window', ['--window', 'soon']],
    ['--sort', ['--sort', 'vm']],
    ['--disks', ['--datastores', '--disks']],
  ] as const) {
    await assert.rejects(run('storage', 'explorer', ...args), (e: { code?: number; stderr?: string }) => {
      assert.equal(e.code, 2, String(e.stderr));
      assert.ok(e.stderr?.includes(flag), String(e.stderr));
      return true;
    });
  }
});

test('--set field=value pairs become overrides; unknown fields and bad numbers are refused', () => {
  assert.deepEqual(parseThresholdSettings(['freeWarningPercent=30', 'overcommitWarningRatio=1.2']), {
    freeWarningPercent: 30,
    overcommitWarningRatio: 1.2,
  });
  assert.throws(() => parseThresholdSettings(['nope=1']), UsageError);
  assert.throws(() => parseThresholdSettings(['freeWarningPercent=lots']), UsageError);
});

test('storage explorer: the total counts a shared storage once, however many hosts list it', async () => {
  const { stdout } = await run('storage', 'explorer');
  assert.match(stdout, /host3\s+nas/);
  assert.match(
    stdout,
    /^Total: 150 GiB capacity, 80 GiB used, 70 GiB free; 2 storages in 4 datastores \(a shared storage counted once\)$/m,
  );
});

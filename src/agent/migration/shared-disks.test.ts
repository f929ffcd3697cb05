// A move's target and disks on shared storage (issue 30), on the agent's real server with no QEMU:
// an incoming disk that stays must name a shared datastore of the same storage and an image there
// of its size (each refusal names its field, and nothing is defined); and when the prepare fails
// after the VM was defined (here: no guest can boot), the half-made VM goes with the disk made for
// it, while the image on shared storage (the source's running disk) stays untouched.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, stat, symlink } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Problem, SHARED_STORAGE_MARKER, type MigrationPlan } from '../../api/index.js';
import { CPU_MODEL, MACHINE_TYPE } from '../qemu-argv.js';
import { startTestAgent, type TestAgent } from '../test-server.js';

const TOKEN = 'shared-disks-test-token-0123';
const GiB = 1024 ** 3;
let agent: TestAgent;
let san: string;
let storageId: string;
let image: string;

const plan: MigrationPlan = {
  slowLink: false,
  maxBandwidthBytesPerSecond: 1e9,
  multifdChannels: 0,
  postcopy: false,
  targetDowntimeMs: 30,
  maxDowntimeMs: 300,
  mirrorBufSizeBytes: 8 * 1024 * 1024,
  reasons: [],
};

async function call(method: 'GET' | 'POST', url: string, body?: unknown) {
  const r = await agent.app.inject({
    method,
    url,
    headers: {
      authorization: `Bearer ${TOKEN}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  });
  return { status: r.statusCode, json: () => r.json<unknown>() };
}

let n = 0;
const incoming = (disk: Record<string, unknown>, extra: Record<string, unknown>[] = []) => ({
  migrationId: `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`,
  vm: {
    id: '9b2f7a1c-3d4e-4f5a-8b6c-7d8e9f0a1b2c',
    name: 'web-1',
    vcpus: 1,
    memoryMiB: 128,
    disks: [{ id: 'root', format: 'qcow2', virtualSizeBytes: GiB, ...disk }, ...extra],
    nics: [],
    machineType: MACHINE_TYPE,
    cpuModel: CPU_MODEL,
  },
  plan,
  sourceHost: 'h1',
});

before(async () => {
  agent = await startTestAgent({ token: TOKEN, prefix: 'sb-shared-disks-', datastoreSubdir: 'ds1' });
  await mkdir(path.join(agent.dir, 'ds1'));
  san = path.join(agent.dir, 'san');
  await mkdir(path.join(san, 'vms'), { recursive: true });
  const store = await agent.core.datastores.add({ name: 'san', path: san, kind: 'shared', probe: false });
  storageId = store.storageId ?? '';
  image = path.join(san, 'vms', 'web-1-root.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', image, String(GiB)]);
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 0 1M', image], { stdio: 'ignore' });
});
after(() => agent.close());

const shared = (over: Record<string, unknown> = {}) => ({
  datastore: 'san',
  shared: { storageId, file: 'vms/web-1-root.qcow2', ...over },
});

test('a disk that stays on shared storage is refused unless this host sees that storage and that image; nothing is defined', async () => {
  const other = '7a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d';
  await symlink('/etc/hostname', path.join(san, 'vms', 'escape.qcow2'));
  const cases: [Record<string, unknown>, number, string, RegExp][] = [
    [{ ...shared(), datastore: 'ds1' }, 400, 'vm.disks.0.datastore', /is local, not shared storage/],
    [shared({ storageId: other }), 400, 'vm.disks.0.shared.storageId', /is storage .*, not 7a2b3c4d/],
    [shared({ file: 'vms/nope.qcow2' }), 400, 'vm.disks.0.shared.file', /is not on datastore "san"/],
    [shared({ file: 'vms/escape.qcow2' }), 400, 'vm.disks.0.shared.file', /leads out of datastore "san"/],
    [
      shared({ file: '../ds1/x.qcow2' }),
      400,
      'vm.disks.0.shared.file',
      /must be a path inside the datastore/,
    ],
    [shared({ file: '/etc/passwd' }), 400, 'vm.disks.0.shared.file', /must be a path inside the datastore/],
    [{ shared: shared().shared }, 400, 'vm.disks.0.datastore', /is required with shared/],
    [
      { ...shared(), virtualSizeBytes: 2 * GiB },
      400,
      'vm.disks.0.shared.file',
      /is 1073741824 bytes, the disk/,
    ],
  ];
  for (const [disk, status, field, detail] of cases) {
    const r = await call('POST', '/v1/migrations/incoming', incoming(disk));
    const p = Problem.parse(r.json());
    assert.deepEqual([r.status, p.field], [status, field], `${JSON.stringify(disk)}: ${p.detail}`);
    assert.match(p.detail, detail, JSON.stringify(disk));
  }
  assert.deepEqual((await call('GET', '/v1/vms')).json(), []);
  assert.equal((await stat(image)).size > 0, true);
});

test('a prepare that fails after the define removes the disk it made, never the image on shared storage', async () => {
  const before = await readFile(image);
  // A mixed VM: root stays on the shared image, data is made empty on the local datastore.
  const r = await call(
    'POST',
    '/v1/migrations/incoming',
    incoming(shared(), [{ id: 'data', format: 'qcow2', virtualSizeBytes: GiB, datastore: 'ds1' }]),
  );
  // No guest boots in unit tests: the prepare fails once the VM is defined, and it is removed.
  assert.notEqual(r.status, 201, JSON.stringify(r.json()));
  assert.deepEqual((await call('GET', '/v1/vms')).json(), []);
  await assert.rejects(stat(path.join(agent.dir, 'ds1', 'web-1-data.qcow2')), /ENOENT/);
  assert.deepEqual(await readFile(image), before, 'the shared image is untouched');
  assert.ok((await stat(path.join(san, SHARED_STORAGE_MARKER))).isFile());
});

test("an image on shared storage is one VM's on this host: a second definition opening it is refused", async () => {
  const vms = agent.core.vms;
  await vms.define(
    {
      name: 'first',
      vcpus: 1,
      memoryMiB: 128,
      disks: [{ id: 'root', datastore: 'san', sizeBytes: GiB }],
      nics: [],
      start: false,
    },
    { adopt: new Map([['root', image]]) },
  );
  await assert.rejects(
    vms.define(
      {
        name: 'second',
        vcpus: 1,
        memoryMiB: 128,
        disks: [{ id: 'root', datastore: 'san', sizeBytes: GiB }],
        nics: [],
        start: false,
      },
      { adopt: new Map([['root', image]]) },
    ),
    /disks\.0: .*web-1-root\.qcow2 is the disk of VM "first" on this host already/,
  );
  // Deleted with its disks, except those kept: the shared image stays.
  await vms.delete('first', true, new Set(['root']));
  assert.ok((await stat(image)).isFile());
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { usageErrorFromZod } from './errors.js';
import {
  createVmRequest,
  parseDiskOption,
  parseMemoryOption,
  parseNicOption,
  VmCreateFlags,
} from './vm-options.js';

test('--disk takes SIZE[@DATASTORE]', () => {
  assert.deepEqual(parseDiskOption('2G'), { sizeBytes: 2 * 1024 ** 3 });
  assert.deepEqual(parseDiskOption('512Mi@fast-1'), { sizeBytes: 512 * 1024 ** 2, datastore: 'fast-1' });
  assert.match((parseDiskOption('2@x') as { error: string }).error, /needs a unit.*SIZE\[@DATASTORE\]/);
  assert.match((parseDiskOption('2G@Bad_DS') as { error: string }).error, /datastore 'Bad_DS' must be/);
  assert.match((parseDiskOption('4K') as { error: string }).error, /smallest disk/);
});

test('--nic takes VSWITCH[=MAC] and lower-cases the MAC', () => {
  assert.deepEqual(parseNicOption('vmsw0'), { vswitch: 'vmsw0' });
  assert.deepEqual(parseNicOption('vmsw0=52:54:00:AB:cd:01'), { vswitch: 'vmsw0', mac: '52:54:00:ab:cd:01' });
  assert.match((parseNicOption('vmsw0=52:54') as { error: string }).error, /MAC '52:54'/);
  assert.match((parseNicOption('a=b=c') as { error: string }).error, /more than one '='/);
  assert.match((parseNicOption('') as { error: string }).error, /virtual switch ''/);
});

test('--memory is whole MiB within 64M..1T', () => {
  assert.deepEqual(parseMemoryOption('512M'), { memoryMiB: 512 });
  assert.deepEqual(parseMemoryOption('1.5G'), { memoryMiB: 1536 });
  assert.match((parseMemoryOption('32M') as { error: string }).error, /outside 64M\.\.1T/);
  assert.match((parseMemoryOption('1000K') as { error: string }).error, /whole number of MiB/);
});

test('vm create flags become the API request, with defaults', () => {
  const flags = VmCreateFlags.parse({
    name: 'web-1',
    host: 'host-1',
    memory: '1G',
    disk: ['2G', '1G@data'],
    nic: ['vmsw0'],
    ip: '10.251.0.101/24',
    gateway: '10.251.0.1',
    start: true,
  });
  assert.deepEqual(createVmRequest(flags), {
    host: 'host-1',
    spec: {
      name: 'web-1',
      vcpus: 1,
      memoryMiB: 1024,
      disks: [{ sizeBytes: 2 * 1024 ** 3 }, { sizeBytes: 1024 ** 3, datastore: 'data' }],
      nics: [{ vswitch: 'vmsw0' }],
      guestIp: '10.251.0.101/24',
      guestGateway: '10.251.0.1',
      start: true,
    },
  });
  const minimal = createVmRequest(VmCreateFlags.parse({ name: 'a', pool: 'p' }));
  assert.deepEqual(minimal, {
    pool: 'p',
    spec: { name: 'a', vcpus: 1, memoryMiB: 512, disks: [], nics: [], start: false },
  });
});

test('bad flags give a usage error naming the flag and the rule', () => {
  const message = (flags: Record<string, unknown>) => {
    const r = VmCreateFlags.safeParse({ name: 'web-1', host: 'h', ...flags });
    assert.equal(r.success, false, JSON.stringify(flags));
    return usageErrorFromZod(r.error!, ['name'], 'silobreak vm create').message;
  };
  assert.match(message({ vcpus: '0' }), /^--vcpus: must be a whole number from 1 to 64$/);
  assert.match(message({ vcpus: 'two' }), /^--vcpus: must be a whole number from 1 to 64$/);
  assert.match(message({ memory: '512' }), /^--memory: '512' needs a unit/);
  assert.match(message({ disk: ['1G', 'big'] }), /^--disk \(1\): 'big' is not a size/);
  assert.match(message({ ip: '10.0.0.1' }), /^--ip: must be an IPv4 address with prefix length/);
  assert.match(message({ gateway: '10.0.0.1' }), /^--gateway: needs --ip too/);
  assert.match(message({ name: 'Web_1' }), /^<name>: must be 1-31 lowercase/);
  assert.match(message({ host: undefined }), /^--host: is required/);
});

test('the usage error points at the help of the command', () => {
  const r = VmCreateFlags.safeParse({ name: 'x', host: 'h', vcpus: '99' });
  assert.equal(r.success, false);
  assert.equal(
    usageErrorFromZod(r.error!, ['name'], 'silobreak vm create').hint,
    'see: silobreak vm create --help',
  );
});

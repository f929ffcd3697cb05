import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DefinitionStore, type VmDefinition } from './definitions.js';

let stateDir: string;
before(async () => {
  stateDir = await mkdtemp(path.join(tmpdir(), 'sb-defs-'));
});
after(async () => {
  await rm(stateDir, { recursive: true, force: true });
});

const def = (name: string): VmDefinition => ({
  id: '0b5d2f8e-7d0c-4c41-9f7e-1d2a3b4c5d6e',
  toolsDisk: false,
  name,
  vcpus: 1,
  memoryMiB: 256,
  disks: [],
  nics: [{ id: 'nic0', vswitch: 'sw0', mac: '52:54:00:aa:bb:cc', tap: 'sb0123456789ab' }],
  machineType: 'pc-q35-7.2',
  cpuModel: 'Nehalem',
  createdAt: '2026-11-25T12:00:00.000Z',
});

test('definitions round-trip; damaged files are reported and skipped; no temp files remain', async () => {
  const store = new DefinitionStore(stateDir);
  await store.init();
  await store.save(def('b'));
  await store.save(def('a'));
  await store.save({ ...def('a'), vcpus: 2 });
  await writeFile(path.join(store.dir, 'broken.json'), '{"name": "broken"');
  await writeFile(path.join(store.dir, 'wrong.json'), JSON.stringify({ ...def('wrong'), vcpus: 0 }));
  const invalid: string[] = [];
  const loaded = await store.loadAll((file) => invalid.push(path.basename(file)));
  assert.deepEqual(
    loaded.map((d) => [d.name, d.vcpus]),
    [
      ['a', 2],
      ['b', 1],
    ],
  );
  assert.deepEqual(invalid, ['broken.json', 'wrong.json']);
  await store.remove('b');
  assert.deepEqual((await readdir(store.dir)).sort(), ['a.json', 'broken.json', 'wrong.json']);
});

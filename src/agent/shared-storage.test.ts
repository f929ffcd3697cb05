// The marker that names a shared datastore's storage: written once with a new id, read by every
// other agent, never overwritten, agreed on by agents adding it at the same moment (with hard
// links, and with the exclusive-create path of a filesystem without them), refused when damaged.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { SHARED_STORAGE_MARKER, StorageId } from '../api/index.js';
import { AgentError } from './errors.js';
import { sharedStorageId } from './shared-storage.js';

const run = promisify(execFile);
let root: string;
let n = 0;
const freshDir = async () => mkdtemp(path.join(root, `s${n++}-`));

before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'sb-shared-'));
});
after(() => rm(root, { recursive: true, force: true }));

test('the first agent writes the marker with a new id; later reads give the same id', async () => {
  const dir = await freshDir();
  const id = await sharedStorageId(dir);
  assert.equal(StorageId.safeParse(id).success, true);
  const marker = JSON.parse(await readFile(path.join(dir, SHARED_STORAGE_MARKER), 'utf8')) as unknown;
  assert.deepEqual(marker, { storageId: id });
  assert.equal(await sharedStorageId(dir), id);
  // No temporary file is left behind.
  assert.deepEqual(await readdir(dir), [SHARED_STORAGE_MARKER]);
});

test('an existing marker is read, never replaced', async () => {
  const dir = await freshDir();
  const id = '0b6f2a4e-3c1d-4e5f-8a9b-0c1d2e3f4a5b';
  await writeFile(path.join(dir, SHARED_STORAGE_MARKER), JSON.stringify({ storageId: id, note: 'x' }));
  assert.equal(await sharedStorageId(dir), id);
});

test('agents adding the storage at once agree on one id (separate processes)', async () => {
  const dir = await freshDir();
  const module = path.join(import.meta.dirname, 'shared-storage.ts');
  const script = `import(${JSON.stringify(module)}).then(async (m) => process.stdout.write(await m.sharedStorageId(${JSON.stringify(dir)})))`;
  const ids = await Promise.all(
    Array.from({ length: 6 }, () =>
      run(process.execPath, [...process.execArgv, '--input-type=module', '-e', script]).then((r) => r.stdout),
    ),
  );
  assert.equal(new Set(ids).size, 1, `ids: ${ids.join(', ')}`);
  const marker = JSON.parse(await readFile(path.join(dir, SHARED_STORAGE_MARKER), 'utf8')) as {
    storageId: string;
  };
  assert.equal(marker.storageId, ids[0]);
});

test('without hard links the marker is created exclusively, and racing agents still agree', async () => {
  const dir = await freshDir();
  const noLinks = async () => {
    throw Object.assign(new Error('operation not permitted'), { code: 'EPERM' });
  };
  const ids = await Promise.all(Array.from({ length: 8 }, () => sharedStorageId(dir, { link: noLinks })));
  assert.equal(new Set(ids).size, 1);
  assert.deepEqual(await readdir(dir), [SHARED_STORAGE_MARKER]);
});

test('a damaged marker is refused naming the path field, and left as it is', async () => {
  const dir = await freshDir();
  const file = path.join(dir, SHARED_STORAGE_MARKER);
  await writeFile(file, '{"storageId": "not-a-uuid"}');
  await assert.rejects(sharedStorageId(dir), (error: unknown) => {
    assert.ok(error instanceof AgentError);
    assert.equal(error.field, 'path');
    assert.match(error.message, /is not a Silobreak storage marker/);
    return true;
  });
  assert.equal(await readFile(file, 'utf8'), '{"storageId": "not-a-uuid"}');
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, open, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { RetainedCopyInvalid, RetainedCopyNotFound } from './errors.js';
import { RetainedStore, sampledDigest } from './retained.js';

const VM = { id: '00000000-0000-4000-8000-0000000000aa', name: 'web1' };

async function withStore(body: (dir: string, store: RetainedStore) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'sb-retained-'));
  try {
    await body(dir, new RetainedStore(() => [{ name: 'local', path: dir }]));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function image(file: string): void {
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', file, '64M']);
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 0 4M', file], { stdio: 'ignore' });
}

test('a kept copy is listed valid, taken into place, put back and released', async () => {
  await withStore(async (dir, store) => {
    const file = path.join(dir, 'web1-root.qcow2');
    image(file);
    const kept = await store.keep(VM, 'g1', [{ id: 'root', datastore: 'local', path: file }]);
    assert.deepEqual(kept.check, { valid: true });
    assert.equal(kept.disks[0]?.virtualSizeBytes, 64 * 1024 * 1024);
    await assert.rejects(stat(file), 'moved into the retained directory');
    assert.deepEqual(
      (await store.list()).map((c) => [c.vmId, c.generationId]),
      [[VM.id, 'g1']],
    );

    const target = [{ id: 'root', datastore: 'local', path: file, virtualSizeBytes: 64 * 1024 * 1024 }];
    await assert.rejects(
      store.take(VM.id, 'g2', target),
      (e: unknown) => e instanceof RetainedCopyInvalid && /generation g1/.test(e.message),
    );
    await assert.rejects(
      store.take(VM.id, 'g1', [{ ...target[0]!, virtualSizeBytes: 128 * 1024 * 1024 }]),
      /resized/,
    );
    await store.take(VM.id, 'g1', target);
    assert.ok((await stat(file)).isFile(), 'the image is where the incoming disk is');
    // The delta move writes into it, fails: the image goes back and is sealed again.
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x11 1M 64k', file], { stdio: 'ignore' });
    await store.putBack(VM.id, [{ id: 'root', datastore: 'local', path: file }]);
    assert.deepEqual((await store.list())[0]?.check, { valid: true });
    await store.release(VM.id);
    assert.deepEqual(await store.list(), []);
    await assert.rejects(store.release(VM.id), RetainedCopyNotFound);
  });
});

test('a copy written behind its back is invalid, with the reason', async () => {
  await withStore(async (dir, store) => {
    const file = path.join(dir, 'web1-root.qcow2');
    image(file);
    const kept = await store.keep(VM, 'g1', [{ id: 'root', datastore: 'local', path: file }]);
    const copy = kept.disks[0]?.path ?? '';
    const before = await stat(copy);
    const digest = await sampledDigest(copy);
    const handle = await open(copy, 'r+');
    await handle.write(Buffer.alloc(16, 1), 0, 16, 60_000);
    await handle.close();
    await utimes(copy, before.atime, before.mtime);
    assert.notEqual(await sampledDigest(copy), digest);
    assert.match(
      JSON.stringify((await store.list())[0]?.check),
      /differs from when it was kept \(sampled content\)/,
    );
    await writeFile(copy, 'x', { flag: 'a' });
    assert.match(JSON.stringify((await store.list())[0]?.check), /written since it was kept/);
    await assert.rejects(
      store.take(VM.id, 'g1', [
        { id: 'root', datastore: 'local', path: file, virtualSizeBytes: 64 * 1024 * 1024 },
      ]),
      /written since it was kept/,
    );
  });
});

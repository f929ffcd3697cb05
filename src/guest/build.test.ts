import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { findGuestImage } from './build.js';
import { GuestImageMissing } from './errors.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'silobreak-guest-find-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const missing = (error: unknown) =>
  error instanceof GuestImageMissing && error.cacheDir === dir && /silobreak guest build/.test(error.message);

function manifest(kernel: string, initrd: string) {
  return JSON.stringify({
    kernel,
    initrd,
    kernelVersion: '6.1.0-99-amd64',
    kernelPackage: 'linux-image-6.1.0-99-amd64_6.1.1-1_amd64.deb',
    key: 'abc',
    initrdBytes: 4,
    modules: ['virtio'],
    builtAt: '2026-01-01T00:00:00.000Z',
  });
}

test('findGuestImage without a build says to run silobreak guest build', async () => {
  await assert.rejects(findGuestImage({ cacheDir: dir }), missing);
});

test('findGuestImage refuses a corrupt current.json or one whose files are gone', async () => {
  await writeFile(path.join(dir, 'current.json'), '{ not json');
  await assert.rejects(findGuestImage({ cacheDir: dir }), missing);
  await writeFile(path.join(dir, 'current.json'), manifest(path.join(dir, 'gone'), path.join(dir, 'gone2')));
  await assert.rejects(findGuestImage({ cacheDir: dir }), missing);
});

test('findGuestImage returns the paths and kernel version of the current image', async () => {
  const kernel = path.join(dir, 'vmlinux');
  const initrd = path.join(dir, 'initrd.cpio');
  await writeFile(kernel, 'kern');
  await writeFile(initrd, 'init');
  await writeFile(path.join(dir, 'current.json'), manifest(kernel, initrd));
  assert.deepEqual(await findGuestImage({ cacheDir: dir }), {
    kernel,
    initrd,
    kernelVersion: '6.1.0-99-amd64',
  });
});

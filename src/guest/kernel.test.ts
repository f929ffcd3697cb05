import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { extractVmlinux, kernelSupportsPvh, xzPayloadOffset } from './kernel.js';

/** A stand-in bzImage: setup header signature, some setup code, the xz payload, trailing bytes. */
function fakeBzImage(payload: Buffer): Buffer {
  const setup = Buffer.alloc(0x400, 0x90);
  setup.write('HdrS', 0x202, 'latin1');
  const xz = execFileSync('xz', ['-c', '--format=xz'], { input: payload });
  return Buffer.concat([setup, xz, Buffer.from([1, 2, 3, 4])]);
}

test('kernelSupportsPvh reads CONFIG_PVH from the kernel config', () => {
  assert.equal(kernelSupportsPvh('CONFIG_XEN_PVH=y\nCONFIG_PVH=y\n'), true);
  assert.equal(kernelSupportsPvh('CONFIG_XEN_PVH=y\n# CONFIG_PVH is not set\n'), false);
  assert.equal(kernelSupportsPvh(''), false);
});

test('xzPayloadOffset finds the payload only in something that is a bzImage', () => {
  const image = fakeBzImage(Buffer.from('\x7fELF rest of kernel', 'latin1'));
  assert.equal(xzPayloadOffset(image), 0x400);
  assert.equal(xzPayloadOffset(Buffer.alloc(0x400)), -1);
});

test('extractVmlinux returns the ELF inside, ignoring bytes after the xz stream', async () => {
  const elf = Buffer.concat([Buffer.from('\x7fELF', 'latin1'), Buffer.alloc(10_000, 7)]);
  assert.deepEqual(await extractVmlinux(fakeBzImage(elf)), elf);
  assert.equal(await extractVmlinux(fakeBzImage(Buffer.from('not an elf'))), undefined);
});

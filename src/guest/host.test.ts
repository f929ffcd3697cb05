import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseLdd, pickKernelPackage } from './host.js';

test('parseLdd lists libraries and the loader, not the vdso', () => {
  const out = [
    '\tlinux-vdso.so.1 (0x00007ffd)',
    '\tlibglib-2.0.so.0 => /lib/x86_64-linux-gnu/libglib-2.0.so.0 (0x00007f01)',
    '\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f02)',
    '\t/lib64/ld-linux-x86-64.so.2 (0x00007f03)',
  ].join('\n');
  assert.deepEqual(parseLdd(out), [
    '/lib/x86_64-linux-gnu/libglib-2.0.so.0',
    '/lib/x86_64-linux-gnu/libc.so.6',
    '/lib64/ld-linux-x86-64.so.2',
  ]);
});

test('parseLdd refuses a missing library', () => {
  assert.throws(() => parseLdd('\tlibfoo.so.1 => not found\n'), /missing shared library: libfoo/);
});

test('pickKernelPackage takes the highest ABI of the generic flavour', () => {
  const out = [
    'linux-image-6.1.0-47-amd64 - Linux 6.1 for 64-bit PCs (signed)',
    'linux-image-6.1.0-50-cloud-amd64 - Linux 6.1 for x86-64 cloud (signed)',
    'linux-image-6.1.0-9-amd64 - Linux 6.1 for 64-bit PCs (signed)',
    'linux-image-6.1.0-50-amd64 - Linux 6.1 for 64-bit PCs (signed)',
    'linux-image-6.1.0-51-rt-amd64 - Linux 6.1 for 64-bit PCs, PREEMPT_RT (signed)',
    'linux-image-6.1.0-52-amd64-dbg - Debug symbols for linux-image-6.1.0-52-amd64',
  ].join('\n');
  assert.equal(pickKernelPackage(out), 'linux-image-6.1.0-50-amd64');
  assert.equal(pickKernelPackage(''), undefined);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { moduleName, parseModinfo, resolveLoadOrder, type ModuleInfo } from './modules.js';

/** A minimal ELF64 file with a .modinfo section holding `entries`. */
function fakeModule(entries: string[]): Buffer {
  const info = Buffer.from(entries.map((e) => `${e}\0`).join(''));
  const names = Buffer.from('\0.modinfo\0.shstrtab\0');
  const infoOff = 64;
  const namesOff = infoOff + info.length;
  const shoff = Math.ceil((namesOff + names.length) / 8) * 8;
  const elf = Buffer.alloc(shoff + 3 * 64);
  elf.writeUInt32BE(0x7f454c46, 0);
  elf[4] = 2; // ELFCLASS64
  elf[5] = 1; // little endian
  elf.writeBigUInt64LE(BigInt(shoff), 0x28);
  elf.writeUInt16LE(64, 0x3a);
  elf.writeUInt16LE(3, 0x3c);
  elf.writeUInt16LE(2, 0x3e);
  info.copy(elf, infoOff);
  names.copy(elf, namesOff);
  const section = (i: number, name: number, offset: number, size: number) => {
    const at = shoff + i * 64;
    elf.writeUInt32LE(name, at);
    elf.writeBigUInt64LE(BigInt(offset), at + 0x18);
    elf.writeBigUInt64LE(BigInt(size), at + 0x20);
  };
  section(1, 1, infoOff, info.length);
  section(2, 10, namesOff, names.length);
  return elf;
}

test('parseModinfo reads depends, pre soft dependencies and aliases', () => {
  const info = parseModinfo(
    fakeModule([
      'license=GPL',
      'softdep=pre: crypto-crc32c post: foo',
      'alias=fs-ext4',
      'alias=fs-ext2',
      'depends=jbd2,mbcache,crc-16',
      'name=ext4',
    ]),
  );
  assert.deepEqual(info, {
    depends: ['jbd2', 'mbcache', 'crc_16'],
    softPre: ['crypto-crc32c'],
    aliases: ['fs-ext4', 'fs-ext2'],
  });
  assert.deepEqual(parseModinfo(fakeModule(['depends='])), { depends: [], softPre: [], aliases: [] });
});

test('parseModinfo refuses files that are not ELF64 modules', () => {
  assert.throws(() => parseModinfo(Buffer.from('#!/bin/sh\n'.padEnd(80, ' '))), /not a little-endian ELF64/);
});

test('moduleName normalises file names', () => {
  assert.equal(moduleName('/lib/modules/x/kernel/arch/x86/crypto/crc32c-intel.ko'), 'crc32c_intel');
  assert.equal(moduleName('virtio_net.ko.xz'), 'virtio_net');
  assert.equal(moduleName('virtio-blk'), 'virtio_blk');
});

// The dependency graph of Debian 6.1's virtio and ext4 modules, as their .modinfo declares it.
const debian61: Record<string, ModuleInfo> = {
  virtio_ring: { depends: [], softPre: [], aliases: [] },
  virtio: { depends: [], softPre: [], aliases: [] },
  virtio_pci_modern_dev: { depends: [], softPre: [], aliases: [] },
  virtio_pci_legacy_dev: { depends: [], softPre: [], aliases: [] },
  virtio_pci: {
    depends: ['virtio_ring', 'virtio_pci_modern_dev', 'virtio_pci_legacy_dev', 'virtio'],
    softPre: [],
    aliases: [],
  },
  virtio_blk: { depends: ['virtio', 'virtio_ring'], softPre: [], aliases: [] },
  failover: { depends: [], softPre: [], aliases: [] },
  net_failover: { depends: ['failover'], softPre: [], aliases: [] },
  virtio_net: { depends: ['virtio_ring', 'virtio', 'net_failover'], softPre: [], aliases: [] },
  crc32c_generic: { depends: [], softPre: [], aliases: ['crypto-crc32c', 'crc32c'] },
  crc32c_intel: { depends: [], softPre: [], aliases: ['crypto-crc32c'] },
  jbd2: { depends: [], softPre: [], aliases: [] },
  mbcache: { depends: [], softPre: [], aliases: [] },
  crc16: { depends: [], softPre: [], aliases: [] },
  ext4: { depends: ['jbd2', 'mbcache', 'crc16'], softPre: ['crypto-crc32c'], aliases: ['fs-ext4'] },
};
const lookup = (name: string) => debian61[name];

test('resolveLoadOrder puts every module after its dependencies, in root order', () => {
  const order = resolveLoadOrder(
    ['virtio_pci', 'virtio_blk', 'virtio_net', 'ext4', 'crc32c_generic'],
    lookup,
  );
  assert.deepEqual(order, [
    'virtio_ring',
    'virtio_pci_modern_dev',
    'virtio_pci_legacy_dev',
    'virtio',
    'virtio_pci',
    'virtio_blk',
    'failover',
    'net_failover',
    'virtio_net',
    'jbd2',
    'mbcache',
    'crc16',
    'crc32c_generic', // pulled ahead of ext4 by its soft dependency on the alias
    'ext4',
  ]);
});

test('an alias soft dependency needs a provider chosen by the caller', () => {
  assert.throws(() => resolveLoadOrder(['ext4'], lookup), /ext4 wants crypto-crc32c first/);
});

test('a missing module names who needs it', () => {
  const graph: Record<string, ModuleInfo> = { a: { depends: ['b'], softPre: [], aliases: [] } };
  assert.throws(() => resolveLoadOrder(['a'], (n) => graph[n]), /module b \(needed by a\) not found/);
});

test('a dependency cycle is reported, not looped on', () => {
  const graph: Record<string, ModuleInfo> = {
    a: { depends: ['b'], softPre: [], aliases: [] },
    b: { depends: ['a'], softPre: [], aliases: [] },
  };
  assert.throws(() => resolveLoadOrder(['a'], (n) => graph[n]), /cycle: a -> b -> a/);
});

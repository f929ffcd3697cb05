// Which kernel modules the guest loads, and in which order. Debian's kernel package ships no
// modules.dep, so the order is resolved from the `.modinfo` section of each module file.

/**
 * Modules the guest needs; their dependencies are added by `resolveLoadOrder`. crc32c_generic
 * provides `crypto-crc32c` (ext4's soft dependency, for metadata checksums) on any CPU model.
 * virtio_rng seeds the kernel's RNG when the VM has a virtio-rng device (optional).
 * button + evdev turn the ACPI power button into an input event for busybox acpid.
 * isofs reads the guest tools disk (an ISO 9660 image on a hot-plugged virtio disk).
 */
export const GUEST_MODULES = [
  'virtio_pci',
  'virtio_blk',
  'virtio_net',
  'virtio_console',
  'virtio_rng',
  'crc32c_generic',
  'ext4',
  'button',
  'evdev',
  'isofs',
] as const;

export interface ModuleInfo {
  /** Hard dependencies (`depends=`): must be loaded first. */
  depends: string[];
  /** `softdep=pre:` entries: module names or aliases wanted before this one. */
  softPre: string[];
  /** Aliases this module answers to (`alias=`). */
  aliases: string[];
}

/** Module names use `_` and `-` interchangeably; files and `depends=` may differ. */
export function moduleName(fileOrName: string): string {
  const base = fileOrName.slice(fileOrName.lastIndexOf('/') + 1).replace(/\.ko(\.[a-z]+)?$/, '');
  return base.replaceAll('-', '_');
}

/** Reads `depends=`, `softdep=` and `alias=` from the `.modinfo` section of an ELF64 module. */
export function parseModinfo(elf: Buffer): ModuleInfo {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) {
    throw new Error('not a little-endian ELF64 file');
  }
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const shstrndx = elf.readUInt16LE(0x3e);
  const section = (i: number) => {
    const at = shoff + i * shentsize;
    return {
      name: elf.readUInt32LE(at),
      offset: Number(elf.readBigUInt64LE(at + 0x18)),
      size: Number(elf.readBigUInt64LE(at + 0x20)),
    };
  };
  const names = section(shstrndx);
  const nameOf = (off: number) => {
    const start = names.offset + off;
    return elf.toString('latin1', start, elf.indexOf(0, start));
  };
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (nameOf(s.name) !== '.modinfo') continue;
    const info: ModuleInfo = { depends: [], softPre: [], aliases: [] };
    for (const entry of elf.toString('latin1', s.offset, s.offset + s.size).split('\0')) {
      const eq = entry.indexOf('=');
      const key = entry.slice(0, eq);
      const value = entry.slice(eq + 1);
      if (key === 'depends') info.depends.push(...value.split(',').filter(Boolean).map(moduleName));
      else if (key === 'alias') info.aliases.push(value);
      else if (key === 'softdep') info.softPre.push(...parseSoftdepPre(value));
    }
    return info;
  }
  throw new Error('no .modinfo section');
}

/** `pre: a b post: c` -> [a, b] */
function parseSoftdepPre(value: string): string[] {
  const out: string[] = [];
  let inPre = false;
  for (const word of value.split(/\s+/).filter(Boolean)) {
    if (word.endsWith(':')) inPre = word === 'pre:';
    else if (inPre) out.push(word);
  }
  return out;
}

/**
 * Orders `roots` and everything they depend on so that each module comes after its
 * dependencies. A soft dependency naming an alias (ext4 wants `crypto-crc32c`) is satisfied by
 * a module in the set that declares that alias; the set itself is not widened by aliases, so
 * the caller chooses the provider (e.g. crc32c_generic rather than a CPU-specific one).
 * `lookup` returns a module's info, or undefined when there is no such module file.
 */
export function resolveLoadOrder(
  roots: readonly string[],
  lookup: (name: string) => ModuleInfo | undefined,
): string[] {
  const infos = new Map<string, ModuleInfo>();
  const collect = (name: string, wantedBy: string | undefined) => {
    if (infos.has(name)) return;
    const info = lookup(name);
    if (!info) throw new Error(`module ${name}${wantedBy ? ` (needed by ${wantedBy})` : ''} not found`);
    infos.set(name, info);
    for (const dep of info.depends) collect(dep, name);
    for (const soft of info.softPre) if (lookup(moduleName(soft))) collect(moduleName(soft), name);
  };
  for (const root of roots) collect(moduleName(root), undefined);

  const before = (name: string, info: ModuleInfo): string[] => {
    const deps = [...info.depends];
    for (const soft of info.softPre) {
      if (infos.has(moduleName(soft))) {
        deps.push(moduleName(soft));
        continue;
      }
      const provider = [...infos].find(([, other]) => other.aliases.includes(soft))?.[0];
      if (!provider) {
        throw new Error(`module ${name} wants ${soft} first: add a module that provides it to the list`);
      }
      deps.push(provider);
    }
    return deps;
  };

  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, path: string[]) => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting')
      throw new Error(`module dependency cycle: ${[...path, name].join(' -> ')}`);
    state.set(name, 'visiting');
    for (const dep of before(name, infos.get(name)!)) visit(dep, [...path, name]);
    state.set(name, 'done');
    order.push(name);
  };
  for (const root of roots) visit(moduleName(root), []);
  return order;
}

// A minimal writer of the "newc" cpio format the kernel unpacks as its initramfs. Written here
// rather than by the cpio tool so that device nodes need no root and the archive is
// reproducible (fixed owners, times and inode numbers).

export type RootfsEntry =
  | { kind: 'dir'; mode: number }
  | { kind: 'file'; mode: number; data: Buffer }
  | { kind: 'symlink'; target: string }
  | { kind: 'chardev'; mode: number; major: number; minor: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

/** A root filesystem being assembled in memory: absolute paths, parent directories implied. */
export class RootfsTree {
  private readonly entries = new Map<string, RootfsEntry>();

  add(path: string, entry: RootfsEntry): this {
    if (
      !path.startsWith('/') ||
      path.split('/').some((s, i) => i > 0 && (s === '' || s === '.' || s === '..'))
    ) {
      throw new Error(`rootfs path must be absolute and normalised: ${path}`);
    }
    const existing = this.entries.get(path);
    if (existing && !(existing.kind === 'dir' && entry.kind === 'dir')) {
      throw new Error(`rootfs path added twice: ${path}`);
    }
    for (let i = path.indexOf('/', 1); i > 0; i = path.indexOf('/', i + 1)) {
      const parent = path.slice(0, i);
      const p = this.entries.get(parent);
      if (!p) this.entries.set(parent, { kind: 'dir', mode: 0o755 });
      else if (p.kind !== 'dir') throw new Error(`rootfs parent is not a directory: ${parent}`);
    }
    this.entries.set(path, entry);
    return this;
  }

  has(path: string): boolean {
    return this.entries.has(path);
  }

  /** Parents before children (the kernel creates entries in archive order). */
  list(): [string, RootfsEntry][] {
    return [...this.entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  toCpio(): Buffer {
    return writeCpio(this.list());
  }
}

function header(fields: {
  ino: number;
  mode: number;
  nlink: number;
  size: number;
  rdevMajor: number;
  rdevMinor: number;
  nameSize: number;
}): string {
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor,
  // namesize, check
  return (
    '070701' +
    [
      fields.ino,
      fields.mode,
      0,
      0,
      fields.nlink,
      0,
      fields.size,
      0,
      0,
      fields.rdevMajor,
      fields.rdevMinor,
      fields.nameSize,
      0,
    ]
      .map(hex)
      .join('')
  );
}

const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);

/** newc archive of `entries` (paths absolute; stored relative, as the kernel expects). */
export function writeCpio(entries: Iterable<[string, RootfsEntry]>): Buffer {
  const chunks: Buffer[] = [];
  let ino = 1;
  const put = (name: string, mode: number, data: Buffer, rdev: [number, number] = [0, 0], nlink = 1) => {
    const nameBytes = Buffer.from(`${name}\0`);
    const head = Buffer.from(
      header({
        ino: ino++,
        mode,
        nlink,
        size: data.length,
        rdevMajor: rdev[0],
        rdevMinor: rdev[1],
        nameSize: nameBytes.length,
      }),
      'latin1',
    );
    chunks.push(head, nameBytes, pad4(head.length + nameBytes.length), data, pad4(data.length));
  };
  for (const [path, e] of entries) {
    const name = path.slice(1);
    if (e.kind === 'dir') put(name, S_IFDIR | e.mode, Buffer.alloc(0), [0, 0], 2);
    else if (e.kind === 'file') put(name, S_IFREG | e.mode, e.data);
    else if (e.kind === 'symlink') put(name, S_IFLNK | 0o777, Buffer.from(e.target));
    else put(name, S_IFCHR | e.mode, Buffer.alloc(0), [e.major, e.minor]);
  }
  ino = 0;
  put('TRAILER!!!', 0, Buffer.alloc(0), [0, 0], 1);
  return Buffer.concat(chunks);
}

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RootfsTree } from './cpio.js';

interface Parsed {
  name: string;
  mode: number;
  nlink: number;
  rdev: [number, number];
  data: Buffer;
}

/** Reads a newc archive back (test-only), checking the 4-byte alignment the kernel requires. */
function readCpio(buf: Buffer): Parsed[] {
  const out: Parsed[] = [];
  let at = 0;
  for (;;) {
    assert.equal(at % 4, 0, 'header alignment');
    assert.equal(buf.toString('latin1', at, at + 6), '070701');
    const field = (i: number) => parseInt(buf.toString('latin1', at + 6 + i * 8, at + 14 + i * 8), 16);
    const nameSize = field(11);
    const size = field(6);
    const name = buf.toString('latin1', at + 110, at + 110 + nameSize - 1);
    assert.equal(buf[at + 110 + nameSize - 1], 0, 'name is NUL-terminated');
    const dataAt = Math.ceil((at + 110 + nameSize) / 4) * 4;
    const entry = {
      name,
      mode: field(1),
      nlink: field(4),
      rdev: [field(9), field(10)] as [number, number],
      data: buf.subarray(dataAt, dataAt + size),
    };
    at = Math.ceil((dataAt + size) / 4) * 4;
    if (name === 'TRAILER!!!') {
      assert.equal(at, buf.length, 'nothing after the trailer');
      return out;
    }
    out.push(entry);
  }
}

test('the archive holds every entry with its type, mode and content, parents first', () => {
  const tree = new RootfsTree()
    .add('/usr/bin/tool', { kind: 'file', mode: 0o755, data: Buffer.from('abcde') })
    .add('/dev/console', { kind: 'chardev', mode: 0o600, major: 5, minor: 1 })
    .add('/init', { kind: 'symlink', target: '/bin/busybox' })
    .add('/tmp', { kind: 'dir', mode: 0o1777 });
  const entries = readCpio(tree.toCpio());
  assert.deepEqual(
    entries.map((e) => [e.name, e.mode.toString(8)]),
    [
      ['dev', '40755'],
      ['dev/console', '20600'],
      ['init', '120777'],
      ['tmp', '41777'],
      ['usr', '40755'],
      ['usr/bin', '40755'],
      ['usr/bin/tool', '100755'],
    ],
  );
  const byName = new Map(entries.map((e) => [e.name, e]));
  assert.equal(byName.get('usr/bin/tool')?.data.toString(), 'abcde');
  assert.equal(byName.get('init')?.data.toString(), '/bin/busybox');
  assert.deepEqual(byName.get('dev/console')?.rdev, [5, 1]);
  assert.equal(byName.get('usr')?.nlink, 2);
});

test('the same tree gives the same bytes (reproducible image)', () => {
  const make = () =>
    new RootfsTree()
      .add('/b', { kind: 'file', mode: 0o644, data: Buffer.from('x') })
      .add('/a/c', { kind: 'symlink', target: '/b' })
      .toCpio();
  assert.deepEqual(make(), make());
});

test('bad paths and clashes are refused', () => {
  const tree = new RootfsTree().add('/etc/passwd', { kind: 'file', mode: 0o644, data: Buffer.alloc(0) });
  assert.throws(() => tree.add('etc/x', { kind: 'dir', mode: 0o755 }), /absolute and normalised/);
  assert.throws(() => tree.add('/etc/../x', { kind: 'dir', mode: 0o755 }), /absolute and normalised/);
  assert.throws(() => tree.add('/etc/passwd', { kind: 'dir', mode: 0o755 }), /added twice/);
  assert.throws(() => tree.add('/etc/passwd/x', { kind: 'dir', mode: 0o755 }), /parent is not a directory/);
  tree.add('/etc', { kind: 'dir', mode: 0o755 }); // an existing directory may be named again
});

// The command's bundle (bin/bundle.js) on a tree of its own: made on first use, reused while the
// sources are unchanged, made anew when one changes, each module's own location kept.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { build as makeBuild, currentEntry as entryOf } from '../bin/bundle.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-bundle-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
const run = async (entry: string) => (await promisify(execFile)(process.execPath, [entry])).stdout.trim();

fs.mkdirSync(path.join(root, 'src', 'part'), { recursive: true });
fs.writeFileSync(
  path.join(root, 'src', 'main.ts'),
  "import { where } from './part/where.js';\nconsole.log(where());\n",
);
const where = path.join(root, 'src', 'part', 'where.ts');
const writeWhere = (word: string) =>
  fs.writeFileSync(where, `export const where = (): string => '${word} ' + import.meta.dirname;\n`);

test('the bundle is made, reused while the sources are unchanged, made anew when one changes', async () => {
  writeWhere('one');
  assert.equal(entryOf(root), undefined, 'no bundle before the first build');
  const first = await makeBuild(root);
  assert.equal(entryOf(root), first, 'the build just made is current');
  // import.meta.dirname is the source's folder, not the bundle's.
  assert.equal(await run(first), `one ${path.join(root, 'src', 'part')}`);

  writeWhere('two');
  fs.utimesSync(where, new Date(), new Date(Date.now() + 5_000));
  assert.equal(entryOf(root), undefined, 'a changed source makes the bundle stale');
  const second = await makeBuild(root);
  assert.notEqual(second, first, 'a new build for new sources');
  assert.equal(await run(second), `two ${path.join(root, 'src', 'part')}`);

  fs.rmSync(where);
  assert.equal(entryOf(root), undefined, 'a source gone makes the bundle stale');
});

test('builds at once of the same sources agree; only the newest builds are kept', async () => {
  writeWhere('three');
  const entries = await Promise.all([makeBuild(root), makeBuild(root)]);
  assert.equal(entries[0], entries[1], 'one folder for the same sources');
  assert.equal(entryOf(root), entries[0], 'and it is current');
  for (const word of ['four', 'five', 'six']) {
    writeWhere(word);
    await makeBuild(root);
  }
  const builds = fs
    .readdirSync(path.join(root, '.cache', 'cli'), { withFileTypes: true })
    .filter((d) => d.isDirectory() && !d.name.startsWith('.'));
  assert.equal(builds.length, 3, `three builds kept, found ${builds.map((d) => d.name).join(', ')}`);
  assert.equal(
    await run(entryOf(root) ?? assert.fail('no current build')),
    `six ${path.join(root, 'src', 'part')}`,
  );
});

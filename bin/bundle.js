// The `silobreak` command's bundle: src/ compiled into a few ES modules under .cache/cli/, so a
// call loads a handful of files instead of resolving and transforming ~300 through tsx's hooks
// (`silobreak vm list` 0.7 -> 0.2 s of CPU, an agent or manager start 1.6 -> 0.6 s). It is built
// from the sources on the first call after any of them changed (bin/silobreak.js checks), so there
// is still no build step to forget; where it cannot be built, the command runs through tsx as before.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** The checkout this command runs from. */
export const ROOT = path.resolve(import.meta.dirname, '..');
const cacheOf = (root) => path.join(root, '.cache', 'cli');
/** The current build's pointer: its folder and the mtime of every source it was made from. */
const currentOf = (root) => path.join(cacheOf(root), 'current.json');
/** Builds kept besides the current one: a command started just before a rebuild may still be loading one. */
const KEEP_BUILDS = 3;

/**
 * The current build's entry if every source it was made from is unchanged, else undefined. The
 * check stats each source (~300, a few ms), as tsx's own cache would.
 */
export function currentEntry(root = ROOT) {
  let current;
  try {
    current = JSON.parse(fs.readFileSync(currentOf(root), 'utf8'));
  } catch {
    return undefined;
  }
  for (const [file, mtimeMs] of Object.entries(current.inputs)) {
    try {
      if (fs.statSync(path.join(root, file)).mtimeMs !== mtimeMs) return undefined;
    } catch {
      return undefined;
    }
  }
  const entry = path.join(cacheOf(root), current.dir, 'main.mjs');
  return fs.existsSync(entry) ? entry : undefined;
}

// The bundle runs from .cache/cli/<build>/, so each module's own location is written in where it
// uses it (the web console's files, the guest's sources, package.json are found beside the source).
const sourceLocation = {
  name: 'source-location',
  setup(build) {
    build.onLoad({ filter: /\.tsx?$/ }, async (args) => {
      let contents = await fs.promises.readFile(args.path, 'utf8');
      if (contents.includes('import.meta.')) {
        contents = contents
          .replaceAll('import.meta.dirname', JSON.stringify(path.dirname(args.path)))
          .replaceAll('import.meta.filename', JSON.stringify(args.path))
          .replaceAll('import.meta.url', JSON.stringify(`file://${args.path}`));
      }
      return { contents, loader: args.path.endsWith('.tsx') ? 'tsx' : 'ts' };
    });
  },
};

/**
 * Builds the bundle and makes it current; returns its entry. Builds running at once (two commands
 * started together) each write their own folder and replace the pointer atomically.
 */
export async function build(root = ROOT) {
  const esbuild = await import('esbuild');
  const cache = cacheOf(root);
  fs.mkdirSync(cache, { recursive: true });
  const result = await esbuild.build({
    entryPoints: [path.join(root, 'src', 'main.ts')],
    bundle: true,
    // Each part stays its own chunk: `silobreak vm list` does not load the agent's or manager's code.
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    outExtension: { '.js': '.mjs' },
    chunkNames: '[name]-[hash]',
    sourcemap: 'linked',
    metafile: true,
    write: false,
    logLevel: 'silent',
    plugins: [sourceLocation],
    outdir: cache,
    absWorkingDir: root,
  });
  const hash = createHash('sha256');
  for (const file of result.outputFiles) hash.update(file.path).update(file.contents);
  const dir = hash.digest('hex').slice(0, 16);
  const target = path.join(cache, dir);
  if (!fs.existsSync(target)) {
    const temp = fs.mkdtempSync(path.join(cache, '.build-'));
    for (const file of result.outputFiles) {
      fs.mkdirSync(path.dirname(path.join(temp, path.relative(cache, file.path))), { recursive: true });
      fs.writeFileSync(path.join(temp, path.relative(cache, file.path)), file.contents);
    }
    try {
      fs.renameSync(temp, target);
    } catch (error) {
      // Another build of the same sources got there first.
      fs.rmSync(temp, { recursive: true, force: true });
      if (!fs.existsSync(target)) throw error;
    }
  }
  const inputs = {};
  for (const file of Object.keys(result.metafile.inputs)) {
    inputs[file] = fs.statSync(path.join(root, file)).mtimeMs;
  }
  const pointer = path.join(cache, `.current-${process.pid}.json`);
  fs.writeFileSync(pointer, JSON.stringify({ dir, inputs }));
  fs.renameSync(pointer, currentOf(root));
  prune(cache, dir);
  return path.join(target, 'main.mjs');
}

/** Removes all but the newest builds (by the time they were made), never the one just made. */
function prune(cache, keep) {
  const builds = fs
    .readdirSync(cache, { withFileTypes: true })
    .filter((d) => d.isDirectory() && !d.name.startsWith('.') && d.name !== keep)
    .map((d) => ({ name: d.name, at: fs.statSync(path.join(cache, d.name)).mtimeMs }))
    .sort((a, b) => b.at - a.at);
  for (const old of builds.slice(KEEP_BUILDS - 1)) {
    fs.rmSync(path.join(cache, old.name), { recursive: true, force: true });
  }
}

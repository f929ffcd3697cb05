// Builds the guest's kernel + initramfs from Debian packages and caches them outside git.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { GUEST_WORKLOADS, type GuestImage } from './constants.js';
import { RootfsTree } from './cpio.js';
import { GuestBuildFailed, GuestImageMissing } from './errors.js';
import { extractVmlinux, kernelSupportsPvh } from './kernel.js';
import { parseLdd, pickKernelPackage, run } from './host.js';
import { unpackAgentPackage } from './tools.js';
import { GUEST_MODULES, moduleName, parseModinfo, resolveLoadOrder, type ModuleInfo } from './modules.js';

const sourceDir = import.meta.dirname;
/** Host packages whose files go into the image; their versions are part of the cache key. */
const HOST_PACKAGES = ['busybox-static', 'qemu-guest-agent', 'e2fsprogs', 'libc6', 'gcc'];
/** Image directories kept besides the current one (a running test may still hold an older path). */
const KEEP_OLD_IMAGES = 2;
/** A build's temporary directory this old belongs to a build that died. */
const ABANDONED_AFTER_MS = 60 * 60 * 1000;

export interface GuestBuildOptions {
  /** Cache directory for this image; default `$SILOBREAK_CACHE_DIR/guest` or /var/cache/silobreak/guest. */
  cacheDir?: string;
  /** Rebuild even when an image with the same inputs is cached. */
  force?: boolean;
  /** Progress lines for people. */
  log?: (line: string) => void;
  /**
   * The guest agent inside: `old` is the host's Debian package (Debian 12: 7.2), `current` the one
   * the fabric's tools disk ships (tools.ts). Old is the default: the lab's guests then show what
   * an upgrade through the tools disk does.
   */
  agentVersion?: GuestAgentChoice;
}

export const GUEST_AGENT_CHOICES = ['old', 'current'] as const;
export type GuestAgentChoice = (typeof GUEST_AGENT_CHOICES)[number];

export interface BuiltGuestImage extends GuestImage {
  /** True when the cached image already matched every input. */
  reused: boolean;
  initrdBytes: number;
  /** Cache key: hash of the guest sources, host package versions and kernel package. */
  key: string;
}

const Manifest = z.object({
  kernel: z.string(),
  initrd: z.string(),
  kernelVersion: z.string(),
  kernelPackage: z.string(),
  key: z.string(),
  initrdBytes: z.number().int(),
  modules: z.array(z.string()),
  builtAt: z.string(),
});
type Manifest = z.infer<typeof Manifest>;

export function guestCacheDir(override?: string): string {
  return override ?? path.join(process.env.SILOBREAK_CACHE_DIR ?? '/var/cache/silobreak', 'guest');
}

async function readManifest(file: string): Promise<Manifest | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = Manifest.safeParse(json);
  if (!parsed.success || !existsSync(parsed.data.kernel) || !existsSync(parsed.data.initrd)) return undefined;
  return parsed.data;
}

/** Writes through a temporary file and a rename, so readers never see half a file. */
async function writeAtomically(file: string, data: string | Buffer): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

/**
 * The image last built into the cache. It is returned even if the guest sources changed since
 * (a stale image still boots; `buildGuestImage` rebuilds when inputs differ).
 */
export async function findGuestImage(options: { cacheDir?: string } = {}): Promise<GuestImage> {
  const dir = guestCacheDir(options.cacheDir);
  const manifest = await readManifest(path.join(dir, 'current.json'));
  if (!manifest) throw new GuestImageMissing(dir, 'no current.json or its files are gone');
  return { kernel: manifest.kernel, initrd: manifest.initrd, kernelVersion: manifest.kernelVersion };
}

/** Files of src/guest that end up in (or decide the content of) the image. */
async function hashSources(): Promise<string> {
  const hash = createHash('sha256');
  const walk = async (dir: string): Promise<string[]> => {
    const out: string[] = [];
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) out.push(...(await walk(full)));
      else if (!entry.name.endsWith('.test.ts') && entry.name !== 'README.md') out.push(full);
    }
    return out;
  };
  for (const file of (await walk(sourceDir)).sort()) {
    hash
      .update(path.relative(sourceDir, file))
      .update('\0')
      .update(await readFile(file))
      .update('\0');
  }
  return hash.digest('hex');
}

async function hostPackageVersions(): Promise<string> {
  return run('reading host package versions', 'dpkg-query', [
    '-W',
    '-f',
    '${Package}=${Version}\n',
    ...HOST_PACKAGES,
  ]);
}

/** The kernel .deb in the cache, downloaded with apt-get on first use. */
async function kernelDeb(cacheDir: string, pkg: string, log: (line: string) => void): Promise<string> {
  const debDir = path.join(cacheDir, 'debs');
  await mkdir(debDir, { recursive: true });
  const cached = (await readdir(debDir)).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (cached) return path.join(debDir, cached);
  log(`downloading ${pkg}`);
  const tmp = await mkdtemp(path.join(cacheDir, 'tmp-download-'));
  try {
    await run('downloading the kernel package', 'apt-get', ['download', '-q', pkg], { cwd: tmp });
    const file = (await readdir(tmp)).find((f) => f.endsWith('.deb'));
    if (!file)
      throw new GuestBuildFailed('downloading the kernel package', `apt-get left no .deb for ${pkg}`);
    await rename(path.join(tmp, file), path.join(debDir, file));
    // Older kernel packages are not needed again: images built from them keep their own copy.
    for (const other of await readdir(debDir)) {
      if (other !== file) await rm(path.join(debDir, other), { force: true });
    }
    return path.join(debDir, file);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function indexModules(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && entry.name.endsWith('.ko')) {
      files.set(moduleName(entry.name), path.join(entry.parentPath, entry.name));
    }
  }
  return files;
}

/** Adds a dynamically linked host binary and the shared libraries `ldd` lists for it. */
async function addHostBinary(tree: RootfsTree, hostPath: string, guestPath: string): Promise<void> {
  tree.add(guestPath, { kind: 'file', mode: 0o755, data: await readFile(hostPath) });
  let libs: string[];
  try {
    libs = parseLdd(await run(`listing the libraries of ${hostPath}`, 'ldd', [hostPath]));
  } catch (error) {
    if (error instanceof GuestBuildFailed) throw error;
    throw new GuestBuildFailed(`listing the libraries of ${hostPath}`, String(error));
  }
  for (const lib of libs) {
    if (!tree.has(lib)) tree.add(lib, { kind: 'file', mode: 0o755, data: await readFile(lib) });
  }
}

async function addRootfsFiles(tree: RootfsTree, kernelVersion: string, key: string): Promise<void> {
  const src = (name: string) => readFile(path.join(sourceDir, 'rootfs', name));
  for (const dir of ['/proc', '/sys', '/dev', '/run', '/tmp', '/root', '/etc/acpi']) {
    tree.add(dir, { kind: 'dir', mode: dir === '/tmp' ? 0o1777 : 0o755 });
  }
  // No /data here: without a disk, writes to /data fail instead of landing in guest RAM.
  // The kernel opens /dev/console for init before anything mounts devtmpfs.
  tree.add('/dev/console', { kind: 'chardev', mode: 0o600, major: 5, minor: 1 });
  tree.add('/var/run', { kind: 'symlink', target: '/run' });
  tree.add('/init', { kind: 'symlink', target: '/bin/busybox' });
  tree.add('/etc/inittab', { kind: 'file', mode: 0o644, data: await src('inittab') });
  tree.add('/etc/silobreak/boot.sh', { kind: 'file', mode: 0o755, data: await src('boot.sh') });
  tree.add('/etc/silobreak/stop.sh', { kind: 'file', mode: 0o755, data: await src('stop.sh') });
  tree.add('/sbin/shutdown', { kind: 'file', mode: 0o755, data: await src('shutdown.sh') });
  // busybox acpid runs ./PWRF/00000080 (relative to its -c directory) for the power button.
  tree.add('/etc/acpi/PWRF/00000080', { kind: 'file', mode: 0o755, data: await src('power-button.sh') });
  const text = (s: string) => ({ kind: 'file' as const, mode: 0o644, data: Buffer.from(s) });
  tree.add('/etc/passwd', text('root:x:0:0:root:/root:/bin/sh\n'));
  tree.add('/etc/group', text('root:x:0:\n'));
  // qemu-ga's guest-get-osinfo reads this.
  tree.add(
    '/etc/os-release',
    text(
      `ID=silobreak-guest\nNAME="Silobreak test guest"\nPRETTY_NAME="Silobreak test guest (kernel ${kernelVersion})"\n` +
        `VERSION_ID=${key}\n`,
    ),
  );
}

async function addBusybox(tree: RootfsTree): Promise<void> {
  tree.add('/bin/busybox', { kind: 'file', mode: 0o755, data: await readFile('/bin/busybox') });
  const applets = await run('listing busybox applets', '/bin/busybox', ['--list-full']);
  for (const rel of applets.split('\n').filter(Boolean)) {
    const guestPath = `/${rel}`;
    if (!tree.has(guestPath)) tree.add(guestPath, { kind: 'symlink', target: '/bin/busybox' });
  }
}

async function pruneOldImages(imagesDir: string, current: string): Promise<void> {
  const dirs = await Promise.all(
    (await readdir(imagesDir)).map(async (name) => ({
      name,
      mtime: (await stat(path.join(imagesDir, name))).mtimeMs,
    })),
  );
  const old = dirs.filter((d) => d.name !== current).sort((a, b) => b.mtime - a.mtime);
  for (const d of old.slice(KEEP_OLD_IMAGES))
    await rm(path.join(imagesDir, d.name), { recursive: true, force: true });
}

/** Work directories of builds that died without cleaning up (a running build's are fresh). */
async function removeAbandonedWork(cacheDir: string): Promise<void> {
  for (const name of await readdir(cacheDir)) {
    if (!name.startsWith('tmp-')) continue;
    const full = path.join(cacheDir, name);
    const { mtimeMs } = await stat(full);
    if (Date.now() - mtimeMs > ABANDONED_AFTER_MS) await rm(full, { recursive: true, force: true });
  }
}

/**
 * Builds the guest image, or reuses the cached one when the kernel package, the guest sources
 * and the host packages copied into it are unchanged. Safe to run concurrently: each build
 * works in its own temporary directory and publishes with a rename.
 */
export async function buildGuestImage(options: GuestBuildOptions = {}): Promise<BuiltGuestImage> {
  const log = options.log ?? (() => {});
  const cacheDir = guestCacheDir(options.cacheDir);
  const imagesDir = path.join(cacheDir, 'images');
  await mkdir(imagesDir, { recursive: true });
  await removeAbandonedWork(cacheDir);

  const pkg = pickKernelPackage(
    await run('choosing the kernel', 'apt-cache', [
      'search',
      '--names-only',
      '^linux-image-6\\.1\\.0-[0-9]+-amd64$',
    ]),
  );
  if (!pkg) {
    throw new GuestBuildFailed(
      'choosing the kernel',
      'apt-cache lists no linux-image-6.1.0-*-amd64: run apt-get update',
    );
  }
  const kernelVersion = pkg.slice('linux-image-'.length);
  const deb = await kernelDeb(cacheDir, pkg, log);
  const agentChoice = options.agentVersion ?? 'old';
  const key = createHash('sha256')
    .update(
      `${path.basename(deb)}\n${await hostPackageVersions()}\n${await hashSources()}\nagent=${agentChoice}`,
    )
    .digest('hex')
    .slice(0, 12);
  const dirName = `${kernelVersion}-${key}`;
  const imageDir = path.join(imagesDir, dirName);
  const currentFile = path.join(cacheDir, 'current.json');

  const cached = options.force ? undefined : await readManifest(path.join(imageDir, 'manifest.json'));
  if (cached) {
    await writeAtomically(currentFile, JSON.stringify(cached, null, 2));
    return { ...pick(cached), reused: true, initrdBytes: cached.initrdBytes, key };
  }

  const work = await mkdtemp(path.join(cacheDir, 'tmp-build-'));
  try {
    log(`unpacking ${path.basename(deb)}`);
    const unpacked = path.join(work, 'deb');
    await run('unpacking the kernel package', 'dpkg-deb', ['-x', deb, unpacked]);
    const vmlinuz = path.join(unpacked, 'boot', `vmlinuz-${kernelVersion}`);
    const modulesDir = [
      path.join(unpacked, 'lib/modules', kernelVersion),
      path.join(unpacked, 'usr/lib/modules', kernelVersion),
    ].find((d) => existsSync(d));
    if (!existsSync(vmlinuz) || !modulesDir) {
      throw new GuestBuildFailed(
        'unpacking the kernel package',
        `${path.basename(deb)} has no vmlinuz or modules for ${kernelVersion}`,
      );
    }

    const moduleFiles = await indexModules(path.join(modulesDir, 'kernel'));
    const infos = new Map<string, ModuleInfo>();
    const lookup = (name: string): ModuleInfo | undefined => {
      const file = moduleFiles.get(name);
      if (file && !infos.has(name)) infos.set(name, parseModinfo(readFileSync(file)));
      return infos.get(name);
    };
    let order: string[];
    try {
      order = resolveLoadOrder(GUEST_MODULES, lookup);
    } catch (error) {
      throw new GuestBuildFailed(
        'resolving kernel modules',
        error instanceof Error ? error.message : String(error),
      );
    }
    log(`modules: ${order.join(' ')}`);

    const tree = new RootfsTree();
    await addBusybox(tree);
    await addRootfsFiles(tree, kernelVersion, key);
    for (const name of order) {
      tree.add(`/lib/modules/${name}.ko`, {
        kind: 'file',
        mode: 0o644,
        data: await readFile(moduleFiles.get(name) ?? ''),
      });
    }
    tree.add('/lib/modules/load-order', {
      kind: 'file',
      mode: 0o644,
      data: Buffer.from(`${order.join('\n')}\n`),
    });
    if (agentChoice === 'current') {
      const { root } = await unpackAgentPackage(await mkdtemp(path.join(work, 'agent-')));
      await addHostBinary(tree, path.join(root, 'usr/sbin/qemu-ga'), '/usr/sbin/qemu-ga');
    } else {
      await addHostBinary(tree, '/usr/sbin/qemu-ga', '/usr/sbin/qemu-ga');
    }
    // mke2fs picks the filesystem type from the name it is called by.
    await addHostBinary(tree, '/sbin/mke2fs', '/sbin/mkfs.ext4');

    log('compiling workloads');
    for (const [source, guestPath] of [
      ['sb-dirty.c', GUEST_WORKLOADS.dirty],
      ['sb-diskwriter.c', GUEST_WORKLOADS.diskWriter],
      ['sb-iobench.c', GUEST_WORKLOADS.ioBench],
    ] as const) {
      const out = path.join(work, path.basename(guestPath));
      await run(`compiling ${source}`, 'gcc', [
        '-static',
        '-O2',
        '-s',
        '-Wall',
        '-o',
        out,
        path.join(sourceDir, 'workloads', source),
      ]);
      tree.add(guestPath, { kind: 'file', mode: 0o755, data: await readFile(out) });
    }

    // Uncompressed: unpacking a gzip initramfs cost the TCG guest 1-2 s more at boot than the
    // few MB it saves in the cache.
    log('writing initramfs');
    const initrd = tree.toCpio();
    const staged = path.join(work, 'image');
    await mkdir(staged);
    const bzImage = await readFile(vmlinuz);
    const config = await readFile(path.join(unpacked, 'boot', `config-${kernelVersion}`), 'utf8').catch(
      () => '',
    );
    const vmlinux = kernelSupportsPvh(config) ? await extractVmlinux(bzImage) : undefined;
    const kernelFile = vmlinux ? 'vmlinux' : 'vmlinuz';
    if (!vmlinux)
      log('kernel has no PVH entry or no xz payload: QEMU will boot the compressed bzImage (slower)');
    await writeFile(path.join(staged, kernelFile), vmlinux ?? bzImage);
    await writeFile(path.join(staged, 'initrd.cpio'), initrd);
    const manifest: Manifest = {
      kernel: path.join(imageDir, kernelFile),
      initrd: path.join(imageDir, 'initrd.cpio'),
      kernelVersion,
      kernelPackage: path.basename(deb),
      key,
      initrdBytes: initrd.length,
      modules: order,
      builtAt: new Date().toISOString(),
    };
    await writeFile(path.join(staged, 'manifest.json'), JSON.stringify(manifest, null, 2));
    await rm(imageDir, { recursive: true, force: true });
    try {
      await rename(staged, imageDir);
    } catch (error) {
      // Another build of the same inputs published first; its result is identical.
      if (!(await readManifest(path.join(imageDir, 'manifest.json')))) throw error;
    }
    await writeAtomically(currentFile, JSON.stringify(manifest, null, 2));
    await pruneOldImages(imagesDir, dirName);
    return { ...pick(manifest), reused: false, initrdBytes: initrd.length, key };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

const pick = (m: Manifest): GuestImage => ({
  kernel: m.kernel,
  initrd: m.initrd,
  kernelVersion: m.kernelVersion,
});

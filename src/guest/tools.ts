// The guest tools disk: an ISO 9660 image with the guest agent the fabric ships and its installer,
// built at set-up time from Debian packages (xorriso), hot-plugged into VMs by `vm tools insert`.
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { guestCacheDir } from './build.js';
import { GuestBuildFailed } from './errors.js';
import { parseLdd, run } from './host.js';

const sourceDir = import.meta.dirname;
/** The ISO's volume label: how a person finds the disk in the guest (e.g. blkid, /dev/disk/by-label). */
export const TOOLS_VOLUME_LABEL = 'SBTOOLS';

/**
 * Where the fabric's guest agent comes from: Debian 12 gets QEMU 10's from bookworm-backports
 * (the same suite as the hosts' QEMU), newer Debian releases their own.
 */
function agentPackageSpec(codename: string | undefined): string {
  return codename === 'bookworm' ? 'qemu-guest-agent/bookworm-backports' : 'qemu-guest-agent';
}

const ToolsManifest = z.strictObject({
  /** The guest agent's version as it reports it (guest-info), e.g. "10.0.2". */
  version: z.string(),
  packageVersion: z.string(),
  iso: z.string(),
  builtAt: z.string(),
});
export type ToolsManifest = z.infer<typeof ToolsManifest>;

/** "1:10.0.2+ds-2+deb13u1~bpo12+1" → "10.0.2": what qemu-ga -V and guest-info say. */
export function upstreamVersion(debianVersion: string): string {
  const match = /^(?:\d+:)?(\d+(?:\.\d+)*)/.exec(debianVersion);
  if (!match?.[1]) throw new Error(`not a Debian version: ${debianVersion}`);
  return match[1];
}

function toolsDir(cacheDir?: string): string {
  return path.join(guestCacheDir(cacheDir), 'tools');
}

/** The tools disk last built, or undefined when none was (or its ISO is gone). */
export async function findToolsDisk(options: { cacheDir?: string } = {}): Promise<ToolsManifest | undefined> {
  try {
    const parsed = ToolsManifest.safeParse(
      JSON.parse(await readFile(path.join(toolsDir(options.cacheDir), 'current.json'), 'utf8')),
    );
    return parsed.success && existsSync(parsed.data.iso) ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

async function osCodename(): Promise<string | undefined> {
  const text = await readFile('/etc/os-release', 'utf8').catch(() => '');
  return /^VERSION_CODENAME=(.*)$/m.exec(text)?.[1]?.replace(/"/g, '');
}

/** Downloads and unpacks the fabric's guest agent package into `dir/deb`; returns its Debian version. */
export async function unpackAgentPackage(dir: string): Promise<{ root: string; packageVersion: string }> {
  const spec = agentPackageSpec(await osCodename());
  await run('downloading the guest agent package', 'apt-get', ['download', '-q', spec], { cwd: dir });
  const deb = (await readdir(dir)).find((f) => f.endsWith('.deb'));
  if (!deb)
    throw new GuestBuildFailed('downloading the guest agent package', `apt-get left no .deb for ${spec}`);
  const packageVersion = (
    await run('reading the guest agent version', 'dpkg-deb', ['-f', path.join(dir, deb), 'Version'])
  ).trim();
  const root = path.join(dir, 'deb');
  await run('unpacking the guest agent package', 'dpkg-deb', ['-x', path.join(dir, deb), root]);
  return { root, packageVersion };
}

/**
 * Builds the tools disk (or reuses it when the agent package is unchanged): the agent binary, the
 * libraries it needs (the installer copies only those the guest lacks), VERSION and install.sh.
 */
export async function buildToolsDisk(
  options: { cacheDir?: string; log?: (line: string) => void } = {},
): Promise<ToolsManifest & { reused: boolean }> {
  const log = options.log ?? (() => {});
  const dir = toolsDir(options.cacheDir);
  await mkdir(dir, { recursive: true });
  const work = await mkdtemp(path.join(dir, 'tmp-'));
  try {
    let unpacked;
    try {
      unpacked = await unpackAgentPackage(work);
    } catch (error) {
      // Offline: the disk built before still serves.
      const current = await findToolsDisk(options);
      if (current) return { ...current, reused: true };
      throw error;
    }
    const { root, packageVersion } = unpacked;
    const version = upstreamVersion(packageVersion);
    const installer = await readFile(path.join(sourceDir, 'tools', 'install.sh'));
    const current = await findToolsDisk(options);
    const iso = path.join(dir, `silobreak-tools-${version}.iso`);
    if (current?.packageVersion === packageVersion && current.iso === iso)
      return { ...current, reused: true };
    log(`tools disk: guest agent ${version}`);
    const tree = path.join(work, 'iso');
    await mkdir(path.join(tree, 'lib'), { recursive: true });
    const binary = path.join(root, 'usr/sbin/qemu-ga');
    await copyFile(binary, path.join(tree, 'qemu-ga'));
    for (const lib of parseLdd(await run('listing the guest agent libraries', 'ldd', [binary])))
      await copyFile(lib, path.join(tree, 'lib', path.basename(lib)));
    await writeFile(path.join(tree, 'VERSION'), `${version}\n`);
    await writeFile(path.join(tree, 'install.sh'), installer, { mode: 0o755 });
    const staged = path.join(work, 'tools.iso');
    await run('writing the tools disk', 'xorriso', [
      '-as',
      'mkisofs',
      '-quiet',
      '-r',
      '-J',
      '-V',
      TOOLS_VOLUME_LABEL,
      '-o',
      staged,
      tree,
    ]);
    await rename(staged, iso);
    const manifest: ToolsManifest = { version, packageVersion, iso, builtAt: new Date().toISOString() };
    const tmp = path.join(work, 'current.json');
    await writeFile(tmp, JSON.stringify(manifest, null, 2));
    await rename(tmp, path.join(dir, 'current.json'));
    for (const other of await readdir(dir))
      if (other.endsWith('.iso') && path.join(dir, other) !== iso)
        await rm(path.join(dir, other), { force: true });
    return { ...manifest, reused: false };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

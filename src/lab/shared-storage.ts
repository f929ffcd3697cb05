import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { LabTimeout } from './errors.js';
import { spawnDetached } from './processes.js';
import { check, run, sleep } from './system.js';

/*
 * The lab's shared storage (issue 30): a `storage` namespace on the fabric running a file server,
 * mounted by every host from inside its own namespace, so a host's storage traffic crosses its own
 * fabric link and a cut link hangs its I/O as a hard NFS mount would.
 *
 * Why sftp and sshfs: the kernels this project runs on in its sandbox have no NFS client or server
 * and no NBD device (no modules), only FUSE. QEMU's own block-nfs/block-iscsi drivers could reach a
 * userspace server, but then a datastore is not a directory the agent and sanlock can use. OpenSSH's
 * sftp-server served over TCP (socat) and mounted with `sshfs -o directport` is a real network
 * filesystem with that property. In production a shared datastore is an NFS (or CephFS, GFS2)
 * mount at the same layout on every host; the agent only needs a directory.
 *
 * Each host also runs its own sanlock daemon (the lease manager libvirt and oVirt use), as it would
 * as a system service: in its namespace, with its own run directory, and without a watchdog device
 * (`-w 0`: this kernel has none; sanlock then fences by killing the processes that hold leases).
 */

/** The port of the lab's file server: NFS's, for a reader's sake (it speaks sftp). */
export const STORAGE_PORT = 2049;
const SFTP_SERVER = '/usr/lib/openssh/sftp-server';
/** Where hosts mount the storage: outside the lab directory, so walking the lab's files never enters a hung mount. */
export const LAB_MOUNTS_ROOT = '/var/lib/silobreak/lab-mounts';
/** Built from sanlock-rlimit-shim.c when sanlock cannot raise its own limits (a container without CAP_SYS_RESOURCE). */
const SHIM_SOURCE = path.join(import.meta.dirname, 'sanlock-rlimit-shim.c');
const SHIM_PATH = '/var/cache/silobreak/sanlock-rlimit-shim.so';

/**
 * sshfs options: no page, attribute or directory cache on any host, so what one host wrote the
 * next reads at once (QEMU opens a moved VM's image on the target while the source wrote it last),
 * and reconnect after a cut link heals.
 */
const SSHFS_OPTIONS = [
  `directport=${STORAGE_PORT}`,
  'reconnect',
  'direct_io',
  'dir_cache=no',
  'attr_timeout=0',
  'entry_timeout=0',
  'negative_timeout=0',
].join(',');

export const labMountsDir = (lab: string) => path.join(LAB_MOUNTS_ROOT, lab);
/** Where `host` mounts the lab's shared storage. */
export const sharedMountPath = (lab: string, host: string) => path.join(labMountsDir(lab), host, 'shared');
export const sanlockRunDir = (hostDir: string) => path.join(hostDir, 'sanlock');

/** Starts the file server in the storage namespace; resolves once it accepts connections. */
export async function startStorageServer(options: {
  namespace: string;
  address: string;
  exportDir: string;
  logPath: string;
}): Promise<number> {
  await mkdir(options.exportDir, { recursive: true });
  const pid = spawnDetached(
    [
      'ip',
      'netns',
      'exec',
      options.namespace,
      'socat',
      `TCP-LISTEN:${STORAGE_PORT},bind=${options.address},fork,reuseaddr`,
      `EXEC:${SFTP_SERVER} -d ${options.exportDir}`,
    ],
    options.logPath,
  );
  const deadline = Date.now() + 10_000;
  for (;;) {
    const listening = await run([
      'ip',
      'netns',
      'exec',
      options.namespace,
      'ss',
      '-Hltn',
      `sport = :${STORAGE_PORT}`,
    ]);
    if (listening.stdout.trim() !== '') return pid;
    if (Date.now() > deadline) throw new LabTimeout('the storage server', 10);
    await sleep(100);
  }
}

/** Mounts the storage at `mountPath` from inside `namespace` (the mount itself is the root namespace's). */
export async function mountSharedStorage(options: {
  namespace: string;
  serverAddress: string;
  exportDir: string;
  mountPath: string;
}): Promise<void> {
  await mkdir(options.mountPath, { recursive: true });
  await check([
    'nsenter',
    `--net=/run/netns/${options.namespace}`,
    'sshfs',
    '-o',
    SSHFS_OPTIONS,
    `${options.serverAddress}:${options.exportDir}`,
    options.mountPath,
  ]);
}

/** The mount points below `dir`, deepest first, from /proc/mounts. */
async function mountsBelow(dir: string): Promise<string[]> {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const text = await readFile('/proc/mounts', 'utf8').catch(() => '');
  return text
    .split('\n')
    .map((line) => line.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((p): p is string => p !== undefined && p.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
}

/**
 * Detaches every mount of the lab's hosts (lazily: a host whose link is cut would hang a plain
 * unmount) and removes their directories. Safe to run when nothing is mounted.
 */
export async function unmountLabStorage(lab: string): Promise<string[]> {
  const dir = labMountsDir(lab);
  const mounts = await mountsBelow(dir);
  for (const mount of mounts) await run(['umount', '-l', mount]);
  if (existsSync(dir)) await rm(dir, { recursive: true, force: true });
  return mounts;
}

/** True when this process may raise its resource limits (sanlock raises its memlock and rtprio limits). */
async function mayRaiseLimits(): Promise<boolean> {
  const status = await readFile('/proc/self/status', 'utf8');
  const eff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  const CAP_SYS_RESOURCE = 24n;
  return eff !== undefined && ((BigInt(`0x${eff}`) >> CAP_SYS_RESOURCE) & 1n) === 1n;
}

/**
 * The LD_PRELOAD sanlock needs here, or none. sanlock exits when it cannot set its memlock and
 * rtprio limits, which a container without CAP_SYS_RESOURCE refuses; the shim lets those two calls
 * succeed as no-ops (the limits stay as they are), and sanlock runs unchanged otherwise.
 */
async function sanlockPreload(): Promise<string | undefined> {
  if (await mayRaiseLimits()) return undefined;
  if (!existsSync(SHIM_PATH)) {
    await mkdir(path.dirname(SHIM_PATH), { recursive: true });
    const temp = `${SHIM_PATH}.${process.pid}`;
    await check(['cc', '-shared', '-fPIC', '-O2', '-o', temp, SHIM_SOURCE, '-ldl']);
    await check(['mv', temp, SHIM_PATH]);
  }
  return SHIM_PATH;
}

/**
 * The lab's stand-in for a host's hardware watchdog (sanlock's wdmd resets a host whose lease
 * renewal failed; this kernel has no watchdog device). sanlock kills the processes that hold
 * leases when renewals fail, but a QEMU waiting on its storage cannot die while the network
 * filesystem holds its I/O (a FUSE request already sent is waited out): a reset is what ends it, and
 * what keeps its queued writes from reaching the storage later. So when the host's sanlock has
 * been killing its leased processes for `graceSeconds` (its renewals failed for 8 I/O timeouts),
 * this "resets" the host's storage client: the sshfs process is killed, its pending requests fail,
 * and the QEMU dies, well before another host may take the lease (60 s later). A host that comes back mounts again
 * (remountSharedStorage), as a rebooted host would.
 */
export function startLabWatchdog(options: {
  host: string;
  runDir: string;
  mountPath: string;
  logPath: string;
  graceSeconds?: number;
}): number {
  const grace = options.graceSeconds ?? 5;
  const script = [
    'failing=0',
    'while sleep 1; do',
    `  if SANLOCK_RUN_DIR="$1" sanlock client status -D 2>/dev/null | grep -q 'killing_pids=1'; then`,
    '    failing=$((failing + 1))',
    `    if [ "$failing" -ge ${grace} ]; then`,
    '      if pkill -KILL -f "^sshfs .* $2\\$"; then echo "$(date -Is) $3: sanlock could not kill its leased processes: storage client reset"; fi',
    '    fi',
    '  else failing=0; fi',
    'done',
  ].join('\n');
  return spawnDetached(
    ['bash', '-c', script, 'lab-watchdog', options.runDir, options.mountPath, options.host],
    options.logPath,
  );
}

/** A host back from a reset mounts the storage again (its old mount is detached first). */
export async function remountSharedStorage(options: {
  namespace: string;
  serverAddress: string;
  exportDir: string;
  mountPath: string;
}): Promise<void> {
  await run(['umount', '-l', options.mountPath]);
  await mountSharedStorage(options);
}

/** Starts a host's sanlock daemon in its namespace; resolves once its socket answers. */
export async function startSanlock(options: {
  namespace: string;
  host: string;
  runDir: string;
  logPath: string;
}): Promise<number> {
  await mkdir(options.runDir, { recursive: true });
  const preload = await sanlockPreload();
  const pid = spawnDetached(
    [
      'nsenter',
      `--net=/run/netns/${options.namespace}`,
      'env',
      `SANLOCK_RUN_DIR=${options.runDir}`,
      ...(preload ? [`LD_PRELOAD=${preload}`] : []),
      'sanlock',
      'daemon',
      '-D',
      '-w',
      '0',
      '-U',
      'root',
      '-G',
      'root',
      '-e',
      options.host,
    ],
    options.logPath,
  );
  const deadline = Date.now() + 10_000;
  for (;;) {
    const status = await run(['env', `SANLOCK_RUN_DIR=${options.runDir}`, 'sanlock', 'client', 'status']);
    if (status.exitCode === 0) return pid;
    if (Date.now() > deadline) throw new LabTimeout(`sanlock of ${options.host}`, 10);
    await sleep(100);
  }
}

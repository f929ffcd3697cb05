import { run } from './host-exec.js';

/*
 * A virtual switch is a Linux bridge (made when missing, with its optional uplink attached);
 * each VM NIC is a persistent tap on it, made before QEMU starts and removed after it exits.
 */

export async function linkExists(name: string): Promise<boolean> {
  try {
    await run('ip', ['link', 'show', 'dev', name]);
    return true;
  } catch {
    return false;
  }
}

export async function ensureBridge(bridge: string, uplink: string | undefined): Promise<void> {
  if (!(await linkExists(bridge))) await run('ip', ['link', 'add', 'name', bridge, 'type', 'bridge']);
  await run('ip', ['link', 'set', 'dev', bridge, 'up']);
  if (uplink !== undefined) {
    await run('ip', ['link', 'set', 'dev', uplink, 'master', bridge]);
    await run('ip', ['link', 'set', 'dev', uplink, 'up']);
  }
}

export async function createTap(tap: string, bridge: string): Promise<void> {
  // A tap left over from a VM that died while no agent watched it is reused, not an error.
  if (!(await linkExists(tap))) await run('ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  await run('ip', ['link', 'set', 'dev', tap, 'master', bridge]);
  await run('ip', ['link', 'set', 'dev', tap, 'up']);
}

export async function deleteTap(tap: string): Promise<void> {
  if (await linkExists(tap)) await run('ip', ['link', 'del', 'dev', tap]);
}

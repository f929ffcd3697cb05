import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { ApiError, type AgentClient } from '../api/index.js';
import { findToolsDisk } from '../guest/index.js';
import { startLabAgent, waitForGuestAgent, type LabAgent } from './lab-agent.js';

/*
 * The guest tools disk against a real QEMU and a real (TCG) guest whose agent is Debian 12's
 * (older than the tools disk's): inserted into a running VM it appears in the guest as a block
 * device holding the installer; the installer upgrades the agent without a reboot and says
 * "already current" the second time; eject removes the device; a stopped VM gets the disk at its
 * next start. One agent process and one guest for the whole file.
 */

let lab: LabAgent;
let client: AgentClient;
let offered: string;

before(async () => {
  const tools = await findToolsDisk();
  assert.ok(tools, 'the set-up builds the tools disk (silobreak guest build)');
  offered = tools.version;
  lab = await startLabAgent({
    prefix: 'sb-tools-lab-',
    hostName: 'tools-a',
    token: 'tools-lab-token-0123456789',
  });
  client = lab.client;
});

after(() => lab.close());

/** Runs a shell command in the guest and returns its output. */
async function sh(vm: string, script: string): Promise<{ exitCode: number | undefined; out: string }> {
  const result = await client.guestExec(vm, ['/bin/sh', '-c', script], 60);
  return { exitCode: result.exitCode, out: `${result.stdout ?? ''}${result.stderr ?? ''}` };
}

/** The block devices the guest sees (vda is its data disk). */
async function guestDisks(vm: string): Promise<string[]> {
  const { out } = await sh(vm, 'ls /sys/block');
  return out.split(/\s+/).filter((d) => d.startsWith('vd'));
}

test('the host reports the version of its tools disk', async () => {
  assert.equal((await client.host()).toolsVersion, offered);
});

test('insert, install (upgrade, then already current), eject on a running guest; a stopped VM gets it at start', async (t) => {
  await client.createVm({
    name: 'tools1',
    vcpus: 1,
    memoryMiB: 256,
    disks: [{ sizeBytes: 64 * 2 ** 20 }],
    start: true,
  });
  const before = await waitForGuestAgent(client, 'tools1');
  t.diagnostic(`guest agent ${before.agentVersion}, tools disk ${offered}`);
  assert.notEqual(before.agentVersion, offered, 'the lab guest runs the older agent');
  assert.deepEqual(await guestDisks('tools1'), ['vda']);

  const insertedAt = Date.now();
  assert.equal((await client.insertTools('tools1')).toolsDisk, true);
  let disks: string[] = [];
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(500)) {
    disks = await guestDisks('tools1');
    if (disks.includes('vdb')) break;
  }
  assert.deepEqual(disks, ['vda', 'vdb'], 'the tools disk appears as a second block device');

  const install = await sh(
    'tools1',
    'mkdir -p /mnt/tools && mount -t iso9660 -o ro /dev/vdb /mnt/tools && sh /mnt/tools/install.sh',
  );
  t.diagnostic(install.out.trim());
  assert.equal(install.exitCode, 0, install.out);
  assert.match(install.out, new RegExp(`installed: ${before.agentVersion.replaceAll('.', '\\.')}`));
  assert.match(install.out, new RegExp(`offered: +${offered.replaceAll('.', '\\.')}`));
  assert.match(install.out, /installed [\d.]+; the guest agent restarts now/);

  let version = before.agentVersion;
  for (
    const deadline = Date.now() + 60_000;
    Date.now() < deadline && version !== offered;
    await sleep(1000)
  ) {
    version = await client.guestInfo('tools1').then(
      (g) => g.agentVersion,
      () => version,
    );
  }
  assert.equal(version, offered, 'the new agent answers');
  t.diagnostic(`insert to the new agent answering: ${((Date.now() - insertedAt) / 1000).toFixed(1)} s`);

  const again = await sh('tools1', 'sh /mnt/tools/install.sh');
  assert.match(again.out, /already current/);

  // A mounted disk is still released: the guest unplugs it, the mount goes stale.
  await sh('tools1', 'umount /mnt/tools');
  assert.equal((await client.ejectTools('tools1')).toolsDisk, false);
  assert.deepEqual(await guestDisks('tools1'), ['vda']);
  // Ejecting what is not there changes nothing.
  assert.equal((await client.ejectTools('tools1')).toolsDisk, false);

  await client.stopVm('tools1');
  assert.equal((await client.insertTools('tools1')).toolsDisk, true);
  await client.startVm('tools1');
  await waitForGuestAgent(client, 'tools1');
  assert.deepEqual(await guestDisks('tools1'), ['vda', 'vdb'], 'attached at the start');
  await client.stopVm('tools1');
  await client.deleteVm('tools1', true);
});

test('an unknown VM is a 404 naming it', async () => {
  await assert.rejects(
    client.insertTools('ghost'),
    (error) => error instanceof ApiError && error.code === 'vm-not-found',
  );
});

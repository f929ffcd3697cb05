// The agents' own clean-up of what a lost move leaves (agent migration/service.ts: the orphan
// sweep, and the journals a restarted agent adopts), made the way it happens: a live move of a
// busy guest interrupted mid-mirror by killing the manager, and by killing the manager and the
// target's agent (which comes back). Nobody asks the target about its incoming VM any more, so
// after the host's orphanMoveSeconds (set in the agents' configuration files, as a user would:
// 20 s here instead of 10 minutes) it removes that VM, its QEMU, disks and journal, and nothing
// else: another VM running on the target keeps its QEMU and its uptime, a stopped one its image,
// and the guest keeps running on its source, every record it wrote there intact.
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, test } from 'node:test';
import { AgentMigrationClient, ManagerClient, type Job } from './api/index.js';
import {
  labAgent,
  agentStateDir,
  createBusyVm,
  fileSha256,
  guestRecordCount,
  guestUptime,
  labCli,
  labDown,
  labWithManager,
  listenersIn,
  qemusIn,
  restoreLabFabric,
  restartLabAgent,
  restartLabManager,
  setLabAgentConfig,
  slowFabricLink,
  startGuestWorkloads,
  verifyGuestRecords,
  waitForPing,
  within,
  type Lab,
  type LabHost,
} from './lab/index.js';

const LAB = 'orph';
const VM = 'mover';
/** Another VM running on the target, and one stopped there: the sweep must leave both alone. */
const RUNNING = 'stay';
const STOPPED = 'idle';
/** The agents' orphan timeout, set in their configuration files. */
const ORPHAN_S = 20;
/** How often a manager following a live move asks its target about it (job.ts TARGET_TOUCH_MS). */
const TOUCH_S = 10;

let lab: Lab;
let api: ManagerClient;
let h1: LabHost;
let h2: LabHost;
let stoppedImage: string;
let stoppedSha: string;

const agentOf = (host: LabHost) => labAgent(host, 30_000);

/** What host2 holds besides a move: the running VM's QEMU and the stopped VM's image. */
interface Bystanders {
  qemuPid: number;
  uptime: number;
}

async function bystanders(): Promise<Bystanders> {
  const pid = [...qemusIn(h2)].find(([, name]) => name === RUNNING)?.[0];
  assert.ok(pid, `${RUNNING} runs on host2`);
  return { qemuPid: pid, uptime: await guestUptime(h2, RUNNING) };
}

/** The orphan is gone from host2 and nothing else is. */
async function assertOnlyOrphanGone(): Promise<void> {
  assert.deepEqual(
    (await agentOf(h2).listVms()).map((v) => `${v.name} ${v.state}`).sort(),
    [`${STOPPED} stopped`, `${RUNNING} running`],
    'host2 has its own VMs only',
  );
  assert.deepEqual([...qemusIn(h2).values()], [RUNNING], `only ${RUNNING}'s QEMU runs on host2`);
  assert.deepEqual(listenersIn(h2), [], 'no NBD server or migration port left on host2');
  assert.deepEqual(
    (await readdir(h2.datastorePath)).filter((f) => f.startsWith(`${VM}-`)),
    [],
    `no image of ${VM} left on host2`,
  );
  assert.deepEqual(
    await readdir(path.join(await agentStateDir(h2), 'migrations')).catch(() => []),
    [],
    'no journal left on host2',
  );
}

async function assertBystandersIntact(before: Bystanders): Promise<void> {
  assert.ok(qemusIn(h2).has(before.qemuPid), `${RUNNING}'s QEMU is the same process`);
  const up = await guestUptime(h2, RUNNING);
  assert.ok(up > before.uptime, `${RUNNING} kept running (uptime ${up} s, ${before.uptime} s before)`);
  assert.equal(await fileSha256(stoppedImage), stoppedSha, `${STOPPED}'s image is unchanged`);
}

/**
 * Starts the live move with the CLI over a 20 Mbit/s link (the 200 MiB mirror takes ~90 s, past
 * the orphan timeout) and waits until the mirror is seen running: the target's image has grown
 * past 16 MiB while the job is in mirror-disks. Returns the job then.
 */
async function moveAndWaitForMirror(): Promise<Job> {
  slowFabricLink(h1, '20mbit');
  const r = await labCli(lab, ['vm', 'move', VM, '--to', h2.name, '--detach', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const job = JSON.parse(r.stdout) as Job;
  for (const deadline = Date.now() + 300_000; ; await sleep(250)) {
    const now = await api.getJob(job.id);
    assert.ok(
      ['queued', 'running'].includes(now.state),
      `the move ended early: ${JSON.stringify(now.error)}`,
    );
    const files = await readdir(h2.datastorePath);
    const image = files.find((f) => f.startsWith(`${VM}-`));
    const grown = image
      ? await stat(path.join(h2.datastorePath, image)).then(
          (s) => s.blocks * 512,
          () => 0,
        )
      : 0;
    if (now.progress.phase === 'mirror-disks' && grown > 16 * 1024 * 1024) return now;
    assert.ok(Date.now() < deadline, 'the mirror never got going');
  }
}

/** After the orphan went: the source's own move ended, the guest runs on host1, the manager agrees. */
async function assertSourceKeptIt(
  job: Job,
  uptimeBefore: number,
  file: string,
  atLeast: number,
): Promise<void> {
  const source = new AgentMigrationClient(agentOf(h1).http);
  await within(60_000, async () => {
    const running = (await source.list()).filter((m) => m.state === 'running');
    assert.deepEqual(running, [], "host1's side of the move ended by itself");
  });
  assert.equal((await agentOf(h1).getVm(VM)).state, 'running');
  const up = await guestUptime(h1, VM);
  assert.ok(up > uptimeBefore, `the guest kept running (uptime ${up} s, ${uptimeBefore} s before)`);
  restartLabManager(lab);
  await within(60_000, async () => void (await api.info()));
  const ended = await api.waitForJob(job.id, 300_000);
  assert.equal(ended.state, 'failed', JSON.stringify(ended));
  assert.match(ended.error?.detail ?? '', /manager restarted while moving mover/);
  await within(60_000, async () => {
    const vm = await api.getVm(VM);
    assert.equal(vm.host, h1.name);
    assert.equal(vm.state, 'running');
  });
  // None lost of what was written before the strike (the verifier fails on fewer, or none).
  const verified = await verifyGuestRecords(h1, VM, [{ file, atLeast }]);
  console.log(`# records: ${verified.summary}`);
}

before(
  async () => {
    let hosts: LabHost[];
    ({ lab, api, hosts } = await labWithManager(LAB));
    [h1, h2] = hosts as [LabHost, LabHost];
    for (const host of [h1, h2]) await setLabAgentConfig(api, host, { orphanMoveSeconds: ORPHAN_S });
    await createBusyVm(lab, h1, VM, 200);
    const stay = await labCli(lab, [
      'vm',
      'create',
      RUNNING,
      '--host',
      h2.name,
      '--memory',
      '256M',
      '--disk',
      '1G',
      '--nic',
      'vmsw0',
      '--ip',
      lab.vmAddress(2).cidr,
      '--start',
    ]);
    assert.equal(stay.code, 0, stay.stderr);
    await waitForPing(lab, lab.vmAddress(2).ip);
    const idle = await labCli(lab, [
      'vm',
      'create',
      STOPPED,
      '--host',
      h2.name,
      '--memory',
      '128M',
      '--disk',
      '1G',
    ]);
    assert.equal(idle.code, 0, idle.stderr);
    stoppedImage = (await agentOf(h2).getVm(STOPPED)).disks[0]?.path ?? '';
    stoppedSha = await fileSha256(stoppedImage);
  },
  { timeout: 900_000 },
);

// A case that failed must not fail the next: link back, agents and manager running, no move left.
afterEach(
  async () => {
    await restoreLabFabric(lab, api, [h1, h2], 300_000);
  },
  { timeout: 600_000 },
);

after(
  async () => {
    if (!process.env.SB_KEEP_LAB) await labDown({ name: LAB });
  },
  { timeout: 300_000 },
);

test(
  'manager killed during the mirror: host2 removes the orphaned incoming VM after its orphan timeout, and nothing else',
  { timeout: 900_000 },
  async () => {
    const held = await bystanders();
    await startGuestWorkloads(h1, VM, '/data/orphan-manager');
    const upBefore = await guestUptime(h1, VM);
    const struck = await moveAndWaitForMirror();
    assert.equal(struck.progress.phase, 'mirror-disks', 'struck during the mirror');
    const written = await guestRecordCount(h1, VM, '/data/orphan-manager');
    process.kill(lab.manager?.pid ?? 0, 'SIGKILL');
    const killedAt = Date.now();
    await within(ORPHAN_S * 1000 + 60_000, () => assertOnlyOrphanGone());
    const goneMs = Date.now() - killedAt;
    console.log(`# the orphaned incoming VM was gone ${goneMs} ms after the manager died`);
    // The timeout runs from the manager's last word to the target, which comes every 10 s.
    assert.ok(goneMs >= (ORPHAN_S - TOUCH_S) * 1000 - 2000, `not before the orphan timeout (${goneMs} ms)`);
    slowFabricLink(h1, undefined);
    await assertBystandersIntact(held);
    await assertSourceKeptIt(struck, upBefore, '/data/orphan-manager', written);
    await assertOnlyOrphanGone();
  },
);

test(
  "target's agent and the manager killed during the mirror: the restarted agent adopts the move's journal and removes the orphan, and nothing else",
  { timeout: 900_000 },
  async () => {
    const held = await bystanders();
    await startGuestWorkloads(h1, VM, '/data/orphan-agent');
    const upBefore = await guestUptime(h1, VM);
    const struck = await moveAndWaitForMirror();
    assert.equal(struck.progress.phase, 'mirror-disks', 'struck during the mirror');
    const written = await guestRecordCount(h1, VM, '/data/orphan-agent');
    process.kill(lab.manager?.pid ?? 0, 'SIGKILL');
    process.kill(h2.pid ?? 0, 'SIGKILL');
    await sleep(2000);
    // VMs outlive their agent: the incoming QEMU still runs, its journal names it.
    assert.ok([...qemusIn(h2).values()].includes(VM), 'the incoming QEMU outlived its agent');
    restartLabAgent(h2);
    const restartedAt = Date.now();
    await within(ORPHAN_S * 1000 + 60_000, () => assertOnlyOrphanGone());
    const goneMs = Date.now() - restartedAt;
    console.log(`# the adopted orphan was gone ${goneMs} ms after host2's agent came back`);
    assert.ok(goneMs >= ORPHAN_S * 1000 - 2000, `not before the orphan timeout (${goneMs} ms)`);
    slowFabricLink(h1, undefined);
    await assertBystandersIntact(held);
    await assertSourceKeptIt(struck, upBefore, '/data/orphan-agent', written);
    await assertOnlyOrphanGone();
  },
);

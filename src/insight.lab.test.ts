import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { ManagerClient, type StorageIssue, type StorageRule } from './api/index.js';
import { startLabAgent, waitForGuestAgent, type LabAgent } from './agent/index.js';
import { startManager, type RunningManager } from './manager/index.js';

/*
 * The Storage Explorer against real parts: one agent with its datastore on a 1 GiB tmpfs (so it can
 * be filled), a real TCG guest, and a manager collecting every 2 s, all through the manager's API
 * as a user would. The guest's writes show as IOPS and latency; a datastore filled past its
 * threshold raises low capacity and the issue ends when the space is freed; free space shrinking at a
 * steady rate gets a days-until-full figure within 20 % of the truth; thin disks past the ratio
 * raise over-commitment; an old qcow2 (compat 0.10) beside new ones raises a format-version mismatch;
 * a guest filesystem filled to 96 % raises VM low disk space. Then the guest tools, from the same
 * statistics polls: the lab guest's older agent shows `outdated` with both versions, the move check
 * warns about it, the tools disk upgrades it to `current` without a reboot, and an agent killed in
 * the guest shows `not-answering`.
 */

const MiB = 2 ** 20;
const TOKEN = 'insight-lab-token-0123456789';
let lab: LabAgent;
/** A second host, only the target of a dry-run move. */
let other: LabAgent;
let manager: RunningManager;
let api: ManagerClient;
let dataDir: string;
let ds: string;

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 90_000): Promise<T> {
  for (const deadline = Date.now() + ms; ; await sleep(1000)) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
  }
}

const issue = (rule: StorageRule, subject: string) => async (): Promise<StorageIssue | undefined> =>
  (await api.listStorageIssues({ rule, limit: 100 })).items.find((i) => i.subject.name.includes(subject));

const datastoreRow = async () =>
  (await api.listStorageDatastores({ host: 'insight-a' })).items.find((d) => d.name === 'ds1');

before(async () => {
  lab = await startLabAgent({ prefix: 'sb-insight-lab-', hostName: 'insight-a', token: TOKEN });
  ds = path.join(lab.dir, 'ds1');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1G', 'sb-insight', ds]);
  dataDir = await mkdtemp(path.join(tmpdir(), 'sb-insight-manager-'));
  manager = await startManager({
    dataDir,
    statsIntervalSeconds: 2,
    reconcileIntervalSeconds: 2,
    log: () => {},
  });
  api = new ManagerClient(manager.url, manager.adminToken ?? '');
  await api.addHost(await lab.join());
  other = await startLabAgent({ prefix: 'sb-insight-lab-b-', hostName: 'insight-b', token: TOKEN });
  await api.addHost(await other.join());
  const created = await api.createVm({
    host: 'insight-a',
    spec: { name: 'busy', vcpus: 1, memoryMiB: 256, disks: [{ sizeBytes: 256 * MiB }], start: true },
  });
  assert.equal((await api.waitForJob(created.job.id, 120_000)).state, 'succeeded');
  await waitForGuestAgent(lab.client, 'busy');
});

after(async () => {
  await manager?.close();
  for (const vm of ['busy', 'old']) await lab?.client.stopVm(vm).catch(() => undefined);
  if (ds) execFileSync('umount', ['-l', ds]);
  await lab?.close();
  await other?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

test('a guest writing to its disk shows IOPS, throughput and latency', async (t) => {
  await lab.client.guestExec(
    'busy',
    ['/bin/sh', '-c', 'dd if=/dev/urandom of=/data/w bs=64k count=800 conv=fsync'],
    120,
  );
  const row = await until('write IOPS in the explorer', async () => {
    const disk = (await api.listStorageDisks({ q: 'busy', window: '15m' })).items[0];
    return disk && (disk.write.iops ?? 0) > 0 && (disk.write.avgLatencyMs ?? 0) > 0 ? disk : undefined;
  });
  t.diagnostic(
    `busy/${row.disk}: ${row.write.iops?.toFixed(1)} write IOPS, avg ${row.write.avgLatencyMs?.toFixed(2)} ms, p99 ${row.write.p99LatencyMs?.toFixed(2)} ms`,
  );
  assert.ok((row.write.bytesPerSecond ?? 0) > 0);
  assert.equal(row.formatVersion, '1.1');
});

test('a guest filesystem filled to 96 % raises VM low disk space', async () => {
  const fill =
    'set -- $(df -k /data | tail -1); need=$(( ($3 + $4) * 96 / 100 - $3 )); ' +
    '[ $need -gt 0 ] && dd if=/dev/zero of=/data/fill bs=1k count=$need 2>/dev/null; sync; df -k /data | tail -1';
  await lab.client.guestExec('busy', ['/bin/sh', '-c', fill], 120);
  const found = await until('vm-low-disk-space', issue('vm-low-disk-space', 'busy'));
  assert.equal(found.severity, 'critical');
  assert.ok((found.value ?? 0) >= 95, `value ${found.value}`);
});

test('thin disks provisioned past the datastore ratio raise over-commitment', async () => {
  // 256 MiB provisioned on 1 GiB is 0.25: the ratio set below it is crossed.
  await api.setStorageThresholds('insight-a', 'ds1', {
    overcommitWarningRatio: 0.1,
    overcommitCriticalRatio: 0.2,
  });
  const found = await until('over-commitment', issue('over-commitment', 'ds1'));
  assert.ok((found.value ?? 0) >= 0.2, `ratio ${found.value}`);
  await api.setStorageThresholds('insight-a', 'ds1', {});
});

test('a qcow2 image with compat 0.10 beside 1.1 raises a format-version mismatch', async () => {
  const created = await api.createVm({
    host: 'insight-a',
    spec: { name: 'old', vcpus: 1, memoryMiB: 128, disks: [{ sizeBytes: 64 * MiB }] },
  });
  assert.equal((await api.waitForJob(created.job.id, 60_000)).state, 'succeeded');
  const image = (await api.getVm('old')).disks[0]?.path;
  assert.ok(image);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', image, String(64 * MiB)]);
  const found = await until('format-version-mismatch', issue('format-version-mismatch', 'old'));
  assert.match(found.message, /0\.10/);
});

test('free space shrinking steadily: days until full within 20 % of the truth; filled past the threshold: low capacity, ended when freed', async (t) => {
  // A trend over the shortest window there is (36 s), which the filler's steady writes fill
  // entirely: not the guest's earlier burst. 18 samples (every 2 s) over at least 20 s.
  const windowSeconds = 36;
  await api.setStorageThresholds('insight-a', 'ds1', {
    trendMinSpanSeconds: 20,
    trendMinPoints: 5,
    trendWindowHours: windowSeconds / 3600,
  });
  const filler = path.join(ds, 'filler');
  const rate = 4 * MiB; // bytes per second, written in four steps a second
  const chunk = Buffer.alloc(rate / 4, 1);
  const first = await datastoreRow();
  assert.ok(first);
  const started = Date.now();
  for (let i = 0; i < (windowSeconds + 6) * 4; i++) {
    await appendFile(filler, chunk);
    await sleep(Math.max(0, started + (i + 1) * 250 - Date.now()));
  }
  const row = await until('a days-until-full figure', async () => {
    const d = await datastoreRow();
    return d?.daysUntilFull != null ? d : undefined;
  });
  // The truth: the free space left at the shrink rate the datastore really had (the filler's, and
  // whatever else wrote there), from its first and last samples.
  const shrinkRate =
    (first.freeBytes - row.freeBytes) / ((Date.parse(row.sampledAt) - Date.parse(first.sampledAt)) / 1000);
  t.diagnostic(`shrink rate ${(shrinkRate / MiB).toFixed(2)} MiB/s (the filler writes ${rate / MiB} MiB/s)`);
  const truthDays = row.freeBytes / shrinkRate / 86_400;
  t.diagnostic(`days until full ${row.daysUntilFull?.toExponential(3)}, truth ${truthDays.toExponential(3)}`);
  assert.ok(Math.abs((row.daysUntilFull ?? 0) - truthDays) <= 0.2 * truthDays);

  // Low capacity: the warning band set just above the free share; the filler pushes it below.
  const before = await datastoreRow();
  assert.ok(before?.freePercent != null);
  await api.setStorageThresholds('insight-a', 'ds1', {
    freeWarningPercent: before.freePercent - 5,
    freeCriticalPercent: 1,
  });
  await appendFile(filler, Buffer.alloc(Math.ceil(((before.capacityBytes * 10) / 100) | 0), 1));
  const open = await until('low-capacity', issue('low-capacity', 'ds1'));
  assert.equal(open.active, true);
  await rm(filler);
  const ended = await until('the low-capacity issue to end', async () => {
    const all = (await api.listStorageIssues({ state: 'all', rule: 'low-capacity' })).items;
    return all.find((i) => i.id === open.id && !i.active);
  });
  assert.ok(ended.endedAt);
});

test('guest tools: outdated with both versions, a warning on moves, upgraded to current from the tools disk, not answering when killed', async (t) => {
  const outdated = await until('a tools status', async () => {
    const vm = await api.getVm('busy');
    return vm.tools?.status ? vm : undefined;
  });
  const offered = (await api.getHost('insight-a')).toolsVersion;
  assert.ok(offered, 'the host reports its tools disk');
  assert.deepEqual(outdated.tools, {
    status: 'outdated',
    installed: outdated.tools?.installed,
    current: offered,
  });
  assert.ok(outdated.tools?.installed && outdated.tools.installed !== offered);
  assert.deepEqual(
    (await api.listVms({ tools: 'outdated' })).items.map((v) => v.name),
    ['busy'],
  );

  // The fleet-wide question is also one issue list: `storage issues --rule vm-tools`.
  const toolsIssue = await until('a vm-tools issue', issue('vm-tools', 'busy'));
  assert.match(toolsIssue.message, /older than insight-a's tools/);

  const plan = await api.planMove('busy', { to: 'insight-b' });
  const warning = plan.checks.find((c) => c.check === 'guest-tools');
  assert.equal(warning?.warning, true, JSON.stringify(plan.checks));

  const insertedAt = Date.now();
  const inserted = await api.insertVmTools('busy');
  assert.equal((await api.waitForJob(inserted.job.id, 60_000)).state, 'succeeded');
  assert.equal((await api.getVm('busy')).toolsDisk, true);
  const dev = await until('the tools disk in the guest', async () => {
    const r = await lab.client.guestExec('busy', ['/bin/sh', '-c', 'ls /sys/block'], 30);
    return /vdb/.test(r.stdout ?? '') ? 'vdb' : undefined;
  });
  const install = await lab.client.guestExec(
    'busy',
    ['/bin/sh', '-c', `mkdir -p /mnt/t && mount -t iso9660 -o ro /dev/${dev} /mnt/t && sh /mnt/t/install.sh`],
    60,
  );
  assert.match(install.stdout ?? '', /installed [\d.]+; the guest agent restarts now/);
  await until('tools current', async () =>
    (await api.getVm('busy')).tools?.status === 'current' ? true : undefined,
  );
  t.diagnostic(`insert to current: ${((Date.now() - insertedAt) / 1000).toFixed(1)} s`);
  const again = await lab.client.guestExec(
    'busy',
    ['/bin/sh', '-c', 'sh /mnt/t/install.sh; umount /mnt/t'],
    60,
  );
  assert.match(again.stdout ?? '', /already current/);
  const ejected = await api.ejectVmTools('busy');
  assert.equal((await api.waitForJob(ejected.job.id, 60_000)).state, 'succeeded');
  assert.equal((await api.getVm('busy')).toolsDisk, false);

  await lab.client
    .guestExec('busy', ['/bin/sh', '-c', 'kill $(cat /run/qemu-ga.pid)'], 30)
    .catch(() => undefined);
  await until('tools not answering', async () =>
    (await api.getVm('busy')).tools?.status === 'not-answering' ? true : undefined,
  );
});

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import type { ManagerClient, Recommendation } from './api/index.js';
import { waitForGuestAgent } from './agent/index.js';
import { startBeastFabric, type BeastFabric, type BeastFabricHost } from './beast-fabric.js';
import { GUEST_WORKLOADS, parseFioJson } from './guest/index.js';
import { LAB_PLACEMENT_SETTINGS, until } from './lab/index.js';

/*
 * Demand-driven placement against real parts (issue 18): three agents, host3 the Beast (its
 * datastore of class `fast`), a real TCG guest on host1 running fio, and a manager evaluating
 * every 2 s with short holds, all through the manager's API as a user would. Heavy random I/O in
 * the guest is recommended onto host3 in `recommend` mode and moved there in `automatic` mode
 * within the hold time plus one move, by actor `placement`; the guest measures its I/O before and
 * on the Beast (a gain is asserted when the other datastores carry an IOPS limit, as `lab up
 * --beast` gives them); once the load stops it goes home after the cool hold by a delta: two
 * moves, the day's budget; a load that then flaps on and off moves it no more.
 */

const MiB = 2 ** 20;
const TOKEN = 'placement-lab-token-0123456789';
let fabric: BeastFabric;
let api: ManagerClient;

/** The lab's short holds; the episode's two moves use up the day's budget. */
const SETTINGS = { ...LAB_PLACEMENT_SETTINGS, movesPerDay: 2 };

const guest = (argv: string[], timeoutSeconds = 120, detach = false) => {
  const on = fabric.agents.get(currentHost);
  assert.ok(on, `no lab agent for ${currentHost}`);
  return on.client.guestExec('busy', argv, timeoutSeconds, detach);
};
let currentHost: BeastFabricHost = 'host1';

const IOBENCH = [GUEST_WORKLOADS.ioBench, '--file', '/data/iobench', '--rw', 'randrw', '--size-mib', '32'];

/** A 15-second sb-iobench run in the guest (random 4 KiB, O_DIRECT): IOPS and p99 latency in ms. */
async function measure(): Promise<{ iops: number; p99Ms: number }> {
  const out = await guest([...IOBENCH, '--seconds', '15'], 120);
  assert.equal(out.exitCode, 0, out.stderr);
  const report = parseFioJson(out.stdout ?? '');
  return { iops: report.total.iops, p99Ms: (report.total.p99Ns ?? 0) / 1e6 };
}

/** Heavy random I/O in the background until stopped. */
const startLoad = () => guest([...IOBENCH, '--seconds', '1800'], 10, true);
const stopLoad = () => guest(['/usr/bin/killall', 'sb-iobench'], 30);

const placementMoves = async () =>
  (await api.listChanges({ actor: 'placement', limit: 100 })).items.filter((c) =>
    c.changes.some((f) => f.field === 'placement'),
  );

let before_: { iops: number; p99Ms: number };

before(async () => {
  fabric = await startBeastFabric('sb-placement-', TOKEN);
  api = fabric.api;
  const created = await api.createVm({
    host: 'host1',
    spec: { name: 'busy', vcpus: 1, memoryMiB: 256, disks: [{ sizeBytes: 256 * MiB }], start: true },
  });
  assert.equal((await api.waitForJob(created.job.id, 120_000)).state, 'succeeded');
  await waitForGuestAgent(fabric.agents.get('host1')?.client ?? assert.fail('no host1'), 'busy');
  await api.setPlacementSettings(SETTINGS);
  before_ = await measure();
});

after(async () => {
  await fabric?.close(['busy']);
});

test('recommend mode: heavy random I/O is recommended onto the fast class with its reason', async (t) => {
  assert.equal((await api.placementConfig()).mode, 'recommend');
  await startLoad();
  const rec = await until('a to-fast recommendation', async (): Promise<Recommendation | undefined> =>
    (await api.listRecommendations()).items.find((r) => r.vm === 'busy' && r.kind === 'to-fast'),
  );
  t.diagnostic(`recommendation: ${rec.reason.text}; target after: ${Math.round(rec.predicted.iops)} IOPS`);
  assert.deepEqual(rec.to, { host: 'host3', datastore: 'ds1', class: 'fast' });
  assert.ok((rec.reason.value ?? 0) >= SETTINGS.hotIops);
  assert.ok(rec.reason.heldSeconds >= SETTINGS.holdSeconds);
  // Recommend mode moves nothing by itself.
  assert.equal((await api.getVm('busy')).host, 'host1');
});

test('automatic mode: the VM moves to the Beast within the hold time plus one move, by actor placement', async (t) => {
  const started = Date.now();
  await api.setPlacementMode('automatic');
  await until('busy on host3', async () => ((await api.getVm('busy')).host === 'host3' ? true : undefined));
  currentHost = 'host3';
  t.diagnostic(`on the Beast ${((Date.now() - started) / 1000).toFixed(1)} s after automatic mode`);
  const moves = await placementMoves();
  assert.equal(moves.length, 1);
  assert.ok(
    moves[0]?.changes.some((f) => f.field === 'placement.reason' && String(f.after).startsWith('to-fast')),
  );
  // The VM runs on host3 from the switchover; its job ends after the clean-up that follows.
  const job = moves[0]?.jobId ? await api.waitForJob(moves[0].jobId, 120_000) : undefined;
  assert.equal(job?.createdBy, 'placement');
  assert.equal(job?.state, 'succeeded');
  assert.deepEqual((await api.vmPlacement('busy')).home, { host: 'host1', datastore: 'ds1' });
});

test('the guest measures more IOPS and a lower p99 latency on the Beast than at home', async (t) => {
  await stopLoad();
  const on = await measure();
  t.diagnostic(
    `before: ${before_.iops.toFixed(0)} IOPS, p99 ${before_.p99Ms.toFixed(2)} ms; on the Beast: ${on.iops.toFixed(0)} IOPS, p99 ${on.p99Ms.toFixed(2)} ms`,
  );
  assert.ok(on.iops > before_.iops, `IOPS ${on.iops} on the Beast, ${before_.iops} before`);
  assert.ok(on.p99Ms < before_.p99Ms, `p99 ${on.p99Ms} ms on the Beast, ${before_.p99Ms} ms before`);
});

test('with its load stopped it goes home after the cool hold: two placement moves in the episode', async (t) => {
  const stopped = Date.now();
  await until('busy back on host1', async () =>
    (await api.getVm('busy')).host === 'host1' ? true : undefined,
  );
  currentHost = 'host1';
  t.diagnostic(`home ${((Date.now() - stopped) / 1000).toFixed(1)} s after the load stopped`);
  assert.ok(Date.now() - stopped >= SETTINGS.coolHoldSeconds * 1000);
  const moves = await placementMoves();
  assert.equal(moves.length, 2);
  const home = moves.find((c) =>
    c.changes.some((f) => f.field === 'placement.reason' && String(f.after).startsWith('go-home')),
  );
  assert.ok(home?.jobId, 'a go-home move with its job');
  // The way home is a delta onto the copy the move out retained.
  const job = await api.waitForJob(home.jobId, 120_000);
  const stats = (job.result as { stats: { diskBytes?: number; deltaBytes?: number } }).stats;
  t.diagnostic(`home by a delta of ${((stats.deltaBytes ?? NaN) / MiB).toFixed(1)} MiB`);
  assert.ok(stats.deltaBytes !== undefined, 'the go-home move is a delta');
  assert.ok((stats.diskBytes ?? Infinity) < 128 * MiB, `disk bytes sent home: ${stats.diskBytes}`);
});

test('a load that flaps on and off gets no more moves than the daily budget allows', async (t) => {
  // The episode used the budget (2 moves a day); the load now comes and goes, hot each time.
  let hotSeen = 0;
  for (let cycle = 0; cycle < 2; cycle++) {
    await startLoad();
    for (const end = Date.now() + 45_000; Date.now() < end; await sleep(1000)) {
      const status = (await api.placementStatus()).vms.find((v) => v.vm === 'busy');
      if (status?.demand === 'hot') hotSeen++;
      assert.equal(status?.host, 'host1', 'the VM stays home: its budget is used');
    }
    await stopLoad();
    await sleep(20_000);
  }
  t.diagnostic(`seen hot in ${hotSeen} of ~90 polls`);
  assert.ok(hotSeen >= SETTINGS.holdSeconds, 'the load was hot for longer than the hold');
  assert.equal((await placementMoves()).length, SETTINGS.movesPerDay);
  assert.equal(
    (await api.listRecommendations()).items.filter((r) => r.vm === 'busy' && r.kind === 'to-fast').length,
    0,
  );
  await api.setPlacementMode('recommend');
});

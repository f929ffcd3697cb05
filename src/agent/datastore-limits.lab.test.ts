import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { AgentConfig, type AgentClient } from '../api/index.js';
import { GUEST_DATA_MOUNT, GUEST_WORKLOADS, parseFioJson, type FioResult } from '../guest/index.js';
import { startLabAgent, waitForGuestAgent, type LabAgent } from './lab-agent.js';

/*
 * Datastore limits against real QEMU and a real (TCG) guest: a VM on a limited datastore measures
 * about the limit's IOPS from inside the guest (sb-iobench: random 4 KiB reads and writes, O_DIRECT,
 * queue depth 1, fio-style JSON); lifting the limit at runtime (PATCH, a qom-set on the running
 * QEMU's throttle group) lets the same guest do clearly more, without a restart; the agent shows
 * the limits and keeps them in its configuration file. One agent and one guest for the file.
 */

/** Well below what a TCG guest does unthrottled here (~1,000+ IOPS), so both sides are clear. */
const LIMIT_IOPS = 150;
const RUN_SECONDS = 5;
const VM = 'limited';

let lab: LabAgent;
let client: AgentClient;

before(async () => {
  lab = await startLabAgent({
    prefix: 'sb-ds-limits-lab-',
    hostName: 'limits-a',
    token: 'ds-limits-lab-token-0123456789',
    datastoreLimits: { iops: LIMIT_IOPS },
  });
  ({ client } = lab);
});

after(() => lab.close());

/** Random 4 KiB I/O on a file of the guest's data disk for `seconds`; the parsed report. */
async function measure(seconds = RUN_SECONDS): Promise<FioResult> {
  const result = await client.guestExec(
    VM,
    [
      GUEST_WORKLOADS.ioBench,
      ...['--file', `${GUEST_DATA_MOUNT}/iobench`, '--rw', 'randrw', '--size-mib', '32'],
      ...['--seconds', String(seconds)],
    ],
    seconds + 120,
  );
  assert.equal(result.exitCode, 0, result.stderr);
  const report = parseFioJson(result.stdout ?? '');
  assert.equal(report.jobs[0]?.error, 0);
  return report;
}

test('the agent shows the datastore limits', async () => {
  const [ds] = await client.datastores();
  assert.deepEqual([ds?.name, ds?.class, ds?.limits], ['ds1', 'standard', { iops: LIMIT_IOPS }]);
});

let limited: FioResult | undefined;

test('a guest on the limited datastore measures about the limit', async () => {
  await client.createVm({
    name: VM,
    vcpus: 1,
    memoryMiB: 256,
    disks: [{ sizeBytes: 256 * 2 ** 20 }],
    start: true,
  });
  await waitForGuestAgent(client, VM);
  await measure(1); // lays the file out and warms up; not counted
  limited = await measure();
  const iops = limited.total.iops;
  // The throttle allows a burst of a tenth of a second's worth on top; ext4 adds a few writes.
  assert.ok(iops <= LIMIT_IOPS * 1.25, `${iops.toFixed(0)} IOPS with a limit of ${LIMIT_IOPS}`);
  assert.ok(iops >= LIMIT_IOPS * 0.6, `${iops.toFixed(0)} IOPS: the limit should be reached`);
});

test('lifting the limit at runtime: the running guest does clearly more, p99 latency drops', async () => {
  assert.ok(limited, 'the limited run came first');
  const lifted = await client.updateDatastore('ds1', { limits: null });
  assert.equal(lifted.limits, undefined);
  const free = await measure();
  assert.ok(
    free.total.iops > LIMIT_IOPS * 1.5,
    `${free.total.iops.toFixed(0)} IOPS unlimited vs ${limited.total.iops.toFixed(0)} limited`,
  );
  const [p99Before, p99After] = [limited.total.p99Ns, free.total.p99Ns];
  assert.ok(
    p99Before !== null && p99After !== null && p99After < p99Before,
    `p99 ${p99Before} -> ${p99After} ns`,
  );
  // Kept across a restart of the agent: the configuration file has the new (no) limits.
  const config = AgentConfig.parse(JSON.parse(await readFile(path.join(lab.dir, 'agent.json'), 'utf8')));
  assert.equal(config.datastores[0]?.limits, undefined);

  // Limited again: the same running QEMU follows.
  await client.updateDatastore('ds1', { limits: { iops: LIMIT_IOPS } });
  const again = await measure();
  assert.ok(again.total.iops <= LIMIT_IOPS * 1.25, `${again.total.iops.toFixed(0)} IOPS limited again`);
  await client.stopVm(VM);
});

// A rolling upgrade of a 3-host cluster as a user runs it (issue 30): `silobreak host upgrade
// --run --cluster c1` while two small guests on the shared datastore write records with fsync and
// dirty memory. Each host's agent runs from an installed copy of this tree, its QEMU found on its
// PATH, and its `upgrade.command` is the stand-in for the new release kept in this test (as in
// src/agent/upgrade.lab.test.ts): a new package.json over the installed one, a QEMU that says
// 10.9.0 (a wrapper around the real one), the agent restarted detached. The run drains each host
// (memory-only moves within the cluster), upgrades it, waits for it on its new versions, resumes
// it and goes on; at the end each guest goes back to its host. Every host reports the new
// versions and is out of maintenance; every guest runs on the same boot with its uptime going on
// and every record it wrote before the run verifies.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, cp, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ManagerClient, MoveResult, UpgradeRunResult } from './api/index.js';
import {
  assertGuestKeptRunning,
  guestLife,
  guestRecordCount,
  isAlive,
  labAgent,
  labCli,
  labDown,
  labUp,
  startGuestWorkloads,
  until,
  verifyGuestRecords,
  waitForPing,
  within,
  type GuestLife,
  type Lab,
  type LabHost,
  type RecordsFile,
} from './lab/index.js';

const LAB = 'uprun';
const ROOT = path.resolve(import.meta.dirname, '..');
const RECORDS = '/data/records';
/** Each guest and the host it starts on (host3 starts empty: the plan takes it first). */
const GUESTS = [
  { vm: 'g1', host: 'host1' },
  { vm: 'g2', host: 'host2' },
] as const;
const OLD_AGENT = '0.1.0';
const NEW = { agentVersion: '0.1.1', qemuVersion: '10.9.0' };

let lab: Lab;
let api: ManagerClient;
const cli = (args: string[]) => labCli(lab, args, 900_000);
const hostNamed = (name: string) => lab.hosts.find((h) => h.name === name)!;

/**
 * Puts `host`'s agent on an installed copy of this tree (its own package.json, a QEMU wrapper first
 * on its PATH) with the stand-in release as its upgrade command, and starts it there.
 */
async function install(host: LabHost): Promise<void> {
  const dir = path.join(host.dir, 'install');
  const file = (name: string) => path.join(dir, name);
  await mkdir(dir);
  for (const part of ['bin', 'src', 'package.json', 'tsconfig.json'])
    await cp(path.join(ROOT, part), file(part), {
      recursive: true,
      filter: (f) => !f.includes(`${path.sep}web${path.sep}dist`),
    });
  await symlink(path.join(ROOT, 'node_modules'), file('node_modules'));
  const pkg = JSON.parse(await readFile(file('package.json'), 'utf8')) as { version: string };
  assert.equal(pkg.version, OLD_AGENT, `the test bumps ${OLD_AGENT} to ${NEW.agentVersion}`);
  await writeFile(file('next-package.json'), JSON.stringify({ ...pkg, version: NEW.agentVersion }, null, 2));
  // The host's QEMU: the real one, but for --version once the upgrade wrote the version it stands for.
  await mkdir(file('qemu-bin'));
  await writeFile(
    file('qemu-bin/qemu-system-x86_64'),
    `#!/bin/sh\nif [ "$1" = --version ] && [ -f ${file('qemu-version')} ]; then\n` +
      `  echo "QEMU emulator version $(cat ${file('qemu-version')})"; exit 0\nfi\n` +
      `exec /usr/bin/qemu-system-x86_64 "$@"\n`,
  );
  await writeFile(
    file('start-agent.sh'),
    `#!/bin/sh\necho $$ > ${file('agent.pid')}\n` +
      `exec ip netns exec ${host.namespace} env PATH=${file('qemu-bin')}:$PATH ` +
      `${process.execPath} ${file('bin/silobreak.js')} agent --config ${host.configPath} >> ${host.logPath} 2>&1\n`,
  );
  // The stand-in for `apt-get install silobreak qemu-system-x86`: files replaced in place, then the
  // agent (this command's parent) restarted once the command has answered, detached.
  await writeFile(
    file('upgrade.sh'),
    `#!/bin/sh\nset -e\nagent=$PPID\necho "installing silobreak ${NEW.agentVersion} and QEMU ${NEW.qemuVersion}"\n` +
      `cp ${file('next-package.json')} ${file('package.json')}\n` +
      `echo ${NEW.qemuVersion} > ${file('qemu-version')}\n` +
      `setsid sh -c "sleep 1; kill $agent; while kill -0 $agent 2>/dev/null; do sleep 0.1; done; exec ${file('start-agent.sh')}" ` +
      `</dev/null >/dev/null 2>&1 &\necho "agent restart scheduled"\n`,
  );
  for (const f of ['qemu-bin/qemu-system-x86_64', 'start-agent.sh', 'upgrade.sh'])
    await chmod(file(f), 0o755);

  const config = JSON.parse(await readFile(host.configPath, 'utf8')) as Record<string, unknown>;
  await writeFile(
    host.configPath,
    JSON.stringify({ ...config, upgrade: { command: [file('upgrade.sh')] } }, null, 2) + '\n',
  );
  if (host.pid) {
    process.kill(host.pid, 'SIGTERM');
    const old = host.pid;
    await within(30_000, async () => assert.equal(await isAlive(old), false));
  }
  spawn(file('start-agent.sh'), [], { detached: true, stdio: 'ignore' }).unref();
  await within(120_000, async () => assert.equal((await api.reconcileHost(host.name)).state, 'connected'));
  host.pid = Number(await readFile(file('agent.pid'), 'utf8'));
}

before(
  async () => {
    lab = await labUp({ name: LAB, hosts: 3, sharedStorage: true, demo: false, accelerator: 'tcg' });
    api = new ManagerClient(lab.manager!.url, lab.manager!.token, 120_000);
    await Promise.all(lab.hosts.map(install));
    for (const args of [
      ['cluster', 'create', 'c1'],
      ...lab.hosts.map((h) => ['cluster', 'join', 'c1', h.name]),
    ]) {
      const run = await cli(args);
      assert.equal(run.code, 0, `${args.join(' ')}: ${run.stderr}`);
    }
    for (const h of lab.hosts)
      await until(
        `${h.name} in the lockspace`,
        async () => ((await labAgent(h).host()).lockspace?.state === 'joined' ? true : undefined),
        180_000,
      );
    for (const [i, g] of GUESTS.entries()) {
      const address = lab.vmAddress(i + 1);
      const created = await cli([
        'vm',
        'create',
        g.vm,
        '--host',
        g.host,
        '--memory',
        '256M',
        '--disk',
        '1G@shared',
        '--nic',
        'vmsw0',
        '--ip',
        address.cidr,
        '--start',
      ]);
      assert.equal(created.code, 0, created.stderr);
      await waitForPing(lab, address.ip);
    }
  },
  { timeout: 900_000 },
);

after(
  async () => {
    // SB_KEEP_LAB=1 keeps the lab (agents' logs, datastores) to look at after a failure.
    if (lab && !process.env.SB_KEEP_LAB) await labDown({ name: LAB });
  },
  { timeout: 300_000 },
);

test(
  'host upgrade --run --cluster c1: each host drained, upgraded, back on its new versions and resumed; the busy guests run on and come home with every record',
  { timeout: 1_200_000 },
  async () => {
    const lives = new Map<string, GuestLife>();
    const records = new Map<string, RecordsFile>();
    for (const g of GUESTS) {
      const h = hostNamed(g.host);
      await startGuestWorkloads(h, g.vm, RECORDS);
      lives.set(g.vm, await guestLife(h, g.vm));
      records.set(g.vm, { file: RECORDS, atLeast: await guestRecordCount(h, g.vm, RECORDS) });
    }
    const old = await api.getHost('host1');
    assert.equal(old.agentVersion, OLD_AGENT);
    assert.notEqual(old.qemuVersion, NEW.qemuVersion);

    const since = (await api.listChanges({ limit: 1 })).items[0]?.id ?? 0;
    const started = Date.now();
    const run = await cli(['host', 'upgrade', '--run', '--cluster', 'c1']);
    const seconds = (Date.now() - started) / 1000;
    console.log(
      `# host upgrade --run: ${seconds.toFixed(1)} s\n# ${run.stdout.trim().split('\n').slice(-12).join('\n# ')}`,
    );
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /succeeded: host-upgrade upgrade cluster c1/);
    assert.match(run.stdout, /Rolling upgrade done: 3 hosts upgraded one at a time/);

    const job = (await api.listJobs({ kind: 'host-upgrade', limit: 1 })).items[0];
    const result = UpgradeRunResult.parse(job?.result);
    // host3 has nothing to move: first; then host1 and host2 (one guest each, by name).
    assert.deepEqual(
      result.steps.map((s) => s.host),
      ['host3', 'host1', 'host2'],
    );
    for (const s of result.steps) {
      assert.deepEqual(s.after, NEW, `${s.host} came back on the new release`);
      assert.equal(s.before.agentVersion, OLD_AGENT);
      for (const m of s.moved) console.log(`# step ${s.step}: ${m.vm} ${m.from} -> ${m.to}`);
    }
    assert.deepEqual(result.steps[0]?.moved, []);
    assert.deepEqual(
      result.steps.slice(1).map((s) => s.moved.map((m) => m.vm)),
      [['g1'], ['g2']],
    );
    assert.deepEqual(result.returned.map((m) => `${m.vm} -> ${m.to}`).sort(), ['g1 -> host1', 'g2 -> host2']);
    assert.deepEqual(result.notReturned, []);
    // One host at a time: each is out of maintenance again before the next one enters it.
    const maintenance = (await api.listChanges({ kind: 'host', limit: 200 })).items
      .filter((c) => c.id > since && c.changes.some((f) => f.field === 'maintenance'))
      .reverse()
      .map(
        (c) =>
          `${c.object.name} ${c.changes.map((f) => `${String(f.before)}->${String(f.after)}`).join(' ')}`,
      );
    assert.deepEqual(maintenance, [
      'host3 none->in',
      'host3 in->none',
      'host1 none->entering',
      'host1 entering->in',
      'host1 in->none',
      'host2 none->entering',
      'host2 entering->in',
      'host2 in->none',
    ]);
    // Every drain move and every return moved memory only (the disks stay on the shared datastore).
    for (const m of [...result.steps.flatMap((s) => s.moved), ...result.returned]) {
      const move = await api.getJob(m.jobId);
      const stats = MoveResult.parse(move.result).stats;
      console.log(
        `# ${m.vm} ${m.from} -> ${m.to}: memory ${((stats.memoryBytes ?? 0) / 2 ** 20).toFixed(0)} MiB, disk ${stats.diskBytes ?? 0} bytes, downtime ${stats.downtimeMs ?? '?'} ms`,
      );
      assert.equal(stats.diskBytes ?? 0, 0, `${m.vm} ${m.from} -> ${m.to} mirrored no disk byte`);
      assert.ok((stats.memoryBytes ?? 0) > 0, `${m.vm} ${m.from} -> ${m.to} sent its memory`);
    }

    for (const h of lab.hosts) {
      const managed = await api.getHost(h.name);
      assert.deepEqual(
        [managed.agentVersion, managed.qemuVersion, managed.maintenance, managed.state],
        [NEW.agentVersion, NEW.qemuVersion, 'none', 'connected'],
        h.name,
      );
      const own = await labAgent(h).host();
      assert.deepEqual([own.agentVersion, own.qemuVersion], [NEW.agentVersion, NEW.qemuVersion]);
    }
    for (const g of GUESTS) {
      const home = hostNamed(g.host);
      const managed = await api.getVm(g.vm);
      assert.deepEqual([managed.host, managed.state], [g.host, 'running'], g.vm);
      await assertGuestKeptRunning(home, g.vm, lives.get(g.vm)!, { movedBack: true });
      const verified = await verifyGuestRecords(home, g.vm, [records.get(g.vm)!]);
      console.log(`# ${g.vm}: ${verified.summary}`);
    }
  },
);

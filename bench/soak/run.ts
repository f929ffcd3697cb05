// Soak benchmark of live moves: N consecutive moves back and forth of one VM whose guest writes
// records with fsync (1 MiB/s) and dirties memory (64 MiB/s), on a 2-host lab with its manager,
// moves started through the manager's API; every `--cut-every` moves the link is cut in the middle
// of the disk mirror (held there by a slow link) and restored once the move has failed.
// Reports moves ok / failed, median and p95 move time and QEMU downtime, the records verified at
// the end, and per host (and for the manager) the open file descriptors, processes, listening
// sockets, NBD exports and files before and after: a fabric that leaks grows them.
//
//   npm run bench:soak [-- --moves 200 --cut-every 20]
//
// Results: bench/soak/results/<time>.{txt,json}.
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readlink, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { ManagerClient, type Job, type MoveResult } from '../../src/api/index.js';
import { GUEST_WORKLOADS } from '../../src/guest/index.js';
import { labAgent, labDown, labUp, waitForPing, type Lab, type LabHost } from '../../src/lab/index.js';
import { renderSoak, type Footprint, type SoakReport } from './report.js';

const { values: args } = parseArgs({
  options: {
    moves: { type: 'string', default: '200' },
    'cut-every': { type: 'string', default: '20' },
  },
});
const MOVES = Number(args.moves);
const CUT_EVERY = Number(args['cut-every']);
const LAB = 'soakb';
const VM = 'soak';

const agentOf = (host: LabHost) => labAgent(host, 300_000);

async function guest(host: LabHost, command: string[], detach = false) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await agentOf(host).guestExec(VM, command, 600, detach);
    } catch (error) {
      if (attempt >= 40) throw error;
      await sleep(3000);
    }
  }
}

const sh = (cmd: string, argv: string[]) => execFileSync(cmd, argv, { encoding: 'utf8' });

/** Open fds of the processes of a namespace (or of one pid). */
async function openFds(pids: number[]): Promise<number> {
  let n = 0;
  for (const pid of pids) n += (await readdir(`/proc/${pid}/fd`).catch(() => [])).length;
  return n;
}

async function footprintOf(host: LabHost): Promise<Footprint> {
  const pids = sh('ip', ['netns', 'pids', host.namespace]).split('\n').filter(Boolean).map(Number);
  const listening = sh('ip', ['netns', 'exec', host.namespace, 'ss', '-ltnH']).split('\n').filter(Boolean);
  const exports = (await agentOf(host).listVms()).length;
  const files = (await readdir(host.datastorePath)).length;
  return {
    fds: await openFds(pids),
    processes: pids.length,
    listening: listening.length,
    vms: exports,
    files,
  };
}

async function managerFootprint(lab: Lab): Promise<Footprint> {
  const pid = lab.manager?.pid;
  const alive = pid !== undefined && (await readlink(`/proc/${pid}/exe`).catch(() => '')) !== '';
  return {
    fds: alive && pid !== undefined ? await openFds([pid]) : 0,
    processes: alive ? 1 : 0,
    listening: 1,
    vms: 0,
    files: (await readdir(path.join(lab.dir, 'manager'))).length,
  };
}

async function main(): Promise<void> {
  await labDown({ name: LAB });
  const lab = await labUp({ name: LAB, hosts: 2, demo: false, accelerator: 'tcg' });
  try {
    if (!lab.manager) throw new Error('no manager');
    const api = new ManagerClient(lab.manager.url, lab.manager.token, 300_000);
    const [h1, h2] = lab.hosts as [LabHost, LabHost];
    const created = await api.createVm({
      host: h1.name,
      spec: {
        name: VM,
        vcpus: 1,
        memoryMiB: 512,
        disks: [{ id: 'root', sizeBytes: 2 * 1024 ** 3 }],
        nics: [{ vswitch: 'vmsw0' }],
        guestIp: lab.vmAddress(1).cidr,
        start: true,
      },
    });
    await api.waitForJob(created.job.id, 600_000);
    await waitForPing(lab, lab.vmAddress(1).ip);
    await guest(h1, ['/bin/dd', 'if=/dev/urandom', 'of=/data/fill', 'bs=1M', 'count=200']);
    await guest(
      h1,
      [GUEST_WORKLOADS.diskWriter, 'write', '--file', '/data/soak', '--rate-kib', '1024'],
      true,
    );
    await guest(h1, [GUEST_WORKLOADS.dirty, '--rate-mib', '64', '--size-mib', '128'], true);
    await sleep(3000);
    const before = {
      [h1.name]: await footprintOf(h1),
      [h2.name]: await footprintOf(h2),
      manager: await managerFootprint(lab),
    };
    const report: SoakReport = {
      startedAt: new Date().toISOString(),
      moves: MOVES,
      cutEvery: CUT_EVERY,
      ok: 0,
      failed: 0,
      cutsRolledBack: 0,
      unexpected: [],
      moveMs: [],
      downtimeMs: [],
      cleanAfterCutMs: [],
      guestAgentAnswered: 0,
      records: '',
      before,
      after: {},
      loadavg: loadavg(),
    };
    for (let i = 1; i <= MOVES; i++) {
      const vm = await api.getVm(VM);
      const [from, to] = vm.host === h1.name ? [h1, h2] : [h2, h1];
      const cut = CUT_EVERY > 0 && i % CUT_EVERY === 0;
      if (cut)
        execFileSync('tc', [
          '-n',
          from.namespace,
          'qdisc',
          'replace',
          'dev',
          'fabric0',
          'root',
          'tbf',
          'rate',
          '40mbit',
          'burst',
          '64kb',
          'latency',
          '50ms',
        ]);
      const accepted = await api.moveVm(VM, { to: to.name });
      let job: Job = accepted.job;
      if (cut) {
        for await (const j of api.watchJob(job.id, 600_000)) {
          if (j.progress.phase === 'mirror-disks' || !['queued', 'running'].includes(j.state)) break;
        }
        await sleep(2000);
        execFileSync('ip', ['-n', to.namespace, 'link', 'set', 'fabric0', 'down']);
      }
      job = await api.waitForJob(job.id, 900_000);
      if (cut) {
        execFileSync('ip', ['-n', to.namespace, 'link', 'set', 'fabric0', 'up']);
        execFileSync('tc', ['-n', from.namespace, 'qdisc', 'del', 'dev', 'fabric0', 'root']);
        const back = Date.now();
        for (;;) {
          const clean =
            (
              await agentOf(to)
                .listVms()
                .catch(() => [{}])
            ).length === 0;
          if (clean) break;
          if (Date.now() - back > 120_000) {
            report.unexpected.push(`move ${i}: ${to.name} not clean 120 s after the cut ended`);
            break;
          }
          await sleep(1000);
        }
        report.cleanAfterCutMs.push(Date.now() - back);
        if (job.state === 'failed' && (await api.getVm(VM)).host === from.name) report.cutsRolledBack += 1;
        else report.unexpected.push(`move ${i} (cut): ${job.state} ${job.error?.detail ?? ''}`);
      } else if (job.state === 'succeeded') {
        report.ok += 1;
        // The guest agent answers on the target at once (one try, no retry): tooling relies on it.
        const answered = await agentOf(to)
          .guestExec(VM, ['/bin/true'], 30)
          .then((r) => r.exitCode === 0)
          .catch(() => false);
        if (answered) report.guestAgentAnswered += 1;
        else report.unexpected.push(`move ${i}: the guest agent did not answer at once on ${to.name}`);
        const result = job.result as MoveResult;
        report.moveMs.push(result.totalTimeMs);
        if (result.downtimeMs !== undefined) report.downtimeMs.push(result.downtimeMs);
      } else {
        report.failed += 1;
        report.unexpected.push(`move ${i}: ${job.state} ${job.error?.detail ?? ''}`);
      }
      process.stdout.write(
        `move ${i}/${MOVES} ${from.name}->${to.name}${cut ? ' (cut)' : ''}: ${job.state}` +
          ` ${job.state === 'succeeded' ? `${(job.result as MoveResult).totalTimeMs} ms` : ''}\n`,
      );
    }
    const vm = await api.getVm(VM);
    const host = vm.host === h1.name ? h1 : h2;
    await guest(host, ['/usr/bin/killall', 'sb-diskwriter', 'sb-dirty']);
    const verify = await guest(host, [GUEST_WORKLOADS.diskWriter, 'verify', '--file', '/data/soak']);
    report.records =
      `${verify.exitCode === 0 ? 'ok' : 'FAILED'}: ${(verify.stdout ?? '').replaceAll('\n', ' ').trim()} ${verify.stderr ?? ''}`.trim();
    await sleep(3000);
    report.after = {
      [h1.name]: await footprintOf(h1),
      [h2.name]: await footprintOf(h2),
      manager: await managerFootprint(lab),
    };
    report.loadavg = loadavg();
    const text = renderSoak(report);
    console.log(text);
    const dir = path.join(import.meta.dirname, 'results');
    await mkdir(dir, { recursive: true });
    const stamp = report.startedAt.slice(0, 19).replaceAll(':', '-');
    await writeFile(path.join(dir, `${stamp}.txt`), `${text}\n`);
    await writeFile(path.join(dir, `${stamp}.json`), `${JSON.stringify(report, null, 2)}\n`);
  } finally {
    await labDown({ name: LAB });
  }
}

await main();

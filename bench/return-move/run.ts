// Return moves that send only the delta (issue 17): a VM with an 8 GiB disk holding 4 GiB of data
// goes out (a full move, its home host keeping a retained copy), the guest rewrites 1 %, 5 % and
// 20 % of the data, and it comes back — each return's time, disk bytes and bytes on the wire
// beside the full move of the same VM in the same run, on the full link and on 1 Gbit/s (tc tbf,
// as bench/migration). Between two rounds the VM goes out again (a delta too: onto the copy the
// other host kept). Moves go through the manager's API of a 2-host TCG lab, as a user's would.
// After every move the guest reads back (O_DIRECT, from its disk) every stretch rewritten so far
// and the first 64 MiB of the original data: each must checksum as before the move, or the run
// fails (a delta that skipped or misplaced a range).
//
//   npm run bench:return-move [-- --links full,1gbit --rewrites 1,5,20 --data-gib 4 --disk-gib 8]
//
// Targets (issue 17), with 5 % rewritten: return time <= 0.15 x the full move's, disk bytes sent
// <= 1.1 x the rewritten bytes. Results: bench/return-move/results/<time>.{md,json}.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ManagerClient, MoveResult, type Job } from '../../src/api/index.js';
import {
  assertGuestDataUnchanged,
  guestDataChecksums,
  inGuest,
  labDown,
  labUp,
  waitForPing,
  type GuestData,
  type Lab,
  type LabHost,
} from '../../src/lab/index.js';
import { check, limitLink, sentBytes, writeResults } from '../lab-link.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const LAB = 'rbench';
const VM = 'traveller';
const RESULTS = path.join(import.meta.dirname, 'results');
const FILL_CHUNK = 64 * MiB;

const { values: args } = parseArgs({
  options: {
    links: { type: 'string', default: 'full,1gbit' },
    rewrites: { type: 'string', default: '1,5,20' },
    'data-gib': { type: 'string', default: '4' },
    'disk-gib': { type: 'string', default: '8' },
  },
});
const links = (args.links ?? '').split(',').filter(Boolean) as ('full' | '1gbit')[];
const rewrites = (args.rewrites ?? '').split(',').map(Number);
const dataBytes = Number(args['data-gib']) * GiB;
const diskBytes = Number(args['disk-gib']) * GiB;

const log = (msg: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

interface Measured {
  link: string;
  move: string;
  rewrittenBytes: number;
  totalMs: number;
  mirrorMs: number;
  diskBytes: number;
  deltaBytes: number | null;
  memoryBytes: number;
  wireBytes: number;
  downtimeMs: number | null;
  /** From the guest's resume on the target to the job's end: the source's clean-up and fold-back. */
  cleanUpMs: number | null;
  /** MiB of data read back in the guest after the move, each checksum as before it. */
  verifiedMiB: number;
}

let lab: Lab;
let api: ManagerClient;
/** What every move must carry unchanged: the data disk's stretches rewritten so far, and a control stretch never rewritten. */
const DATA_DISK = '/dev/vdb';
const checked: GuestData[] = [];

const hostOf = async (): Promise<[LabHost, LabHost]> => {
  const vm = await api.getVm(VM);
  const [a, b] = lab.hosts as [LabHost, LabHost];
  return vm.host === a.name ? [a, b] : [b, a];
};

async function move(label: string, link: string, rewrittenBytes: number, retain: boolean): Promise<Measured> {
  const [from, to] = await hostOf();
  const before = await guestDataChecksums(from, VM, checked);
  const sentBefore = await sentBytes(from);
  const accepted = await api.moveVm(VM, { to: to.name, retain });
  const job: Job = await api.waitForJob(accepted.job.id, 3_600_000);
  if (job.state !== 'succeeded') throw new Error(`${label}: ${JSON.stringify(job.error)}`);
  const wireBytes = (await sentBytes(from)) - sentBefore;
  await assertGuestDataUnchanged(to, VM, before);
  const r = MoveResult.parse(job.result);
  const resumed = r.stats.resumedAt ? Date.parse(r.stats.resumedAt) : undefined;
  const m: Measured = {
    link,
    move: label,
    rewrittenBytes,
    totalMs: r.totalTimeMs,
    mirrorMs: r.stats.mirrorTimeMs ?? 0,
    diskBytes: r.stats.diskBytes ?? 0,
    deltaBytes: r.stats.deltaBytes ?? null,
    memoryBytes: r.stats.memoryBytes ?? 0,
    wireBytes,
    downtimeMs: r.downtimeMs ?? null,
    cleanUpMs: resumed && job.finishedAt ? Date.parse(job.finishedAt) - resumed : null,
    verifiedMiB: checked.reduce((sum, c) => sum + ('mib' in c ? c.mib : 0), 0),
  };
  log(
    `${link} ${label}: ${(m.totalMs / 1000).toFixed(1)} s, disk ${(m.diskBytes / MiB).toFixed(1)} MiB, wire ${(m.wireBytes / MiB).toFixed(1)} MiB`,
  );
  return m;
}

/** The guest rewrites `bytes` of the data disk (random data, fsync'd), from `offset` on. */
async function rewrite(host: LabHost, offset: number, bytes: number): Promise<void> {
  const out = await inGuest(
    host,
    VM,
    [
      '/bin/dd',
      'if=/dev/urandom',
      `of=${DATA_DISK}`,
      'bs=1M',
      `seek=${offset / MiB}`,
      `count=${Math.round(bytes / MiB)}`,
      'conv=fsync,notrunc',
    ],
    { timeoutSeconds: 1800 },
  );
  if (out.exitCode !== 0) throw new Error(`rewrite: ${out.stderr ?? ''}`);
  const stretch = { device: DATA_DISK, offsetMiB: offset / MiB, mib: Math.round(bytes / MiB) };
  if (!checked.some((c) => JSON.stringify(c) === JSON.stringify(stretch))) checked.push(stretch);
}

async function releaseAll(): Promise<void> {
  for (const c of await api.listRetainedCopies()) await api.releaseRetainedCopy(c.id);
}

async function main(): Promise<void> {
  lab = await labUp({ name: LAB, hosts: 2, demo: false, accelerator: 'tcg', log });
  try {
    if (!lab.manager) throw new Error('the lab started no manager');
    api = new ManagerClient(lab.manager.url, lab.manager.token, 600_000);
    const [h1] = lab.hosts as [LabHost, LabHost];
    const created = await api.createVm({
      host: h1.name,
      spec: {
        name: VM,
        vcpus: 1,
        memoryMiB: 256,
        disks: [
          { id: 'root', sizeBytes: GiB },
          { id: 'data', sizeBytes: diskBytes },
        ],
        nics: [{ vswitch: 'vmsw0' }],
        guestIp: lab.vmAddress(1).cidr,
        start: false,
      },
    });
    const made = await api.waitForJob(created.job.id, 600_000);
    if (made.state !== 'succeeded') throw new Error(JSON.stringify(made.error));
    // The data: random 64 MiB chunks written into the image from the host before the first boot
    // (the guest formats only its first disk; the second is raw data to it).
    const image = (await api.getVm(VM)).disks.find((d) => d.id === 'data')?.path;
    if (!image) throw new Error('no data disk');
    const tmp = await mkdtemp(path.join(tmpdir(), 'sb-rbench-'));
    const chunk = path.join(tmp, 'chunk');
    await writeFile(chunk, randomBytes(FILL_CHUNK));
    const commands: string[] = [];
    for (let at = 0; at < dataBytes; at += FILL_CHUNK)
      commands.push('-c', `write -q -s ${chunk} ${at} ${FILL_CHUNK}`);
    await check(['qemu-io', '-f', 'qcow2', ...commands, image]);
    await rm(tmp, { recursive: true, force: true });
    log(`filled ${dataBytes / GiB} GiB of the ${diskBytes / GiB} GiB data disk`);
    const started = await api.startVm(VM);
    await api.waitForJob(started.job.id, 600_000);
    await waitForPing(lab, lab.vmAddress(1).ip);
    // The last 64 MiB of the data, a control stretch (with the default rounds none rewrites it).
    checked.push({ device: DATA_DISK, offsetMiB: (dataBytes - FILL_CHUNK) / MiB, mib: FILL_CHUNK / MiB });

    const rows: Measured[] = [];
    for (const link of links) {
      await limitLink(lab, link === '1gbit');
      try {
        await releaseAll();
        rows.push(await move('full move (out, home keeps a copy)', link, 0, true));
        let round = 0;
        for (const pct of rewrites) {
          const bytes = Math.round((dataBytes * pct) / 100 / MiB) * MiB;
          if (round > 0) rows.push(await move(`out again (delta)`, link, 0, false));
          const [here] = await hostOf();
          // Each round rewrites another part of the data (spread over it, not the same MiBs).
          await rewrite(here, Math.floor((round * dataBytes) / rewrites.length / MiB) * MiB, bytes);
          rows.push(await move(`back after ${pct} % rewritten`, link, bytes, false));
          round += 1;
        }
      } finally {
        await limitLink(lab, false);
      }
    }
    await report(rows);
  } finally {
    await labDown({ name: LAB });
  }
}

const mib = (b: number) => (b / MiB).toFixed(1);

async function report(rows: Measured[]): Promise<void> {
  const lines = [
    `# Return moves (bench/return-move), ${new Date().toISOString()}`,
    '',
    `VM: 256 MiB memory, ${diskBytes / GiB} GiB data disk holding ${dataBytes / GiB} GiB of random data (+ 1 GiB root); 2-host TCG lab, ${cpus().length} cores, load ${loadavg()[0]?.toFixed(1)} at the end.`,
    '',
    '| link | move | rewritten | total | x full | disk sent | delta | disk / rewritten | memory | on the wire | QEMU downtime | clean-up after resume | data read back the same |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const verdicts: string[] = [];
  for (const link of links) {
    const own = rows.filter((r) => r.link === link);
    const full = own[0];
    for (const r of own) {
      const timeRatio = full ? r.totalMs / full.totalMs : NaN;
      const diskRatio = r.rewrittenBytes ? r.diskBytes / r.rewrittenBytes : NaN;
      lines.push(
        `| ${link} | ${r.move} | ${r.rewrittenBytes ? `${mib(r.rewrittenBytes)} MiB` : '-'} | ${(r.totalMs / 1000).toFixed(1)} s | ${r === full ? '1.00' : timeRatio.toFixed(2)} | ${mib(r.diskBytes)} MiB | ${r.deltaBytes === null ? 'full copy' : `${mib(r.deltaBytes)} MiB`} | ${Number.isNaN(diskRatio) ? '-' : diskRatio.toFixed(2)} | ${mib(r.memoryBytes)} MiB | ${mib(r.wireBytes)} MiB | ${r.downtimeMs ?? '-'} ms | ${r.cleanUpMs === null ? '-' : `${(r.cleanUpMs / 1000).toFixed(1)} s`} | ${r.verifiedMiB} MiB |`,
      );
      if (r.move === 'back after 5 % rewritten') {
        verdicts.push(
          `- ${link}, 5 % rewritten: time ${timeRatio.toFixed(3)} x the full move (target <= 0.15: ${timeRatio <= 0.15 ? 'met' : 'missed'}); disk bytes ${diskRatio.toFixed(2)} x the rewritten bytes (target <= 1.1: ${diskRatio <= 1.1 ? 'met' : 'missed'})`,
        );
      }
    }
  }
  const text = [...lines, '', 'Targets:', ...verdicts, ''].join('\n');
  console.log(text);
  await writeResults(RESULTS, text, { dataBytes, diskBytes, rows });
}

await main();

// What the lab benchmarks share: host commands, the fabric link of a lab host (its interface, a
// 1 Gbit/s tc tbf limit, its raw TCP rate with iperf3) and the bytes it sent.
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fabricLinkBytes, type Lab, type LabHost } from '../src/lab/index.js';

export function run(
  command: string[],
  timeoutMs = 120_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0] as string, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export async function check(command: string[]): Promise<string> {
  const r = await run(command);
  if (r.code !== 0) throw new Error(`${command.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

export const inNs = (ns: string, command: string[]) => ['ip', 'netns', 'exec', ns, ...command];

/** The host namespace's interface holding its fabric address (where migration and NBD flow). */
export async function fabricInterface(host: LabHost): Promise<string> {
  const out = await check(inNs(host.namespace, ['ip', '-o', 'addr', 'show', 'to', host.fabricAddress]));
  const name = out.trim().split(/\s+/)[1];
  if (!name) throw new Error(`no interface with ${host.fabricAddress} in ${host.namespace}`);
  return name.split('@')[0] as string;
}

export async function limitLink(lab: Lab, on: boolean): Promise<void> {
  for (const host of lab.hosts) {
    const dev = await fabricInterface(host);
    if (on) {
      await check(
        inNs(host.namespace, [
          'tc',
          'qdisc',
          'add',
          'dev',
          dev,
          'root',
          'tbf',
          'rate',
          '1gbit',
          'burst',
          '256kb',
          'latency',
          '50ms',
        ]),
      );
    } else {
      await run(inNs(host.namespace, ['tc', 'qdisc', 'del', 'dev', dev, 'root']));
    }
  }
}

/** Raw TCP rate between the two host namespaces (bits/s), host1 -> host2. */
export async function measureLink(lab: Lab): Promise<number> {
  const [a, b] = lab.hosts as [LabHost, LabHost];
  const port = '5299';
  const server = spawn(
    'ip',
    inNs(b.namespace, ['iperf3', '-s', '-1', '-B', b.fabricAddress, '-p', port]).slice(1),
    {
      stdio: 'ignore',
    },
  );
  try {
    await sleep(700);
    const out = await check(
      inNs(a.namespace, ['iperf3', '-c', b.fabricAddress, '-p', port, '-t', '3', '-J']),
    );
    const parsed = JSON.parse(out) as { end?: { sum_received?: { bits_per_second?: number } } };
    const bits = parsed.end?.sum_received?.bits_per_second;
    if (typeof bits !== 'number') throw new Error('iperf3 gave no received rate');
    return bits;
  } finally {
    server.kill();
  }
}

/** Bytes a lab host has sent on its fabric interface so far (the kernel's counter). */
export function sentBytes(host: LabHost): Promise<number> {
  return Promise.resolve(fabricLinkBytes(host).tx);
}

/** Writes a benchmark's results as `<dir>/<UTC time>.md` (the table) and `.json` (the figures). */
export async function writeResults(dir: string, table: string, figures: unknown): Promise<void> {
  await mkdir(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  await writeFile(path.join(dir, `${stamp}.md`), table);
  await writeFile(path.join(dir, `${stamp}.json`), JSON.stringify(figures, null, 2));
}

// Talking to the build host: running tools, and reading their output.
import { execFile, spawn } from 'node:child_process';
import { GuestBuildFailed } from './errors.js';

/** Runs a program (no shell) and returns its stdout; a failure names the build step. */
export function run(
  step: string,
  file: string,
  args: string[],
  options: { cwd?: string } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { ...options, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          const why = stderr.trim().split('\n').slice(-3).join(' / ') || error.message;
          reject(new GuestBuildFailed(step, `${file} ${args.join(' ')}: ${why}`));
        } else resolve(stdout);
      },
    );
  });
}

/** Absolute paths of the shared libraries (and loader) in `ldd` output. */
export function parseLdd(output: string): string[] {
  const libs: string[] = [];
  for (const line of output.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(0x/.exec(line);
    if (m?.[1]) libs.push(m[1]);
    else if (/=>\s*not found/.test(line)) throw new Error(`missing shared library: ${line.trim()}`);
  }
  return libs;
}

/**
 * The newest generic Debian 6.1 kernel package among `apt-cache search --names-only` lines,
 * e.g. `linux-image-6.1.0-50-amd64 - Linux 6.1 for 64-bit PCs (signed)`; cloud/rt flavours and
 * debug/unsigned variants are skipped.
 */
export function pickKernelPackage(aptCacheSearch: string): string | undefined {
  let best: { name: string; abi: number } | undefined;
  for (const line of aptCacheSearch.split('\n')) {
    const m = /^linux-image-6\.1\.0-(\d+)-amd64\s/.exec(line);
    if (!m?.[1]) continue;
    const abi = Number(m[1]);
    if (!best || abi > best.abi) best = { name: `linux-image-6.1.0-${abi}-amd64`, abi };
  }
  return best?.name;
}

/** Runs a program with `input` on stdin and returns its stdout as bytes. */
export function runWithInput(step: string, file: string, args: string[], input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.on('error', (error) => reject(new GuestBuildFailed(step, `${file}: ${error.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new GuestBuildFailed(step, `${file} ${args.join(' ')} exited ${code}: ${err.trim()}`));
    });
    // A child that exits early closes stdin; its exit code tells what went wrong.
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

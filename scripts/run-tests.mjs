// Runs the test suites with node's built-in runner: pure unit tests in parallel, tests that boot
// real QEMU guests or build lab namespaces one file at a time (each guest wants a core).
// Prints each runner's TAP output and one combined closing line.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');

function findTests(dir, out = []) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) findTests(full, out);
    else if (name.endsWith('.test.ts')) out.push(path.relative(root, full));
  }
  return out.sort();
}

const all = ['src', 'bench', 'tools'].flatMap((dir) => findTests(path.join(root, dir)));
const isLab = (f) => f.endsWith('.lab.test.ts');
const filter = process.argv.slice(3);
const pick = (files) => (filter.length ? files.filter((f) => filter.some((p) => f.includes(p))) : files);
const suites = {
  unit: { files: pick(all.filter((f) => !isLab(f))), concurrency: 2 },
  lab: { files: pick(all.filter(isLab)), concurrency: 1 },
};
const mode = process.argv[2] ?? 'all';
const selected = mode === 'all' ? ['unit', 'lab'] : [mode];

function run(name) {
  const { files, concurrency } = suites[name];
  if (files.length === 0) return Promise.resolve({ pass: 0, fail: 0, code: 0 });
  console.log(`\n## ${name} tests: ${files.length} files`);
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--test', '--test-reporter=tap', `--test-concurrency=${concurrency}`, ...files],
      { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let pass = 0;
    let fail = 0;
    let buffered = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const m = /^# (pass|fail) (\d+)$/.exec(line);
        if (m?.[1] === 'pass') pass = Number(m[2]);
        else if (m?.[1] === 'fail') fail = Number(m[2]);
      }
    });
    child.on('close', (code) => resolve({ pass, fail, code: code ?? 1 }));
  });
}

let pass = 0;
let fail = 0;
let failedRun = false;
for (const name of selected) {
  const r = await run(name);
  pass += r.pass;
  fail += r.fail;
  if (r.code !== 0) failedRun = true;
}
console.log(`\n${pass} passed, ${fail} failed`);
process.exit(failedRun || fail > 0 ? 1 : 0);

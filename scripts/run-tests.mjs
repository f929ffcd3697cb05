// Runs the test suites with node's built-in runner: the pure unit tests in one parallel run, and
// each lab file (real QEMU guests, lab namespaces) in a run of its own, side by side as far as
// scripts/test-plan.mjs allows: the unit suite beside light lab files, two guest-booting files on
// the two cores, a timing-sensitive file with nothing but a light one beside it.
// Prints each run's TAP output when it ends, a table of durations and one closing line.
// The unit files that touch the manager's database run a second time on PostgreSQL (issue 31;
// SILOBREAK_TEST_DATABASE=postgres, each process its own cluster, src/manager/test-postgres.ts).
// `node scripts/run-tests.mjs [all|unit|lab] [filter...]`; SB_TEST_SERIAL=1 runs one at a time.
import { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { setInterval, setTimeout } from 'node:timers';
import { classOf, queueOrder, startable, UNIT_RUNS } from './test-plan.mjs';

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

const all = ['src', 'bench', 'tools', 'scripts'].flatMap((dir) => findTests(path.join(root, dir)));
const isLab = (f) => f.endsWith('.lab.test.ts');
const filter = process.argv.slice(3);
const pick = (files) => (filter.length ? files.filter((f) => filter.some((p) => f.includes(p))) : files);
const mode = process.argv[2] ?? 'all';
if (!['all', 'unit', 'lab'].includes(mode)) {
  console.error(`usage: node scripts/run-tests.mjs [all|unit|lab] [filter...] (not '${mode}')`);
  process.exit(2);
}
const unitFiles = mode === 'lab' ? [] : pick(all.filter((f) => !isLab(f)));
const labFiles = mode === 'unit' ? [] : pick(all.filter(isLab));
const serial = process.env.SB_TEST_SERIAL === '1';
/** Files whose managers or databases follow SILOBREAK_TEST_DATABASE: those that make them through the test helpers. */
const onPostgres = (f) =>
  /\b(testDatabase|startTestManager|testDb|testDatabaseKind)\(/.test(
    readFileSync(path.join(root, f), 'utf8'),
  );
const pgFiles = unitFiles.filter(onPostgres);

/** Busy and total jiffies of the whole machine so far (/proc/stat), to show how loaded a run was. */
function cpuTimes() {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    return { busy: total - fields[3] - (fields[4] ?? 0), total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

const t0 = Date.now();
const since = (t) => ((t - t0) / 1000).toFixed(0);
const children = new Set();
const title = (name) =>
  name === 'unit'
    ? `unit tests (${unitFiles.length} files)`
    : name === 'unit-pg'
      ? `unit tests on PostgreSQL (${pgFiles.length} files)`
      : name;
const kind = (name) => (UNIT_RUNS.includes(name) ? 'unit' : classOf(name));

/** One `node --test` run (the unit suite, or one lab file); resolves with its counts and timing. */
function run(name) {
  const files = name === 'unit' ? unitFiles : name === 'unit-pg' ? pgFiles : [name];
  const concurrency = UNIT_RUNS.includes(name) ? 2 : 1;
  const started = Date.now();
  const cpu = cpuTimes();
  console.log(`# start ${title(name)} (${kind(name)}) at +${since(started)} s`);
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--test', '--test-reporter=tap', `--test-concurrency=${concurrency}`, ...files],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: name === 'unit-pg' ? { ...process.env, SILOBREAK_TEST_DATABASE: 'postgres' } : process.env,
      },
    );
    children.add(child);
    const out = [];
    child.stdout.on('data', (chunk) => out.push(chunk));
    // stderr goes with the run's output (prefixed as TAP comments), not into the middle of another's.
    child.stderr.on('data', (chunk) => out.push(Buffer.from(`${chunk}`.replace(/^(?=.)/gm, '# stderr: '))));
    child.on('close', (code, signal) => {
      children.delete(child);
      const text = Buffer.concat(out).toString();
      const count = (what) => sumOf(text, what);
      const ended = Date.now();
      const used = cpuTimes();
      const busy = used.total > cpu.total ? (100 * (used.busy - cpu.busy)) / (used.total - cpu.total) : 0;
      resolve({
        name,
        text,
        pass: count('pass'),
        // A cancelled test (its file's hook failed or it timed out) did not pass either.
        fail: count('fail') + count('cancelled'),
        code: code ?? (signal ? 1 : 0),
        seconds: (ended - started) / 1000,
        startedAt: (started - t0) / 1000,
        busy,
      });
    });
  });
}

/** The summed `# <what> N` lines of a TAP stream (node prints one set per run). */
function sumOf(text, what) {
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^# ${what} (\\d+)$`, 'gm'))) sum += Number(m[1]);
  return sum;
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    // The runs' own after() hooks tear their labs down: pass the signal on and wait for them.
    for (const child of children) child.kill(signal);
    setTimeout(() => process.exit(130), 120_000).unref();
    const wait = setInterval(() => children.size === 0 && process.exit(130), 200);
    wait.unref();
  });
}

const queue = queueOrder([
  ...(unitFiles.length ? ['unit'] : []),
  ...(pgFiles.length ? ['unit-pg'] : []),
  ...labFiles,
]);
const running = new Map();
const results = [];
if (queue.length) {
  console.log(
    `\n## ${unitFiles.length} unit test files (${pgFiles.length} of them again on PostgreSQL), ${labFiles.length} lab files${serial ? ', one at a time' : ''}`,
  );
}
while (queue.length || running.size) {
  const now = serial ? (running.size ? [] : queue.slice(0, 1)) : startable(queue, [...running.keys()]);
  for (const name of now) {
    queue.splice(queue.indexOf(name), 1);
    running.set(name, run(name));
  }
  const done = await Promise.race(running.values());
  running.delete(done.name);
  results.push(done);
  const head = `${title(done.name)}: ${done.pass} passed, ${done.fail} failed, ${done.seconds.toFixed(1)} s`;
  console.log(`\n## ${head}`);
  process.stdout.write(done.text.endsWith('\n') || !done.text ? done.text : `${done.text}\n`);
  if (done.code !== 0 && done.fail === 0) console.log(`# ${title(done.name)}: exited with code ${done.code}`);
}

if (results.length) {
  console.log(
    `\n# durations (class, started at, took, machine busy meanwhile), wall ${since(Date.now())} s:`,
  );
  for (const r of [...results].sort((a, b) => a.startedAt - b.startedAt)) {
    console.log(
      `#   ${title(r.name).padEnd(46)} ${kind(r.name).padEnd(6)} +${r.startedAt.toFixed(0).padStart(4)} s ` +
        `${r.seconds.toFixed(1).padStart(6)} s  ${r.busy.toFixed(0).padStart(3)} %`,
    );
  }
}
const pass = results.reduce((s, r) => s + r.pass, 0);
const fail = results.reduce((s, r) => s + r.fail, 0);
const failedRun = results.some((r) => r.code !== 0);
console.log(`\n${pass} passed, ${fail} failed`);
process.exit(failedRun || fail > 0 ? 1 : 0);

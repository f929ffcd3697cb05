// How the test runs share this machine (README "Tests"): each lab file's class, and the rule for
// which runs may go side by side. Pure data and logic; scripts/run-tests.mjs does the running.

/**
 * Every *.lab.test.ts by the load it puts on the machine and how much load it tolerates:
 * - `timing`: it measures or depends on timing (ping gaps, downtime, throttles, rates, the
 *   compression choice, placement holds and windows), so it runs with no other guest-booting run
 *   beside it;
 * - `guest`: it boots TCG guests but asserts nothing timing-sensitive (a fault test holds its
 *   phase by a slow link and checks the phase it struck, so a busier machine only makes the phase
 *   longer), so two may share the machine's two cores;
 * - `waiting`: timing-sensitive too, but its time goes in real-time holds and windows (placement's
 *   streaks, schedules, budgets) with a few throttled guests, about 15 % of the machine: two such
 *   files may share it, with nothing beside them but a light file;
 * - `light`: it boots no running guest (a paused QEMU, a KVM probe waiting out its deadline), so it
 *   may run beside anything, the unit suite too.
 * `seconds` is the file's wall time in a full run here (the runner prints them; files from other
 * branches estimated); it only orders the queue (longest first).
 * A lab file missing here is treated as `timing` (safe, but slow): add it. Files still on their way
 * (other branches) may be listed before they land.
 */
export const LAB_FILES = Object.freeze({
  'src/agent/accelerator.lab.test.ts': { class: 'light', seconds: 34 },
  'src/agent/migration/cold.lab.test.ts': { class: 'light', seconds: 40 },
  'src/qmp/qmp.lab.test.ts': { class: 'light', seconds: 2 },

  'src/agent/agent.lab.test.ts': { class: 'guest', seconds: 20 },
  'src/agent/migration/delta.lab.test.ts': { class: 'guest', seconds: 39 },
  'src/agent/migration/netfault.lab.test.ts': { class: 'guest', seconds: 60 },
  'src/agent/migration/routes.lab.test.ts': { class: 'guest', seconds: 20 },
  'src/agent/stats.lab.test.ts': { class: 'guest', seconds: 34 },
  'src/agent/tools.lab.test.ts': { class: 'guest', seconds: 15 },
  'src/agent/upgrade.lab.test.ts': { class: 'guest', seconds: 10 },
  'src/cli/cli.lab.test.ts': { class: 'guest', seconds: 103 },
  'src/cluster.lab.test.ts': { class: 'guest', seconds: 215 },
  'src/cold-faults.lab.test.ts': { class: 'guest', seconds: 150 },
  'src/console.lab.test.ts': { class: 'guest', seconds: 90 },
  'src/db-failover.lab.test.ts': { class: 'guest', seconds: 120 },
  'src/delta-move.lab.test.ts': { class: 'guest', seconds: 146 },
  'src/drain.lab.test.ts': { class: 'guest', seconds: 45 },
  'src/faults.lab.test.ts': { class: 'guest', seconds: 285 },
  'src/guest/guest.lab.test.ts': { class: 'guest', seconds: 40 },
  'src/insight.lab.test.ts': { class: 'guest', seconds: 95 },
  'src/managers.lab.test.ts': { class: 'guest', seconds: 95 },
  'src/memory-move.lab.test.ts': { class: 'guest', seconds: 150 },
  'src/lab/down-all.lab.test.ts': { class: 'guest', seconds: 7 },
  'src/lab/lab.lab.test.ts': { class: 'guest', seconds: 14 },
  'src/manager/manager.lab.test.ts': { class: 'guest', seconds: 45 },
  'src/orphans.lab.test.ts': { class: 'guest', seconds: 100 },
  'src/quickstart.lab.test.ts': { class: 'guest', seconds: 45 },
  'src/upgrade-run.lab.test.ts': { class: 'guest', seconds: 100 },

  'src/agent/datastore-limits.lab.test.ts': { class: 'timing', seconds: 25 },
  'src/agent/migration/compression.lab.test.ts': { class: 'timing', seconds: 55 },
  'src/agent/migration/engine.lab.test.ts': { class: 'timing', seconds: 38 },
  'src/links.lab.test.ts': { class: 'timing', seconds: 90 },
  'src/move.lab.test.ts': { class: 'timing', seconds: 170 },

  'src/placement-competing.lab.test.ts': { class: 'waiting', seconds: 217 },
  'src/placement.lab.test.ts': { class: 'waiting', seconds: 318 },
});

/**
 * The machine's cores; a `guest` or `waiting` run takes one, a `timing` run (and the unit suite)
 * all of them.
 */
export const CORES = 2;
const CORES_TAKEN = { light: 0, guest: 1, waiting: 1, timing: CORES };

/** The unit suite's runs: on SQLite, and the files touching the database again on PostgreSQL. */
export const UNIT_RUNS = ['unit', 'unit-pg'];

/** The class of a test run: the unit suite takes every core but tolerates light lab files. */
export function classOf(file) {
  if (UNIT_RUNS.includes(file)) return 'timing';
  return LAB_FILES[file]?.class ?? 'timing';
}

/** May a run of class `next` start while runs of the classes `running` go on? */
export function fits(next, running) {
  // Light runs go one at a time, beside anything.
  if (next === 'light') return !running.includes('light');
  // A waiting file shares the machine only with another waiting file (and a light one).
  const others = running.filter((c) => c !== 'light');
  if (next === 'waiting' ? others.some((c) => c !== 'waiting') : others.includes('waiting')) return false;
  const taken = running.reduce((sum, c) => sum + CORES_TAKEN[c], 0);
  return taken + CORES_TAKEN[next] <= CORES;
}

/**
 * The order runs are offered in: the unit suite and the light files first (they overlap), then the
 * waiting files two at a time, the timing files one by one, then the guest files two at a time,
 * longest first so that both lanes end close together.
 */
export function queueOrder(runs) {
  const rank = (r) =>
    UNIT_RUNS.includes(r)
      ? UNIT_RUNS.indexOf(r) / 2
      : { light: 1, waiting: 2, timing: 3, guest: 4 }[classOf(r)];
  const seconds = (r) => LAB_FILES[r]?.seconds ?? 0;
  return [...runs].sort((a, b) => rank(a) - rank(b) || seconds(b) - seconds(a) || a.localeCompare(b));
}

/** The runs to start now: the first in `queue` order that fit beside `running` and each other. */
export function startable(queue, running) {
  const classes = running.map(classOf);
  const start = [];
  for (const run of queue) {
    const c = classOf(run);
    if (fits(c, classes)) {
      start.push(run);
      classes.push(c);
    }
  }
  return start;
}

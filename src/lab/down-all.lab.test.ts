import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { z } from 'zod';
import { run } from './system.js';

/*
 * `lab down --all` removes every lab, also one known only by its namespaces and links. The scenario
 * runs in private network and mount namespaces (a fresh /run/netns and /var/lib/silobreak), so
 * --all cannot reach labs outside it (and on failure the scenario removes its own labs the same way).
 */

const SCENARIO = path.join(import.meta.dirname, 'down-all.scenario.ts');

const Report = z.object({
  listed: z.array(z.object({ name: z.string(), index: z.number().nullable(), agentsRunning: z.number() })),
  reports: z.array(
    z.object({
      name: z.string(),
      killedPids: z.array(z.number()),
      namespaces: z.array(z.string()),
      links: z.array(z.string()),
    }),
  ),
  qemuPid: z.number(),
  after: z.object({
    namespaces: z.array(z.string()),
    links: z.array(z.string()),
    labDirs: z.array(z.string()),
    claims: z.array(z.string()),
    alive: z.number(),
  }),
});

test(
  'lab down --all removes every lab, including a crashed one without its directory',
  { timeout: 600_000 },
  async () => {
    const isolate = [
      'mkdir -p /run/netns /var/lib/silobreak',
      'mount -t tmpfs lab-netns /run/netns',
      'mount -t tmpfs lab-state /var/lib/silobreak',
      'ip link set lo up',
      'exec "$0" --import tsx "$1"',
    ].join(' && ');
    const result = await run([
      'unshare',
      '--net',
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      isolate,
      process.execPath,
      SCENARIO,
    ]);
    assert.equal(result.exitCode, 0, `scenario failed:\n${result.stderr}`);
    const report = Report.parse(JSON.parse(result.stdout));

    assert.deepEqual(
      report.listed.map((l) => [l.name, l.index === null ? 'leftover' : 'up', l.agentsRunning]),
      [
        ['alla', 'up', 1],
        ['allb-with-a-long-name', 'leftover', 0],
      ],
    );
    const crashed = report.reports.find((r) => r.name === 'allb-with-a-long-name');
    assert.ok(crashed, 'the crashed lab was found by its namespaces');
    assert.equal(crashed.namespaces.length, 3);
    assert.ok(crashed.killedPids.includes(report.qemuPid), 'its orphaned QEMU was stopped');
    assert.deepEqual(report.after, { namespaces: [], links: [], labDirs: [], claims: [], alive: 0 });
  },
);

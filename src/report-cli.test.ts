// `silobreak report` end to end: the CLI (as a user runs it) against a real in-process manager
// (SQLite in a temp dir) whose change log and move jobs hold a week of activity. It writes the
// report file into the temp dir: <tmp>/sb-report-cli-*/week.html (kept with SILOBREAK_KEEP_REPORT=1).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { ManagerClient, type MoveResult } from './api/index.js';
import { startManager, testDatabase, type RunningManager } from './manager/index.js';

const bin = path.join(import.meta.dirname, '../bin/silobreak.js');
let dir: string;
let manager: RunningManager;
let admin: ManagerClient;

const hoursAgo = (h: number) => new Date(Date.now() - h * 3_600_000).toISOString();
const vmId = '00000000-0000-4000-8000-000000000001';
const vmName = 'web1';
const GiB = 2 ** 30;

/** A vm-move job as the job runner leaves it; moves need agents, so the rows are written directly. */
async function insertMoveJob(
  state: 'succeeded' | 'failed' | 'running',
  finishedHoursAgo: number,
  fields: { result?: MoveResult; error?: { code: string; detail: string } },
): Promise<void> {
  const started = hoursAgo(finishedHoursAgo + 0.01);
  const finished = state === 'running' ? null : hoursAgo(finishedHoursAgo);
  await manager.db
    .insertInto('jobs')
    .values({
      id: crypto.randomUUID(),
      kind: 'vm-move',
      state,
      target_kind: 'vm',
      target_id: vmId,
      target_name: vmName,
      created_by: 'admin',
      params: '{}',
      progress: JSON.stringify({
        phase: 'copy-memory',
        percent: 50,
        message: 'copying memory to h2',
        details: { from: 'h1', to: 'h2', mode: 'live' },
      }),
      checkpoint: null,
      result: fields.result ? JSON.stringify(fields.result) : null,
      error: fields.error ? JSON.stringify(fields.error) : null,
      cancel_requested: 0,
      created_at: started,
      started_at: started,
      finished_at: finished,
      updated_at: finished ?? started,
    })
    .execute();
}

/** A datastore's last sample as the collector stores it (no agents here). */
async function insertDatastoreSample(host: string, name: string, free: number, daysUntilFull: number | null) {
  await manager.db
    .insertInto('stat_datastores')
    .values({
      host,
      name,
      fs_type: 'ext4',
      capacity_bytes: 100 * GiB,
      free_bytes: free,
      provisioned_bytes: 80 * GiB,
      allocated_bytes: 100 * GiB - free,
      sampled_at: hoursAgo(0.1),
      days_until_full: daysUntilFull,
      trend_bucket: null,
    })
    .execute();
}

/** A Storage Explorer issue as its rules leave it: active, or ended `endedHoursAgo`. */
async function insertStorageIssue(
  rule: string,
  subject: { kind: 'datastore' | 'disk' | 'vm'; name: string; host: string },
  startedHoursAgo: number,
  endedHoursAgo: number | null,
) {
  await manager.db
    .insertInto('storage_issues')
    .values({
      rule,
      severity: 'warning',
      subject_kind: subject.kind,
      subject_key: `${subject.kind}:${subject.name}`,
      subject_name: subject.name,
      host: subject.host,
      datastore: null,
      message: `${rule} on ${subject.name}`,
      value: null,
      threshold: null,
      started_at: hoursAgo(startedHoursAgo),
      ended_at: endedHoursAgo === null ? null : hoursAgo(endedHoursAgo),
      updated_at: hoursAgo(endedHoursAgo ?? 0),
    })
    .execute();
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-report-cli-'));
  manager = await startManager({
    ...(await testDatabase(path.join(dir, 'manager'))),
    dataDir: path.join(dir, 'manager'),
    reconcileIntervalSeconds: 3600,
    log: () => {},
  });
  admin = new ManagerClient(manager.url, manager.adminToken ?? '');
  await admin.createPool({ name: 'rack1' });
  await admin.createPool({ name: 'rack2', description: 'second rack' });
  await admin.createToken({ name: 'viewer', role: 'read-only' });
  await insertMoveJob('succeeded', 30, {
    result: {
      vm: { id: vmId, name: vmName },
      mode: 'live',
      from: 'h1',
      to: 'h2',
      totalTimeMs: 41_500,
      downtimeMs: 37,
      diskBytes: 2 * 2 ** 30,
      memoryBytes: 2 ** 29,
      keptSource: false,
      stats: { downtimeMs: 37 },
    },
  });
  // Filling in 12 days, in 90 days, and not filling: ranked in that order.
  await insertDatastoreSample('h2', 'local', 60 * GiB, 90);
  await insertDatastoreSample('h1', 'local', 5 * GiB, 12);
  await insertDatastoreSample('h1', 'second', 70 * GiB, null);
  // Active; ended within the week; ended before it (not in the report).
  await insertStorageIssue('low-capacity', { kind: 'datastore', name: 'h1/local', host: 'h1' }, 50, null);
  await insertStorageIssue('vm-low-disk-space', { kind: 'vm', name: 'web1', host: 'h2' }, 100, 48);
  await insertStorageIssue(
    'high-latency',
    { kind: 'datastore', name: 'h2/local', host: 'h2' },
    9 * 24,
    8 * 24,
  );
  await insertMoveJob('failed', 20, { error: { code: 'agent-error', detail: 'target refused' } });
  await insertMoveJob('running', 1, {});
  await insertMoveJob('succeeded', 10 * 24, {
    result: {
      vm: { id: vmId, name: 'too-old' },
      mode: 'cold',
      from: 'h2',
      to: 'h1',
      totalTimeMs: 1000,
      keptSource: false,
      stats: {},
    },
  });
});

after(async () => {
  await manager.close();
  if (!process.env.SILOBREAK_KEEP_REPORT) await rm(dir, { recursive: true, force: true });
});

function silobreak(args: string[]) {
  return promisify(execFile)(
    process.execPath,
    [bin, ...args, '--url', manager.url, '--token', manager.adminToken ?? ''],
    { env: { ...process.env, NO_COLOR: '1' } },
  ).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );
}

test('silobreak report --out writes a self-contained HTML report (0644) and prints the path and a summary', async (t) => {
  const out = path.join(dir, 'week.html');
  t.diagnostic(`report file: ${out}`);
  const run = await silobreak(['report', '--out', out]);
  assert.equal(run.code, 0, run.stderr);
  // The admin token made at the first start, two pools and a token: all in the week.
  const changes = (await admin.listChanges({ since: hoursAgo(7 * 24) })).items.length;
  assert.equal(changes, 4);
  assert.equal(
    run.stdout.trim(),
    `Wrote ${out}: ${changes} changes (0 high-risk), 2 moves (1 not completed), 2 storage issues (1 active), 3 datastores ranked.`,
  );
  assert.equal((await stat(out)).mode & 0o777, 0o644);
  const html = await readFile(out, 'utf8');
  assert.ok(html.startsWith('<!doctype html>'));
  assert.match(html, /<title>Silobreak — week of \d{4}-\d{2}-\d{2}<\/title>/);
  assert.match(html, /<\/html>\n$/);
  // The timeline (the pools' low-risk and the tokens' medium-risk records) and the live move's
  // downtime are drawn, and the issues by severity and the days-until-full ranking; the running move, the move and the issue
  // before the window are not listed.
  assert.equal(
    html.match(/<svg /g)?.length,
    5,
    'issues by severity, days until full, timeline by risk and by kind, move downtime',
  );
  assert.match(html, />low</);
  assert.match(html, />medium</);
  assert.doesNotMatch(html, /No storage issues this week\./);
  assert.match(html, /low-capacity on h1\/local/, 'the active issue');
  assert.match(html, /vm-low-disk-space on web1/, 'the issue that ended in the week');
  assert.doesNotMatch(html, /high-latency/, 'the issue that ended before the week');
  const ranked = [...html.matchAll(/<td>(h\d\/(?:local|second))<\/td>/g)].map((m) => m[1]);
  assert.deepEqual(ranked, ['h1/local', 'h2/local', 'h1/second'], 'soonest full first, not filling last');
  assert.match(
    html,
    /<td>web1<\/td><td>h1<\/td><td>h2<\/td><td>live<\/td>.*<td class="num">41\.5 s<\/td><td class="num">37 ms</,
  );
  assert.doesNotMatch(html, /too-old/);
  assert.doesNotMatch(html, /https?:\/\/|<script/);
});

test('bad flags are usage errors naming the flag (exit 2); an unwritable --out fails naming --out (exit 1)', async () => {
  const days = await silobreak(['report', '--out', path.join(dir, 'x.html'), '--days', '0']);
  assert.equal(days.code, 2);
  assert.match(days.stderr, /--days/);
  const missing = await silobreak(['report']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--out/);
  const unwritable = await silobreak(['report', '--out', path.join(dir, 'no-such-dir', 'week.html')]);
  assert.equal(unwritable.code, 1);
  assert.match(unwritable.stderr, /--out: cannot write .*no-such-dir.*ENOENT/);
});

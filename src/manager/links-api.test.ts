// The links API against a real manager whose hosts' agents do not answer (loopback ports where
// nothing listens): every direction listed, a probe's failure kept per link and listed, a move's
// mirror rate and a caller's figure stored; bad input names the field and changes nothing;
// a removed host takes its links along.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { AgentClient } from '../api/index.js';
import { LinkService } from './links.js';
import { hostRow } from './inventory.js';
import { dbSnapshot, rejects, seedHost, startTestManager, type TestManager } from './test-inventory.js';

let t: TestManager;
let links: LinkService;

before(async () => {
  t = await startTestManager('sb-manager-links-');
  await seedHost(t.manager.db, 'h1', 9, []);
  await seedHost(t.manager.db, 'h2', 10, []);
  await seedHost(t.manager.db, 'h3', 11, []);
  links = new LinkService({
    db: t.manager.db,
    clientFor: (host) => new AgentClient({ baseUrl: host.agent_url }, 5_000),
    log: () => {},
  });
});

after(() => t.close());

test('a host lists both directions with each other host; none measured yet: unknown and stale', async () => {
  const listed = await t.viewer.hostLinks('h1');
  assert.equal(listed.host, 'h1');
  assert.deepEqual(
    listed.links.map((l) => [l.from, l.to, l.figure, l.stale, l.mirror, l.probeError]),
    [
      ['h1', 'h2', null, true, null, null],
      ['h2', 'h1', null, true, null, null],
      ['h1', 'h3', null, true, null, null],
      ['h3', 'h1', null, true, null, null],
    ],
  );
});

test('a probe whose agents do not answer: 200 with each failure listed and kept with its link', async () => {
  const probed = await t.admin.probeHostLinks('h1', { to: 'h2', durationMs: 100 });
  assert.deepEqual(
    probed.failures.map((f) => [f.from, f.to]),
    [
      ['h1', 'h2'],
      ['h2', 'h1'],
    ],
  );
  // The sender is asked of the source first: its host is the one named.
  assert.match(probed.failures[0]?.reason ?? '', /^host h1 is unreachable/);
  assert.match(probed.failures[1]?.reason ?? '', /^host h2 is unreachable/);
  const h1h2 = probed.links.find((l) => l.from === 'h1' && l.to === 'h2');
  assert.match(h1h2?.probeError?.reason ?? '', /^host h1 is unreachable/);
  assert.equal(h1h2?.figure, null);
  const h1h3 = probed.links.find((l) => l.from === 'h1' && l.to === 'h3');
  assert.equal(h1h3?.probeError, null, 'only the links with `to` were probed');
});

test("a move's link: the probe fails, no figure stored: unknown; a caller's figure and a mirror rate are kept", async () => {
  const [h1, h3] = await Promise.all([hostRow(t.manager.db, 'h1'), hostRow(t.manager.db, 'h3')]);
  const unknown = await links.forMove(h1, h3);
  assert.equal(unknown.figure, null);
  assert.match(
    unknown.why,
    /^link rate unknown: the probe now failed \(host h1 is unreachable: .*\) and no figure is stored$/,
  );
  await links.recordMirror(h1.id, h3.id, 0.9e9);
  const fallback = await links.forMove(h1, h3);
  assert.equal(fallback.figure?.bitsPerSecond, 0.9e9);
  assert.equal(fallback.figure?.source, 'mirror');
  assert.match(
    fallback.why,
    /^900 Mbit\/s, observed while a move's disks mirrored \(a lower bound\) just now \(stored; the probe now failed/,
  );
  const given = await links.forMove(h1, h3, 1e9);
  assert.equal(given.why, '1.00 Gbit/s, given by the caller');
  await links.recordGiven(h1.id, h3.id, 1e9);
  const listed = (await t.viewer.hostLinks('h3')).links.find((l) => l.from === 'h1' && l.to === 'h3');
  assert.equal(listed?.figure?.source, 'given');
  assert.equal(listed?.figure?.bitsPerSecond, 1e9);
  assert.equal(listed?.stale, false);
  assert.deepEqual(listed?.mirror?.bitsPerSecond, 0.9e9);
});

test('the periodic work probes stale pairs only, and none with a host in a running move (a storage move here)', async () => {
  const [h1, h2, h3] = await Promise.all([
    hostRow(t.manager.db, 'h1'),
    hostRow(t.manager.db, 'h2'),
    hostRow(t.manager.db, 'h3'),
  ]);
  const state = async () =>
    new Map(
      (await t.manager.db.selectFrom('host_links').selectAll().execute()).map((r) => [
        `${[h1, h2, h3].find((h) => h.id === r.from_host_id)?.name}->${[h1, h2, h3].find((h) => h.id === r.to_host_id)?.name}`,
        r,
      ]),
    );
  const before = await state();
  const now = new Date().toISOString();
  await t.manager.db
    .insertInto('jobs')
    .values({
      id: '00000000-0000-4000-8000-00000000aaaa',
      kind: 'vm-move-storage',
      state: 'running',
      target_kind: 'vm',
      target_id: 'x',
      target_name: 'x',
      created_by: 'admin',
      params: JSON.stringify({ hostId: h2.id }),
      progress: '{}',
      checkpoint: null,
      result: null,
      error: null,
      cancel_requested: 0,
      created_at: now,
      started_at: now,
      finished_at: null,
      updated_at: now,
    })
    .execute();
  try {
    await links.refreshStale();
  } finally {
    await t.manager.db.deleteFrom('jobs').where('id', '=', '00000000-0000-4000-8000-00000000aaaa').execute();
  }
  const after = await state();
  // h1 -> h3 holds a fresh figure (the caller's, above): left alone.
  assert.equal(after.get('h1->h3')?.source, 'given');
  assert.equal(after.get('h1->h3')?.probe_error_at, before.get('h1->h3')?.probe_error_at);
  // h3 -> h1 had none: probed (its agents do not answer, so the failure is kept).
  assert.equal(before.get('h3->h1'), undefined);
  assert.match(after.get('h3->h1')?.probe_error ?? '', /unreachable/);
  // Every pair with h2 waits: h2 is in a running move.
  for (const pair of ['h1->h2', 'h2->h1', 'h2->h3', 'h3->h2'])
    assert.equal(after.get(pair)?.probe_error_at, before.get(pair)?.probe_error_at, pair);
});

test('hosts that join together are probed by one worker, each ordered pair once; a later join starts it again', async () => {
  const probes: string[] = [];
  const joins = new LinkService({
    db: t.manager.db,
    // The agents do not answer: a probe ends at its sender, the one host asked.
    clientFor: (host) => {
      probes.push(host.name);
      return new AgentClient({ baseUrl: host.agent_url }, 5_000);
    },
    log: () => {},
  });
  const ids = await Promise.all(
    ['h1', 'h2', 'h3'].map(async (name) => (await hostRow(t.manager.db, name)).id),
  );
  for (const id of ids) joins.probeJoined(id);
  await joins.joinedProbed();
  assert.deepEqual(
    probes.sort(),
    ['h1', 'h1', 'h2', 'h2', 'h3', 'h3'],
    'six ordered pairs among three hosts, each probed once (a loop per join probed twelve)',
  );
  probes.length = 0;
  joins.probeJoined(ids[0]!);
  await joins.joinedProbed();
  assert.equal(probes.length, 4, 'h1 joining again: its four directions, by a new worker');
});

test('bad input names the field and changes nothing; a read-only token may list but not probe', async () => {
  const before = await dbSnapshot(t.manager.db);
  await rejects(t.admin.probeHostLinks('h1', { durationMs: 10 }), 400, 'durationMs');
  await rejects(t.admin.probeHostLinks('h1', { durationMs: 6000 }), 400, 'durationMs');
  await rejects(t.admin.http.raw('POST', '/api/v1/hosts/h1/links/probe', { too: 'h2' }), 400, 'too');
  await rejects(t.admin.probeHostLinks('h1', { to: 'nope' }), 404, 'to');
  await rejects(t.admin.probeHostLinks('nope'), 404);
  await rejects(t.admin.hostLinks('nope'), 404);
  await rejects(t.viewer.probeHostLinks('h1'), 403);
  assert.equal(await dbSnapshot(t.manager.db), before);
});

test("a removed host's links go with it", async () => {
  const h3 = await hostRow(t.manager.db, 'h3');
  const names = async () =>
    (await t.manager.db.selectFrom('host_links').selectAll().execute()).map(
      (r) => `${r.from_host_id === h3.id ? 'h3' : 'other'}->${r.to_host_id === h3.id ? 'h3' : 'other'}`,
    );
  assert.ok((await names()).includes('other->h3'), 'h1 -> h3 is stored');
  await t.admin.removeHost('h3');
  assert.deepEqual(
    (await names()).filter((n) => n.includes('h3')),
    [],
  );
  assert.deepEqual(
    (await t.viewer.hostLinks('h1')).links.map((l) => `${l.from}->${l.to}`),
    ['h1->h2', 'h2->h1'],
  );
});

test('every answer stayed inside the route table', () => {
  assert.deepEqual(t.breaches, []);
});

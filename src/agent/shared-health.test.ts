// The bounded check of a shared datastore: a real child on a real directory (answers, a missing or
// foreign marker, a check that hangs and is killed at its timeout), and the reading of its output.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { SHARED_STORAGE_MARKER } from '../api/index.js';
import { checkSharedDatastore, interpretCheck } from './shared-health.js';

const ID = '0b7c1f4e-2a57-4c7e-9a55-6a8f1d3e9b21';
const OTHER = '5d0e8a51-3f0b-4d1e-8a53-0c9e2f6b7a10';
let dir: string;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-shared-health-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('a reachable shared datastore: its space from statfs, its marker read', async () => {
  await writeFile(path.join(dir, SHARED_STORAGE_MARKER), `${JSON.stringify({ storageId: ID })}\n`);
  const check = await checkSharedDatastore(dir, ID);
  assert.ok(check.ok, JSON.stringify(check));
  assert.equal(check.storageId, ID);
  const [blocks, frsize] = execFileSync('stat', ['-f', '-c', '%b %S', dir], { encoding: 'utf8' })
    .trim()
    .split(' ')
    .map(Number);
  assert.equal(check.space.capacityBytes, blocks! * frsize!);
  assert.ok(check.space.freeBytes > 0 && check.space.freeBytes <= check.space.capacityBytes);
});

test('another storage mounted there, or none (no marker): not that storage', async () => {
  const foreign = await checkSharedDatastore(dir, OTHER);
  assert.ok(!foreign.ok);
  assert.equal(foreign.lost.cause, 'not-the-storage');
  assert.match(foreign.lost.detail, new RegExp(`holds storage ${ID}, not ${OTHER}`));
  const empty = await mkdtemp(path.join(tmpdir(), 'sb-shared-empty-'));
  try {
    const missing = await checkSharedDatastore(empty, ID);
    assert.ok(!missing.ok);
    assert.equal(missing.lost.cause, 'not-the-storage');
    assert.match(missing.lost.detail, /not mounted there/);
  } finally {
    await rm(empty, { recursive: true, force: true });
  }
});

test('a check that does not answer is killed at its timeout: no-answer, and its children are gone', async () => {
  // A marker that is a FIFO blocks `cat` as a hung mount blocks a read.
  const hung = await mkdtemp(path.join(tmpdir(), 'sb-shared-hung-'));
  try {
    execFileSync('mkfifo', [path.join(hung, SHARED_STORAGE_MARKER)]);
    const started = Date.now();
    const check = await checkSharedDatastore(hung, ID, 400);
    const took = Date.now() - started;
    assert.ok(!check.ok);
    assert.equal(check.lost.cause, 'no-answer');
    assert.match(check.lost.detail, /did not answer within 0.4 s/);
    assert.ok(took >= 400 && took < 3_000, `answered after ${took} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const left = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(hung));
    assert.deepEqual(left, [], 'the killed group left no process behind');
  } finally {
    await rm(hung, { recursive: true, force: true });
  }
});

test("the check's output: a stale mount's error, a marker that is no marker, blocks times fragment size", () => {
  const stale = interpretCheck(
    '/mnt/san',
    1,
    '',
    "stat: cannot read file system information for '/mnt/san': Transport endpoint is not connected\n",
    ID,
  );
  assert.deepEqual(stale, {
    ok: false,
    lost: {
      cause: 'error',
      detail:
        "/mnt/san: stat: cannot read file system information for '/mnt/san': Transport endpoint is not connected",
    },
  });
  const noMarker = interpretCheck('/mnt/san', 0, '100 50 4096\n{"x":1}\n', '', ID);
  assert.ok(!noMarker.ok && noMarker.lost.cause === 'not-the-storage');
  const unread = interpretCheck(
    '/mnt/san',
    1,
    '100 50 4096\n',
    'cat: .silobreak-storage.json: No such file',
    ID,
  );
  assert.ok(!unread.ok && unread.lost.cause === 'not-the-storage');
  assert.deepEqual(interpretCheck('/mnt/san', 0, `100 50 4096\n{"storageId": "${ID}"}\n`, '', undefined), {
    ok: true,
    space: { capacityBytes: 409_600, freeBytes: 204_800 },
    storageId: ID,
  });
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { GuestReply } from './guest-ops.js';
import { GuestPolls } from './stats.js';

/** A guest agent scripted answer by answer, and a clock the test moves. */
function rig(answers: (GuestReply | undefined | Error)[]) {
  let now = 1_000_000;
  const asked: string[] = [];
  const polls = new GuestPolls(
    (vm) => {
      asked.push(vm);
      const next = answers.shift();
      return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
    },
    () => now,
  );
  return { polls, asked, advance: (ms: number) => (now += ms) };
}

const reply: GuestReply = {
  version: '7.2.19',
  fsinfo: [{ mountpoint: '/data', type: 'ext4', 'total-bytes': 100, 'used-bytes': 40, disk: [] }],
};
const known = {
  agentVersion: '7.2.19',
  filesystems: [{ mountpoint: '/data', type: 'ext4', totalBytes: 100, usedBytes: 40 }],
};
const unknown = { agentVersion: null, filesystems: null };

test('an answering guest: its version and filesystems; fsinfo that failed is unknown, the version stays', async () => {
  const { polls } = rig([reply, { version: '7.2.19', fsinfo: undefined }]);
  assert.deepEqual(await polls.usage('a', 'e1'), known);
  assert.deepEqual(await polls.usage('a', 'e1'), { agentVersion: '7.2.19', filesystems: null });
});

test('a silent guest is unknown and left alone for a while, then asked again', async () => {
  const { polls, asked, advance } = rig([new Error('no reply to guest-sync-delimited in time'), reply]);
  assert.deepEqual(await polls.usage('a', 'e1'), unknown);
  advance(5_000);
  assert.deepEqual(await polls.usage('a', 'e1'), unknown);
  assert.equal(asked.length, 1, 'not asked while remembered as silent');
  advance(60_000);
  assert.deepEqual(await polls.usage('a', 'e1'), known);
  assert.equal(asked.length, 2);
});

test('a new QEMU process (epoch) is asked at once, even right after its predecessor was silent', async () => {
  const { polls, asked } = rig([new Error('socket closed'), reply]);
  assert.deepEqual(await polls.usage('a', 'e1'), unknown);
  assert.deepEqual(await polls.usage('a', 'e2'), known);
  assert.equal(asked.length, 2);
});

test('a busy agent: the last answer of the same process stands in while recent, then unknown', async () => {
  const { polls, advance } = rig([reply, undefined, undefined, undefined]);
  assert.deepEqual(await polls.usage('a', 'e1'), known);
  assert.deepEqual(await polls.usage('a', 'e1'), known);
  assert.deepEqual(await polls.usage('a', 'e2'), unknown, 'not an answer of another process');
  advance(10 * 60_000);
  assert.deepEqual(await polls.usage('a', 'e1'), unknown, 'too old to stand in');
});

test('silence forgets the last answer', async () => {
  const { polls, advance } = rig([reply, new Error('timeout'), undefined]);
  await polls.usage('a', 'e1');
  advance(1_000);
  assert.deepEqual(await polls.usage('a', 'e1'), unknown);
  advance(60_000);
  assert.deepEqual(
    await polls.usage('a', 'e1'),
    unknown,
    'busy now, and the old answer went with the silence',
  );
});

test('forget() drops what is known of gone VMs only', async () => {
  const { polls } = rig([reply, reply, undefined, undefined]);
  await polls.usage('a', 'e1');
  await polls.usage('b', 'e1');
  polls.forget((vm) => vm === 'a');
  assert.deepEqual(await polls.usage('a', 'e1'), unknown);
  assert.deepEqual(await polls.usage('b', 'e1'), known);
});

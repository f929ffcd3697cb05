import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { classOf, fits, LAB_FILES, queueOrder, startable } from './test-plan.mjs';

const root = path.resolve(import.meta.dirname, '..');
/** The lab files of this tree (LAB_FILES may list a few more, still on their way). */
const labFiles = readdirSync(path.join(root, 'src'), { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.lab.test.ts'))
  .map((f) => path.join('src', f))
  .sort();

test('every lab file is classified', () => {
  assert.deepEqual(
    labFiles.filter((f) => !(f in LAB_FILES)),
    [],
    'give each its class in scripts/test-plan.mjs',
  );
});

test('two guest files share the cores; a timing file or the unit suite has them to itself, light files aside', () => {
  assert.equal(fits('guest', ['guest']), true);
  assert.equal(fits('guest', ['guest', 'guest']), false);
  assert.equal(fits('timing', []), true);
  assert.equal(fits('timing', ['guest']), false);
  assert.equal(fits('guest', ['timing']), false);
  assert.equal(fits('light', ['timing']), true);
  assert.equal(fits('light', ['guest', 'guest']), true);
  assert.equal(fits('light', ['light']), false, 'light files go one at a time');
  assert.equal(fits('timing', ['light']), true);
  assert.equal(fits('waiting', ['waiting']), true, 'two waiting files share the machine');
  assert.equal(fits('waiting', ['waiting', 'waiting']), false);
  assert.equal(fits('waiting', ['light']), true);
  assert.equal(fits('waiting', ['waiting', 'light']), true);
  assert.equal(fits('waiting', ['guest']), false, 'nothing that works the cores beside a waiting file');
  assert.equal(fits('guest', ['waiting']), false);
  assert.equal(fits('timing', ['waiting']), false);
  assert.equal(fits('waiting', ['timing']), false);
  assert.equal(classOf('unit'), 'timing');
  assert.equal(classOf('unit-pg'), 'timing', 'the unit files again on PostgreSQL keep both cores busy too');
  assert.equal(classOf('src/some-new.lab.test.ts'), 'timing', 'an unknown file runs alone');
});

test('the queue: unit and light first, then waiting, timing, then guest files, each longest first', () => {
  const light = labFiles.filter((f) => classOf(f) === 'light');
  const timing = labFiles.filter((f) => classOf(f) === 'waiting' || classOf(f) === 'timing');
  const guest = labFiles.filter((f) => classOf(f) === 'guest');
  const order = queueOrder([...labFiles].reverse().concat('unit'));
  assert.deepEqual(order.slice(0, 1 + light.length).sort(), ['unit', ...light].sort());
  assert.equal(order[0], 'unit');
  const middle = order.slice(1 + light.length, 1 + light.length + timing.length);
  assert.deepEqual([...middle].sort(), timing);
  const waiting = middle.filter((f) => classOf(f) === 'waiting');
  assert.deepEqual(middle.slice(0, waiting.length), waiting, 'waiting files before timing files');
  const seconds = (f: string) => LAB_FILES[f]?.seconds ?? 0;
  const guests = order.slice(-guest.length);
  assert.deepEqual([...guests].sort(), guest);
  for (let i = 1; i < guests.length; i++) assert.ok(seconds(guests[i - 1]!) >= seconds(guests[i]!));
});

test('the unit files on PostgreSQL are queued right after those on SQLite, before every lab file', () => {
  const order = queueOrder([...labFiles, 'unit-pg', 'unit']);
  assert.deepEqual(order.slice(0, 2), ['unit', 'unit-pg']);
});

test('what starts: the unit suite with one light file; later two guest files, or one timing file', () => {
  const order = queueOrder(['unit', ...labFiles]);
  const first = startable(order, []);
  assert.deepEqual(first.map(classOf), ['timing', 'light']);
  assert.equal(first[0], 'unit');
  const guests = labFiles.filter((f) => classOf(f) === 'guest');
  assert.equal(startable(guests, []).length, 2);
  const timing = labFiles.filter((f) => classOf(f) === 'timing');
  assert.deepEqual(startable([...timing, ...guests.slice(1)], [guests[0]!]), [guests[1]]);
  assert.deepEqual(startable([...timing, ...guests], []), [timing[0]]);
  const waiting = labFiles.filter((f) => classOf(f) === 'waiting');
  assert.equal(waiting.length, 2, 'the two placement files');
  assert.deepEqual(startable(queueOrder([...waiting, ...timing, ...guests]), []).sort(), waiting);
  assert.deepEqual(
    startable([...timing, ...guests], [waiting[0]!]),
    [],
    'nothing else beside a waiting file',
  );
});

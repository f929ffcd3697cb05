import assert from 'node:assert/strict';
import { test } from 'node:test';
import { diskMark, issueMarks, markClass, nextSort, sortQuery, windowText, WINDOWS } from './explorer.js';
import {
  datastoresOfSubject,
  parseWindow,
  sharedStorageSubject,
  WINDOW_MAX_SECONDS,
  type StorageIssue,
} from '../../../api/browser.js';

test('window text reads as words', () => {
  assert.equal(windowText('15m'), '15 minutes');
  assert.equal(windowText('1h'), '1 hour');
  assert.equal(windowText('8d'), '8 days');
  assert.equal(windowText('soon'), 'soon');
});

test('every offered window is one the API takes', () => {
  for (const w of WINDOWS) {
    const s = parseWindow(w);
    assert.ok(s !== undefined && s <= WINDOW_MAX_SECONDS, w);
  }
});

test('a new figure column sorts largest first, a name column A to Z; the same column flips', () => {
  assert.deepEqual(nextSort({ key: 'vm', desc: false }, 'writeP99'), { key: 'writeP99', desc: true });
  assert.deepEqual(nextSort({ key: 'writeP99', desc: true }, 'writeP99'), { key: 'writeP99', desc: false });
  assert.deepEqual(nextSort({ key: 'writeP99', desc: true }, 'datastore'), { key: 'datastore', desc: false });
  assert.deepEqual(sortQuery({ key: 'writeP99', desc: true }), { sort: 'writeP99', order: 'desc' });
});

const issue = (
  kind: StorageIssue['subject']['kind'],
  name: string,
  severity: StorageIssue['severity'],
  active = true,
): StorageIssue => ({
  id: 1,
  rule: 'vm-latency',
  severity,
  subject: { kind, name, host: 'h1' },
  message: `${name} ${severity}`,
  value: null,
  threshold: null,
  active,
  startedAt: '2025-01-01T00:00:00.000Z',
  endedAt: null,
  updatedAt: '2025-01-01T00:00:00.000Z',
});

test('issues mark their subjects with the worst severity; ended ones mark nothing', () => {
  const marks = issueMarks([
    issue('datastore', 'h1/ds', 'warning'),
    issue('datastore', 'h1/ds', 'critical'),
    issue('disk', 'web1/disk0', 'warning'),
    issue('vm', 'web1', 'info'),
    issue('disk', 'db1/disk0', 'critical', false),
  ]);
  assert.equal(marks.get('datastore:h1/ds')?.severity, 'critical');
  assert.equal(marks.get('datastore:h1/ds')?.messages.length, 2);
  const web = diskMark(marks, 'web1', 'disk0');
  assert.equal(web?.severity, 'warning');
  assert.deepEqual(web?.messages, ['web1/disk0 warning', 'web1 info']);
  assert.equal(diskMark(marks, 'db1', 'disk0'), undefined);
  assert.equal(markClass(web), 'issue');
  assert.equal(markClass(marks.get('datastore:h1/ds')), 'issue critical');
  assert.equal(markClass(undefined), undefined);
});

test("a shared storage's space issue marks each datastore that sees it", () => {
  const name = sharedStorageSubject('storage nfs-a', ['host1/shared', 'host2/shared']);
  const marks = issueMarks([
    issue('datastore', name, 'critical'),
    issue('datastore', 'host1/local', 'warning'),
  ]);
  assert.deepEqual(
    [...marks.keys()].sort(),
    ['datastore:host1/local', 'datastore:host1/shared', 'datastore:host2/shared'],
    "both hosts' rows, and the local datastore its own",
  );
  assert.deepEqual(datastoresOfSubject('host1/local'), ['host1/local']);
});

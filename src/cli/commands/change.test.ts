// `changes` against a stand-in manager: the list shows which manager wrote each record (a dash for
// a record from before records named it), --manager becomes the API's filter, and a bad name exits
// 2 naming the flag and sends nothing.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ChangeRecord, Page } from '../../api/index.js';
import { cliAt, standInManager, type StandInManager } from './test-cli.js';

let manager: StandInManager;
const requests: string[] = [];

const record = (id: number, manager: string | null): ChangeRecord => ({
  id,
  at: new Date(Date.now() - id * 60_000).toISOString(),
  actor: 'admin',
  object: { kind: 'pool', id: `p-${id}`, name: `pool-${id}` },
  action: 'created',
  changes: [],
  risk: 'low',
  riskRule: 'created',
  manager,
});

before(async () => {
  manager = await standInManager((request, response) => {
    requests.push(request.url ?? '');
    const page: Page<ChangeRecord> = { items: [record(1, 'm2'), record(2, null)], nextCursor: null };
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify(page));
  });
});

after(() => manager.close());

const cli = (...args: string[]) => cliAt(manager.url, ...args);

test('changes shows the manager of each record and filters by it', async () => {
  requests.length = 0;
  const r = await cli('changes', '--manager', 'm2');
  assert.equal(r.code, 0, r.stderr);
  const [header, ...rows] = r.stdout.trim().split('\n');
  assert.match(header ?? '', /\bACTOR\s+MANAGER\s+KIND\b/);
  assert.match(rows.find((l) => l.includes('pool-1')) ?? '', /\badmin\s+m2\s+pool\b/);
  assert.match(rows.find((l) => l.includes('pool-2')) ?? '', /\badmin\s+-\s+pool\b/);
  assert.equal(requests.length, 1);
  assert.equal(new URL(requests[0] ?? '', manager.url).searchParams.get('manager'), 'm2');
});

test('a bad manager name exits 2 naming --manager and asks nothing', async () => {
  requests.length = 0;
  const r = await cli('changes', '--manager', 'two words');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--manager: must be 1-63 letters, digits, dots, dashes or underscores/);
  assert.deepEqual(requests, []);
});

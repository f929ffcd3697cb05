// `datastore add|set|list` against a stand-in manager: the flags become the API's bodies (a limit
// set alone keeps the other one), bad flags exit 2 naming the flag and send nothing, and the list
// shows class, limits and the measured figures.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ManagedDatastore, Page } from '../../api/index.js';
import { cliAt, standInManager, type StandInManager } from './test-cli.js';
import { formatLimits, parseBandwidth } from './datastore.js';

let manager: StandInManager;
const requests: { method: string; url: string; body: unknown }[] = [];

const slow: ManagedDatastore = {
  id: '3f0b8c7e-1d2a-4b5c-8d9e-0f1a2b3c4d5e',
  name: 'slow',
  kind: 'local',
  host: 'h1',
  hostId: '3f0b8c7e-1d2a-4b5c-8d9e-0f1a2b3c4d5f',
  path: '/srv/slow',
  default: false,
  capacityBytes: 2 ** 34,
  freeBytes: 2 ** 33,
  class: 'standard',
  limits: { iops: 400, bytesPerSecond: 80 * 2 ** 20 },
  probe: { iops: 12_345, bytesPerSecond: 2 ** 30, probedAt: new Date().toISOString() },
};

before(async () => {
  manager = await standInManager((request, response) => {
    let text = '';
    request.on('data', (chunk) => (text += String(chunk)));
    request.on('end', () => {
      requests.push({
        method: request.method ?? '',
        url: request.url ?? '',
        body: text ? JSON.parse(text) : undefined,
      });
      response.setHeader('content-type', 'application/json');
      if (request.method === 'DELETE') {
        response.statusCode = 204;
        response.end();
        return;
      }
      const page: Page<ManagedDatastore> = { items: [slow], nextCursor: null };
      response.statusCode = request.method === 'POST' && request.url?.endsWith('/datastores') ? 201 : 200;
      response.end(JSON.stringify(request.url?.startsWith('/api/v1/datastores?') ? page : slow));
    });
  });
});

after(() => manager.close());

const cli = (...args: string[]) => cliAt(manager.url, ...args);

test('bandwidths and limits as people type and read them', () => {
  assert.deepEqual(parseBandwidth('80M/s'), { bytes: 80 * 2 ** 20 });
  assert.deepEqual(parseBandwidth('80MiB/s'), { bytes: 80 * 2 ** 20 });
  assert.deepEqual(parseBandwidth('1G'), { bytes: 2 ** 30 });
  assert.ok('error' in parseBandwidth('fast'));
  assert.ok('error' in parseBandwidth('80'));
  assert.equal(formatLimits({ iops: 400, bytesPerSecond: 80 * 2 ** 20 }), '400 IOPS, 80 MiB/s');
  assert.equal(formatLimits(undefined), 'none');
});

test('datastore add sends the class and both limits', async () => {
  requests.length = 0;
  const r = await cli(
    'datastore',
    'add',
    'h1',
    'slow',
    '--path',
    '/srv/slow',
    '--iops',
    '400',
    '--bandwidth',
    '80M/s',
  );
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    requests.map((q) => [q.method, q.url, q.body]),
    [
      [
        'POST',
        '/api/v1/hosts/h1/datastores',
        { name: 'slow', path: '/srv/slow', limits: { iops: 400, bytesPerSecond: 80 * 2 ** 20 }, probe: true },
      ],
    ],
  );
});

test('datastore set --iops keeps the bandwidth limit; --no-limits lifts both', async () => {
  requests.length = 0;
  assert.equal((await cli('datastore', 'set', 'h1/slow', '--iops', '500')).code, 0);
  assert.deepEqual(requests.at(-1)?.body, { limits: { iops: 500, bytesPerSecond: 80 * 2 ** 20 } });
  assert.equal((await cli('datastore', 'set', 'h1/slow', '--iops', 'none')).code, 0);
  assert.deepEqual(requests.at(-1)?.body, { limits: { bytesPerSecond: 80 * 2 ** 20 } });
  assert.equal((await cli('datastore', 'set', 'h1/slow', '--no-limits', '--class', 'fast')).code, 0);
  assert.deepEqual(requests.at(-1)?.body, { class: 'fast', limits: null });
});

test('bad flags exit 2 naming the flag, and nothing is sent', async () => {
  requests.length = 0;
  for (const [args, flag] of [
    [['datastore', 'add', 'h1', 'x', '--path', '/x', '--bandwidth', 'fast'], '--bandwidth'],
    [['datastore', 'add', 'h1', 'x', '--path', '/x', '--iops', '0'], '--iops'],
    [['datastore', 'set', 'slow', '--iops', '5'], 'datastore'],
  ] as const) {
    const r = await cli(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(flag), r.stderr);
  }
  assert.deepEqual(requests, []);
});

test('datastore list shows class, limits and the measured figures', async () => {
  const r = await cli('datastore', 'list');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /CLASS\s+LIMITS\s+MEASURED/);
  assert.match(r.stdout, /standard\s+400 IOPS, 80 MiB\/s\s+12345 IOPS, 1 GiB\/s/);
});

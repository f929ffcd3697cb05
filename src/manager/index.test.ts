import assert from 'node:assert/strict';
import { test } from 'node:test';
import { managerSettings, parseListen } from './index.js';

test('--listen takes address:port, IPv6 in brackets', () => {
  assert.deepEqual(parseListen('127.0.0.1:7100'), { host: '127.0.0.1', port: 7100 });
  assert.deepEqual(parseListen('[::1]:0'), { host: '::1', port: 0 });
  for (const bad of ['7100', '127.0.0.1', '127.0.0.1:99999', ':80', 'host:port']) {
    assert.throws(() => parseListen(bad), /--listen: must be address:port/);
  }
});

test('--database takes postgres:// URLs (one, or several joined by commas), and is absent (SQLite in the data dir) without it', () => {
  const flags = {
    dataDir: '/var/lib/m',
    listen: '127.0.0.1:7100',
    reconcileInterval: '30',
    statsInterval: '30',
    retainDays: '7',
  };
  assert.equal(managerSettings(flags).database, undefined);
  for (const url of [
    'postgres://silobreak@db.example/silobreak',
    'postgresql://u@10.0.0.5:5433/m?sslmode=require',
  ])
    assert.deepEqual(managerSettings({ ...flags, database: url }).database, [url]);
  // A primary and its standby, in the order given.
  assert.deepEqual(
    managerSettings({ ...flags, database: 'postgres://m@db1/silobreak,postgres://m@db2/silobreak' }).database,
    ['postgres://m@db1/silobreak', 'postgres://m@db2/silobreak'],
  );
  for (const bad of ['mysql://u@h/db', '/var/lib/m/manager.db', 'postgres:/nohost', ''])
    assert.throws(() => managerSettings({ ...flags, database: bad }), /^Error: --database: must be/, bad);
  // The one at fault is named by its place in the list.
  assert.throws(
    () => managerSettings({ ...flags, database: 'postgres://m@db1/s,mysql://m@db2/s' }),
    /^Error: --database: URL 2 of 2 must be a postgres:\/\/ or postgresql:\/\/ URL/,
  );
  assert.throws(
    () => managerSettings({ ...flags, database: 'postgres://m@db1/s, postgres://m@db1/s' }),
    /^Error: --database: URL 2 of 2 is given twice$/,
  );
});

test('--advertise-url takes an http(s) URL with no path: its origin', () => {
  const flags = {
    dataDir: '/var/lib/m',
    listen: '0.0.0.0:7100',
    reconcileInterval: '30',
    statsInterval: '30',
    retainDays: '7',
  };
  assert.equal(managerSettings(flags).advertiseUrl, undefined);
  assert.equal(
    managerSettings({ ...flags, advertiseUrl: 'http://m1.example:7100' }).advertiseUrl,
    'http://m1.example:7100',
  );
  assert.equal(managerSettings({ ...flags, advertiseUrl: 'https://m1/' }).advertiseUrl, 'https://m1');
  for (const bad of ['m1:7100', 'ftp://m1', 'http://m1:7100/api/v1', 'http://m1?x=1', ''])
    assert.throws(
      () => managerSettings({ ...flags, advertiseUrl: bad }),
      /^Error: --advertise-url: must be an http:\/\/ or https:\/\/ URL/,
      bad,
    );
});

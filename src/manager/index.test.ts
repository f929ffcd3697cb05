import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseListen } from './index.js';

test('--listen takes address:port, IPv6 in brackets', () => {
  assert.deepEqual(parseListen('127.0.0.1:7100'), { host: '127.0.0.1', port: 7100 });
  assert.deepEqual(parseListen('[::1]:0'), { host: '::1', port: 0 });
  for (const bad of ['7100', '127.0.0.1', '127.0.0.1:99999', ':80', 'host:port']) {
    assert.throws(() => parseListen(bad), /--listen: must be address:port/);
  }
});

// `pool list` against a stand-in manager whose pool description holds terminal control codes:
// what reaches the terminal shows them escaped instead of obeying them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import type { Page, Pool } from '../../api/index.js';

const bin = path.join(import.meta.dirname, '../../../bin/silobreak.js');
let server: Server;
let url: string;

const hostile: Pool = {
  id: '3f0b8c7e-1d2a-4b5c-8d9e-0f1a2b3c4d5e',
  name: 'rack1',
  description: 'fast\x1b]0;pwned\x07 \x1b[2Jdisks\x00 \u202etxt.exe',
  hosts: [],
  createdAt: new Date().toISOString(),
};

before(async () => {
  server = createServer((request, response) => {
    const page: Page<Pool> = { items: [hostile], nextCursor: null };
    response.setHeader('content-type', 'application/json');
    response.end(request.url?.startsWith('/api/v1/pools') ? JSON.stringify(page) : '{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

test('pool list prints control characters of a description escaped, never raw', async () => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [bin, 'pool', 'list', '--url', url, '--token', 'sb_test-token'],
    { env: { ...process.env, NO_COLOR: '1' } },
  );
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(stdout, /[\x00-\x08\x0b-\x1f\x7f\u202e]/);
  assert.match(stdout, /fast\\x1b\]0;pwned\\x07 \\x1b\[2Jdisks\\x00 \\u202etxt\.exe/);
});

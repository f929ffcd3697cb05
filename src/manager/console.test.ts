// The console's static files are served without a token; the API beside them still needs one.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startManager, type RunningManager } from './manager.js';
import { testDatabase } from './test-postgres.js';

let dir: string;
let manager: RunningManager;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-console-'));
  const consoleDir = path.join(dir, 'static');
  await mkdir(consoleDir);
  await writeFile(path.join(consoleDir, 'index.html'), '<title>console</title>');
  await writeFile(path.join(consoleDir, 'console.js'), 'console.log(1);');
  await writeFile(path.join(consoleDir, 'notes.txt'), 'not served');
  await mkdir(path.join(consoleDir, 'assets'));
  await writeFile(path.join(consoleDir, 'assets', 'index-abc123.js'), 'console.log(2);');
  manager = await startManager({
    ...(await testDatabase(path.join(dir, 'data'))),
    dataDir: path.join(dir, 'data'),
    port: 0,
    consoleDir,
    log: () => {},
  });
});

after(async () => {
  await manager?.close();
  await rm(dir, { recursive: true, force: true });
});

test('the console page and its script are served at / without a token', async () => {
  const page = await fetch(`${manager.url}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
  assert.equal(await page.text(), '<title>console</title>');
  const script = await fetch(`${manager.url}/console.js`);
  assert.equal(script.status, 200);
  assert.match(script.headers.get('content-type') ?? '', /^text\/javascript/);
  // The built bundle sits in assets/ under a content-hashed name: served, and cached for good.
  const bundle = await fetch(`${manager.url}/assets/index-abc123.js`);
  assert.equal(bundle.status, 200);
  assert.equal(await bundle.text(), 'console.log(2);');
  assert.match(bundle.headers.get('cache-control') ?? '', /immutable/);
  assert.equal(page.headers.get('cache-control'), 'no-cache');
});

test('other files and paths are not served, and the API still needs a token', async () => {
  assert.equal((await fetch(`${manager.url}/notes.txt`)).status, 401);
  assert.equal((await fetch(`${manager.url}/../../etc/passwd`)).status, 401);
  assert.equal((await fetch(`${manager.url}/api/v1/info`)).status, 401);
  const info = await fetch(`${manager.url}/api/v1/info`, {
    headers: { authorization: `Bearer ${manager.adminToken}` },
  });
  assert.equal(info.status, 200);
});

test('console files carry a CSP that forbids inline script and framing, and nosniff', async () => {
  for (const file of ['/', '/console.js']) {
    const reply = await fetch(`${manager.url}${file}`);
    const csp = reply.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/, file);
    assert.match(csp, /script-src 'self'(;|$)/, file);
    assert.match(csp, /frame-ancestors 'none'/, file);
    assert.equal(reply.headers.get('x-frame-options'), 'DENY', file);
    assert.equal(reply.headers.get('x-content-type-options'), 'nosniff', file);
  }
});

test('a console folder that was never built: the manager starts, serves the API and says why', async () => {
  const logged: string[] = [];
  const bare = await startManager({
    ...(await testDatabase(path.join(dir, 'data-bare'))),
    dataDir: path.join(dir, 'data-bare'),
    port: 0,
    consoleDir: path.join(dir, 'never-built'),
    log: (m) => logged.push(m),
  });
  try {
    const info = await fetch(`${bare.url}/api/v1/info`, {
      headers: { authorization: `Bearer ${bare.adminToken}` },
    });
    assert.equal(info.status, 200);
    assert.equal((await fetch(`${bare.url}/`)).status, 401, 'no page at / (the answer to any unknown path)');
    assert.ok(
      logged.some((m) => m.includes('npm run build:web')),
      `the log says how to build it: ${logged.join(' | ')}`,
    );
  } finally {
    await bare.close();
  }
});

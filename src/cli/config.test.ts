import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { configFilePaths, readConfigFile, resolveConnection } from './config.js';
import { UsageError } from './errors.js';

const userFile = {
  path: '/home/u/.config/silobreak/config.json',
  content: { url: 'http://user:1', token: 'user-token' },
};
const labFile = { path: '/var/lib/silobreak/cli.json', content: { url: 'http://lab:2', token: 'lab-token' } };

test('flags beat the environment, which beats the files, the user file before the lab file', () => {
  const all = {
    flags: { url: 'http://flag:3', token: 'flag-token' },
    env: { SILOBREAK_URL: 'http://env:4', SILOBREAK_TOKEN: 'env-token' },
    files: [userFile, labFile],
  };
  assert.deepEqual(resolveConnection(all), {
    url: 'http://flag:3',
    token: 'flag-token',
    source: { url: '--url', token: '--token' },
  });
  assert.equal(resolveConnection({ ...all, flags: {} }).url, 'http://env:4');
  assert.equal(resolveConnection({ ...all, flags: {}, env: {} }).token, 'user-token');
  const labOnly = resolveConnection({
    flags: {},
    env: {},
    files: [{ path: 'x', content: undefined }, labFile],
  });
  assert.deepEqual(labOnly.source, { url: labFile.path, token: labFile.path });
});

test('each value is resolved on its own, and empty values count as unset', () => {
  const c = resolveConnection({
    flags: { url: '' },
    env: { SILOBREAK_TOKEN: 'env-token', SILOBREAK_URL: '' },
    files: [labFile],
  });
  assert.deepEqual(c, {
    url: 'http://lab:2',
    token: 'env-token',
    source: { url: labFile.path, token: 'SILOBREAK_TOKEN' },
  });
});

test('a missing URL or token, or a URL that is not http(s), is a usage error saying what to do', () => {
  assert.throws(
    () => resolveConnection({ flags: { token: 't' }, env: {}, files: [] }),
    (e: unknown) =>
      e instanceof UsageError && /no manager URL/.test(e.message) && /SILOBREAK_URL/.test(e.hint ?? ''),
  );
  assert.throws(
    () => resolveConnection({ flags: { url: 'http://x:1' }, env: {}, files: [] }),
    (e: unknown) =>
      e instanceof UsageError && /no API token/.test(e.message) && /SILOBREAK_TOKEN/.test(e.hint ?? ''),
  );
  assert.throws(
    () => resolveConnection({ flags: { url: 'ftp://x', token: 't' }, env: {}, files: [] }),
    (e: unknown) => e instanceof UsageError && /--url: 'ftp:\/\/x' is not an http\(s\) URL/.test(e.message),
  );
});

test('config file paths: SILOBREAK_CONFIG alone, else XDG/HOME config then the lab file', () => {
  assert.deepEqual(configFilePaths({ SILOBREAK_CONFIG: '/tmp/c.json', HOME: '/h' }), ['/tmp/c.json']);
  assert.deepEqual(configFilePaths({ HOME: '/h' }), [
    '/h/.config/silobreak/config.json',
    '/var/lib/silobreak/cli.json',
  ]);
  assert.equal(configFilePaths({ XDG_CONFIG_HOME: '/x', HOME: '/h' })[0], '/x/silobreak/config.json');
});

const dir = mkdtempSync(path.join(os.tmpdir(), 'silobreak-cli-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('readConfigFile: absent is fine, valid is parsed, broken names the file and the field', () => {
  assert.equal(readConfigFile(path.join(dir, 'absent.json')), undefined);
  const good = path.join(dir, 'good.json');
  writeFileSync(good, JSON.stringify({ url: 'http://127.0.0.1:7100', token: 'abc' }));
  assert.deepEqual(readConfigFile(good), { url: 'http://127.0.0.1:7100', token: 'abc' });
  const notJson = path.join(dir, 'bad.json');
  writeFileSync(notJson, '{url:');
  assert.throws(
    () => readConfigFile(notJson),
    (e: unknown) => e instanceof UsageError && e.message.includes(notJson),
  );
  const badField = path.join(dir, 'badfield.json');
  writeFileSync(badField, JSON.stringify({ url: 'not a url' }));
  assert.throws(
    () => readConfigFile(badField),
    (e: unknown) => e instanceof UsageError && e.message.includes(badField) && e.message.includes('url'),
  );
});

// Labs as kubectl's contexts (issue 28, row 11): a second `lab up` used to rewrite the lab file,
// and a plain command then talked to the other lab's manager without a word.
const labs = {
  path: '/var/lib/silobreak/cli.json',
  content: {
    current: 'b',
    contexts: { a: { url: 'http://a:1', token: 'a-token' }, b: { url: 'http://b:2', token: 'b-token' } },
  },
};

test('lab contexts: the current lab by default, and saying so while several are up; --lab or SILOBREAK_LAB picks', () => {
  const plain = resolveConnection({ flags: {}, env: {}, files: [labs] });
  assert.deepEqual([plain.url, plain.token], ['http://b:2', 'b-token']);
  assert.match(plain.notice ?? '', /lab b's manager \(http:\/\/b:2\); 2 labs are up \(a, b\): --lab <lab>/);
  const picked = resolveConnection({ flags: { lab: 'a' }, env: {}, files: [labs] });
  assert.deepEqual([picked.url, picked.token, picked.notice], ['http://a:1', 'a-token', undefined]);
  assert.equal(picked.source.url, '--lab a (/var/lib/silobreak/cli.json)');
  const fromEnv = resolveConnection({ flags: {}, env: { SILOBREAK_LAB: 'a' }, files: [labs] });
  assert.equal(fromEnv.url, 'http://a:1');
  // --lab beats the environment's URL; --url beats --lab.
  assert.equal(
    resolveConnection({ flags: { lab: 'a' }, env: { SILOBREAK_URL: 'http://env:4' }, files: [labs] }).url,
    'http://a:1',
  );
  assert.equal(
    resolveConnection({ flags: { lab: 'a', url: 'http://flag:3' }, env: {}, files: [labs] }).url,
    'http://flag:3',
  );
  // One lab up: no notice.
  const one = { path: labs.path, content: { current: 'a', contexts: { a: labs.content.contexts.a } } };
  assert.equal(resolveConnection({ flags: {}, env: {}, files: [one] }).notice, undefined);
  assert.throws(
    () => resolveConnection({ flags: { lab: 'c' }, env: {}, files: [labs] }),
    (e: unknown) =>
      e instanceof UsageError && /--lab: no lab 'c'/.test(e.message) && /labs up: a, b/.test(e.hint ?? ''),
  );
});

test('lab contexts: several up and none current is a usage error naming them; an old single-lab file still works', () => {
  const undecided = { path: labs.path, content: { contexts: labs.content.contexts } };
  assert.throws(
    () => resolveConnection({ flags: {}, env: {}, files: [undecided] }),
    (e: unknown) =>
      e instanceof UsageError &&
      /several labs are up and none is current \(a, b\)/.test(e.message) &&
      /lab use/.test(e.hint ?? ''),
  );
  assert.equal(resolveConnection({ flags: { lab: 'b' }, env: {}, files: [undecided] }).url, 'http://b:2');
  assert.equal(resolveConnection({ flags: {}, env: {}, files: [labFile] }).url, 'http://lab:2');
});

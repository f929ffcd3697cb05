import assert from 'node:assert/strict';
import { test } from 'node:test';
import { copyAge, copyDatastores, expiryText, toolsAdvice } from './tools-figures.js';

const NOW = Date.parse('2026-12-07T12:00:00Z');

test('expiry reads ahead while the copy lives and as past once it expired', () => {
  assert.equal(expiryText('2026-12-07T12:05:00Z', NOW), 'in 5 min 0 s');
  assert.equal(expiryText('2026-12-09T12:00:00Z', NOW), 'in 2.0 d');
  assert.equal(expiryText('2026-12-07T11:59:30Z', NOW), 'expired 30 s ago');
  assert.equal(expiryText('not a date', NOW), 'not a date');
});

test("a copy's age counts from when its VM left, never below zero", () => {
  assert.equal(copyAge('2026-12-07T10:00:00Z', NOW), '2 h 0 min');
  assert.equal(copyAge('2026-12-07T12:00:10Z', NOW), '0.0 s');
});

test("a copy's datastores are listed once each, sorted", () => {
  assert.deepEqual(copyDatastores({ d1: 'local', d2: 'bulk', d3: 'local' }), ['bulk', 'local']);
  assert.deepEqual(copyDatastores({}), []);
});

test('the advice names both versions for an outdated agent and the missing tools disk', () => {
  assert.match(
    toolsAdvice({ status: 'outdated', installed: '7.2.19', current: '10.0.2' }),
    /7\.2\.19 is older than the host's 10\.0\.2: insert the tools disk/,
  );
  assert.match(toolsAdvice({ status: 'missing', installed: null, current: null }), /no tools disk/);
  assert.match(
    toolsAdvice({ status: 'missing', installed: null, current: '10.0.2' }),
    /insert the tools disk \(10\.0\.2\)/,
  );
  assert.match(
    toolsAdvice({ status: 'not-answering', installed: '10.0.2', current: '10.0.2' }),
    /silent now/,
  );
  assert.equal(toolsAdvice({ status: 'current', installed: '10.0.2', current: '10.0.2' }), '');
});

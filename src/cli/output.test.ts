import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decideStyle, paint, paintState, stripAnsi, terminalSafe } from './output.js';

test('colour and the live bar only on a terminal without NO_COLOR, never with --json', () => {
  assert.deepEqual(decideStyle(false, true, {}), { json: false, color: true, progressBar: true });
  assert.deepEqual(decideStyle(false, false, {}), { json: false, color: false, progressBar: false });
  assert.deepEqual(decideStyle(false, true, { NO_COLOR: '1' }), {
    json: false,
    color: false,
    progressBar: false,
  });
  assert.deepEqual(decideStyle(false, true, { NO_COLOR: '' }), {
    json: false,
    color: true,
    progressBar: true,
  });
  assert.deepEqual(decideStyle(false, true, { TERM: 'dumb' }), {
    json: false,
    color: false,
    progressBar: false,
  });
  assert.deepEqual(decideStyle(true, true, {}), { json: true, color: false, progressBar: false });
});

test('states are painted only when colour is on', () => {
  const on = decideStyle(false, true, {});
  const off = decideStyle(false, false, {});
  assert.equal(paintState(off, 'running'), 'running');
  assert.equal(paintState(on, 'running'), '\x1b[32mrunning\x1b[0m');
  assert.equal(paintState(on, 'failed'), '\x1b[31mfailed\x1b[0m');
  assert.equal(stripAnsi(paintState(on, 'migrating')), 'migrating');
});

test('terminalSafe shows control characters and bidi overrides escaped, keeps newlines, tabs and own colours', () => {
  assert.equal(terminalSafe('a\x1b]0;owned\x07b\x00c\u202ed\re'), 'a\\x1b]0;owned\\x07b\\x00c\\u202ed\\x0de');
  assert.equal(terminalSafe('\x1b[2J\x1b[8mhidden\x9b'), '\\x1b[2J\\x1b[8mhidden\\x9b');
  assert.equal(terminalSafe('line 1\n\tline 2'), 'line 1\n\tline 2');
  const painted = paint({ json: false, color: true, progressBar: true }, 'red', 'failed');
  assert.equal(terminalSafe(painted), painted);
});

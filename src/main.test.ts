// The `silobreak` command as a user starts it: help lists every part's nouns (each part loaded
// once: a part registered twice made commander throw before printing anything), and the noun
// that loads a part alone still works.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const bin = path.join(import.meta.dirname, '../bin/silobreak.js');
const run = (args: string[]) => promisify(execFile)(process.execPath, [bin, ...args], { timeout: 60_000 });

/** Every top-level noun, server parts and CLI alike. */
const NOUNS = ['agent', 'agent-join-token', 'guest', 'lab', 'manager', 'host', 'vm', 'managers', 'report'];

test('silobreak --help and silobreak help list every noun and exit 0', async () => {
  for (const args of [['--help'], ['help']]) {
    const { stdout } = await run(args);
    for (const noun of NOUNS)
      assert.match(stdout, new RegExp(`^  ${noun} `, 'm'), `silobreak ${args.join(' ')} lists ${noun}`);
  }
});

test('a server noun loads its part alone: silobreak agent-join-token --help', async () => {
  const { stdout } = await run(['agent-join-token', '--help']);
  assert.match(stdout, /^Usage: silobreak agent-join-token/m, 'its own usage line');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { compareVersions, TOOLS_BOOT_GRACE_MS, toolsStatus, type ToolsFacts } from './tools-status.js';

const started = '2026-12-01T10:00:00.000Z';
const at = (ms: number) => Date.parse(started) + ms;
const base: ToolsFacts = {
  state: 'running',
  startedAt: started,
  hostToolsVersion: '10.0.2',
  answered: { version: '10.0.2', startedAt: started },
  answeringNow: true,
  now: at(60_000),
};

test('versions compare by number, field by field', () => {
  assert.equal(compareVersions('10.0.2', '7.2.22'), 1);
  assert.equal(compareVersions('7.2.22', '10.0.2'), -1);
  assert.equal(compareVersions('10.0', '10.0.0'), 0);
  assert.equal(compareVersions('10.1', '10.0.9'), 1);
  fc.assert(
    fc.property(
      fc.array(fc.nat(99), { minLength: 1, maxLength: 4 }),
      fc.array(fc.nat(99), { minLength: 1, maxLength: 4 }),
      (a, b) => {
        const [x, y] = [a.join('.'), b.join('.')];
        assert.equal(compareVersions(x, y) + compareVersions(y, x), 0); // antisymmetric
      },
    ),
  );
});

test('an answering agent is current at the host version or newer, outdated below it', () => {
  assert.equal(toolsStatus(base), 'current');
  assert.equal(toolsStatus({ ...base, answered: { version: '7.2.22', startedAt: started } }), 'outdated');
  assert.equal(toolsStatus({ ...base, answered: { version: '10.1.0', startedAt: started } }), 'current');
  // A host without a tools disk has nothing to compare with: answering is all that is known.
  assert.equal(
    toolsStatus({
      ...base,
      hostToolsVersion: undefined,
      answered: { version: '7.2.22', startedAt: started },
    }),
    'current',
  );
});

test('silent agents: not answering after an answer this boot, missing after the boot grace, unknown before', () => {
  assert.equal(toolsStatus({ ...base, answeringNow: false }), 'not-answering');
  const neverThisBoot = {
    ...base,
    answeringNow: false,
    answered: { version: '7.2.22', startedAt: '2026-11-30T00:00:00.000Z' },
  };
  assert.equal(toolsStatus({ ...neverThisBoot, now: at(TOOLS_BOOT_GRACE_MS - 1) }), null);
  assert.equal(toolsStatus({ ...neverThisBoot, now: at(TOOLS_BOOT_GRACE_MS + 1) }), 'missing');
  assert.equal(
    toolsStatus({ ...base, answered: undefined, answeringNow: false, now: at(TOOLS_BOOT_GRACE_MS + 1) }),
    'missing',
  );
});

test('a VM that does not run has no tools status', () => {
  for (const state of ['stopped', 'paused', 'incoming', 'migrating', 'crashed'] as const)
    assert.equal(toolsStatus({ ...base, state }), null);
});

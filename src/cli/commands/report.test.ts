import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ChangeRecord, Job } from '../../api/index.js';
import { moveOf, topChanges } from './report.js';

function change(at: string, kind: ChangeRecord['object']['kind'], extra: object = {}): ChangeRecord {
  return {
    id: 1,
    at,
    actor: 'ops',
    object: { kind, id: 'x', name: `${kind}-1` },
    action: 'deleted',
    changes: [],
    risk: 'medium',
    riskRule: 'setting-changed',
    manager: 'm1',
    ...extra,
  };
}

test('the high-risk changes are listed with their rule', () => {
  const records = [
    change('2026-11-26T12:00:00.000Z', 'host', { risk: 'high', riskRule: 'host-removed' }),
    change('2026-11-25T12:00:00.000Z', 'vm', { risk: 'low', riskRule: 'vm-created' }),
    change('2026-11-25T13:00:00.000Z', 'vm', { risk: 'medium' }),
  ];
  assert.deepEqual(topChanges(records), [
    {
      at: '2026-11-26T12:00:00.000Z',
      actor: 'ops',
      object: { kind: 'host', name: 'host-1' },
      action: 'deleted',
      risk: 'high',
      rule: 'host-removed',
    },
  ]);
});

function moveJob(state: Job['state'], result?: unknown): Job {
  return {
    id: '7f1c0a52-5a8e-4d35-9a55-0d1f3f7a9b11',
    kind: 'vm-move',
    state,
    target: { kind: 'vm', id: '7f1c0a52-5a8e-4d35-9a55-0d1f3f7a9b12', name: 'web1' },
    createdBy: 'ops',
    progress: {
      phase: 'copy-memory',
      percent: 60,
      message: '',
      details: { from: 'h1', to: 'h2', mode: 'live' },
    },
    ...(result ? { result } : {}),
    cancelRequested: false,
    createdAt: '2026-11-25T10:00:00.000Z',
    startedAt: '2026-11-25T10:00:00.000Z',
    finishedAt: state === 'running' ? undefined : '2026-11-25T10:00:12.500Z',
    updatedAt: '2026-11-25T10:00:12.500Z',
  };
}

test('a move job becomes its figures: the result when it succeeded, what its progress said when it failed', () => {
  const done = moveOf(
    moveJob('succeeded', {
      vm: { id: '7f1c0a52-5a8e-4d35-9a55-0d1f3f7a9b12', name: 'web1' },
      mode: 'live',
      from: 'h1',
      to: 'h3',
      totalTimeMs: 12_000,
      downtimeMs: 40,
      guestDowntimeMs: 95,
      diskBytes: 1000,
      memoryBytes: 24,
      keptSource: false,
      stats: {},
    }),
  );
  assert.deepEqual(done, {
    at: '2026-11-25T10:00:12.500Z',
    vm: 'web1',
    from: 'h1',
    to: 'h3',
    mode: 'live',
    outcome: 'succeeded',
    totalSeconds: 12,
    downtimeMs: 40,
    guestDowntimeMs: 95,
    bytes: 1024,
  });
  const failed = moveOf(moveJob('failed'));
  assert.equal(failed?.outcome, 'failed');
  assert.equal(failed?.to, 'h2');
  assert.equal(failed?.totalSeconds, 12.5, 'from the job start and end');
  assert.equal(failed?.downtimeMs, null);
  assert.equal(moveOf(moveJob('running')), undefined, 'a move still running is not in the report');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { ApiError, Problem } from '../api/index.js';
import {
  agentError,
  Conflict,
  Forbidden,
  HostUnreachable,
  InsufficientCapacity,
  InvalidInput,
  JobFinished,
  toProblem,
  Unauthorized,
  VmNotFound,
} from './errors.js';

test('each domain error maps to its status and code, keeping the field', () => {
  const cases: [unknown, number, string][] = [
    [new InvalidInput('spec.name: bad', 'spec.name'), 400, 'invalid-input'],
    [new Unauthorized(), 401, 'unauthorized'],
    [new Forbidden('viewer', 'POST /vms'), 403, 'forbidden'],
    [new VmNotFound('web1'), 404, 'not-found'],
    [new Conflict('taken', 'name'), 409, 'conflict'],
    [new InsufficientCapacity('no memory', 'spec.memoryMiB'), 409, 'insufficient-capacity'],
    [new JobFinished('j', 'succeeded'), 409, 'job-finished'],
    [new HostUnreachable('h1', 'refused'), 502, 'host-unreachable'],
  ];
  for (const [error, status, code] of cases) {
    const p = toProblem(error);
    assert.equal(p.status, status);
    assert.equal(p.code, code);
    assert.ok(Problem.safeParse(p).success);
  }
  assert.equal(toProblem(new InvalidInput('x', 'spec.name')).field, 'spec.name');
});

test('unknown errors become a 500 without their message or stack', () => {
  const p = toProblem(new Error('SQLITE_CONSTRAINT at /secret/path.ts:12'));
  assert.equal(p.status, 500);
  assert.equal(p.code, 'internal');
  assert.doesNotMatch(JSON.stringify(p), /SQLITE|secret|\.ts/);
});

test('framework 4xx errors keep their status, each with its own code and title', () => {
  for (const [status, code, title] of [
    [408, 'request-timeout', 'Request timeout'],
    [413, 'body-too-large', 'Content too large'],
    [414, 'uri-too-long', 'URI too long'],
    [415, 'unsupported-media-type', 'Unsupported media type'],
    [431, 'headers-too-large', 'Request header fields too large'],
    [400, 'invalid-input', 'Invalid input'],
  ] as const) {
    const p = toProblem({ statusCode: status, message: 'refused' });
    assert.deepEqual([p.status, p.code, p.title], [status, code, title]);
  }
  const media = toProblem({ statusCode: 415, code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', message: 'x' });
  assert.deepEqual([media.status, media.code, media.field], [415, 'unsupported-media-type', 'content-type']);
});

test('zod failures name the field and the rule', () => {
  const r = z.object({ spec: z.object({ vcpus: z.number().min(1) }) }).safeParse({ spec: { vcpus: 0 } });
  assert.ok(!r.success);
  const e = InvalidInput.fromZod(r.error);
  assert.equal(e.field, 'spec.vcpus');
  assert.match(e.message, /^spec\.vcpus: .*1/);
});

test('agent failures name the host: answers as agent errors, silence as unreachable', () => {
  const answered = agentError(
    'h1',
    new ApiError({ type: 'about:blank', title: 'x', status: 409, code: 'conflict', detail: 'vm exists' }),
  );
  assert.equal(toProblem(answered).code, 'agent-error');
  assert.match(answered.message, /h1: vm exists/);
  const refused = agentError(
    'h1',
    new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED') }),
  );
  assert.ok(refused instanceof HostUnreachable);
  assert.match(refused.message, /h1 is unreachable: connect ECONNREFUSED/);
});

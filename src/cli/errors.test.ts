import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { ApiError } from '../api/index.js';
import {
  connectionProblem,
  describeFailure,
  ExitCode,
  formatFailure,
  OperationFailed,
  UsageError,
} from './errors.js';

const apiError = (status: number, code: string, detail: string, field?: string) =>
  new ApiError({ type: 'about:blank', title: code, status, code, detail, ...(field ? { field } : {}) });

test('usage errors exit 2, failed operations and API errors exit 1', () => {
  assert.equal(describeFailure(new UsageError('--vcpus: bad')).exitCode, ExitCode.usage);
  assert.equal(describeFailure(new OperationFailed('job failed')).exitCode, ExitCode.failed);
  for (const status of [400, 401, 403, 404, 409, 500, 502]) {
    assert.equal(describeFailure(apiError(status, 'x', 'y')).exitCode, ExitCode.failed, String(status));
  }
  assert.equal(describeFailure(new Error('boom')).exitCode, ExitCode.failed);
  assert.equal(describeFailure('a string').exitCode, ExitCode.failed);
});

test('a 401 says the token was rejected and how to give another', () => {
  const f = describeFailure(
    apiError(401, 'unauthorized', 'missing or unknown token'),
    'http://127.0.0.1:7100',
  );
  assert.match(f.message, /manager at http:\/\/127\.0\.0\.1:7100 rejected the token \(401/);
  assert.match(f.hint ?? '', /--token.*SILOBREAK_TOKEN/);
  assert.match(formatFailure(f), /^silobreak: .*\nhint: .*\n$/);
});

test('403, 404 and others keep the manager detail and add what to do', () => {
  assert.match(describeFailure(apiError(403, 'forbidden', 'read-only token')).hint ?? '', /admin token/);
  assert.match(describeFailure(apiError(404, 'not-found', "no vm 'x'")).message, /not found: no vm 'x'/);
  assert.equal(
    describeFailure(apiError(404, 'not-found', 'x'), undefined, 'vm').hint,
    'check the name or id with silobreak vm list',
  );
  const conflict = describeFailure(apiError(409, 'conflict', 'name taken', 'spec.name'));
  assert.equal(conflict.message, 'name taken [spec.name] (409 conflict)');
  assert.match(describeFailure(apiError(502, 'agent-error', 'agent down')).hint ?? '', /log/);
});

test('an unreachable manager and a reply off the contract are explained', () => {
  const refused = new TypeError('fetch failed', {
    cause: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }),
  });
  const f = describeFailure(refused, 'http://127.0.0.1:9');
  assert.equal(f.message, 'cannot reach the manager at http://127.0.0.1:9 (ECONNREFUSED)');
  const timeout = Object.assign(new Error('timed out'), { name: 'TimeoutError' });
  assert.match(describeFailure(timeout, 'http://x').message, /no answer in time/);
  const zod = z.object({ id: z.string() }).safeParse({ id: 1 });
  assert.equal(zod.success, false);
  const off = describeFailure(zod.error);
  assert.equal(off.exitCode, ExitCode.failed);
  assert.match(off.message, /did not match the API.*id/);
});

test('a reply cut off mid-stream counts as a lost connection', () => {
  assert.equal(connectionProblem(new TypeError('terminated')), 'connection lost');
  assert.equal(connectionProblem(new TypeError('something else')), undefined);
  assert.equal(connectionProblem(new Error('fetch failed')), undefined);
});

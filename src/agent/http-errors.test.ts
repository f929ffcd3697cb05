import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AGENT_ERRORS, Problem, VmSpec, type AgentErrorCode } from '../api/index.js';
import { GuestImageMissing } from '../guest/index.js';
import {
  DatastoreNotFound,
  DiskFileExists,
  GuestAgentUnavailable,
  GuestExecTimeout,
  InsufficientCapacity,
  InsufficientMemory,
  InvalidInput,
  MacInUse,
  QemuStartFailed,
  VmAlreadyExists,
  VmNotFound,
  VmStateConflict,
  VSwitchNotFound,
} from './errors.js';
import { problemFor } from './http-errors.js';
import {
  MigrationCancelled,
  MigrationConflict,
  MigrationFailed,
  MigrationNotFound,
} from './migration/errors.js';

/** The status is one the contract gives the code (AGENT_ERRORS in src/api/agent-errors.ts). */
function assertDeclared(p: Problem): void {
  const statuses: readonly number[] = AGENT_ERRORS[p.code as AgentErrorCode].statuses;
  assert.ok(statuses.includes(p.status), `${p.code} answered ${p.status}, declared ${statuses.join(', ')}`);
}

test('each domain error maps to its status and code, keeping the field', () => {
  const cases: [Error, number, string, string | undefined][] = [
    [new VmNotFound('a'), 404, 'vm-not-found', undefined],
    [new VmAlreadyExists('a'), 409, 'vm-exists', 'name'],
    [new MacInUse('52:54:00:00:00:01', 'b', 'nics.0.mac'), 409, 'mac-in-use', 'nics.0.mac'],
    [new DiskFileExists('/x', 'disks.0'), 409, 'disk-file-exists', 'disks.0'],
    [new VmStateConflict('a', 'running', 'delete'), 409, 'vm-state-conflict', undefined],
    [new DatastoreNotFound('nope', 'disks.0.datastore'), 422, 'datastore-not-found', 'disks.0.datastore'],
    [new VSwitchNotFound('nope', 'nics.0.vswitch'), 422, 'vswitch-not-found', 'nics.0.vswitch'],
    [
      new InsufficientCapacity('ds1', 10, 5, 'disks.0.sizeBytes'),
      422,
      'insufficient-capacity',
      'disks.0.sizeBytes',
    ],
    [new InsufficientMemory(10, 5, 'host memory'), 422, 'insufficient-memory', 'memoryMiB'],
    [new InsufficientMemory(10, 5, 'unpromised host memory'), 409, 'insufficient-memory', 'memoryMiB'],
    [new InvalidInput('guestGateway: needs guestIp', 'guestGateway'), 400, 'invalid-input', 'guestGateway'],
    [new GuestAgentUnavailable('a', 'no reply'), 503, 'guest-agent-unavailable', undefined],
    [new GuestExecTimeout('a', 7, 3), 504, 'guest-exec-timeout', 'timeoutSeconds'],
    [new QemuStartFailed('a', 'boom'), 500, 'qemu-start-failed', undefined],
    [new GuestImageMissing('/cache', 'none'), 503, 'guest-image-missing', undefined],
    [new MigrationNotFound('m'), 404, 'migration-not-found', undefined],
    [new MigrationConflict('busy'), 409, 'migration-conflict', undefined],
    [new MigrationCancelled('copy-memory'), 409, 'migration-cancelled', undefined],
    [new MigrationFailed('link down', 'mirror-disks'), 502, 'migration-failed', undefined],
    [
      new MigrationFailed('no progress', 'copy-memory', 'migration-stalled'),
      502,
      'migration-stalled',
      undefined,
    ],
  ];
  for (const [error, status, code, field] of cases) {
    const p = Problem.parse(problemFor(error));
    assert.equal(p.status, status, error.name);
    assert.equal(p.code, code, error.name);
    assert.equal(p.field, field, error.name);
    assert.equal(p.detail, error.message);
    assertDeclared(p);
  }
});

test('a schema failure is a 400 naming the field and the rule', () => {
  const result = VmSpec.safeParse({ name: 'Bad Name', vcpus: 1, memoryMiB: 256 });
  assert.equal(result.success, false);
  const p = problemFor(result.error);
  assert.equal(p.status, 400);
  assert.equal(p.code, 'invalid-input');
  assert.equal(p.field, 'name');
  assert.match(p.detail, /^name: must be 1-31 lowercase/);
});

test('malformed JSON from the body parser is a 400 malformed-json', () => {
  const fastifyError = Object.assign(new Error('Unexpected token } in JSON'), {
    statusCode: 400,
    code: 'FST_ERR_CTP_INVALID_JSON',
  });
  const p = problemFor(fastifyError);
  assert.equal(p.status, 400);
  assert.equal(p.code, 'malformed-json');
});

test("Fastify's other refusals get the contract's codes", () => {
  const cases: [number, string, string][] = [
    [413, 'FST_ERR_CTP_BODY_TOO_LARGE', 'body-too-large'],
    [415, 'FST_ERR_CTP_INVALID_MEDIA_TYPE', 'unsupported-media-type'],
    [400, 'FST_ERR_BAD_URL', 'invalid-request'],
  ];
  for (const [statusCode, code, expected] of cases) {
    const p = problemFor(Object.assign(new Error('refused'), { statusCode, code }));
    assert.deepEqual([p.status, p.code], [statusCode, expected]);
    assertDeclared(p);
  }
});

test('anything unexpected is a 500 without a stack trace', () => {
  const p = problemFor(new TypeError('x is undefined'));
  assert.equal(p.status, 500);
  assert.equal(p.code, 'internal');
  assert.ok(!p.detail.includes('    at '));
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { authorize, bearerSecret, hashSecret, newSecret } from './auth.js';
import { Forbidden } from './errors.js';

test('admins may do everything', () => {
  const admin = { name: 'admin', role: 'admin' as const };
  for (const [m, p] of [
    ['GET', '/tokens'],
    ['POST', '/vms'],
    ['DELETE', '/hosts/:host'],
  ] as const) {
    assert.doesNotThrow(() => authorize(admin, m, p));
  }
});

test('read-only tokens may read everything but the token list, and change nothing', () => {
  const viewer = { name: 'viewer', role: 'read-only' as const };
  for (const p of ['/vms', '/jobs/:id/events', '/changes', '/openapi.json'])
    assert.doesNotThrow(() => authorize(viewer, 'GET', p));
  for (const [m, p] of [
    ['GET', '/tokens'],
    ['POST', '/vms'],
    ['POST', '/jobs/:id/cancel'],
    ['DELETE', '/pools/:pool'],
    ['POST', '/tokens'],
  ] as const) {
    assert.throws(
      () => authorize(viewer, m, p),
      (e: unknown) => e instanceof Forbidden && /viewer/.test(e.message),
    );
  }
});

test('secrets are random, hashed stably, and read from a Bearer header only', () => {
  const a = newSecret();
  assert.notEqual(a, newSecret());
  assert.ok(a.length >= 40);
  assert.equal(hashSecret(a), hashSecret(a));
  assert.notEqual(hashSecret(a), a);
  assert.equal(bearerSecret(`Bearer ${a}`), a);
  assert.equal(bearerSecret(`bearer  ${a} `), a);
  assert.equal(bearerSecret(`Basic ${a}`), undefined);
  assert.equal(bearerSecret(undefined), undefined);
});

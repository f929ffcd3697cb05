import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TLS_CRL_FILE, TLS_FILES } from './fabric-tls.js';

test('the CRL is read when present, never required', () => {
  assert.equal(TLS_FILES.includes(TLS_CRL_FILE), false);
  assert.deepEqual(TLS_FILES, [
    'ca-cert.pem',
    'server-cert.pem',
    'server-key.pem',
    'client-cert.pem',
    'client-key.pem',
  ]);
});

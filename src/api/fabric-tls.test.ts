import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostDn, hostSubject, TLS_CRL_FILE, TLS_FILES } from './fabric-tls.js';

test("hostDn: the host certificate's subject as QEMU's authz compares it (gnutls order, commas)", () => {
  // The exact string QEMU 10 with gnutls 3.7 logged for such a certificate:
  // "TLS x509 authz check for O=Silobreak,OU=host,CN=host1 is denied".
  assert.equal(hostDn('host1'), 'O=Silobreak,OU=host,CN=host1');
  assert.equal(hostSubject('host1'), '/O=Silobreak/OU=host/CN=host1');
  assert.equal(hostDn('lab-3-b'), 'O=Silobreak,OU=host,CN=lab-3-b');
});

test('hostDn refuses what is not a host name (nothing to escape, nothing to confuse)', () => {
  for (const bad of ['', 'a,CN=b', 'Host1', 'a/b', 'a=b', '-x'])
    assert.throws(() => hostDn(bad), /is not a fabric host name/);
});

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

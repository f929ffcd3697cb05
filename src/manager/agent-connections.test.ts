import assert from 'node:assert/strict';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { z } from 'zod';
import { certificateRequest, generateKey, issueCertificate, selfSignedCertificate } from '../pki/index.js';
import { JsonHttpClient, KEPT_CONNECTION_MAX_AGE_MS } from '../api/index.js';

/** A CA, a server certificate for 127.0.0.1 and a manager's client certificate. */
async function credentials() {
  const caKey = await generateKey();
  const ca = {
    keyPem: caKey,
    certPem: await selfSignedCertificate({ keyPem: caKey, role: 'ca', name: 'ca', days: 2 }),
  };
  const issue = async (role: 'host' | 'manager', name: string) => {
    const key = await generateKey();
    const { certPem } = await issueCertificate(ca, {
      csrPem: await certificateRequest(key, role, name),
      role,
      name,
      altNames: ['IP:127.0.0.1'],
    });
    return { key, cert: certPem };
  };
  return { ca: ca.certPem, server: await issue('host', 'h1'), client: await issue('manager', 'm1') };
}

test('calls over TLS to one server share a kept connection, per identity and pinning, new after its maximum age', async (t) => {
  const { ca, server, client } = await credentials();
  let handshakes = 0;
  const https = createServer({ ...server, ca, requestCert: true, rejectUnauthorized: true }, (_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end('{"ok":true}');
  });
  // As the agent's server (fastify): idle connections kept 72 s.
  https.keepAliveTimeout = 72_000;
  https.on('secureConnection', () => handshakes++);
  await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
  try {
    const baseUrl = `https://127.0.0.1:${(https.address() as AddressInfo).port}`;
    const Ok = z.object({ ok: z.literal(true) });
    const verified = new JsonHttpClient({ baseUrl, tls: { ca, ...client } });
    for (let i = 0; i < 3; i++) assert.deepEqual(await verified.request('GET', '/x', Ok), { ok: true });
    assert.equal(handshakes, 1, 'three calls, one handshake');
    // Another client object with the same identity: the same pool.
    await new JsonHttpClient({ baseUrl, tls: { ca, ...client } }).request('GET', '/x', Ok);
    assert.equal(handshakes, 1);
    // Pinned (its name not checked): a pool of its own, though the identity is the same.
    const pinned = new JsonHttpClient({ baseUrl, tls: { ca, ...client, pinned: true } });
    await pinned.request('GET', '/x', Ok);
    await pinned.request('GET', '/x', Ok);
    assert.equal(handshakes, 2);
    // Past its maximum age a connection serves the call in flight and is closed after it.
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    t.mock.timers.tick(KEPT_CONNECTION_MAX_AGE_MS + 1);
    await verified.request('GET', '/x', Ok);
    assert.equal(handshakes, 2);
    await verified.request('GET', '/x', Ok);
    assert.equal(handshakes, 3, 'a new connection after the maximum age');
    await verified.request('GET', '/x', Ok);
    assert.equal(handshakes, 3, 'and that one is kept');
  } finally {
    https.closeAllConnections();
    await new Promise((resolve) => https.close(resolve));
  }
});

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import {
  CA_DAYS,
  certificateRequest,
  checkRevocationList,
  generateKey,
  hostDn,
  issueCertificate,
  matchesKey,
  readCertificate,
  revocationList,
  selfSignedCertificate,
  signedBy,
  subjectOf,
} from './x509.js';

const run = promisify(execFile);

async function fabricCa() {
  const keyPem = await generateKey();
  return {
    keyPem,
    certPem: await selfSignedCertificate({ keyPem, role: 'ca', name: 'test CA', days: CA_DAYS }),
  };
}

test('the CA issues the role it signs for, whatever the request asks', async () => {
  const ca = await fabricCa();
  const other = await fabricCa();
  const key = await generateKey();
  // The request says "manager"; the CA issues a host certificate.
  const csr = await certificateRequest(key, 'manager', 'kvm1');
  const issued = await issueCertificate(ca, {
    csrPem: csr,
    role: 'host',
    name: 'kvm1',
    altNames: ['IP:10.0.0.11', 'DNS:kvm1'],
  });
  const facts = readCertificate(issued.certPem);
  assert.equal(facts.role, 'host');
  assert.equal(facts.name, 'kvm1');
  assert.equal(facts.serial, issued.serial);
  assert.ok(signedBy(issued.certPem, ca.certPem));
  assert.ok(!signedBy(issued.certPem, other.certPem));
  assert.ok(matchesKey(issued.certPem, key));
  assert.ok(!matchesKey(issued.certPem, await generateKey()));
  const days = (Date.parse(facts.notAfter) - Date.now()) / 86_400_000;
  assert.ok(days > 390 && days < 400, `valid ${days} days`);
  const x509 = new X509Certificate(issued.certPem);
  assert.equal(x509.subjectAltName, 'IP Address:10.0.0.11, DNS:kvm1');
  // serverAuth and clientAuth: the host serves the mirror and connects to its peers.
  assert.deepEqual([...(x509.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
});

test('a revocation list names the revoked serials and openssl verifies a revoked certificate as revoked', async () => {
  const ca = await fabricCa();
  const issue = async (name: string) =>
    issueCertificate(ca, {
      csrPem: await certificateRequest(await generateKey(), 'host', name),
      role: 'host',
      name,
      altNames: [`DNS:${name}`],
    });
  const gone = await issue('gone');
  const kept = await issue('kept');
  const crl = await revocationList(ca, [{ serial: gone.serial, revokedAt: new Date() }], 2);
  const dir = await mkdtemp(path.join(tmpdir(), 'pki-test-'));
  try {
    await writeFile(path.join(dir, 'ca.pem'), ca.certPem);
    await writeFile(path.join(dir, 'crl.pem'), crl);
    await writeFile(path.join(dir, 'gone.pem'), gone.certPem);
    await writeFile(path.join(dir, 'kept.pem'), kept.certPem);
    const verify = (cert: string) =>
      run('openssl', [
        'verify',
        '-crl_check',
        '-CAfile',
        path.join(dir, 'ca.pem'),
        '-CRLfile',
        path.join(dir, 'crl.pem'),
        path.join(dir, cert),
      ]).then(
        (r) => r.stdout,
        (e: { stdout?: string; stderr?: string }) => `${e.stdout ?? ''}${e.stderr ?? ''}`,
      );
    assert.match(await verify('kept.pem'), /OK/);
    assert.match(await verify('gone.pem'), /revoked/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a revocation list is checked against its CA and carries its number', async () => {
  const ca = await fabricCa();
  const other = await fabricCa();
  const crl = await revocationList(ca, [], 7);
  assert.deepEqual(await checkRevocationList(crl, ca.certPem), { number: 7 });
  await assert.rejects(
    checkRevocationList(crl, other.certPem),
    /not signed by the fabric CA|verify failure|signature/,
  );
});

test("hostDn: the host certificate's subject as QEMU's authz compares it (gnutls order, commas)", () => {
  // The exact string QEMU 10 with gnutls 3.7 logged for such a certificate:
  // "TLS x509 authz check for O=Silobreak,OU=host,CN=host1 is denied".
  assert.equal(hostDn('host1'), 'O=Silobreak,OU=host,CN=host1');
  assert.equal(subjectOf('host', 'host1'), '/O=Silobreak/OU=host/CN=host1');
  assert.equal(hostDn('lab-3-b'), 'O=Silobreak,OU=host,CN=lab-3-b');
});

test('hostDn refuses what is not a host name (nothing to escape, nothing to confuse)', () => {
  for (const bad of ['', 'a,CN=b', 'Host1', 'a/b', 'a=b', '-x'])
    assert.throws(() => hostDn(bad), /is not a fabric host name/);
});

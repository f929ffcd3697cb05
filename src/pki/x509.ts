/*
 * The fabric's X.509: keys, certificate requests, certificates and revocation lists, made by
 * Debian's `openssl` (no home-made crypto) and read back with node:crypto's X509Certificate.
 * Keys are ECDSA P-256: quick to make (a join or a test makes several), and both OpenSSL (Node)
 * and GnuTLS (QEMU's TLS for NBD and migration) take them.
 *
 * Subjects name a role: `/O=Silobreak/OU=<role>/CN=<name>`. The agent API takes callers whose
 * certificate says `OU=manager`; hosts hold `OU=host` certificates (server and client of the
 * disk mirror and memory stream).
 */
import { execFile } from 'node:child_process';
import { createHash, createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const FABRIC_ORGANISATION = 'Silobreak';
export type CertificateRole = 'ca' | 'manager' | 'host' | 'bootstrap';

/** How long what the CA issues is valid: the CA ten years, a manager or host a year and a month. */
export const CA_DAYS = 3650;
export const LEAF_DAYS = 397;
/** A host certificate with fewer days left than this is renewed by the manager. */
export const RENEW_DAYS_LEFT = 30;

function openssl(args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', args, { maxBuffer: 4 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`openssl ${args[0]}: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
    // openssl may exit before it reads (genpkey reads nothing): a closed pipe is no error here.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}

/** A scratch directory (0700) for openssl's file arguments, removed afterwards. */
async function inScratch<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(tmpdir(), 'silobreak-x509-'));
  try {
    return await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export const subjectOf = (role: CertificateRole, name: string): string =>
  `/O=${FABRIC_ORGANISATION}/OU=${role}/CN=${name}`;

/** A subjectAltName entry for an address or a name: `IP:10.0.0.11`, `IP:fd00::1`, `DNS:kvm1`. */
export const altNameOf = (host: string): string =>
  /^[\d.]+$/.test(host) || host.includes(':') ? `IP:${host}` : `DNS:${host}`;

/**
 * A host certificate's subject as QEMU compares it in an authz object: gnutls's
 * gnutls_x509_crt_get_dn, the attributes in the certificate's order joined by commas
 * (`O=Silobreak,OU=host,CN=host1`; seen in QEMU's "TLS x509 authz check for ... is denied").
 * Host names (lowercase letters, digits, dashes) need no escaping; anything else is refused.
 */
export function hostDn(hostName: string): string {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(hostName))
    throw new Error(`host name ${JSON.stringify(hostName)} is not a fabric host name`);
  return subjectOf('host', hostName).slice(1).split('/').join(',');
}

/** A new ECDSA P-256 private key (PKCS#8 PEM). */
export function generateKey(): Promise<string> {
  return openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']);
}

/** A random positive serial number, as openssl takes it (0x…). */
export const newSerial = (): string =>
  `0x${randomBytes(16)
    .toString('hex')
    .replace(/^[89a-f]/, '7')}`;

export interface SelfSigned {
  keyPem: string;
  role: 'ca' | 'bootstrap';
  name: string;
  days: number;
  /** subjectAltName entries, e.g. `IP:10.0.0.1`, `DNS:kvm1` (bootstrap certificates). */
  altNames?: readonly string[];
}

/** A self-signed certificate: the fabric CA's, or an unenrolled agent's bootstrap certificate. */
export function selfSignedCertificate(options: SelfSigned): Promise<string> {
  return inScratch(async (dir) => {
    const key = path.join(dir, 'key.pem');
    await writeFile(key, options.keyPem, { mode: 0o600 });
    const ext =
      options.role === 'ca'
        ? ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign']
        : [
            'basicConstraints=critical,CA:FALSE',
            'extendedKeyUsage=serverAuth',
            ...(options.altNames?.length ? [`subjectAltName=${options.altNames.join(',')}`] : []),
          ];
    return openssl([
      'req',
      '-x509',
      '-new',
      '-key',
      key,
      '-days',
      String(options.days),
      '-subj',
      subjectOf(options.role, options.name),
      '-set_serial',
      newSerial(),
      ...ext.flatMap((e) => ['-addext', e]),
    ]);
  });
}

/** A certificate signing request for `subject` with the given key. */
export function certificateRequest(keyPem: string, role: CertificateRole, name: string): Promise<string> {
  return inScratch(async (dir) => {
    const key = path.join(dir, 'key.pem');
    await writeFile(key, keyPem, { mode: 0o600 });
    return openssl(['req', '-new', '-key', key, '-subj', subjectOf(role, name)]);
  });
}

export interface FabricCaFiles {
  keyPem: string;
  certPem: string;
}

export interface IssueRequest {
  csrPem: string;
  role: 'manager' | 'host';
  name: string;
  /** subjectAltName entries: a host's fabric address and API address (`IP:…`, `DNS:…`). */
  altNames: readonly string[];
  days?: number;
}

export interface Issued {
  certPem: string;
  serial: string;
  notAfter: string;
  fingerprint: string;
}

/**
 * Signs a request with the CA. The subject and extensions are the CA's choice, not the request's:
 * a request asking for OU=manager still gets the role it is issued for.
 */
export function issueCertificate(ca: FabricCaFiles, request: IssueRequest): Promise<Issued> {
  return inScratch(async (dir) => {
    const files = {
      caKey: path.join(dir, 'ca-key.pem'),
      caCert: path.join(dir, 'ca-cert.pem'),
      csr: path.join(dir, 'req.csr'),
      ext: path.join(dir, 'ext.cnf'),
    };
    await writeFile(files.caKey, ca.keyPem, { mode: 0o600 });
    await writeFile(files.caCert, ca.certPem);
    await writeFile(files.csr, request.csrPem);
    const usage = request.role === 'host' ? 'serverAuth,clientAuth' : 'clientAuth';
    await writeFile(
      files.ext,
      [
        'basicConstraints=critical,CA:FALSE',
        // keyEncipherment too: QEMU's x509 credentials refuse a server certificate whose
        // usage lacks it (gnutls), whatever the key's algorithm.
        'keyUsage=critical,digitalSignature,keyEncipherment,keyAgreement',
        `extendedKeyUsage=${usage}`,
        ...(request.altNames.length ? [`subjectAltName=${request.altNames.join(',')}`] : []),
      ].join('\n') + '\n',
    );
    const certPem = await openssl([
      'x509',
      '-req',
      '-in',
      files.csr,
      '-CA',
      files.caCert,
      '-CAkey',
      files.caKey,
      '-set_serial',
      newSerial(),
      '-days',
      String(request.days ?? LEAF_DAYS),
      '-subj',
      subjectOf(request.role, request.name),
      '-extfile',
      files.ext,
    ]);
    const cert = readCertificate(certPem);
    return { certPem, serial: cert.serial, notAfter: cert.notAfter, fingerprint: cert.fingerprint };
  });
}

export interface RevokedCertificate {
  /** Hex, as readCertificate gives it. */
  serial: string;
  revokedAt: Date;
}

const asn1Time = (d: Date): string =>
  d
    .toISOString()
    .replace(/[-:T]/g, '')
    .replace(/\.\d+Z$/, 'Z')
    .slice(2);

/** The CA's revocation list of `revoked`, numbered `number` (higher is newer), valid `days`. */
export function revocationList(
  ca: FabricCaFiles,
  revoked: readonly RevokedCertificate[],
  number: number,
  days = CA_DAYS,
): Promise<string> {
  return inScratch(async (dir) => {
    const file = (name: string) => path.join(dir, name);
    await writeFile(file('ca-key.pem'), ca.keyPem, { mode: 0o600 });
    await writeFile(file('ca-cert.pem'), ca.certPem);
    // openssl ca's database: one line per revoked certificate (status, expiry, revocation, serial).
    const far = asn1Time(new Date(Date.now() + CA_DAYS * 86_400_000));
    await writeFile(
      file('index.txt'),
      revoked
        .map((r) => `R\t${far}\t${asn1Time(r.revokedAt)}\t${r.serial.toUpperCase()}\tunknown\t/CN=x\n`)
        .join(''),
    );
    await writeFile(file('crlnumber'), `${number.toString(16).padStart(2, '0').toUpperCase()}\n`);
    await writeFile(
      file('ca.cnf'),
      [
        '[ca]',
        'default_ca = fabric',
        '[fabric]',
        `database = ${file('index.txt')}`,
        `crlnumber = ${file('crlnumber')}`,
        `certificate = ${file('ca-cert.pem')}`,
        `private_key = ${file('ca-key.pem')}`,
        'default_md = sha256',
        `default_crl_days = ${days}`,
        '',
      ].join('\n'),
    );
    return openssl(['ca', '-gencrl', '-config', file('ca.cnf'), '-batch']);
  });
}

export interface CertificateFacts {
  subject: string;
  role: string | undefined;
  name: string | undefined;
  /** Upper-case hex, no separators (as Node's X509Certificate gives it). */
  serial: string;
  notBefore: string;
  notAfter: string;
  /** SHA-256 of the DER, as base64url: what a join token pins. */
  fingerprint: string;
  pem: string;
}

function field(subject: string, key: string): string | undefined {
  return subject
    .split('\n')
    .find((line) => line.startsWith(`${key}=`))
    ?.slice(key.length + 1);
}

/** Facts of one PEM certificate; throws on anything that is not one. */
export function readCertificate(pem: string): CertificateFacts {
  const cert = new X509Certificate(pem);
  return {
    subject: cert.subject,
    role: field(cert.subject, 'OU'),
    name: field(cert.subject, 'CN'),
    serial: cert.serialNumber.toUpperCase(),
    notBefore: new Date(cert.validFrom).toISOString(),
    notAfter: new Date(cert.validTo).toISOString(),
    fingerprint: fingerprintOf(cert.raw),
    pem: cert.toString(),
  };
}

export const fingerprintOf = (der: Buffer): string => createHash('sha256').update(der).digest('base64url');

/** True when `certPem` was signed by the CA of `caPem`. */
export function signedBy(certPem: string, caPem: string): boolean {
  try {
    return new X509Certificate(certPem).verify(new X509Certificate(caPem).publicKey);
  } catch {
    return false;
  }
}

/** True when the certificate's public key is the key of `keyPem`. */
export function matchesKey(certPem: string, keyPem: string): boolean {
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

/** Reads a PEM file, or undefined when it is not there. */
export async function readPem(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Checks a revocation list against the CA that must have signed it; its number (newer lists have
 * higher ones). Throws when it is not the CA's.
 */
export function checkRevocationList(crlPem: string, caPem: string): Promise<{ number: number }> {
  return inScratch(async (dir) => {
    await writeFile(path.join(dir, 'ca.pem'), caPem);
    await writeFile(path.join(dir, 'crl.pem'), crlPem);
    // openssl crl says "verify OK" on stderr when the signature holds, "verify failure" when not.
    const out = await new Promise<string>((resolve, reject) => {
      execFile(
        'openssl',
        [
          'crl',
          '-in',
          path.join(dir, 'crl.pem'),
          '-CAfile',
          path.join(dir, 'ca.pem'),
          '-noout',
          '-crlnumber',
        ],
        (error, stdout, stderr) =>
          error ? reject(new Error(stderr.trim() || error.message)) : resolve(`${stdout}\n${stderr}`),
      );
    });
    if (!/verify OK/.test(out)) throw new Error('the revocation list is not signed by the fabric CA');
    const number = /crlNumber=(?:0x)?([0-9A-Fa-f]+)/.exec(out)?.[1];
    return { number: number === undefined ? 0 : parseInt(number, 16) };
  });
}

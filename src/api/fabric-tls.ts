/*
 * Certificates for the QEMU hops of a move: the disk mirror (NBD) and the memory stream both run
 * over TLS (the default; `--no-secure` opts out) with x509 credentials issued by the fabric's CA.
 * Each host keeps them in QEMU's directory layout (`<stateDir>/tls/`): ca-cert.pem, one host
 * certificate (EKU serverAuth + clientAuth) as server-cert.pem + server-key.pem and again as
 * client-cert.pem + client-key.pem, and optionally ca-crl.pem (the fabric's revoked certificates,
 * which QEMU's tls-creds-x509 reads when present). Peers verify each other against the CA; the
 * source checks the target's certificate against the target's fabric address (`tls-hostname`),
 * the target accepts only the announced source's certificate (an authz object on hostDn).
 *
 * The layout is the contract between whoever writes it (the manager's enrollment; the lab's
 * stand-in, src/lab/credentials.ts) and the agent that hands it to QEMU (migration/service.ts), so
 * it lives here, where every part can read it. createFabricCa / issueHostCredentials make such
 * credentials with openssl (Debian) for tests and the lab.
 */
import { execFile } from 'node:child_process';
import { access, chmod, copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const DAYS = '825';

/** Where a host keeps its credentials: `<stateDir>/tls`. */
export function moveTlsDir(stateDir: string): string {
  return path.join(stateDir, 'tls');
}

/** What a host needs for a TLS move, on either side. */
export const TLS_FILES = [
  'ca-cert.pem',
  'server-cert.pem',
  'server-key.pem',
  'client-cert.pem',
  'client-key.pem',
];
/** Read by QEMU when present (revoked host certificates), not required. */
export const TLS_CRL_FILE = 'ca-crl.pem';

export async function createFabricCa(dir: string, name = 'silobreak fabric CA'): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    DAYS,
    '-subj',
    `/CN=${name}`,
    '-keyout',
    path.join(dir, 'ca-key.pem'),
    '-out',
    path.join(dir, 'ca-cert.pem'),
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
}

/** The subject of a host's certificate (openssl -subj order): the name QEMU's authz checks (hostDn). */
export function hostSubject(hostName: string): string {
  return `/O=Silobreak/OU=host/CN=${hostName}`;
}

/**
 * The host certificate's subject as QEMU compares it in an authz object: gnutls's
 * gnutls_x509_crt_get_dn, the attributes in the certificate's order joined by commas
 * (`O=Silobreak,OU=host,CN=host1`; seen in QEMU's "TLS x509 authz check for ... is denied").
 * Host names (Name: lowercase letters, digits, dashes) need no escaping.
 */
export function hostDn(hostName: string): string {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(hostName))
    throw new Error(`host name ${JSON.stringify(hostName)} is not a fabric host name`);
  return hostSubject(hostName).slice(1).split('/').join(',');
}

/**
 * Writes a host's TLS directory as enrollment does: the CA certificate and one host certificate
 * (subject hostSubject, SAN its fabric address and name, EKU serverAuth + clientAuth) with its
 * key, as both the server and the client pair.
 */
export async function issueHostCredentials(
  caDir: string,
  outDir: string,
  host: { name: string; ip: string },
): Promise<void> {
  await mkdir(outDir, { recursive: true, mode: 0o700 });
  await copyFile(path.join(caDir, 'ca-cert.pem'), path.join(outDir, 'ca-cert.pem'));
  const key = path.join(outDir, 'server-key.pem');
  const cert = path.join(outDir, 'server-cert.pem');
  const csr = path.join(outDir, 'host.csr');
  const ext = path.join(outDir, 'host.ext');
  await run('openssl', [
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    hostSubject(host.name),
    '-keyout',
    key,
    '-out',
    csr,
  ]);
  await writeFile(
    ext,
    `subjectAltName=IP:${host.ip},DNS:${host.name}\nextendedKeyUsage=serverAuth,clientAuth\n`,
  );
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    path.join(caDir, 'ca-cert.pem'),
    '-CAkey',
    path.join(caDir, 'ca-key.pem'),
    '-CAcreateserial',
    '-days',
    DAYS,
    '-extfile',
    ext,
    '-out',
    cert,
  ]);
  await rm(csr, { force: true });
  await rm(ext, { force: true });
  await copyFile(cert, path.join(outDir, 'client-cert.pem'));
  await copyFile(key, path.join(outDir, 'client-key.pem'));
  await chmod(path.join(outDir, 'client-key.pem'), 0o600);
}

/** True when `dir` holds everything a TLS move needs on either side (the CRL is optional). */
export async function hasTlsCredentials(dir: string): Promise<boolean> {
  try {
    for (const f of TLS_FILES) await access(path.join(dir, f));
    return true;
  } catch {
    return false;
  }
}

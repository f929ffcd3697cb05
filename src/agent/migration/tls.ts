/*
 * Certificates for `--secure` moves: the disk mirror (NBD) and the memory stream both run over TLS
 * with x509 credentials issued by the fabric's CA. Each host keeps them in QEMU's directory layout
 * (`<stateDir>/tls/`: ca-cert.pem, server-cert.pem + server-key.pem for the target side,
 * client-cert.pem + client-key.pem for the source side); peers verify each other against the CA,
 * and the source checks the target's certificate against the target's fabric address.
 *
 * createFabricCa / issueHostCredentials make them with openssl (Debian); whoever runs the fabric
 * (the lab, the manager) calls them and copies each host's directory into place.
 */
import { execFile } from 'node:child_process';
import { access, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const DAYS = '825';

export const TLS_FILES = [
  'ca-cert.pem',
  'server-cert.pem',
  'server-key.pem',
  'client-cert.pem',
  'client-key.pem',
];

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

/** Writes a host's TLS directory: the CA certificate and a server and a client pair for its address. */
export async function issueHostCredentials(
  caDir: string,
  outDir: string,
  host: { name: string; ip: string },
): Promise<void> {
  await mkdir(outDir, { recursive: true, mode: 0o700 });
  await run('cp', [path.join(caDir, 'ca-cert.pem'), path.join(outDir, 'ca-cert.pem')]);
  for (const role of ['server', 'client'] as const) {
    const key = path.join(outDir, `${role}-key.pem`);
    const csr = path.join(outDir, `${role}.csr`);
    const ext = path.join(outDir, `${role}.ext`);
    await run('openssl', [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-subj',
      `/CN=${host.name}`,
      '-keyout',
      key,
      '-out',
      csr,
    ]);
    const usage = role === 'server' ? 'serverAuth' : 'clientAuth';
    await run('sh', [
      '-c',
      `printf '%s\\n' "subjectAltName=IP:${host.ip},DNS:${host.name}" "extendedKeyUsage=${usage}" > "${ext}"`,
    ]);
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
      path.join(outDir, `${role}-cert.pem`),
    ]);
    await rm(csr, { force: true });
    await rm(ext, { force: true });
  }
}

/** True when `dir` holds everything a secure move needs on either side. */
export async function hasTlsCredentials(dir: string): Promise<boolean> {
  try {
    for (const f of TLS_FILES) await access(path.join(dir, f));
    return true;
  } catch {
    return false;
  }
}

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
 * The layout is the contract between whoever writes it (the agent's enrollment, src/agent/pki.ts;
 * tests, src/agent/migration/test-credentials.ts) and the agent that hands it to QEMU
 * (migration/service.ts). The subject QEMU's authz compares is src/pki's hostDn.
 */
import { access } from 'node:fs/promises';
import path from 'node:path';

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

/** True when `dir` holds everything a TLS move needs on either side (the CRL is optional). */
export async function hasTlsCredentials(dir: string): Promise<boolean> {
  try {
    for (const f of TLS_FILES) await access(path.join(dir, f));
    return true;
  } catch {
    return false;
  }
}

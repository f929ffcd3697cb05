/*
 * The fabric's certificate authority, kept by the manager in <dataDir>/pki (made at its first
 * start; keys 0600): it issues each host's certificate at `host add` (for a key the agent made and
 * keeps), the manager's own client certificate, and the revocation list `host remove` grows.
 * Agents take API calls only from a certificate it issued with the manager's role.
 */
import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TlsClientIdentity } from '../api/index.js';
import {
  altNameOf,
  CA_DAYS,
  certificateRequest,
  generateKey,
  issueCertificate,
  readCertificate,
  readPem,
  RENEW_DAYS_LEFT,
  revocationList,
  selfSignedCertificate,
  type Issued,
  type RevokedCertificate,
} from '../pki/index.js';

export const MANAGER_CERTIFICATE_NAME = 'silobreak-manager';

async function writeOwnerOnly(file: string, content: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, content, { mode: 0o600 });
  await rename(tmp, file);
}

const daysLeft = (pem: string) => (Date.parse(readCertificate(pem).notAfter) - Date.now()) / 86_400_000;

export class FabricCa {
  private constructor(
    private readonly ca: { keyPem: string; certPem: string },
    private readonly manager: { key: string; cert: string },
  ) {}

  /** The CA of <dataDir>/pki, made on the first start; the manager's certificate renewed when due. */
  static async open(dataDir: string): Promise<FabricCa> {
    const dir = path.join(dataDir, 'pki');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    const file = (name: string) => path.join(dir, name);
    let caKey = await readPem(file('ca-key.pem'));
    let caCert = await readPem(file('ca-cert.pem'));
    if (caKey === undefined || caCert === undefined) {
      caKey = await generateKey();
      caCert = await selfSignedCertificate({
        keyPem: caKey,
        role: 'ca',
        name: 'Silobreak fabric CA',
        days: CA_DAYS,
      });
      await writeOwnerOnly(file('ca-key.pem'), caKey);
      await writeOwnerOnly(file('ca-cert.pem'), caCert);
    }
    const ca = { keyPem: caKey, certPem: caCert };
    let key = await readPem(file('manager-key.pem'));
    let cert = await readPem(file('manager-cert.pem'));
    if (key === undefined || cert === undefined || daysLeft(cert) < RENEW_DAYS_LEFT) {
      key = await generateKey();
      cert = (
        await issueCertificate(ca, {
          csrPem: await certificateRequest(key, 'manager', MANAGER_CERTIFICATE_NAME),
          role: 'manager',
          name: MANAGER_CERTIFICATE_NAME,
          altNames: [],
        })
      ).certPem;
      await writeOwnerOnly(file('manager-key.pem'), key);
      await writeOwnerOnly(file('manager-cert.pem'), cert);
    }
    return new FabricCa(ca, { key, cert });
  }

  get certificatePem(): string {
    return this.ca.certPem;
  }

  /** What the manager presents to agents, and the CA it checks them against. */
  clientIdentity(): TlsClientIdentity {
    return { ca: this.ca.certPem, cert: this.manager.cert, key: this.manager.key };
  }

  /** A host certificate for the agent's request; names it `hostName`, whatever the request says. */
  issueHost(csrPem: string, host: { name: string; altNames: readonly string[] }): Promise<Issued> {
    return issueCertificate(this.ca, { csrPem, role: 'host', name: host.name, altNames: host.altNames });
  }

  revocationList(revoked: readonly RevokedCertificate[], number: number): Promise<string> {
    return revocationList(this.ca, revoked, number);
  }
}

/** subjectAltName entries of a host: its name, its fabric address and the address its API is called at. */
export function hostAltNames(hostName: string, fabricAddress: string, agentUrl: string): string[] {
  const apiHost = new URL(agentUrl).hostname.replace(/^\[|\]$/g, '');
  return [...new Set([`DNS:${hostName}`, altNameOf(fabricAddress), altNameOf(apiHost)])];
}

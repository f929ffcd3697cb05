/*
 * The fabric's certificate authority, kept in the manager's database (one for all the managers on
 * it, issue 31) and in its <dataDir>/pki (keys 0600): it issues each host's certificate at
 * `host add` (for a key the agent made and keeps), each manager's own client certificate, and the
 * revocation list `host remove` grows.
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
  matchesKey,
  readCertificate,
  readPem,
  RENEW_DAYS_LEFT,
  revocationList,
  selfSignedCertificate,
  signedBy,
  type Issued,
  type RevokedCertificate,
} from '../pki/index.js';
import type { Db } from './db.js';

export const MANAGER_CERTIFICATE_NAME = 'silobreak-manager';

async function writeOwnerOnly(file: string, content: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, content, { mode: 0o600 });
  await rename(tmp, file);
}

async function newCa(): Promise<CaPem> {
  const keyPem = await generateKey();
  const certPem = await selfSignedCertificate({
    keyPem,
    role: 'ca',
    name: 'Silobreak fabric CA',
    days: CA_DAYS,
  });
  return { keyPem, certPem };
}

const daysLeft = (pem: string) => (Date.parse(readCertificate(pem).notAfter) - Date.now()) / 86_400_000;

/**
 * The data dir's CA is not the database's: the manager does not start (and changes neither), since
 * agents enrolled by one refuse a manager that presents the other's certificates.
 */
export class FabricCaMismatch extends Error {
  constructor(
    /** The data dir's CA certificate file. */
    readonly certFile: string,
    /** The data dir's CA key file. */
    readonly keyFile: string,
    /** The database, as messages name it (no password). */
    readonly database: string,
    /** When the database's CA was stored. */
    readonly storedAt: string,
  ) {
    super(
      `the fabric CA in ${certFile} is not the one in the database ${database} (stored ${storedAt}): ` +
        `to use the database's, remove ${keyFile} and ${certFile} and start again (this manager's ` +
        `certificate is then issued anew; hosts enrolled with the data dir's CA must be enrolled again); ` +
        `or start with the database that holds the data dir's CA`,
    );
    this.name = 'FabricCaMismatch';
  }
}

interface CaPem {
  keyPem: string;
  certPem: string;
}

const sameCa = (a: CaPem, b: CaPem) =>
  a.certPem.trim() === b.certPem.trim() && matchesKey(b.certPem, a.keyPem);

/** The database's CA row, if one is stored. */
const storedCa = (db: Db) =>
  db
    .selectFrom('fabric_ca')
    .select(['key_pem', 'cert_pem', 'stored_at'])
    .where('id', '=', 1)
    .executeTakeFirst();

export class FabricCa {
  private constructor(
    private readonly ca: CaPem,
    private readonly manager: { key: string; cert: string },
  ) {}

  /**
   * The fabric CA, kept in the database (one for every manager on it) and in <dataDir>/pki: the
   * database's is adopted, a data dir's stored where the database has none (an upgrade), a new one
   * made and stored when neither has one. Two managers storing at once: the first row wins and the
   * other adopts it. A data dir whose CA is not the database's: FabricCaMismatch, nothing changed.
   * The manager's own certificate (per data dir) is issued anew when missing, due, or not the CA's.
   */
  static async open(dataDir: string, db: Db, database: string): Promise<FabricCa> {
    const dir = path.join(dataDir, 'pki');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    const file = (name: string) => path.join(dir, name);
    const keyFile = file('ca-key.pem');
    const certFile = file('ca-cert.pem');
    const keyPem = await readPem(keyFile);
    const certPem = await readPem(certFile);
    // A lone key or certificate is no CA: as before, it is replaced.
    const local = keyPem !== undefined && certPem !== undefined ? { keyPem, certPem } : undefined;
    let row = await storedCa(db);
    if (!row) {
      const offer = local ?? (await newCa());
      // Insert if absent: of managers storing at once the first wins, the others read its row back.
      await db
        .insertInto('fabric_ca')
        .values({
          id: 1,
          key_pem: offer.keyPem,
          cert_pem: offer.certPem,
          stored_at: new Date().toISOString(),
        })
        .onConflict((c) => c.column('id').doNothing())
        .execute();
      row = await storedCa(db);
      if (!row) throw new Error('the fabric CA stored in the database cannot be read back');
    }
    const ca = { keyPem: row.key_pem, certPem: row.cert_pem };
    if (local && !sameCa(local, ca)) throw new FabricCaMismatch(certFile, keyFile, database, row.stored_at);
    if (!local) {
      await writeOwnerOnly(keyFile, ca.keyPem);
      await writeOwnerOnly(certFile, ca.certPem);
    }
    let key = await readPem(file('manager-key.pem'));
    let cert = await readPem(file('manager-cert.pem'));
    if (
      key === undefined ||
      cert === undefined ||
      daysLeft(cert) < RENEW_DAYS_LEFT ||
      // From another CA (a data dir that had its own before adopting the database's) or another key.
      !signedBy(cert, ca.certPem) ||
      !matchesKey(cert, key)
    ) {
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

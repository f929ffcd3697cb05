/*
 * This agent's place in the fabric's PKI. Until it is enrolled it serves TLS with a self-signed
 * bootstrap certificate and answers only enrollment, to a caller that knows the one-time join
 * secret; the join token (`silobreak agent join-token`, on the host) is that secret and the
 * bootstrap certificate's fingerprint, so the manager's first connection is pinned. Enrolled, it
 * holds a host certificate the fabric CA signed for a key that never left the host, the CA and
 * the revocation list, and takes API calls only from certificates with the manager's role.
 *
 * Files, owner-only, in <stateDir>/pki: bootstrap-{key,cert}.pem, join-secret, pending-key.pem
 * (the key of the last certificate request), host-{key,cert}.pem, ca-cert.pem, crl.pem. The same
 * credentials go into <stateDir>/tls in QEMU's x509 layout for the disk mirror and memory stream.
 */
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { mkdir, rename, rm, writeFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import type { SecureContextOptions } from 'node:tls';
import {
  moveTlsDir,
  TLS_CRL_FILE,
  TLS_FILES,
  type AgentCertificate,
  type AgentCertificateRequest,
  type AgentConfig,
  type InstallCertificateBody,
} from '../api/index.js';
import {
  altNameOf,
  certificateRequest,
  checkRevocationList,
  generateKey,
  matchesKey,
  readCertificate,
  readPem,
  selfSignedCertificate,
  signedBy,
} from '../pki/index.js';
import { CertificateRejected, JoinRefused } from './errors.js';

/** Which enrolled credential each file of QEMU's x509 directory (src/api/fabric-tls.ts) holds. */
const qemuPart = (file: string): 'ca' | 'cert' | 'key' | 'crl' =>
  file === TLS_CRL_FILE ? 'crl' : file === 'ca-cert.pem' ? 'ca' : file.endsWith('-key.pem') ? 'key' : 'cert';

interface Enrolled {
  key: string;
  cert: string;
  ca: string;
  crl: string;
  crlNumber: number;
}

/** What the TLS server presents and whom it asks for a certificate. */
export interface ServerTls {
  context: SecureContextOptions;
  /** Enrolled: a client without a fabric certificate is refused at the handshake. */
  requireClientCertificate: boolean;
}

export const pkiDir = (stateDir: string) => path.join(stateDir, 'pki');

async function writeSecret(file: string, content: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, content, { mode: 0o600 });
  await rename(tmp, file);
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export class AgentPki {
  readonly #dir: string;
  #bootstrap: { key: string; cert: string; fingerprint: string } | undefined;
  #enrolled: Enrolled | undefined;
  readonly #listeners: Array<(tls: ServerTls) => void> = [];

  private constructor(
    private readonly config: Pick<AgentConfig, 'stateDir' | 'hostName' | 'fabricAddress' | 'listen'>,
  ) {
    this.#dir = pkiDir(config.stateDir);
  }

  /** Loads (or, on the first start, makes) the bootstrap certificate, and the enrollment if any. */
  static async open(
    config: Pick<AgentConfig, 'stateDir' | 'hostName' | 'fabricAddress' | 'listen'>,
  ): Promise<AgentPki> {
    const pki = new AgentPki(config);
    await pki.#load();
    return pki;
  }

  get enrolled(): boolean {
    return this.#enrolled !== undefined;
  }

  #file(name: string): string {
    return path.join(this.#dir, name);
  }

  async #load(): Promise<void> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    await chmod(this.#dir, 0o700);
    let key = await readPem(this.#file('bootstrap-key.pem'));
    let cert = await readPem(this.#file('bootstrap-cert.pem'));
    if (key === undefined || cert === undefined) {
      key = await generateKey();
      const names = new Set([this.config.fabricAddress, this.config.listen.address]);
      cert = await selfSignedCertificate({
        keyPem: key,
        role: 'bootstrap',
        name: this.config.hostName,
        days: 3650,
        altNames: [...[...names].map(altNameOf), `DNS:${this.config.hostName}`],
      });
      await writeSecret(this.#file('bootstrap-key.pem'), key);
      await writeSecret(this.#file('bootstrap-cert.pem'), cert);
    }
    this.#bootstrap = { key, cert, fingerprint: readCertificate(cert).fingerprint };
    const files = await Promise.all(
      ['host-key.pem', 'host-cert.pem', 'ca-cert.pem', 'crl.pem'].map((f) => readPem(this.#file(f))),
    );
    const [hostKey, hostCert, ca, crl] = files;
    if (hostKey && hostCert && ca && crl) {
      const { number } = await checkRevocationList(crl, ca);
      this.#enrolled = { key: hostKey, cert: hostCert, ca, crl, crlNumber: number };
    }
  }

  /** What the TLS server should present now. */
  serverTls(): ServerTls {
    const e = this.#enrolled;
    if (e)
      return { context: { key: e.key, cert: e.cert, ca: e.ca, crl: e.crl }, requireClientCertificate: true };
    const b = this.#bootstrap!;
    return { context: { key: b.key, cert: b.cert }, requireClientCertificate: false };
  }

  /** Told whenever serverTls() changes (enrolled, renewed, new CRL, left). */
  onChange(listener: (tls: ServerTls) => void): void {
    this.#listeners.push(listener);
  }

  #changed(): void {
    for (const l of this.#listeners) l(this.serverTls());
  }

  /** The enrolled certificate's facts, for the log and `agent join-token`. */
  certificate(): AgentCertificate | undefined {
    if (!this.#enrolled) return undefined;
    const c = readCertificate(this.#enrolled.cert);
    return { subject: c.subject.replace(/\n/g, ', '), serial: c.serial, notAfter: c.notAfter };
  }

  /**
   * The join token to hand to `silobreak host add`: made on the first call, the same until used.
   * An enrolled agent has none (leave() first).
   */
  async joinToken(): Promise<string | undefined> {
    if (this.#enrolled) return undefined;
    let secret = (await readPem(this.#file('join-secret')))?.trim();
    if (!secret) {
      secret = randomBytes(24).toString('base64url');
      await writeSecret(this.#file('join-secret'), secret);
    }
    return `${secret}.${this.#bootstrap!.fingerprint}`;
  }

  /** Throws JoinRefused unless `given` is the pending join secret (read fresh: the CLI makes it). */
  async #checkJoinSecret(given: string | undefined): Promise<void> {
    const pending = this.#enrolled ? undefined : (await readPem(this.#file('join-secret')))?.trim();
    if (given === undefined) throw new JoinRefused('joinSecret: required to enroll this agent');
    if (!pending || !timingSafeEqual(digest(given), digest(pending))) throw new JoinRefused();
  }

  /** A request for a new key; enrollment needs the join secret, a manager's renewal does not. */
  async requestCertificate(caller: {
    manager: boolean;
    joinSecret?: string | undefined;
  }): Promise<AgentCertificateRequest> {
    if (!caller.manager) await this.#checkJoinSecret(caller.joinSecret);
    const key = await generateKey();
    await writeSecret(this.#file('pending-key.pem'), key);
    return {
      hostName: this.config.hostName,
      fabricAddress: this.config.fabricAddress,
      csr: await certificateRequest(key, 'host', this.config.hostName),
    };
  }

  /** Installs the certificate issued for the pending key, with its CA and revocation list. */
  async installCertificate(
    caller: { manager: boolean },
    body: Omit<InstallCertificateBody, 'joinSecret'> & { joinSecret?: string | undefined },
  ): Promise<AgentCertificate> {
    if (!caller.manager) await this.#checkJoinSecret(body.joinSecret);
    const key = await readPem(this.#file('pending-key.pem'));
    const reject = (why: string, field = 'certificate') => new CertificateRejected(`${field}: ${why}`, field);
    if (key === undefined) throw reject('no certificate request is pending on this agent');
    if (!matchesKey(body.certificate, key)) throw reject("is not for this agent's pending key");
    if (!signedBy(body.certificate, body.caCertificate)) throw reject('is not signed by caCertificate');
    // A renewal stays in the fabric it is in: the CA cannot be swapped by a renewal.
    if (this.#enrolled && body.caCertificate.trim() !== this.#enrolled.ca.trim())
      throw reject('is not the fabric CA this agent is enrolled with', 'caCertificate');
    const facts = readCertificate(body.certificate);
    if (facts.role !== 'host' || facts.name !== this.config.hostName)
      throw reject(`is for ${facts.role ?? '?'} ${facts.name ?? '?'}, not host ${this.config.hostName}`);
    let crlNumber: number;
    try {
      crlNumber = (await checkRevocationList(body.crl, body.caCertificate)).number;
    } catch (error) {
      throw reject(error instanceof Error ? error.message : String(error), 'crl');
    }
    const enrolled: Enrolled = {
      key,
      cert: body.certificate,
      ca: body.caCertificate,
      crl: body.crl,
      crlNumber,
    };
    await this.#write(enrolled);
    await rm(this.#file('pending-key.pem'), { force: true });
    await rm(this.#file('join-secret'), { force: true });
    this.#enrolled = enrolled;
    this.#changed();
    return this.certificate()!;
  }

  /** A newer revocation list of the same CA replaces the one held; an older one is ignored. */
  async setRevocationList(crl: string): Promise<void> {
    const e = this.#enrolled;
    if (!e) throw new CertificateRejected('crl: this agent is not enrolled', 'crl');
    let number: number;
    try {
      number = (await checkRevocationList(crl, e.ca)).number;
    } catch (error) {
      throw new CertificateRejected(`crl: ${error instanceof Error ? error.message : String(error)}`, 'crl');
    }
    if (number <= e.crlNumber) return;
    const next = { ...e, crl, crlNumber: number };
    await this.#write(next);
    this.#enrolled = next;
    this.#changed();
  }

  /** Leaves the fabric: the certificate goes, a new join secret comes (the bootstrap stays). */
  async leave(): Promise<void> {
    for (const f of [
      'host-key.pem',
      'host-cert.pem',
      'ca-cert.pem',
      'crl.pem',
      'pending-key.pem',
      'join-secret',
    ])
      await rm(this.#file(f), { force: true });
    await rm(moveTlsDir(this.config.stateDir), { recursive: true, force: true });
    this.#enrolled = undefined;
    await this.joinToken();
    this.#changed();
  }

  async #write(e: Enrolled): Promise<void> {
    await writeSecret(this.#file('host-key.pem'), e.key);
    await writeSecret(this.#file('host-cert.pem'), e.cert);
    await writeSecret(this.#file('ca-cert.pem'), e.ca);
    await writeSecret(this.#file('crl.pem'), e.crl);
    const tls = moveTlsDir(this.config.stateDir);
    await mkdir(tls, { recursive: true, mode: 0o700 });
    for (const file of [...TLS_FILES, TLS_CRL_FILE])
      await writeSecret(path.join(tls, file), e[qemuPart(file)]);
  }
}

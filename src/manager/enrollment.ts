/*
 * Joining an agent to the fabric (`host add` with a join token), renewing its certificate, and
 * spreading revocations. The join token is `<joinSecret>.<fingerprint>`: the manager's first
 * connection accepts only the bootstrap certificate of that fingerprint, so the secret goes to
 * the agent it was printed on and nowhere else.
 */
import { connect } from 'node:tls';
import { sql } from 'kysely';
import {
  AgentClient,
  epochHeaders,
  isAgentError,
  type AgentCertificate,
  type HttpEndpoint,
} from '../api/index.js';
import { readCertificate, RENEW_DAYS_LEFT, type RevokedCertificate } from '../pki/index.js';
import type { Db } from './db.js';
import type { HostRow } from './inventory.js';
import { InvalidInput } from './errors.js';
import { hostAltNames, type FabricCa } from './fabric-ca.js';

/**
 * The endpoint of an enrolled agent: HTTPS, the manager's certificate, the fabric CA, and on each
 * call the leader epoch `epoch()` gives (it throws when this manager does not lead: leader.ts).
 */
export const agentEndpoint = (ca: FabricCa, agentUrl: string, epoch: () => number): HttpEndpoint => ({
  baseUrl: agentUrl,
  tls: ca.clientIdentity(),
  headers: () => epochHeaders(epoch()),
});

/** The PEM certificate the server at `agentUrl` presents (no trust decided yet: the caller pins it). */
export function presentedCertificate(agentUrl: string, timeoutMs = 10_000): Promise<string> {
  const url = new URL(agentUrl);
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port),
      rejectUnauthorized: false,
      // No SNI to an address; a name is sent as usual.
      ...(/^[\d.]+$|:/.test(url.hostname) ? {} : { servername: url.hostname }),
    });
    const timer = setTimeout(
      () => socket.destroy(new Error(`no TLS answer within ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const presented = socket.getPeerX509Certificate();
      socket.end();
      if (!presented) reject(new Error('the server presented no certificate'));
      else resolve(presented.toString());
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

export function parseJoinToken(token: string): { secret: string; fingerprint: string } {
  const dot = token.lastIndexOf('.');
  return { secret: token.slice(0, dot), fingerprint: token.slice(dot + 1) };
}

/** A client pinned to the bootstrap certificate the join token names; throws when it is another. */
export async function pinnedClient(
  agentUrl: string,
  fingerprint: string,
  epoch: () => number,
): Promise<AgentClient> {
  epoch(); // only the leader enrols a host
  const pem = await presentedCertificate(agentUrl);
  const presented = readCertificate(pem);
  if (presented.fingerprint !== fingerprint) {
    const role = presented.role;
    throw new InvalidInput(
      role === 'host'
        ? `joinToken: the agent at ${agentUrl} is enrolled in a fabric already (it presents a host certificate); on that host run \`silobreak agent-join-token --config <file> --leave\`, restart the agent, and use the new token`
        : `joinToken: the agent at ${agentUrl} presented another certificate than the join token names: a token of another host, or not the agent you meant`,
      'joinToken',
    );
  }
  return new AgentClient(
    { baseUrl: agentUrl, tls: { ca: pem, pinned: true }, headers: () => epochHeaders(epoch()) },
    30_000,
  );
}

// ---- revocation ----

/** Every certificate revoked so far; the list's number grows with it (one per revocation). */
export async function revokedCertificates(db: Db): Promise<RevokedCertificate[]> {
  const rows = await db
    .selectFrom('revoked_certificates')
    .select(['serial', 'revoked_at'])
    .orderBy('revoked_at')
    .execute();
  return rows.map((r) => ({ serial: r.serial, revokedAt: new Date(r.revoked_at) }));
}

export async function currentRevocationList(db: Db, ca: FabricCa): Promise<{ pem: string; number: number }> {
  const revoked = await revokedCertificates(db);
  const number = revoked.length + 1;
  return { pem: await ca.revocationList(revoked, number), number };
}

/** Sends the current list to a host that has an older one; records what it has. */
export async function pushRevocationList(
  db: Db,
  ca: FabricCa,
  host: HostRow,
  client: AgentClient,
): Promise<void> {
  const count = await db
    .selectFrom('revoked_certificates')
    .select(sql<number>`count(*)`.as('n'))
    .executeTakeFirstOrThrow();
  if (Number(count.n) + 1 <= host.crl_number) return;
  const crl = await currentRevocationList(db, ca);
  await client.putRevocationList(crl.pem);
  await db.updateTable('hosts').set({ crl_number: crl.number }).where('id', '=', host.id).execute();
}

// ---- enrollment and renewal ----

export interface Enrolled {
  certificate: AgentCertificate;
  crlNumber: number;
}

/**
 * Issues a certificate for the agent's new key and installs it: enrollment (`joinSecret`, over
 * the pinned client) or renewal (`joinSecret` absent, over the manager's own certificate).
 * `expectHost`: the name the agent must report (renewal).
 */
export async function issueAndInstall(
  db: Db,
  ca: FabricCa,
  client: AgentClient,
  agentUrl: string,
  options: { joinSecret?: string; expectHost?: string; beforeInstall?: (hostName: string) => Promise<void> },
): Promise<Enrolled & { hostName: string; fabricAddress: string }> {
  const joinSecret = options.joinSecret;
  let request;
  try {
    request = await client.requestCertificate(joinSecret === undefined ? {} : { joinSecret });
  } catch (error) {
    if (isAgentError(error, 'join-refused'))
      throw new InvalidInput(
        `joinToken: the agent at ${agentUrl} refused the join secret (used already, or made anew: run \`silobreak agent-join-token\` on the host again)`,
        'joinToken',
      );
    throw error;
  }
  if (options.expectHost !== undefined && request.hostName !== options.expectHost)
    throw new Error(
      `the agent at ${agentUrl} now calls itself ${request.hostName}, not ${options.expectHost}`,
    );
  await options.beforeInstall?.(request.hostName);
  const issued = await ca.issueHost(request.csr, {
    name: request.hostName,
    altNames: hostAltNames(request.hostName, request.fabricAddress, agentUrl),
  });
  const crl = await currentRevocationList(db, ca);
  const certificate = await client.installCertificate({
    ...(joinSecret === undefined ? {} : { joinSecret }),
    caCertificate: ca.certificatePem,
    certificate: issued.certPem,
    crl: crl.pem,
  });
  return {
    certificate,
    crlNumber: crl.number,
    hostName: request.hostName,
    fabricAddress: request.fabricAddress,
  };
}

/** True when the host's certificate has fewer than RENEW_DAYS_LEFT days left. */
export const renewalDue = (host: Pick<HostRow, 'cert_not_after'>, now = Date.now()): boolean =>
  host.cert_not_after !== null && Date.parse(host.cert_not_after) - now < RENEW_DAYS_LEFT * 86_400_000;

/**
 * A new certificate for an enrolled host (its agent makes a new key): the old one is revoked once
 * the new one is installed. Run when due (reconcile) or asked for.
 */
export async function renewHostCertificate(
  db: Db,
  ca: FabricCa,
  host: HostRow,
  client: AgentClient,
): Promise<AgentCertificate> {
  const renewed = await issueAndInstall(db, ca, client, host.agent_url, { expectHost: host.name });
  await db.transaction().execute(async (tx) => {
    await tx
      .updateTable('hosts')
      .set({
        cert_serial: renewed.certificate.serial,
        cert_not_after: renewed.certificate.notAfter,
        crl_number: renewed.crlNumber,
      })
      .where('id', '=', host.id)
      .execute();
    if (host.cert_serial !== null)
      await tx
        .insertInto('revoked_certificates')
        .values({ serial: host.cert_serial, host_name: host.name, revoked_at: new Date().toISOString() })
        .onConflict((oc) => oc.doNothing())
        .execute();
  });
  return renewed.certificate;
}

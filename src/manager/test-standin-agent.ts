// Test support: a stand-in agent for manager tests — any request handler behind the agent's
// transport as the manager meets it: HTTPS with a bootstrap certificate and the join token's
// enrollment, then mutual TLS (only a manager's certificate is let in).
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { certificateRequest, generateKey, readCertificate, selfSignedCertificate } from '../pki/index.js';

export interface StandInAgent {
  /** What `host add` takes. */
  join: { address: string; joinToken: string };
  /** Requests that reached the handler, with the caller's certificate role. */
  callers: string[];
  close(): Promise<void>;
}

async function readBody(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of request) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : undefined;
}

/** One key and bootstrap certificate for many stand-ins (a benchmark of a thousand hosts). */
export async function standInKeys(): Promise<{ key: string; cert: string }> {
  const key = await generateKey();
  const cert = await selfSignedCertificate({
    keyPem: key,
    role: 'bootstrap',
    name: 'stand-in',
    days: 30,
    altNames: ['IP:127.0.0.1'],
  });
  return { key, cert };
}

export async function standInAgent(
  hostName: string,
  handler: (request: IncomingMessage, response: ServerResponse) => void,
  keys?: { key: string; cert: string },
): Promise<StandInAgent> {
  const { key: bootKey, cert: bootCert } = keys ?? (await standInKeys());
  const secret = 'standin-join-secret-0123456789';
  let pendingKey: string | undefined;
  const callers: string[] = [];
  const server: Server = createServer(
    { key: bootKey, cert: bootCert, requestCert: true, rejectUnauthorized: false },
    (request, response) => {
      const socket = request.socket as TLSSocket;
      const role = socket.authorized ? String(socket.getPeerCertificate().subject.OU) : 'none';
      const json = (status: number, body: unknown) => {
        response.statusCode = status;
        response.setHeader('content-type', 'application/json');
        response.end(JSON.stringify(body));
      };
      if (request.url === '/v1/pki/certificate-request' && request.method === 'POST') {
        void readBody(request).then(async (body) => {
          if ((body as { joinSecret?: string }).joinSecret !== secret)
            return json(403, { title: 'Forbidden', status: 403, code: 'join-refused', detail: 'joinSecret' });
          pendingKey = keys?.key ?? (await generateKey());
          json(200, {
            hostName,
            fabricAddress: '127.0.0.1',
            csr: await certificateRequest(pendingKey, 'host', hostName),
          });
        });
        return;
      }
      if (request.url === '/v1/pki/certificate' && request.method === 'PUT') {
        void readBody(request).then((body) => {
          const b = body as { caCertificate: string; certificate: string; crl: string };
          // From now on: the host certificate, and a client certificate of the fabric is required.
          server.setSecureContext({ key: pendingKey!, cert: b.certificate, ca: b.caCertificate, crl: b.crl });
          (server as Server & { rejectUnauthorized: boolean }).rejectUnauthorized = true;
          const c = readCertificate(b.certificate);
          json(200, { subject: c.subject.replace(/\n/g, ', '), serial: c.serial, notAfter: c.notAfter });
        });
        return;
      }
      if (request.url === '/v1/pki/crl' && request.method === 'PUT') {
        void readBody(request).then(() => {
          response.statusCode = 204;
          response.end();
        });
        return;
      }
      callers.push(role);
      handler(request, response);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const { fingerprint } = readCertificate(bootCert);
  return {
    join: { address: `127.0.0.1:${port}`, joinToken: `${secret}.${fingerprint}` },
    callers,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

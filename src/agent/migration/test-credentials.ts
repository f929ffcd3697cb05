// Test support: a fabric CA in a directory and a host's credentials in QEMU's layout
// (src/api/fabric-tls.ts), made as enrollment makes them (src/pki), for engine tests that run
// agents without a manager.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  CA_DAYS,
  certificateRequest,
  generateKey,
  issueCertificate,
  selfSignedCertificate,
} from '../../pki/index.js';

export async function createFabricCa(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const key = await generateKey();
  await writeFile(path.join(dir, 'ca-key.pem'), key, { mode: 0o600 });
  await writeFile(
    path.join(dir, 'ca-cert.pem'),
    await selfSignedCertificate({ keyPem: key, role: 'ca', name: 'test fabric CA', days: CA_DAYS }),
  );
}

/** One host certificate (SAN its address and name) as the server and the client pair, with the CA. */
export async function issueHostCredentials(
  caDir: string,
  outDir: string,
  host: { name: string; ip: string },
): Promise<void> {
  const ca = {
    keyPem: await readFile(path.join(caDir, 'ca-key.pem'), 'utf8'),
    certPem: await readFile(path.join(caDir, 'ca-cert.pem'), 'utf8'),
  };
  const key = await generateKey();
  const issued = await issueCertificate(ca, {
    csrPem: await certificateRequest(key, 'host', host.name),
    role: 'host',
    name: host.name,
    altNames: [`IP:${host.ip}`, `DNS:${host.name}`],
  });
  await mkdir(outDir, { recursive: true, mode: 0o700 });
  const files = {
    'ca-cert.pem': ca.certPem,
    'server-cert.pem': issued.certPem,
    'server-key.pem': key,
    'client-cert.pem': issued.certPem,
    'client-key.pem': key,
  };
  for (const [file, content] of Object.entries(files))
    await writeFile(path.join(outDir, file), content, { mode: 0o600 });
}

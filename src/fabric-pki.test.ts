// Only the manager drives an agent (issue 28): a real manager and real agent servers (no QEMU)
// on loopback, joined as users join hosts — a join token from the agent, `host add` — and then
// reached over mutual TLS. What is refused, and where: a client without a fabric certificate at
// the TLS handshake (a stolen bearer token changes nothing there), a host's certificate by the
// API (403), a removed host's certificate at the handshake of every other agent once the
// revocation list reached it; a join token of another agent, or used already, names the field.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ApiError, ManagerClient } from './api/index.js';
import { startTestAgent, type TestAgent } from './agent/index.js';
import { callAgentTls, type AgentTlsAnswer } from './lab/index.js';
import { startManager, testDatabase, type RunningManager } from './manager/index.js';
import { readCertificate } from './pki/index.js';

const TOKEN = 'fabric-pki-break-glass-0123456789';
let dir: string;
let manager: RunningManager;
let admin: ManagerClient;
const agents = new Map<string, TestAgent>();
const joins = new Map<string, { address: string; joinToken: string }>();

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-fabric-pki-'));
  manager = await startManager({
    ...(await testDatabase(path.join(dir, 'data'))),
    dataDir: path.join(dir, 'data'),
    reconcileIntervalSeconds: 3600,
    log: () => {},
  });
  admin = new ManagerClient(manager.url, manager.adminToken ?? '');
  for (const hostName of ['h1', 'h2', 'h3']) {
    const agent = await startTestAgent({ token: TOKEN, prefix: `sb-fabric-pki-${hostName}-`, hostName });
    agents.set(hostName, agent);
    joins.set(hostName, await agent.listen());
  }
});

after(async () => {
  for (const agent of agents.values()) await agent.close();
  await manager.close();
  await rm(dir, { recursive: true, force: true });
});

const agent = (name: string) => agents.get(name)!;
const join = (name: string) => joins.get(name)!;
const pkiFile = async (file: string) => readFile(path.join(dir, 'data', 'pki', file), 'utf8');

/** GET /v1/host at the agent over HTTPS with the given client identity (or none). */
async function callAgent(
  name: string,
  identity: { cert?: string; key?: string; token?: string; anyServer?: boolean } = {},
): Promise<AgentTlsAnswer> {
  return callAgentTls(join(name).address, await pkiFile('ca-cert.pem'), identity);
}

async function rejects(call: Promise<unknown>, status: number, field: string, detail: RegExp): Promise<void> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof ApiError, String(error));
    assert.equal(error.status, status, error.message);
    assert.equal(error.field, field);
    assert.match(error.message, detail);
    return;
  }
  assert.fail(`expected HTTP ${status}`);
}

test('an unenrolled agent answers only enrollment; a join token of another agent or a wrong secret names joinToken', async () => {
  // No certificate is needed to reach an unenrolled agent, but it does nothing but enroll.
  assert.deepEqual(await callAgent('h1', { anyServer: true }), { status: 403, code: 'not-enrolled' });
  const other = join('h2').joinToken;
  await rejects(
    admin.addHost({ address: join('h1').address, joinToken: other }),
    400,
    'joinToken',
    /presented another certificate than the join token names/,
  );
  const [secret, fingerprint] = join('h1').joinToken.split('.');
  await rejects(
    admin.addHost({
      address: join('h1').address,
      joinToken: `${secret!.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'))}.${fingerprint}`,
    }),
    400,
    'joinToken',
    /refused the join secret/,
  );
  assert.equal(agent('h1').pki.enrolled, false, 'a refused join changed the agent');
  assert.deepEqual((await admin.listHosts()).items, []);
});

test('host add enrolls over the pinned bootstrap certificate; then only a manager certificate gets in', async () => {
  for (const name of ['h1', 'h2', 'h3']) {
    const host = await admin.addHost(join(name));
    assert.equal(host.name, name);
    assert.equal(host.state, 'connected');
    assert.equal(agent(name).pki.enrolled, true);
  }
  // The token is spent: the same join again is refused at the pin (the agent shows its host certificate now).
  await rejects(admin.addHost(join('h1')), 409, 'address', /already joined/);

  const managerIdentity = { cert: await pkiFile('manager-cert.pem'), key: await pkiFile('manager-key.pem') };
  assert.equal((await callAgent('h1', managerIdentity)).status, 200);
  // No certificate: refused at the handshake, bearer token or not (the break-glass token only
  // works on the agent's own unix socket).
  const bare = await callAgent('h1');
  assert.ok(bare.error, `no certificate got an answer: ${JSON.stringify(bare)}`);
  const stolen = await callAgent('h1', { token: TOKEN });
  assert.ok(stolen.error, `a bearer token alone got an answer: ${JSON.stringify(stolen)}`);
  // A certificate the fabric CA issued to a host: through the handshake, refused by the API.
  const h2 = {
    cert: await readFile(path.join(agent('h2').dir, 'state', 'pki', 'host-cert.pem'), 'utf8'),
    key: await readFile(path.join(agent('h2').dir, 'state', 'pki', 'host-key.pem'), 'utf8'),
  };
  assert.equal(readCertificate(h2.cert).role, 'host');
  assert.deepEqual(await callAgent('h1', h2), { status: 403, code: 'forbidden' });
});

test('host remove revokes: the removed host leaves the fabric and its certificate is refused at the handshake', async () => {
  const h3 = {
    cert: await readFile(path.join(agent('h3').dir, 'state', 'pki', 'host-cert.pem'), 'utf8'),
    key: await readFile(path.join(agent('h3').dir, 'state', 'pki', 'host-key.pem'), 'utf8'),
  };
  assert.deepEqual(await callAgent('h1', h3), { status: 403, code: 'forbidden' });
  await admin.removeHost('h3');
  // The agent was told: no certificate any more, a new join token waits for the next host add.
  assert.equal(agent('h3').pki.enrolled, false);
  const again = await agent('h3').pki.joinToken();
  assert.ok(again && again !== join('h3').joinToken);
  // Every other agent holds the list that revokes it: no handshake.
  for (const name of ['h1', 'h2']) {
    const refused = await callAgent(name, h3);
    assert.ok(refused.error, `${name} let the removed host's certificate in: ${JSON.stringify(refused)}`);
  }
  // And the removed host joins again with its new token.
  const rejoined = await admin.addHost({ address: join('h3').address, joinToken: again });
  assert.equal(rejoined.state, 'connected');
});

test('renewing a certificate: a new key on the host, the old certificate revoked everywhere, the change recorded', async () => {
  const keyFile = path.join(agent('h1').dir, 'state', 'pki', 'host-key.pem');
  const old = {
    cert: await readFile(path.join(agent('h1').dir, 'state', 'pki', 'host-cert.pem'), 'utf8'),
    key: await readFile(keyFile, 'utf8'),
  };
  const before = await admin.getHost('h1');
  const renewed = await admin.renewHostCertificate('h1');
  assert.ok(renewed.certificate && before.certificate);
  assert.notEqual(renewed.certificate.serial, before.certificate.serial);
  assert.equal(renewed.certificate.serial, agent('h1').pki.certificate()?.serial);
  assert.notEqual(await readFile(keyFile, 'utf8'), old.key, 'the key stayed the same');
  // The manager still reaches it; the old certificate is refused at h2's handshake.
  assert.equal((await admin.reconcileHost('h1')).state, 'connected');
  const refused = await callAgent('h2', old);
  assert.ok(refused.error, `h2 let the replaced certificate in: ${JSON.stringify(refused)}`);
  const change = (await admin.listChanges({ limit: 1000 })).items.find(
    (c) => c.object.name === 'h1' && c.changes.some((f) => f.field === 'certificate'),
  );
  assert.ok(change, 'no change record of the renewal');
  assert.equal(change.actor, 'admin');
});

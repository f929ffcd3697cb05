// The fabric CA lives in the database (issue 31): managers with their own data dirs on one
// database (SQLite file or PostgreSQL) end up with one CA and each its own client certificate;
// an upgrading manager stores its data dir's; a data dir whose CA is not the database's refuses.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  CA_DAYS,
  certificateRequest,
  generateKey,
  issueCertificate,
  matchesKey,
  readCertificate,
  selfSignedCertificate,
  signedBy,
} from '../pki/index.js';
import type { Db } from './db.js';
import { FabricCaMismatch, MANAGER_CERTIFICATE_NAME } from './fabric-ca.js';
import { startManager, type RunningManager } from './manager.js';
import { createTestDatabase, dropTestDatabase, testDatabaseKind } from './test-postgres.js';

let dir: string;
const databases: string[] = [];

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sb-fabric-ca-'));
});

after(async () => {
  for (const url of databases) await dropTestDatabase(url);
  await rm(dir, { recursive: true, force: true });
});

/**
 * A database several managers share: a new PostgreSQL database under
 * SILOBREAK_TEST_DATABASE=postgres, else a directory of its own for the SQLite file.
 */
async function sharedDatabase(name: string): Promise<string> {
  if (testDatabaseKind() === 'postgres') {
    const url = await createTestDatabase();
    databases.push(url);
    return url;
  }
  const where = path.join(dir, `${name}-db`);
  await mkdir(where, { recursive: true });
  return where;
}

const start = (dataDir: string, database: string, name: string) =>
  startManager({ dataDir, database, name, reconcileIntervalSeconds: 3600, log: () => {} });

const PKI_FILES = ['ca-key.pem', 'ca-cert.pem', 'manager-key.pem', 'manager-cert.pem'] as const;
const pki = (dataDir: string, file: (typeof PKI_FILES)[number]) => path.join(dataDir, 'pki', file);

/** The data dir's pki files (undefined: absent). */
async function pkiFiles(dataDir: string): Promise<Record<string, string | undefined>> {
  const out: Record<string, string | undefined> = {};
  for (const f of PKI_FILES) out[f] = await readFile(pki(dataDir, f), 'utf8').catch(() => undefined);
  return out;
}

const storedRow = (db: Db) => db.selectFrom('fabric_ca').selectAll().execute();

/** A CA and a manager certificate of it in `dataDir`/pki, as an older manager left them. */
async function oldDataDir(dataDir: string): Promise<{ caCert: string; managerCert: string }> {
  await mkdir(path.join(dataDir, 'pki'), { recursive: true, mode: 0o700 });
  const keyPem = await generateKey();
  const certPem = await selfSignedCertificate({
    keyPem,
    role: 'ca',
    name: 'Silobreak fabric CA',
    days: CA_DAYS,
  });
  const managerKey = await generateKey();
  const managerCert = (
    await issueCertificate(
      { keyPem, certPem },
      {
        csrPem: await certificateRequest(managerKey, 'manager', MANAGER_CERTIFICATE_NAME),
        role: 'manager',
        name: MANAGER_CERTIFICATE_NAME,
        altNames: [],
      },
    )
  ).certPem;
  await writeFile(pki(dataDir, 'ca-key.pem'), keyPem, { mode: 0o600 });
  await writeFile(pki(dataDir, 'ca-cert.pem'), certPem, { mode: 0o600 });
  await writeFile(pki(dataDir, 'manager-key.pem'), managerKey, { mode: 0o600 });
  await writeFile(pki(dataDir, 'manager-cert.pem'), managerCert, { mode: 0o600 });
  return { caCert: certPem, managerCert };
}

/** The manager presents a certificate of its CA (role manager) and keeps it in its data dir. */
async function assertOwnIdentity(manager: RunningManager, dataDir: string): Promise<void> {
  const identity = manager.ca.clientIdentity();
  assert.equal(identity.ca, manager.ca.certificatePem);
  assert.ok(identity.cert !== undefined && identity.key !== undefined);
  assert.ok(matchesKey(identity.cert, identity.key), 'the manager certificate is not its key’s');
  assert.ok(signedBy(identity.cert, manager.ca.certificatePem), 'the manager certificate is not the CA’s');
  assert.equal(readCertificate(identity.cert).role, 'manager');
  assert.equal(await readFile(pki(dataDir, 'manager-cert.pem'), 'utf8'), identity.cert);
  assert.equal(await readFile(pki(dataDir, 'ca-cert.pem'), 'utf8'), manager.ca.certificatePem);
  for (const f of PKI_FILES) assert.equal((await stat(pki(dataDir, f))).mode & 0o777, 0o600, f);
}

test('a second manager with its own data dir takes the database’s CA and gets its own certificate of it', async () => {
  const database = await sharedDatabase('two');
  const [d1, d2] = [path.join(dir, 'two-m1'), path.join(dir, 'two-m2')];
  const m1 = await start(d1, database, 'm1');
  let m2: RunningManager | undefined;
  try {
    m2 = await start(d2, database, 'm2');
    assert.equal(m2.ca.certificatePem, m1.ca.certificatePem, 'the second manager made a CA of its own');
    await assertOwnIdentity(m1, d1);
    await assertOwnIdentity(m2, d2);
    assert.notEqual(m2.ca.clientIdentity().cert, m1.ca.clientIdentity().cert);
    assert.equal(
      await readFile(pki(d2, 'ca-key.pem'), 'utf8'),
      await readFile(pki(d1, 'ca-key.pem'), 'utf8'),
    );
    const rows = await storedRow(m1.db);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.cert_pem, m1.ca.certificatePem);
  } finally {
    await m2?.close();
    await m1.close();
  }
});

test('two managers starting at the same moment on one database agree on one CA', async () => {
  const database = await sharedDatabase('race');
  const dataDirs = [0, 1, 2].map((i) => path.join(dir, `race-m${i}`));
  const started = await Promise.allSettled(dataDirs.map((d, i) => start(d, database, `m${i}`)));
  const managers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  try {
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    const [first, ...others] = managers;
    for (const m of others) assert.equal(m.ca.certificatePem, first?.ca.certificatePem);
    for (const [i, m] of managers.entries()) await assertOwnIdentity(m, dataDirs[i] ?? '');
    assert.deepEqual(
      (await storedRow(managers[0]!.db)).map((r) => r.cert_pem),
      [first?.ca.certificatePem],
    );
  } finally {
    await Promise.all(managers.map((m) => m.close()));
  }
});

test('a manager upgrading with a CA in its data dir stores it in the database, its certificate kept', async () => {
  const database = await sharedDatabase('upgrade');
  const dataDir = path.join(dir, 'upgrade-m1');
  const old = await oldDataDir(dataDir);
  const manager = await start(dataDir, database, 'm1');
  try {
    assert.equal(manager.ca.certificatePem, old.caCert);
    assert.equal(manager.ca.clientIdentity().cert, old.managerCert);
    const rows = await storedRow(manager.db);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.cert_pem, old.caCert);
    assert.equal(rows[0]?.key_pem, await readFile(pki(dataDir, 'ca-key.pem'), 'utf8'));
  } finally {
    await manager.close();
  }
  // A second manager on the database now gets that CA.
  const second = await start(path.join(dir, 'upgrade-m2'), database, 'm2');
  try {
    assert.equal(second.ca.certificatePem, old.caCert);
  } finally {
    await second.close();
  }
});

test('a data dir whose CA is not the database’s refuses to start and changes neither; without its CA files it takes the database’s', async () => {
  const database = await sharedDatabase('mismatch');
  const first = await start(path.join(dir, 'mismatch-m1'), database, 'm1');
  const databaseCa = first.ca.certificatePem;
  const rowsBefore = await storedRow(first.db);
  const dataDir = path.join(dir, 'mismatch-m2');
  const old = await oldDataDir(dataDir);
  const filesBefore = await pkiFiles(dataDir);
  try {
    const error = await start(dataDir, database, 'm2').then(
      async (m) => {
        await m.close();
        assert.fail('a manager with another CA started');
      },
      (e: unknown) => e,
    );
    assert.ok(error instanceof FabricCaMismatch, String(error));
    assert.equal(error.certFile, pki(dataDir, 'ca-cert.pem'));
    assert.equal(error.keyFile, pki(dataDir, 'ca-key.pem'));
    assert.match(
      error.message,
      new RegExp(`remove ${pki(dataDir, 'ca-key.pem')} and ${pki(dataDir, 'ca-cert.pem')}`),
    );
    const databaseName =
      testDatabaseKind() === 'postgres' ? new URL(database).pathname : path.join(database, 'manager.db');
    assert.ok(error.message.includes(databaseName), error.message);
    assert.deepEqual(await pkiFiles(dataDir), filesBefore, 'the data dir’s files changed');
    assert.deepEqual(await storedRow(first.db), rowsBefore, 'the database’s CA changed');

    // The remedy the error names: without the CA files it adopts the database's CA, and its
    // manager certificate (of the old CA) is issued anew by it.
    await unlink(pki(dataDir, 'ca-key.pem'));
    await unlink(pki(dataDir, 'ca-cert.pem'));
    const second = await start(dataDir, database, 'm2');
    try {
      assert.equal(second.ca.certificatePem, databaseCa);
      assert.notEqual(second.ca.clientIdentity().cert, old.managerCert);
      await assertOwnIdentity(second, dataDir);
    } finally {
      await second.close();
    }
  } finally {
    await first.close();
  }
});

// Test support: hosts and VMs put into a real manager's inventory the way reconciliation adds
// them (applySnapshot), and the database as rows to prove a refused call changed nothing. Shared
// by the manager's API tests (api.test.ts, api-input.test.ts, fuzz.test.ts).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ApiError, ManagerClient, type ContractBreach, type Vm } from '../api/index.js';
import { startManager, type RunningManager } from './manager.js';
import { SYSTEM } from './changes.js';
import type { Db } from './db.js';
import { insertHost } from './inventory.js';
import { createTestDatabase, dropTestDatabase, testDatabaseKind } from './test-postgres.js';
import { certificateRequest, generateKey, issueCertificate } from '../pki/index.js';
import { applySnapshot, type AgentSnapshot } from './reconcile.js';

/**
 * A VM with one qcow2 disk on datastore `local` and one NIC on vswitch `vmsw0`; `i` makes its id
 * and its MAC (both unique on the fabric, as the database holds them).
 */
export const testVm = (name: string, state: Vm['state'] = 'stopped', i = 0): Vm => ({
  id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
  name,
  state,
  vcpus: 1,
  memoryMiB: 128,
  disks: [
    {
      id: 'root',
      datastore: 'local',
      path: `/d/${name}.qcow2`,
      format: 'qcow2',
      virtualSizeBytes: 2 ** 30,
      allocatedBytes: 1 << 20,
      nodeName: 'root-fmt',
    },
  ],
  nics: [{ id: 'net0', vswitch: 'vmsw0', mac: testMac(i), tap: 'tap0' }],
  machineType: 'pc-q35-7.2',
  cpuModel: 'qemu64',
  accelerator: 'tcg',
  createdAt: '2026-01-01T00:00:00.000Z',
});

/** The MAC of testVm(…, i): 52:54:00:00:HH:LL. */
export function testMac(i: number): string {
  const hex = (b: number) => b.toString(16).padStart(2, '0');
  return `52:54:00:00:${hex((i >> 8) & 255)}:${hex(i & 255)}`;
}

/** What an agent named `name` would report: datastore `local`, vswitch `vmsw0`, these VMs. */
export function agentSnapshot(name: string, vms: Vm[]): AgentSnapshot {
  return {
    info: {
      name,
      fabricAddress: '10.251.0.11',
      agentVersion: '0.1.0',
      qemuVersion: '7.2.0',
      accelerator: 'tcg',
      cpus: 2,
      memoryBytes: 8 * 2 ** 30,
      memoryFreeBytes: 6 * 2 ** 30,
      machineType: 'pc-q35-7.2',
      cpuModel: 'qemu64',
    },
    datastores: [
      {
        name: 'local',
        path: '/d',
        default: true,
        kind: 'local',
        capacityBytes: 10 * 2 ** 30,
        freeBytes: 5 * 2 ** 30,
        class: 'standard',
      },
    ],
    vswitches: [{ name: 'vmsw0', bridge: 'vmsw0' }],
    vms,
  };
}

/** A host "joined" at a loopback port where nothing listens, with its report applied as at a join. */
export async function seedHost(db: Db, name: string, port: number, vms: Vm[]): Promise<void> {
  const snap = agentSnapshot(name, vms);
  const row = await db.transaction().execute((tx) =>
    insertHost(tx, SYSTEM, {
      agentUrl: `https://127.0.0.1:${port}`,
      certificate: { serial: '01', notAfter: new Date(Date.now() + 365 * 86_400_000).toISOString() },
      crlNumber: 0,
      info: snap.info,
      poolId: null,
    }),
  );
  await applySnapshot(db, row, snap, { joining: true });
}

type Table = Parameters<Db['selectFrom']>[0] & string;

/** Tokens, pools, inventory, jobs and the change log: everything a request could change. */
const CHANGEABLE: readonly Table[] = [
  'tokens',
  'pools',
  'hosts',
  'vms',
  'vm_disks',
  'vm_nics',
  'jobs',
  'changes',
  'host_links',
];

/** These tables' rows as one string, to compare before and after a call (rows in no particular order). */
export async function dbSnapshot(db: Db, tables: readonly Table[] = CHANGEABLE): Promise<string> {
  const all = await Promise.all(tables.map((t) => db.selectFrom(t).selectAll().execute()));
  // Sorted: PostgreSQL returns an updated row in another place, SQLite in the same.
  return JSON.stringify(all.map((rows) => rows.map((r) => JSON.stringify(r)).sort()));
}

export interface TestManager {
  manager: RunningManager;
  /** Clients with the admin token and a read-only token named `viewer`. */
  admin: ManagerClient;
  viewer: ManagerClient;
  /** Answers outside the route table (error codes, and replies against their schemas). */
  breaches: ContractBreach[];
  /** Stops the manager and removes its data directory. */
  close(): Promise<void>;
}

/**
 * A real manager on a new temp data dir (`prefix…`), reconciling only when asked; with
 * `statsIntervalSeconds` 3600 it collects no stats either (tests that ingest their own).
 */
export async function startTestManager(
  prefix: string,
  options: { statsIntervalSeconds?: number } = {},
): Promise<TestManager> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  const breaches: ContractBreach[] = [];
  // SILOBREAK_TEST_DATABASE=postgres: a new database in this process's test PostgreSQL.
  const database = testDatabaseKind() === 'postgres' ? await createTestDatabase() : undefined;
  const manager = await startManager({
    dataDir: dir,
    ...(database ? { database } : {}),
    reconcileIntervalSeconds: 3600,
    ...options,
    // SILOBREAK_TEST_LOG=1 shows the manager's log (an internal error's cause).
    log: process.env.SILOBREAK_TEST_LOG === '1' ? (m) => console.error(`manager: ${m}`) : () => {},
    onContractBreach: (breach) => breaches.push(breach),
  });
  assert.ok(manager.adminToken);
  const admin = new ManagerClient(manager.url, manager.adminToken);
  const ro = await admin.createToken({ name: 'viewer', role: 'read-only' });
  return {
    manager,
    admin,
    viewer: new ManagerClient(manager.url, ro.secret),
    breaches,
    async close() {
      await manager.close();
      await rm(dir, { recursive: true, force: true });
      if (database) await dropTestDatabase(database);
    },
  };
}

/** The API error a call must fail with: its status and, when given, the field it names. */
export async function rejects(call: Promise<unknown>, status: number, field?: string): Promise<ApiError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof ApiError, `expected ApiError, got ${String(error)}`);
    assert.equal(error.status, status, error.message);
    if (field !== undefined) assert.equal(error.field, field, error.message);
    return error;
  }
  assert.fail(`expected HTTP ${status}`);
}

/**
 * Server credentials for a fake agent on 127.0.0.1, issued by the CA of the manager on `dataDir`
 * (as host add would): the manager's mutual-TLS client then takes it for the host's agent.
 */
export async function fakeAgentTls(dataDir: string, hostName = 'h1'): Promise<{ key: string; cert: string }> {
  const read = (f: string) => readFile(path.join(dataDir, 'pki', f), 'utf8');
  const ca = { keyPem: await read('ca-key.pem'), certPem: await read('ca-cert.pem') };
  const key = await generateKey();
  const issued = await issueCertificate(ca, {
    csrPem: await certificateRequest(key, 'host', hostName),
    role: 'host',
    name: hostName,
    altNames: ['IP:127.0.0.1'],
  });
  return { key, cert: issued.certPem };
}

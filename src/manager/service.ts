import { randomUUID } from 'node:crypto';
import {
  AgentClient,
  ApiError,
  VmSpec,
  type DatastoreSpec,
  type DatastoreUpdate,
  type ManagedDatastore,
  type AddHostRequest,
  type CreatedToken,
  type CreatePoolRequest,
  type CreateTokenRequest,
  type CreateVmRequest,
  type Host,
  type Job,
  type ManagedVm,
  type Page,
  type Pool,
  type Token,
} from '../api/index.js';
import { hashSecret, newSecret, type Caller } from './auth.js';
import { nowIso, recordChanges, SYSTEM, type Actor } from './changes.js';
import { decodeCursor, pageOf } from './cursor.js';
import type { Db } from './db.js';
import { agentError, Conflict, InvalidInput, NotFound } from './errors.js';
import {
  getDatastore,
  getHost,
  getPool,
  getVm,
  hostObject,
  hostRow,
  insertHost,
  poolRow,
  syncDatastores,
  vmObject,
  type HostRow,
} from './inventory.js';
import type { JobRunner } from './jobs.js';
import type { KeyedMutex } from './locks.js';
import { applyReport, fetchSnapshot, type Reconciler } from './reconcile.js';
import {
  agentEndpoint,
  issueAndInstall,
  parseJoinToken,
  pinnedClient,
  pushRevocationList,
  renewHostCertificate as renewCertificate,
} from './enrollment.js';
import type { FabricCa } from './fabric-ca.js';
import type { LinkService } from './links.js';
import { claimVmIdentity, withFreeMacs } from './vm-identity.js';
import { placeInPool, prepareCreate, refuseInMaintenance } from './vm-jobs.js';

/*
 * The manager's operations behind the REST API: each takes validated input and the calling
 * token, checks it against the inventory, and either changes the inventory (with its change
 * record, in one transaction) or submits a job.
 */

export interface ServiceDeps {
  db: Db;
  jobs: JobRunner;
  reconciler: Reconciler;
  hostLocks: KeyedMutex;
  clientFor: (host: HostRow) => AgentClient;
  /** Issues each joining host its certificate; revocations at host remove. */
  ca: FabricCa;
  /** Probes the links of a host that joins (in the background). */
  links: LinkService;
  /** The leader epoch each agent call carries; throws when this manager does not lead (leader.ts). */
  epoch: () => number;
}

/** `10.0.0.1:8470` or `https://10.0.0.1:8470/` -> `https://10.0.0.1:8470` */
export function agentUrlOf(address: string): string {
  const withScheme = /^https:\/\//.test(address) ? address : `https://${address}`;
  return withScheme.replace(/\/+$/, '');
}

const actorOf = (caller: Caller): Actor => ({ name: caller.name });

/** An agent's datastore refusal as the manager's own error (same field); anything else as agentError. */
function datastoreError(host: string, error: unknown): Error {
  if (error instanceof ApiError) {
    const detail = `host ${host}: ${error.message}`;
    if (error.code === 'datastore-exists' || error.code === 'datastore-in-use')
      return new Conflict(detail, error.field);
    if (error.code === 'invalid-input') return new InvalidInput(detail, error.field);
  }
  return agentError(host, error);
}
/** A token's identity in change records: its name is its id (names are unique, secrets never shown). */
const tokenObject = (name: string) => ({ kind: 'token' as const, id: name, name });

export class ManagerService {
  /** Token hash -> caller; tokens are looked up on every request. */
  private readonly tokenCache = new Map<string, Caller>();

  constructor(private readonly deps: ServiceDeps) {}

  // ---------------------------------------------------------------------------------------------
  // Tokens

  async authenticate(secret: string): Promise<Caller | undefined> {
    const hash = hashSecret(secret);
    const cached = this.tokenCache.get(hash);
    if (cached) return cached;
    const row = await this.deps.db
      .selectFrom('tokens')
      .select(['name', 'role'])
      .where('hash', '=', hash)
      .executeTakeFirst();
    if (!row) return undefined; // misses are not cached: random guesses must not grow the cache
    const caller: Caller = { name: row.name, role: row.role };
    this.tokenCache.set(hash, caller);
    return caller;
  }

  async listTokens(q: { limit: number; cursor?: string | undefined }): Promise<Page<Token>> {
    let query = this.deps.db.selectFrom('tokens').select(['name', 'role', 'created_at']);
    if (q.cursor) query = query.where('name', '>', String(decodeCursor(q.cursor, ['string'])[0]));
    const rows = await query
      .orderBy('name')
      .limit(q.limit + 1)
      .execute();
    return pageOf(
      rows,
      q.limit,
      (r) => [r.name],
      (r) => ({ name: r.name, role: r.role, createdAt: r.created_at }),
    );
  }

  /** Creates a token with its change record (the role, never the secret or its hash). */
  async createToken(caller: Caller | Actor, req: CreateTokenRequest): Promise<CreatedToken> {
    const secret = newSecret();
    const createdAt = nowIso();
    await this.deps.db.transaction().execute(async (tx) => {
      const taken = await tx
        .selectFrom('tokens')
        .select('name')
        .where('name', '=', req.name)
        .executeTakeFirst();
      if (taken) throw new Conflict(`name: a token named ${req.name} already exists`, 'name');
      await tx
        .insertInto('tokens')
        .values({ name: req.name, role: req.role, hash: hashSecret(secret), created_at: createdAt })
        .execute();
      await recordChanges(
        tx,
        { name: caller.name },
        [
          {
            object: tokenObject(req.name),
            action: 'created',
            changes: [{ field: 'role', before: null, after: req.role }],
          },
        ],
        createdAt,
      );
    });
    this.tokenCache.clear();
    return { name: req.name, role: req.role, createdAt, secret };
  }

  async deleteToken(caller: Caller, name: string): Promise<void> {
    await this.deps.db.transaction().execute(async (tx) => {
      const row = await tx
        .selectFrom('tokens')
        .select(['name', 'role'])
        .where('name', '=', name)
        .executeTakeFirst();
      if (!row) throw new NotFound('token', name);
      if (row.role === 'admin') {
        const admins = await tx.selectFrom('tokens').select('name').where('role', '=', 'admin').execute();
        if (admins.length === 1) throw new Conflict(`token ${name} is the last admin token`, 'name');
      }
      await tx.deleteFrom('tokens').where('name', '=', name).execute();
      await recordChanges(tx, actorOf(caller), [
        {
          object: tokenObject(name),
          action: 'deleted',
          changes: [{ field: 'role', before: row.role, after: null }],
        },
      ]);
    });
    this.tokenCache.clear();
  }

  /**
   * Makes sure an admin token exists: sets `secret` as the `admin` token's when given, creates one
   * on a first start otherwise. Returns the secret it set, if it set one.
   */
  async ensureAdminToken(secret: string | undefined): Promise<string | undefined> {
    const { db } = this.deps;
    if (secret !== undefined) {
      const hash = hashSecret(secret);
      await db.transaction().execute(async (tx) => {
        const existing = await tx
          .selectFrom('tokens')
          .select(['hash', 'role'])
          .where('name', '=', 'admin')
          .executeTakeFirst();
        if (existing?.hash === hash && existing.role === 'admin') return; // the same secret again
        if (existing)
          await tx.updateTable('tokens').set({ hash, role: 'admin' }).where('name', '=', 'admin').execute();
        else
          await tx
            .insertInto('tokens')
            .values({ name: 'admin', role: 'admin', hash, created_at: nowIso() })
            .execute();
        // A replaced secret is recorded as such; the record holds no part of either secret.
        await recordChanges(tx, SYSTEM, [
          existing
            ? {
                object: tokenObject('admin'),
                action: 'setting-changed',
                changes: [{ field: 'secret', before: '(replaced)', after: '(set at start)' }],
              }
            : {
                object: tokenObject('admin'),
                action: 'created',
                changes: [{ field: 'role', before: null, after: 'admin' }],
              },
        ]);
      });
      this.tokenCache.clear();
      return secret;
    }
    const any = await db.selectFrom('tokens').select('name').limit(1).executeTakeFirst();
    if (any) return undefined;
    try {
      return (await this.createToken(SYSTEM, { name: 'admin', role: 'admin' })).secret;
    } catch (error) {
      // Another manager starting at the same moment on the database made it first: its data dir
      // holds the secret, as when this one starts later (fabric-ca.test: managers started at once).
      if (error instanceof Conflict) return undefined;
      throw error;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Hosts

  /**
   * Joins a host: enrolls its agent with the join token (pinned to its bootstrap certificate),
   * then reads it over mutual TLS; its inventory arrives in the same transaction as its row. A
   * failure after the agent took its certificate undoes that: the agent leaves again, the
   * certificate is revoked.
   */
  async addHost(caller: Caller, req: AddHostRequest): Promise<Host> {
    const { db, ca } = this.deps;
    const agentUrl = agentUrlOf(req.address);
    const pool = req.pool ? await poolRow(db, req.pool, 'pool') : undefined;
    const join = parseJoinToken(req.joinToken);
    const already = await db
      .selectFrom('hosts')
      .select('name')
      .where('agent_url', '=', agentUrl)
      .executeTakeFirst();
    if (already)
      throw new Conflict(
        `address: the agent at ${agentUrl} is already joined as host ${already.name}`,
        'address',
      );
    let enrolled;
    try {
      const pinned = await pinnedClient(agentUrl, join.fingerprint, this.deps.epoch);
      enrolled = await issueAndInstall(db, ca, pinned, agentUrl, {
        joinSecret: join.secret,
        beforeInstall: async (hostName) => {
          const taken = await db
            .selectFrom('hosts')
            .select('name')
            .where('name', '=', hostName)
            .executeTakeFirst();
          if (taken) throw new Conflict(`address: a host named ${hostName} is already joined`, 'address');
        },
      });
    } catch (error) {
      if (error instanceof InvalidInput || error instanceof Conflict) throw error;
      // Whatever failed, its message must not carry the secret back to the caller.
      const failed = agentError(agentUrl, error);
      failed.message = failed.message.split(join.secret).join('<join secret>');
      throw failed;
    }
    const client = new AgentClient(agentEndpoint(ca, agentUrl, this.deps.epoch), 15_000);
    const undoEnrollment = async () => {
      await client.leaveFabric().catch(() => undefined);
      await db
        .insertInto('revoked_certificates')
        .values({ serial: enrolled.certificate.serial, host_name: enrolled.hostName, revoked_at: nowIso() })
        .onConflict((oc) => oc.doNothing())
        .execute();
    };
    let snapshot;
    try {
      snapshot = await fetchSnapshot(client);
    } catch (error) {
      await undoEnrollment();
      throw agentError(agentUrl, error);
    }
    const id = await db
      .transaction()
      .execute(async (tx) => {
        const host = await insertHost(tx, actorOf(caller), {
          agentUrl,
          certificate: enrolled.certificate,
          crlNumber: enrolled.crlNumber,
          info: snapshot.info,
          poolId: pool?.id ?? null,
        });
        // What the host already has was not made by this call: it is observed (by `system`), and
        // its journal's past is not drift. A VM whose name or MAC is another's is, all the same.
        await applyReport(tx, host, snapshot, { joining: true });
        return host.id;
      })
      .catch(async (error: unknown) => {
        await undoEnrollment();
        throw error;
      });
    // The measured capability of each datastore (a probe of ~2 s each, one after the other, in the
    // background): the agent keeps the figures and the next reconciliation takes them in.
    void (async () => {
      for (const d of snapshot.datastores) await client.probeDatastore(d.name).catch(() => undefined);
    })();
    // The links with every other host, both directions (short probes, one at a time, in the background).
    this.deps.links.probeJoined(id);
    return getHost(db, id);
  }

  /** Forgets a host and its inventory (the agent and its VMs are left alone). */
  async removeHost(caller: Caller, ref: string): Promise<void> {
    const { db, hostLocks } = this.deps;
    const host = await hostRow(db, ref);
    await hostLocks.run(host.id, () =>
      db.transaction().execute(async (tx) => {
        const vms = await tx
          .selectFrom('vms')
          .select(['id', 'name'])
          .where('host_id', '=', host.id)
          .execute();
        await tx.deleteFrom('hosts').where('id', '=', host.id).execute();
        // Its certificate is no longer the fabric's: every agent refuses it from the next list on.
        if (host.cert_serial !== null)
          await tx
            .insertInto('revoked_certificates')
            .values({ serial: host.cert_serial, host_name: host.name, revoked_at: nowIso() })
            .onConflict((oc) => oc.doNothing())
            .execute();
        await recordChanges(tx, actorOf(caller), [
          {
            object: hostObject(host),
            action: 'deleted',
            host: host.name,
            changes: [{ field: 'vms', before: vms.map((v) => v.name), after: [] }],
          },
        ]);
      }),
    );
    // The agent forgets the fabric (back to a join token; best effort: one that is gone cannot),
    // and every other agent gets the list that revokes its certificate now, or at its next answer.
    await this.deps
      .clientFor(host)
      .leaveFabric()
      .catch(() => undefined);
    await this.spreadRevocations();
  }

  /** Sends the current revocation list to every host that has an older one (best effort). */
  async spreadRevocations(): Promise<void> {
    const { db, ca, clientFor } = this.deps;
    const hosts = await db.selectFrom('hosts').selectAll().execute();
    await Promise.all(hosts.map((h) => pushRevocationList(db, ca, h, clientFor(h)).catch(() => undefined)));
  }

  // ---------------------------------------------------------------------------------------------
  // Datastores: changed on the host's agent (which keeps them in its configuration), then taken
  // into the inventory at once in a transaction whose change records name the caller.

  async addDatastore(caller: Caller, hostRef: string, spec: DatastoreSpec): Promise<ManagedDatastore> {
    await this.#changeDatastores(caller, hostRef, (client) => client.addDatastore(spec));
    return getDatastore(this.deps.db, hostRef, spec.name);
  }

  async updateDatastore(
    caller: Caller,
    hostRef: string,
    name: string,
    update: DatastoreUpdate,
  ): Promise<ManagedDatastore> {
    await getDatastore(this.deps.db, hostRef, name);
    await this.#changeDatastores(caller, hostRef, (client) => client.updateDatastore(name, update));
    return getDatastore(this.deps.db, hostRef, name);
  }

  async removeDatastore(caller: Caller, hostRef: string, name: string): Promise<void> {
    await getDatastore(this.deps.db, hostRef, name);
    await this.#changeDatastores(caller, hostRef, (client) => client.removeDatastore(name));
  }

  async probeDatastore(caller: Caller, hostRef: string, name: string): Promise<ManagedDatastore> {
    await getDatastore(this.deps.db, hostRef, name);
    await this.#changeDatastores(caller, hostRef, (client) => client.probeDatastore(name));
    return getDatastore(this.deps.db, hostRef, name);
  }

  async #changeDatastores(
    caller: Caller,
    hostRef: string,
    change: (client: AgentClient) => Promise<unknown>,
  ): Promise<void> {
    const { db, hostLocks, clientFor } = this.deps;
    const host = await hostRow(db, hostRef, 'host');
    await hostLocks.run(host.id, async () => {
      const client = clientFor(host);
      let reported;
      try {
        await change(client);
        reported = await client.datastores();
      } catch (error) {
        throw datastoreError(host.name, error);
      }
      await db.transaction().execute((tx) => syncDatastores(tx, actorOf(caller), host, reported, nowIso()));
    });
  }

  /**
   * A new certificate for the host now (a new key made on the host); the old one is revoked and
   * the list sent to every agent. Recorded as a change of the host's certificate by the caller.
   */
  async renewHostCertificate(caller: Caller, ref: string): Promise<Host> {
    const { db, ca, clientFor, hostLocks } = this.deps;
    const host = await hostRow(db, ref);
    await hostLocks.run(host.id, async () => {
      let renewed;
      try {
        renewed = await renewCertificate(db, ca, host, clientFor(host));
      } catch (error) {
        throw agentError(host.name, error);
      }
      await recordChanges(db, actorOf(caller), [
        {
          object: hostObject(host),
          action: 'setting-changed',
          host: host.name,
          changes: [{ field: 'certificate', before: host.cert_serial, after: renewed.serial }],
        },
      ]);
    });
    await this.spreadRevocations();
    return getHost(db, host.id);
  }

  async reconcileHost(ref: string): Promise<Host> {
    const host = await hostRow(this.deps.db, ref);
    await this.deps.reconciler.pollHost(host.id);
    return getHost(this.deps.db, host.id);
  }

  // ---------------------------------------------------------------------------------------------
  // Pools

  async createPool(caller: Caller, req: Required<CreatePoolRequest>): Promise<Pool> {
    const { db } = this.deps;
    const id = randomUUID();
    await db.transaction().execute(async (tx) => {
      const taken = await tx.selectFrom('pools').select('id').where('name', '=', req.name).executeTakeFirst();
      if (taken) throw new Conflict(`name: a pool named ${req.name} already exists`, 'name');
      await tx
        .insertInto('pools')
        .values({ id, name: req.name, description: req.description, created_at: nowIso() })
        .execute();
      await recordChanges(tx, actorOf(caller), [
        { object: { kind: 'pool', id, name: req.name }, action: 'created' },
      ]);
    });
    return getPool(db, id);
  }

  async deletePool(caller: Caller, ref: string): Promise<void> {
    await this.deps.db.transaction().execute(async (tx) => {
      const pool = await poolRow(tx, ref);
      const members = await tx.selectFrom('hosts').select('name').where('pool_id', '=', pool.id).execute();
      if (members.length) {
        throw new Conflict(
          `pool ${pool.name} still has hosts (${members.map((m) => m.name).join(', ')}): remove them first`,
        );
      }
      await tx.deleteFrom('pools').where('id', '=', pool.id).execute();
      await recordChanges(tx, actorOf(caller), [
        { object: { kind: 'pool', id: pool.id, name: pool.name }, action: 'deleted' },
      ]);
    });
  }

  /** Adds or removes a host; the pool's change record lists its members before and after. */
  async setPoolMembership(caller: Caller, poolRef: string, hostRef: string, member: boolean): Promise<Pool> {
    const { db } = this.deps;
    const poolId = await db.transaction().execute(async (tx) => {
      const pool = await poolRow(tx, poolRef);
      const host = await hostRow(tx, hostRef, 'host');
      if (member && host.pool_id !== null && host.pool_id !== pool.id) {
        const other = await poolRow(tx, host.pool_id);
        throw new Conflict(
          `host: ${host.name} is already in pool ${other.name}; remove it there first`,
          'host',
        );
      }
      if (!member && host.pool_id !== pool.id)
        throw new InvalidInput(`host: ${host.name} is not in pool ${pool.name}`, 'host');
      if (member && host.pool_id === pool.id) return pool.id; // already a member: nothing changes
      const before = (
        await tx.selectFrom('hosts').select('name').where('pool_id', '=', pool.id).orderBy('name').execute()
      ).map((h) => h.name);
      await tx
        .updateTable('hosts')
        .set({ pool_id: member ? pool.id : null })
        .where('id', '=', host.id)
        .execute();
      const after = member ? [...before, host.name].sort() : before.filter((n) => n !== host.name);
      await recordChanges(tx, actorOf(caller), [
        {
          object: { kind: 'pool', id: pool.id, name: pool.name },
          action: 'setting-changed',
          changes: [{ field: 'hosts', before, after }],
        },
      ]);
      return pool.id;
    });
    return getPool(db, poolId);
  }

  // ---------------------------------------------------------------------------------------------
  // VMs (as jobs)

  async createVm(caller: Caller, req: CreateVmRequest): Promise<Job> {
    const { db } = this.deps;
    const spec = VmSpec.parse(req.spec);
    let host: HostRow;
    if (req.host) {
      host = await hostRow(db, req.host, 'host');
      if (req.pool) {
        const pool = await poolRow(db, req.pool, 'pool');
        if (host.pool_id !== pool.id)
          throw new InvalidInput(`host: ${host.name} is not in pool ${pool.name}`, 'host');
      }
    } else {
      const pool = await poolRow(db, req.pool ?? '', 'pool');
      host = await placeInPool(db, pool.id, pool.name, spec);
    }
    // NICs without a MAC get one free on the whole fabric now, so that it is claimed with the rest.
    const prepared = await withFreeMacs(db, await prepareCreate(db, host, spec));
    const id = prepared.id ?? randomUUID();
    return this.deps.jobs.submit({
      kind: 'vm-create',
      target: vmObject({ id, name: prepared.name }),
      params: { hostId: host.id, spec: { ...prepared, id } },
      actor: actorOf(caller),
      details: { host: host.name },
      // The name and MACs are the database's to hold: of concurrent requests, one is queued.
      within: (tx, jobId) => claimVmIdentity(tx, jobId, { ...prepared, id }),
    });
  }

  async vmAction(
    caller: Caller,
    ref: string,
    kind: 'vm-start' | 'vm-stop' | 'vm-shutdown' | 'vm-tools-insert' | 'vm-tools-eject',
    timeoutSeconds?: number,
  ): Promise<Job> {
    const vm = await getVm(this.deps.db, ref);
    if (kind === 'vm-start') refuseInMaintenance(await hostRow(this.deps.db, vm.hostId), `start ${vm.name}`);
    return this.submitFor(caller, vm, kind, {
      vmId: vm.id,
      ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
    });
  }

  async deleteVm(caller: Caller, ref: string, deleteDisks: boolean): Promise<Job> {
    const vm = await getVm(this.deps.db, ref);
    return this.submitFor(caller, vm, 'vm-delete', { vmId: vm.id, deleteDisks });
  }

  private submitFor(caller: Caller, vm: ManagedVm, kind: string, params: unknown): Promise<Job> {
    return this.deps.jobs.submit({ kind, target: vmObject(vm), params, actor: actorOf(caller) });
  }
}

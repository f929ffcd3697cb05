import { randomBytes } from 'node:crypto';
import { macFromBytes, TERMINAL_JOB_STATES, type ValidVmSpec, type Vm } from '../api/index.js';
import type { Tx } from './db.js';
import { Conflict } from './errors.js';

/*
 * A VM's identity on the fabric: its id, its name and its NICs' MACs are each held by one VM
 * (MACs across every host: they share the VM network). The database holds it (migration 0012):
 * unique indexes on vms.name and vm_nics.mac for the VMs that exist, and vm_claims, whose primary
 * key is (field, value), for the VMs being created. A create claims its identity in the
 * transaction that queues its job, so of concurrent requests for one name or MAC exactly one is
 * accepted; its claims go when the VM's row holds the identity or the job ends.
 */

type Field = 'id' | 'name' | 'mac';

interface Holder {
  /** Who holds the value, for people: `VM web1 on host h1` or `the VM job <id> is creating`. */
  who: string;
  vmId: string;
}

/**
 * Claims whose job has ended (a crash between the job's end and its clean-up) hold nothing: those
 * of the values a create wants are dropped before it claims them (by their key). Not every stale
 * claim on each create: the claims of every queued create were read then, hundreds under a burst
 * of creates (0.45 ms a create in bench/api's 16-way row). A stale claim of another value is
 * ignored meanwhile (holders) and goes with its job's row.
 */
async function dropStaleClaims(tx: Tx, wanted: readonly { field: Field; value: string }[]): Promise<void> {
  if (wanted.length === 0) return;
  await tx
    .deleteFrom('vm_claims')
    .where((eb) =>
      eb.and([
        eb.or(
          wanted.map((w) =>
            eb.and([eb('vm_claims.field', '=', w.field), eb('vm_claims.value', '=', w.value)]),
          ),
        ),
        eb.exists(
          eb
            .selectFrom('jobs')
            .select('jobs.id')
            .whereRef('jobs.id', '=', 'vm_claims.job_id')
            .where('jobs.state', 'in', [...TERMINAL_JOB_STATES]),
        ),
      ]),
    )
    .execute();
}

/** The VM (or pending create) holding each of these values of one field, by value. */
async function holders(tx: Tx, field: Field, values: readonly string[]): Promise<Map<string, Holder>> {
  const out = new Map<string, Holder>();
  if (values.length === 0) return out;
  const claims = await tx
    .selectFrom('vm_claims')
    .innerJoin('jobs', 'jobs.id', 'vm_claims.job_id')
    .select(['vm_claims.value', 'vm_claims.vm_id', 'vm_claims.job_id'])
    .where('vm_claims.field', '=', field)
    .where('vm_claims.value', 'in', [...values])
    .where('jobs.state', 'not in', [...TERMINAL_JOB_STATES])
    .execute();
  for (const c of claims) out.set(c.value, { who: `the VM job ${c.job_id} is creating`, vmId: c.vm_id });
  const base = tx.selectFrom('vms').innerJoin('hosts', 'hosts.id', 'vms.host_id');
  const rows =
    field === 'mac'
      ? await base
          .innerJoin('vm_nics', 'vm_nics.vm_id', 'vms.id')
          .select(['vm_nics.mac as value', 'vms.id', 'vms.name', 'hosts.name as host'])
          .where('vm_nics.mac', 'in', [...values])
          .execute()
      : await base
          .select([`vms.${field} as value`, 'vms.id', 'vms.name', 'hosts.name as host'])
          .where(`vms.${field}`, 'in', [...values])
          .execute();
  for (const r of rows) out.set(r.value, { who: `VM ${r.name} on host ${r.host}`, vmId: r.id });
  return out;
}

/**
 * A MAC for each NIC that has none, held by no VM and no pending create on the fabric (an agent
 * would pick one only its own host does not use): the spec with them.
 */
export async function withFreeMacs<S extends Pick<ValidVmSpec, 'nics'>>(
  tx: Tx,
  spec: S,
  random: (n: number) => Uint8Array = randomBytes,
): Promise<S> {
  const given = new Set(spec.nics.flatMap((n) => (n.mac ? [n.mac] : [])));
  const nics = [];
  for (const nic of spec.nics) {
    if (nic.mac) {
      nics.push(nic);
      continue;
    }
    for (;;) {
      const mac = macFromBytes(random(3));
      if (given.has(mac) || (await holders(tx, 'mac', [mac])).size) continue;
      given.add(mac);
      nics.push({ ...nic, mac });
      break;
    }
  }
  return { ...spec, nics };
}

/**
 * Claims a new VM's id, name and MACs for the job `jobId` creating it, in the transaction that
 * queues that job: a value another VM or another pending create holds is a Conflict naming the
 * request's field, and nothing is claimed.
 */
export async function claimVmIdentity(
  tx: Tx,
  jobId: string,
  spec: Pick<ValidVmSpec, 'name' | 'nics'> & { id: string },
): Promise<void> {
  const wanted: { field: Field; value: string; at: string }[] = [
    { field: 'id', value: spec.id, at: 'spec.id' },
    { field: 'name', value: spec.name, at: 'spec.name' },
    ...spec.nics.flatMap((n, i) =>
      n.mac ? [{ field: 'mac' as const, value: n.mac, at: `spec.nics.${i}.mac` }] : [],
    ),
  ];
  await dropStaleClaims(tx, wanted);
  for (const field of ['id', 'name', 'mac'] as const) {
    const mine = wanted.filter((w) => w.field === field);
    const held = await holders(
      tx,
      field,
      mine.map((w) => w.value),
    );
    for (const w of mine) {
      const holder = held.get(w.value);
      if (!holder) continue;
      const unique = field === 'mac' ? ' (MACs are unique on the shared VM network)' : '';
      throw new Conflict(
        `${w.at}: ${w.value} is already ${field === 'name' ? 'the name of' : 'used by'} ${holder.who}${unique}`,
        w.at,
      );
    }
  }
  await tx
    .insertInto('vm_claims')
    .values(wanted.map((w) => ({ field: w.field, value: w.value, vm_id: spec.id, job_id: jobId })))
    .execute();
}

/** Lets go of a create job's claims (its VM's row holds the identity now, or the job failed). */
export async function releaseVmClaims(tx: Tx, jobId: string): Promise<void> {
  await tx.deleteFrom('vm_claims').where('job_id', '=', jobId).execute();
}

/**
 * Of the VMs a host reports, those whose name or a MAC another VM holds (or a pending create has
 * claimed, or an earlier VM of the same report has): each with why. The inventory does not adopt
 * them (its unique indexes would refuse them anyway); reconciliation reports them as drift.
 */
export async function identityConflicts(tx: Tx, vms: readonly Vm[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (vms.length === 0) return out;
  const names = await holders(
    tx,
    'name',
    vms.map((v) => v.name),
  );
  const macs = await holders(
    tx,
    'mac',
    vms.flatMap((v) => v.nics.map((n) => n.mac)),
  );
  const seenNames = new Map<string, string>();
  const seenMacs = new Map<string, string>();
  for (const vm of vms) {
    const name = names.get(vm.name);
    const reasons: string[] = [];
    if (name && name.vmId !== vm.id) reasons.push(`its name ${vm.name} is already ${name.who}'s`);
    else if (seenNames.has(vm.name))
      reasons.push(`its name ${vm.name} is also VM ${seenNames.get(vm.name)}'s`);
    for (const nic of vm.nics) {
      const mac = macs.get(nic.mac);
      if (mac && mac.vmId !== vm.id) reasons.push(`its MAC ${nic.mac} is already used by ${mac.who}`);
      else if (seenMacs.has(nic.mac) && seenMacs.get(nic.mac) !== vm.id)
        reasons.push(`its MAC ${nic.mac} is also used by another VM of this host`);
    }
    if (reasons.length) {
      out.set(vm.id, reasons.join('; '));
      continue;
    }
    seenNames.set(vm.name, vm.id);
    for (const nic of vm.nics) seenMacs.set(nic.mac, vm.id);
  }
  return out;
}

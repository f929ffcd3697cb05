import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { z } from 'zod';
import { ManagerClient } from '../api/index.js';
import {
  breakGlassClient as labAgent,
  labDown,
  labList,
  labExec,
  labStatus,
  labUp,
  waitForPing,
  type Lab,
} from './lab.js';
import { labTag, linkPattern, namespacePattern } from './plan.js';
import { findLabProcesses, isAlive } from './processes.js';
import { indexClaims, labDir } from './store.js';
import { ip, listLinks, listNamespaces } from './system.js';

/*
 * One 2-host lab (TCG, no demo VMs) for the whole file; a second one for the crash case. Every
 * case checks what it claims against the system itself (ip, /proc, the file system).
 */

const NAME = 'labtest';
const BIN = path.resolve(import.meta.dirname, '..', '..', 'bin', 'silobreak.js');
const MiB = 1024 ** 2;
let lab: Lab;

const AddrList = z.array(
  z.object({
    addr_info: z.array(z.object({ family: z.string(), local: z.string(), prefixlen: z.number() })),
  }),
);
async function addresses(dev: string): Promise<string[]> {
  return AddrList.parse(JSON.parse(await ip('-j', 'addr', 'show', 'dev', dev))).flatMap((l) =>
    l.addr_info.map((a) => `${a.local}/${a.prefixlen}`),
  );
}

function startVm(host: Lab['hosts'][number], name: string, cidr: string) {
  return labAgent(host).createVm({
    name,
    vcpus: 1,
    memoryMiB: 256,
    disks: [{ sizeBytes: 256 * MiB }],
    nics: [{ vswitch: 'vmsw0' }],
    guestIp: cidr,
    start: true,
  });
}

/** Nothing of the lab is left: namespaces, links, processes, files, index claim. */
async function assertNothingLeft(name: string, pids: number[]) {
  assert.deepEqual(
    (await listNamespaces()).filter((ns) => namespacePattern(name).test(ns)),
    [],
    'namespaces left',
  );
  assert.deepEqual(
    (await listLinks()).filter((l) => linkPattern(labTag(name)).test(l)),
    [],
    'links left',
  );
  for (const pid of pids) assert.equal(await isAlive(pid), false, `process ${pid} still alive`);
  assert.deepEqual(
    await findLabProcesses({ namespaces: [], dir: labDir(name) }),
    [],
    'processes naming the lab dir',
  );
  assert.equal(existsSync(labDir(name)), false, 'lab directory left');
  assert.equal([...(await indexClaims()).values()].includes(name), false, 'index claim left');
}

before(
  async () => {
    lab = await labUp({ name: NAME, hosts: 2, demo: false, accelerator: 'tcg' });
  },
  { timeout: 300_000 },
);

after(
  async () => {
    await labDown({ name: NAME });
    await labDown({ name: `${NAME}-crash` });
  },
  { timeout: 120_000 },
);

test('lab up creates the namespaces, bridges and addresses of the plan', async () => {
  const namespaces = await listNamespaces();
  for (const ns of [lab.client.namespace, ...lab.hosts.map((h) => h.namespace)])
    assert.ok(namespaces.includes(ns), ns);
  const links = await listLinks();
  for (const link of [
    lab.fabric.bridge,
    lab.vmNet.bridge,
    lab.client.veth,
    ...lab.hosts.map((h) => h.fabricVeth),
  ]) {
    assert.ok(links.includes(link), link);
  }
  // The root namespace has the fabric address and nothing on the VM segment.
  assert.deepEqual(await addresses(lab.fabric.bridge), [`${lab.fabric.rootAddress}/24`]);
  assert.deepEqual(await addresses(lab.vmNet.bridge), []);
  assert.match(lab.fabric.subnet, new RegExp(`^10\\.250\\.${lab.index}\\.0/24$`));
  assert.equal(lab.hosts[1]?.fabricAddress, `10.250.${lab.index}.12`);
});

test('every agent answers on its fabric address with its own vswitch, and the manager has them all', async () => {
  for (const host of lab.hosts) {
    const client = labAgent(host);
    const info = await client.host();
    assert.equal(info.name, host.name);
    assert.equal(info.fabricAddress, host.fabricAddress);
    assert.equal(info.accelerator, 'tcg');
    assert.deepEqual(
      (await client.vswitches()).map((s) => [s.name, s.uplink]),
      [['vmsw0', 'uplink0']],
    );
  }
  assert.ok(lab.manager, 'the lab started a manager');
  const hosts = await new ManagerClient(lab.manager.url, lab.manager.token).listHosts();
  assert.deepEqual(
    hosts.items.map((h) => [h.name, h.state, h.pool]),
    [
      ['host1', 'connected', NAME],
      ['host2', 'connected', NAME],
    ],
  );
  assert.deepEqual(
    (await labList()).find((l) => l.name === NAME),
    { name: NAME, index: lab.index, hosts: 2, agentsRunning: 2, managerUrl: lab.manager.url },
  );
  const status = await labStatus(NAME);
  assert.equal(status.managerUp, true);
  assert.deepEqual(
    status.hosts.map((h) => [h.name, h.agentUp]),
    [
      ['host1', true],
      ['host2', true],
    ],
  );
});

test('lab exec runs in the namespace and returns the exit code', async () => {
  const host1 = lab.hosts[0];
  assert.ok(host1);
  const addr = await labExec({
    name: NAME,
    target: 'host1',
    command: ['ip', '-4', '-o', 'addr', 'show', 'fabric0'],
  });
  assert.equal(addr.exitCode, 0);
  assert.match(addr.stdout, new RegExp(`inet ${host1.fabricAddress.replaceAll('.', '\\.')}/24`));
  assert.equal(
    (await labExec({ name: NAME, target: 'client', command: ['sh', '-c', 'exit 7'] })).exitCode,
    7,
  );
  // The CLI propagates the exit code too.
  const cli = await promisify(execFile)(process.execPath, [
    BIN,
    'lab',
    'exec',
    'client',
    '--name',
    NAME,
    '--',
    'sh',
    '-c',
    'exit 3',
  ]).then(
    () => 0,
    (error: { code?: number }) => error.code,
  );
  assert.equal(cli, 3);
  await assert.rejects(labExec({ name: NAME, target: 'host9', command: ['true'] }), /has no namespace/);
  await assert.rejects(
    labExec({ name: NAME, target: 'root', command: ['true'] }),
    /target: must be 'client'/,
  );
});

test(
  'a VM started through an agent answers ping from the client namespace',
  { timeout: 420_000 },
  async () => {
    const host2 = lab.hosts[1];
    assert.ok(host2);
    const address = lab.vmAddress(1);
    const vm = await startVm(host2, 'pingme', address.cidr);
    assert.equal(vm.nics.length, 1);
    await waitForPing(lab, address.ip);
    const status = await labStatus(NAME);
    const vms = status.hosts.find((h) => h.name === 'host2')?.vms;
    assert.deepEqual(vms, [{ name: 'pingme', state: 'running', ip: address.ip }]);
  },
);

test('lab down removes everything, and a second lab down is fine', { timeout: 120_000 }, async () => {
  const vmPids = (await Promise.all(lab.hosts.map((h) => labAgent(h).listVms())))
    .flat()
    .flatMap((vm) => (vm.pid ? [vm.pid] : []));
  assert.equal(vmPids.length, 1, 'the VM of the previous case runs');
  const pids = [...lab.hosts.map((h) => h.pid ?? 0), lab.manager?.pid ?? 0, ...vmPids];
  const [report] = await labDown({ name: NAME });
  assert.ok(report && report.killedPids.length >= 4, 'agents, manager and QEMU were stopped');
  await assertNothingLeft(NAME, pids);
  const [again] = await labDown({ name: NAME });
  assert.deepEqual(again, { name: NAME, killedPids: [], namespaces: [], links: [] });
});

test(
  'after a crash (agents killed, state file gone) lab down still removes everything',
  { timeout: 420_000 },
  async () => {
    const name = `${NAME}-crash`;
    const crashed = await labUp({ name, hosts: 2, demo: false, accelerator: 'tcg' });
    const host1 = crashed.hosts[0];
    assert.ok(host1);
    const vm = await startVm(host1, 'orphan', crashed.vmAddress(1).cidr);
    assert.ok(vm.pid, 'QEMU runs');
    const agentPids = crashed.hosts.map((h) => h.pid ?? 0);
    for (const pid of agentPids) process.kill(pid, 'SIGKILL');
    await rm(path.join(crashed.dir, 'state.json'));
    assert.equal(await isAlive(vm.pid), true, 'QEMU outlives its agent');
    assert.notEqual(crashed.tag, name, 'a long name gets a hashed tag');
    assert.deepEqual(
      (await labList()).find((l) => l.name === name),
      { name, index: null, hosts: 0, agentsRunning: 0, managerUrl: null },
      'lab list and lab down --all still find it',
    );

    await labDown({ name });
    await assertNothingLeft(name, [...agentPids, vm.pid]);
  },
);

/*
 * The `lab down --all` scenario of down-all.lab.test.ts. It must run in private network and mount
 * namespaces (the test starts it under `unshare`), where --all sees only the labs made here and so
 * cannot touch labs of people or of other test runs. Prints one JSON report on stdout.
 */
import { readdir, readlink, rm } from 'node:fs/promises';
import { breakGlassClient, labDown, labList, labUp } from './lab.js';
import { isAlive } from './processes.js';
import { indexClaims, LABS_ROOT } from './store.js';
import { listLinks, listNamespaces } from './system.js';

// --all here must never reach the machine's real labs: refuse to run in the namespaces of whatever
// started it (`unshare` execs into this process, so its parent is the test).
for (const ns of ['net', 'mnt']) {
  if ((await readlink(`/proc/self/ns/${ns}`)) === (await readlink(`/proc/${process.ppid}/ns/${ns}`))) {
    throw new Error(`run this only in a private ${ns} namespace, as down-all.lab.test.ts does`);
  }
}

try {
  const plain = await labUp({ name: 'alla', hosts: 1, demo: false, manager: false, accelerator: 'tcg' });
  const crashed = await labUp({
    name: 'allb-with-a-long-name',
    hosts: 2,
    demo: false,
    manager: false,
    accelerator: 'tcg',
  });
  const host1 = crashed.hosts[0];
  if (!host1) throw new Error('the crashed lab has no host1');
  const vm = await breakGlassClient(host1).createVm({
    name: 'orphan',
    vcpus: 1,
    memoryMiB: 128,
    nics: [{ vswitch: 'vmsw0' }],
    start: true,
  });
  // The worst crash: agents gone and the whole lab directory with them; only namespaces and links,
  // the QEMU process and the index claim are left.
  for (const host of crashed.hosts) if (host.pid) process.kill(host.pid, 'SIGKILL');
  await rm(crashed.dir, { recursive: true, force: true });

  const listed = await labList();
  const reports = await labDown({ all: true });
  const pids = [...plain.hosts, ...crashed.hosts].flatMap((h) => (h.pid ? [h.pid] : []));
  if (vm.pid) pids.push(vm.pid);
  const result = {
    listed,
    reports,
    qemuPid: vm.pid,
    after: {
      namespaces: await listNamespaces(),
      links: (await listLinks()).filter((l) => l !== 'lo'),
      labDirs: (await readdir(LABS_ROOT)).filter((e) => e !== '.index'),
      claims: [...(await indexClaims()).values()],
      alive: (await Promise.all(pids.map(isAlive))).filter(Boolean).length,
    },
  };
  process.stdout.write(JSON.stringify(result) + '\n');
} catch (error) {
  // Whatever was made here keeps these namespaces alive through its processes: remove it all.
  await labDown({ all: true });
  throw error;
}

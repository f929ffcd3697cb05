import { labUp, labDown } from '../src/lab/index.js';
import { labAgent } from '../src/lab/index.js';
import { execFileSync } from 'node:child_process';
const lab = await labUp({ name: 'lease', hosts: 2, demo: false, manager: false, sharedStorage: true, log: (l) => console.log(l) });
try {
  const [h1, h2] = lab.hosts;
  const a1 = labAgent(h1!), a2 = labAgent(h2!);
  console.log(await a1.joinLockspace({ name: 'c1', hostId: 1, datastore: 'shared' }));
  console.log(await a2.joinLockspace({ name: 'c1', hostId: 2, datastore: 'shared' }));
  const t0 = Date.now();
  for (;;) { const [i1, i2] = [await a1.host(), await a2.host()]; if (i1.lockspace?.state !== 'joining' && i2.lockspace?.state !== 'joining') { console.log(i1.lockspace, i2.lockspace, Date.now() - t0); break; } await new Promise(r => setTimeout(r, 1000)); }
  const vm = await a1.createVm({ name: 'v1', vcpus: 1, memoryMiB: 128, disks: [{ id: 'd0', datastore: 'shared', sizeBytes: 1 << 30 }], start: true } as never);
  console.log('vm', vm.state);
  for (const h of lab.hosts) console.log(execFileSync('sanlock', ['client', 'status'], { env: { ...process.env, SANLOCK_RUN_DIR: h.shared!.sanlockRunDir } }).toString());
} finally {
  if (!process.env.KEEP) await labDown({ name: 'lease' });
}

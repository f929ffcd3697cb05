// A cut link between the hosts, during the disk mirror and during the memory copy; then a
// TLS move over the same link, which only the announced source's certificate may join. Source and
// target QEMU run in two network namespaces this test creates, joined by one veth pair; cutting
// the link (`ip link set <veth> down` in the target's namespace) leaves the TCP connections
// hanging without a reset, the hardest case: the move must notice it stalled, roll back and leave
// the guest running on the source with its data intact.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';
import { checkMovedGuest, GUEST_WORKLOADS } from '../../guest/index.js';
import { MigrationFailed } from './errors.js';
import {
  limitEgress,
  linkNamespaces,
  MigrationRig,
  SLOW_MEMORY_COPY,
  type LinkEnd,
  type Qemu,
} from './test-rig.js';
import { hasTlsCredentials } from '../../api/index.js';
import { createFabricCa, issueHostCredentials } from './test-credentials.js';

const run = promisify(execFile);
const tag = String(process.pid % 100000);
// Addresses exist only inside the two namespaces of this test.
const sourceEnd: LinkEnd = { ns: `sbm-s${tag}`, dev: `sbm${tag}s`, ip: '10.213.77.1' };
const targetEnd: LinkEnd = { ns: `sbm-t${tag}`, dev: `sbm${tag}t`, ip: '10.213.77.2' };
const nsSource = sourceEnd.ns;
const nsTarget = targetEnd.ns;
const SOURCE_IP = sourceEnd.ip;
const TARGET_IP = targetEnd.ip;
const rig = new MigrationRig([47400, 47449]);
let source: Qemu;

const linkTarget = (state: 'up' | 'down'): void => {
  execFileSync('ip', ['-n', nsTarget, 'link', 'set', targetEnd.dev, state], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
};

before(async () => {
  linkNamespaces(sourceEnd, targetEnd);
  source = await rig.bootSource('source', nsSource);
});

after(async () => {
  await rig.close();
  await source?.qmp.close();
  for (const ns of [nsSource, nsTarget]) execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
});

const options = {
  targetNetns: nsTarget,
  address: TARGET_IP,
  sourceHostCommand: ['ip', 'netns', 'exec', nsSource],
  stallAfterMs: 10_000,
};

/** The mirror is held in its phase by a slow link (tbf), so the cut surely lands in it. */
const slowLink = (rate: string | undefined): void => limitEgress(sourceEnd, rate);

test(
  'link cut during the disk mirror of a busy guest: rolled back, source QEMU alive, records verify',
  { timeout: 300_000 },
  async () => {
    // The guest writes with fsync and dirties memory while the fault strikes: with a write-blocking
    // mirror its writes then wait on the dead NBD connection, which is what crashed QEMU's rollback.
    const writer = await rig.guest(
      source,
      [GUEST_WORKLOADS.diskWriter, 'write', '--file', '/data/cut', '--rate-kib', '1024'],
      true,
    );
    const dirtier = await rig.guest(
      source,
      [GUEST_WORKLOADS.dirty, '--rate-mib', '64', '--size-mib', '128'],
      true,
    );
    const pid = source.child.pid;
    slowLink('40mbit');
    const a = await rig.attempt(source, options);
    try {
      await rig.waitPhase(a.outgoing, 'mirror-disks');
      // Some bytes on the way, and plenty left: the cut lands mid-mirror.
      await rig.waitMirrorBytes(a.outgoing, 4 * 1024 * 1024);
      linkTarget('down');
      const started = Date.now();
      const error = await a.done.then(
        () => undefined,
        (e: unknown) => e,
      );
      console.log(`# mirror cut: rolled back ${Date.now() - started} ms after the cut: ${String(error)}`);
      assert.ok(error instanceof MigrationFailed, String(error));
      assert.equal(error.phase, 'mirror-disks', 'the fault hit the phase it names');
      assert.equal(source.child.exitCode, null, `the source QEMU is alive\n${rig.qemuStderr(source)}`);
      assert.equal(source.child.pid, pid);
      await rig.assertSourceUnharmed(source);
      await rig.guest(source, ['/bin/kill', String(writer.pid), String(dirtier.pid)]);
      const verify = await rig.guest(source, [GUEST_WORKLOADS.diskWriter, 'verify', '--file', '/data/cut']);
      assert.equal(verify.exitCode, 0, `${verify.stdout} ${verify.stderr}`);
      console.log(`# records written through the cut: ${verify.stdout?.trim()}`);
    } finally {
      slowLink(undefined);
      linkTarget('up');
      await rig.kill(a.target);
      a.release();
    }
  },
);

test(
  'link cut during the memory copy: stalled, rolled back, source unharmed',
  { timeout: 300_000 },
  async () => {
    const dirtier = await rig.guest(
      source,
      [GUEST_WORKLOADS.dirty, '--rate-mib', '0', '--size-mib', '64'],
      true,
    );
    // A slow copy, so the cut surely lands in the memory copy.
    const a = await rig.attempt(source, {
      ...options,
      ...SLOW_MEMORY_COPY,
      convergence: { ...SLOW_MEMORY_COPY.convergence, noTransferWindowMs: 10_000 },
    });
    try {
      const struck = await rig.strikeInPhase(a.outgoing, 'copy-memory', () => linkTarget('down'));
      assert.equal(struck, 'copy-memory', 'the cut lands in the memory copy');
      const started = Date.now();
      const error = await a.done.then(
        () => undefined,
        (e: unknown) => e,
      );
      console.log(`# memory cut: rolled back ${Date.now() - started} ms after the cut: ${String(error)}`);
      assert.ok(error instanceof MigrationFailed, String(error));
      assert.equal(error.phase, 'copy-memory', 'the fault hit the phase it names');
      await rig.assertSourceUnharmed(source);
      // QEMU 7.2 may keep the cut stream's yank instance, refusing the next `migrate` of this QEMU.
      console.log(
        `# yank instances after the rollback: ${JSON.stringify(await source.qmp.execute('query-yank'))}`,
      );
    } finally {
      linkTarget('up');
      await rig.kill(a.target);
      a.release();
      await rig.guest(source, ['/bin/kill', String(dirtier.pid)]);
    }
  },
);

/**
 * `qemu-img info` on the target's export from the source's namespace, with the client
 * credentials in `dir`: what any host of the fabric could try against a prepared target.
 */
async function nbdInfo(
  dir: string,
  nbd: { host: string; port: number },
  exportName: string,
): Promise<{ ok: boolean; output: string }> {
  const creds = `tls-creds-x509,id=tls0,dir=${dir},endpoint=client`;
  const opts = `driver=nbd,host=${nbd.host},port=${nbd.port},export=${exportName},tls-creds=tls0`;
  try {
    const { stdout } = await run(
      'ip',
      ['netns', 'exec', nsSource, 'qemu-img', 'info', '--object', creds, '--image-opts', opts],
      { timeout: 20_000 },
    );
    return { ok: true, output: stdout };
  } catch (error) {
    return { ok: false, output: String(error) };
  }
}

test(
  'TLS move (NBD and memory stream): only the announced source gets in; a busy guest arrives whole',
  { timeout: 600_000 },
  async () => {
    const ca = path.join(rig.dir, 'ca');
    const tls = {
      source: path.join(rig.dir, 'tls-source'),
      target: path.join(rig.dir, 'tls-target'),
      sourceHost: 'source',
    };
    const intruder = path.join(rig.dir, 'tls-intruder');
    await createFabricCa(ca);
    await issueHostCredentials(ca, tls.source, { name: 'source', ip: SOURCE_IP });
    await issueHostCredentials(ca, tls.target, { name: 'target', ip: TARGET_IP });
    // Another host of the same fabric, on the source's address: only its name differs.
    await issueHostCredentials(ca, intruder, { name: 'intruder', ip: SOURCE_IP });
    assert.ok(await hasTlsCredentials(tls.target));
    // A fresh source: the one above went through two cut streams.
    await rig.kill(source);
    source = await rig.bootSource('source2', nsSource);
    await rig.guest(
      source,
      [GUEST_WORKLOADS.diskWriter, 'write', '--file', '/data/secure', '--rate-kib', '128'],
      true,
    );
    await rig.guest(source, [GUEST_WORKLOADS.dirty, '--rate-mib', '32', '--size-mib', '64'], true);
    const a = await rig.attempt(source, {
      ...options,
      tls,
      beforeStart: async (incoming, nbd) => {
        const exportName = incoming.exports[0]?.exportName ?? '';
        const foreign = await nbdInfo(intruder, nbd, exportName);
        console.log(`# another fabric host against the target's NBD server: ${foreign.output.trim()}`);
        assert.equal(foreign.ok, false, 'a certificate of another host of the fabric is refused');
        const announced = await nbdInfo(tls.source, nbd, exportName);
        assert.ok(announced.ok, `the announced source gets in: ${announced.output}`);
        assert.match(announced.output, /virtual size/);
      },
    });
    try {
      await a.done;
      await a.incoming.resumed(60_000);
      const s = a.outgoing.stats;
      console.log(
        `# secure move: total ${s.totalTimeMs} ms, mirror ${s.mirrorTimeMs} ms (${s.diskBytes} B), memory ` +
          `${s.memoryTimeMs} ms (${s.memoryBytes} B), downtime ${s.downtimeMs} ms, ${s.iterations} passes`,
      );
      // After the move the target's QEMU keeps no TLS objects of it.
      const objects = z
        .array(z.object({ name: z.string() }))
        .parse(await a.target.qmp.execute('qom-list', { path: '/objects' }))
        .map((o) => o.name);
      assert.deepEqual(
        objects.filter((n) => n.startsWith('mig-')),
        [],
        `objects left: ${objects.join(', ')}`,
      );
      await rig.kill(source);
      await checkMovedGuest(rig.consoleFile(a.target), async () => {
        await rig.guest(a.target, ['/usr/bin/killall', 'sb-diskwriter', 'sb-dirty']);
        for (const file of ['/data/before', '/data/secure']) {
          const verify = await rig.guest(a.target, [GUEST_WORKLOADS.diskWriter, 'verify', '--file', file]);
          assert.equal(verify.exitCode, 0, `${file}: ${verify.stdout} ${verify.stderr}`);
        }
      });
    } finally {
      await rig.kill(a.target);
      a.release();
    }
  },
);

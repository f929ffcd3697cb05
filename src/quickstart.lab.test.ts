// The README's quick start as a user runs it, with every default: `silobreak lab up` (what
// `npm start` runs after the set-up: three hosts, a demo VM on each, the KVM probe, the manager,
// the CLI pointed at it), the commands its summary suggests, a plain `vm move` of a demo VM to
// another host, and `lab down`. Only the lab's name differs from the defaults, so that a lab the
// user keeps under the default name is left alone. No URL or token is given: the CLI finds the
// lab's manager as it does for a user.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { z } from 'zod';
import { LAB_CLI_CONFIG_PATH } from './api/index.js';
import { LABS_ROOT, silobreakCli } from './lab/index.js';

const LAB = 'quickstart';
let home: string;

/** The CLI as a user runs it: their own (empty) home, no URL or token in the environment. */
const silobreak = (args: string[]) => silobreakCli(args, { HOME: home, NO_COLOR: '1' });

const ok = async (args: string[]) => {
  const run = await silobreak(args);
  assert.equal(run.code, 0, `silobreak ${args.join(' ')} exited ${run.code}:\n${run.stderr}${run.stdout}`);
  return run.stdout;
};

const HostRow = z.object({ name: z.string(), state: z.string() });
const VmRow = z.object({
  name: z.string(),
  state: z.string(),
  host: z.string(),
  guestIp: z.string().optional(),
});

before(async () => {
  home = await mkdtemp(path.join(tmpdir(), 'sb-quickstart-home-'));
  // A lab of this name left by a crashed run would make `lab up` refuse.
  await silobreak(['lab', 'down', '--name', LAB]);
});

after(async () => {
  await silobreak(['lab', 'down', '--name', LAB]);
  await rm(home, { recursive: true, force: true });
});

test('lab up with the defaults: three hosts joined, a demo VM on each answering ping, the CLI pointed at the manager', async (t) => {
  const up = await ok(['lab', 'up', '--name', LAB]);
  t.diagnostic(up.split('\n').slice(-3).join(' / '));
  for (const host of ['host1', 'host2', 'host3'])
    assert.match(up, new RegExp(`^${host} `, 'm'), `${host} listed`);
  assert.match(up, /^ +silobreak vm list$/m, 'the summary says what to try');
  const config = z.object({ current: z.string() }).passthrough();
  assert.equal(config.parse(JSON.parse(await readFile(LAB_CLI_CONFIG_PATH, 'utf8'))).current, LAB);

  const hosts = z.array(HostRow).parse(JSON.parse(await ok(['host', 'list', '--json'])));
  assert.deepEqual(hosts.map((h) => `${h.name} ${h.state}`).sort(), [
    'host1 connected',
    'host2 connected',
    'host3 connected',
  ]);
  const vms = z.array(VmRow).parse(JSON.parse(await ok(['vm', 'list', '--json'])));
  assert.deepEqual(vms.map((v) => `${v.name} ${v.state} ${v.host}`).sort(), [
    'demo-1 running host1',
    'demo-2 running host2',
    'demo-3 running host3',
  ]);
});

test('a plain vm move takes demo-1 live to host2; it answers ping there', async (t) => {
  const vms = z.array(VmRow).parse(JSON.parse(await ok(['vm', 'list', '--json'])));
  const ip = vms.find((v) => v.name === 'demo-1')?.guestIp?.split('/')[0];
  assert.ok(ip, `demo-1 has an address: ${JSON.stringify(vms)}`);
  const moved = await ok(['vm', 'move', 'demo-1', '--to', 'host2']);
  t.diagnostic(
    moved
      .split('\n')
      .filter((l) => /^(Moved|Total time|Downtime|Memory stream):/.test(l))
      .join(' / '),
  );
  assert.match(moved, /^Moved: +demo-1: host1 -> host2 \(live\)$/m, moved);
  const after = z.array(VmRow).parse(JSON.parse(await ok(['vm', 'list', '--json'])));
  assert.equal(after.find((v) => v.name === 'demo-1')?.host, 'host2');
  assert.equal(after.find((v) => v.name === 'demo-1')?.state, 'running');
  // The command the lab's summary suggests, from the lab's client namespace.
  const ping = await ok(['lab', 'exec', 'client', '--name', LAB, '--', 'ping', '-c', '3', '-W', '2', ip]);
  assert.match(ping, / 0% packet loss/, ping);
});

test('lab down removes the lab and its CLI context', async () => {
  await ok(['lab', 'down', '--name', LAB]);
  assert.equal(existsSync(path.join(LABS_ROOT, LAB)), false, 'the lab state directory is gone');
  const left = existsSync(LAB_CLI_CONFIG_PATH) ? await readFile(LAB_CLI_CONFIG_PATH, 'utf8') : '';
  assert.doesNotMatch(left, new RegExp(`"${LAB}"`), `no context of the lab left: ${left}`);
  const netns = await new Promise<string>((resolve) =>
    execFile('ip', ['netns', 'list'], (_e, stdout) => resolve(String(stdout))),
  );
  assert.doesNotMatch(netns, new RegExp(`sb-${LAB}-`), 'its namespaces are gone');
});

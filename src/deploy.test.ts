// The shipped systemd units and example config files (deploy/, README "Your own hosts") cannot drift
// from the code: the example configs parse with the real schemas (no field dropped as unknown), the
// units' command lines are the ones the lab uses and pass the manager's own flag rules, and
// `systemd-analyze verify` accepts both units without a warning. systemd-analyze comes with Debian's
// `systemd` package (scripts/setup.sh installs it); without it this test fails and says so.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { AgentConfig, CliConfigFile } from './api/index.js';
import { agentArgs } from './lab/index.js';
import { managerSettings, registerManagerCommands, type ManagerFlags } from './manager/index.js';

const DEPLOY = path.resolve(import.meta.dirname, '..', 'deploy');
const UNITS = ['silobreak-agent.service', 'silobreak-manager.service'].map((u) => path.join(DEPLOY, u));
/** Where the README puts the checkout and the files; the units name these paths. */
const NODE = '/usr/bin/node';
const BIN = '/opt/silobreak/bin/silobreak.js';

const readJson = async (file: string): Promise<unknown> =>
  JSON.parse(await readFile(path.join(DEPLOY, file), 'utf8'));

/** Every field of `written` is in `parsed` with the same value: zod drops unknown keys silently. */
function assertKept(written: unknown, parsed: unknown, at = '') {
  if (written !== null && typeof written === 'object') {
    assert.ok(parsed !== null && typeof parsed === 'object', `${at}: not an object after parsing`);
    for (const [key, value] of Object.entries(written)) {
      const p = (parsed as Record<string, unknown>)[key];
      assert.notEqual(p, undefined, `${at}.${key}: not a field of the schema (dropped when parsed)`);
      assertKept(value, p, `${at}.${key}`);
    }
  } else assert.equal(parsed, written, `${at}: changed when parsed`);
}

/** A [Service] setting's values in a unit file (a key may repeat), as systemd reads simple lines. */
async function unitSettings(file: string, key: string): Promise<string[]> {
  const values: string[] = [];
  let section = '';
  for (const raw of (await readFile(file, 'utf8')).split('\n')) {
    const line = raw.trim();
    if (line.startsWith('[')) section = line;
    else if (section === '[Service]' && line.startsWith(`${key}=`)) values.push(line.slice(key.length + 1));
  }
  return values;
}

/** An EnvironmentFile's variables (KEY=value lines; # comments). */
async function envFile(file: string): Promise<Record<string, string>> {
  const vars: Record<string, string> = {};
  for (const raw of (await readFile(file, 'utf8')).split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    assert.ok(eq > 0, `${file}: not KEY=value: ${line}`);
    vars[line.slice(0, eq)] = line.slice(eq + 1).replace(/^"(.*)"$/, '$1');
  }
  return vars;
}

/** ExecStart split into words, `$VAR` replaced by its words (systemd's unquoted expansion). */
async function execStart(unit: string, env: Record<string, string> = {}): Promise<string[]> {
  const [line, ...more] = await unitSettings(unit, 'ExecStart');
  assert.ok(line !== undefined && more.length === 0, `${unit}: one ExecStart`);
  return line
    .split(/\s+/)
    .flatMap((word) => (/^\$[A-Z_]+$/.test(word) ? (env[word.slice(1)] ?? '').split(/\s+/) : [word]))
    .filter((word) => word !== '');
}

test('agent.example.json is a valid agent config, every field one the agent reads', async () => {
  const written = await readJson('agent.example.json');
  const parsed = AgentConfig.parse(written);
  assertKept(written, parsed);
  // No shared secret: the agent is enrolled with a join token; break-glass is off unless set.
  assert.equal(parsed.breakGlassToken, undefined);
});

test('the agent unit runs the agent as the lab does, on /etc/silobreak/agent.json', async () => {
  const unit = UNITS[0]!;
  assert.deepEqual(await execStart(unit), [NODE, BIN, ...agentArgs('/etc/silobreak/agent.json')]);
  // The agent writes datastores it adds into its config file: its directory must stay writable.
  assert.deepEqual(await unitSettings(unit, 'ProtectSystem'), ['full']);
  assert.deepEqual(await unitSettings(unit, 'ReadWritePaths'), ['/etc/silobreak']);
  // Guests outlive agent restarts: only the agent's own process is stopped.
  assert.deepEqual(await unitSettings(unit, 'KillMode'), ['process']);
  assert.deepEqual((await unitSettings(unit, 'DeviceAllow')).sort(), ['/dev/kvm rw', '/dev/net/tun rw']);
});

test("the manager unit's command line with manager.env passes the manager's own flag rules", async () => {
  const unit = UNITS[1]!;
  const env = await envFile(path.join(DEPLOY, 'manager.env'));
  assert.deepEqual(await unitSettings(unit, 'EnvironmentFile'), ['-/etc/silobreak/manager.env']);
  const argv = await execStart(unit, env);
  assert.deepEqual(argv.slice(0, 3), [NODE, BIN, 'manager']);
  // The real command's options, its action replaced so that nothing starts.
  const program = new Command('silobreak').exitOverride();
  registerManagerCommands(program);
  let flags: ManagerFlags | undefined;
  program.commands
    .find((c) => c.name() === 'manager')!
    .action((opts: ManagerFlags) => {
      flags = opts;
    });
  await program.parseAsync(argv.slice(2), { from: 'user' });
  assert.ok(flags, 'the manager command ran');
  const settings = managerSettings(flags);
  const [stateDir] = await unitSettings(unit, 'StateDirectory');
  assert.equal(settings.dataDir, `/var/lib/${stateDir}`);
  assert.deepEqual([settings.host, settings.port], ['127.0.0.1', 7100]);

  // The CLI example points at that manager.
  const written = await readJson('cli.example.json');
  const cli = CliConfigFile.parse(written);
  assertKept(written, cli);
  assert.equal(cli.url, `http://${settings.host}:${settings.port}`);
});

test('systemd-analyze verify accepts both units without a warning', async () => {
  let out: { stdout: string; stderr: string };
  try {
    out = await promisify(execFile)('systemd-analyze', ['verify', ...UNITS]);
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
    if (e.code === 'ENOENT')
      assert.fail('systemd-analyze is not installed: apt-get install systemd (scripts/setup.sh installs it)');
    assert.fail(`systemd-analyze verify failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
  // An unknown key or a bad value is only a warning (exit 0): any output is a failure here.
  assert.equal(out.stdout + out.stderr, '');
});

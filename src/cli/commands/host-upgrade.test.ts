// `host upgrade --plan|--run` against a stand-in manager: the flags become the request's body, a
// plan prints as a table (step, host, VM, goes to, why), a refused one prints each stranded VM with
// every host's failed rules and exits 1, --run starts the job (its result prints as a table of
// hosts with their versions and where each VM went), and bad flags exit 2 naming the flag and
// send nothing.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Job, StrandedVm, UpgradePlan, UpgradeRunResult } from '../../api/index.js';
import { cliAt, standInManager, type StandInManager } from './test-cli.js';
import { renderStranded, renderUpgradePlan, renderUpgradeRun } from './host-upgrade.js';

const style = { color: false, progressBar: false, json: false };

const plan: UpgradePlan = {
  targetQemuVersion: '10.1.0',
  orderRule: 'one host at a time: the one with the fewest VMs to move then',
  qemuRule: 'a VM may only move to a QEMU as new or newer',
  steps: [
    {
      step: 1,
      host: 'h2',
      cluster: 'c1',
      agentVersion: '0.1.0',
      qemuVersion: { from: '10.0.2', to: '10.1.0' },
      why: '0 VMs to move: the fewest of the hosts left',
      moves: [],
      stays: [],
    },
    {
      step: 2,
      host: 'h1',
      cluster: 'c1',
      agentVersion: '0.1.0',
      qemuVersion: { from: '10.0.2', to: '10.1.0' },
      why: 'the last host left',
      moves: [
        {
          vm: 'web',
          vmId: '00000000-0000-4000-8000-000000000001',
          to: 'h2',
          memoryOnly: true,
          why: 'cluster peer (c1); 5.0 GiB free after; memory only',
        },
      ],
      stays: [
        {
          vm: 'off',
          vmId: '00000000-0000-4000-8000-000000000002',
          why: 'stopped: stays on h1, starts on QEMU 10.1.0 when started',
        },
      ],
    },
  ],
};

const stranded: StrandedVm[] = [
  {
    step: 1,
    vm: 'db',
    vmId: '00000000-0000-4000-8000-000000000003',
    host: 'h1',
    targets: [
      {
        host: 'h2',
        failed: [
          { rule: 'memory', detail: 'h2 has 512 MiB free, db needs 2.0 GiB' },
          { rule: 'qemu-version', detail: 'db runs on QEMU 10.1.0, h2 has the older 10.0.2' },
        ],
      },
      { host: 'h3', failed: [{ rule: 'maintenance', detail: 'h3 is in maintenance' }] },
    ],
  },
];

test('a plan as a table: one row per VM (moves and stays), one for a host with none; order and QEMU rules under it', () => {
  const lines = renderUpgradePlan(style, plan).split('\n');
  assert.match(
    lines[0] ?? '',
    /^Upgrade plan: 2 hosts, one at a time, to QEMU 10\.1\.0; every VM has somewhere to go/,
  );
  const table = lines.slice(2, 6);
  assert.match(table[0] ?? '', /^STEP\s+HOST\s+VM\s+GOES TO\s+WHY$/);
  assert.match(table[1] ?? '', /^\s+1\s+h2 \(QEMU 10\.0\.2 -> 10\.1\.0\)\s+-\s+-\s+no VMs: upgraded as is$/);
  assert.match(
    table[2] ?? '',
    /^\s+2\s+h1 \(QEMU 10\.0\.2 -> 10\.1\.0\)\s+web\s+h2\s+cluster peer \(c1\); .*memory only$/,
  );
  assert.match(table[3] ?? '', /^\s+2\s+h1 .*\s+off\s+stays\s+stopped: stays on h1/);
  const text = lines.join('\n');
  assert.match(
    text,
    /Order:\n {2}1\. h2: 0 VMs to move: the fewest of the hosts left\n {2}2\. h1: the last host left/,
  );
  assert.match(text, /QEMU: a VM may only move to a QEMU as new or newer\./);
});

test('a refusal as a table: each stranded VM, each other host and every rule it fails there', () => {
  const lines = renderStranded(style, stranded).split('\n');
  assert.match(lines[0] ?? '', /^The upgrade would strand 1 VM: /);
  assert.match(lines[2] ?? '', /^STEP\s+HOST\s+VM\s+TARGET\s+FAILS$/);
  assert.match(
    lines[3] ?? '',
    /^\s+1\s+h1\s+db\s+h2\s+memory: h2 has 512 MiB free, db needs 2\.0 GiB; qemu-version: db runs on QEMU 10\.1\.0/,
  );
  assert.match(lines[4] ?? '', /^\s+1\s+h1\s+db\s+h3\s+maintenance: h3 is in maintenance$/);
  assert.match(renderStranded(style, [{ ...stranded[0]!, targets: [] }]), /db\s+-\s+there is no other host/);
});

test("a run's result: each host's versions before and after and where its VMs went; returns; where VMs run now", () => {
  const v = (agentVersion: string, qemuVersion: string) => ({ agentVersion, qemuVersion });
  const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
  const result: UpgradeRunResult = {
    targetQemuVersion: '10.9.0',
    steps: [
      {
        step: 1,
        host: 'h2',
        before: v('0.1.0', '10.0.2'),
        after: v('0.1.1', '10.9.0'),
        moved: [],
        stayed: [],
        upgradeMs: 900,
      },
      {
        step: 2,
        host: 'h1',
        before: v('0.1.0', '10.0.2'),
        after: v('0.1.1', '10.9.0'),
        moved: [{ vm: 'web', from: 'h1', to: 'h2', jobId: id(1) }],
        stayed: ['off'],
        upgradeMs: 1100,
      },
    ],
    returned: [{ vm: 'web', from: 'h2', to: 'h1', jobId: id(2) }],
    notReturned: [{ vm: 'db', on: 'h2', home: 'h1', why: 'it is paused' }],
    placement: [
      { vm: 'db', host: 'h2' },
      { vm: 'web', host: 'h1' },
    ],
  };
  const text = renderUpgradeRun(style, { result }) ?? '';
  const lines = text.split('\n');
  assert.match(
    lines[0] ?? '',
    /^Rolling upgrade done: 2 hosts upgraded one at a time, each out of maintenance again\.$/,
  );
  assert.match(lines[2] ?? '', /^STEP\s+HOST\s+BEFORE\s+AFTER\s+VMS MOVED OFF$/);
  assert.match(
    lines[3] ?? '',
    /^\s+1\s+h2\s+agent 0\.1\.0, QEMU 10\.0\.2\s+agent 0\.1\.1, QEMU 10\.9\.0\s+-$/,
  );
  assert.match(lines[4] ?? '', /^\s+2\s+h1\s+.*\s+web -> h2, off stayed \(stopped\)$/);
  assert.match(
    text,
    /\n\nMoved back: web h2 -> h1\n\nNot moved back: db stays on h2, not h1 \(it is paused\)\n\n/,
  );
  assert.match(text, /Where the VMs run now: db on h2, web on h1$/);
  assert.equal(renderUpgradeRun(style, { result: { steps: 'x' } }), undefined);
});

let manager: StandInManager;
const runJob: Job = {
  id: '00000000-0000-4000-8000-0000000000aa',
  kind: 'host-upgrade',
  state: 'queued',
  target: { kind: 'upgrade', id: 'upgrade', name: 'cluster c1' },
  createdBy: 'admin',
  progress: { phase: 'queued', percent: 0, message: 'waiting to start', details: {} },
  cancelRequested: false,
  createdAt: '2026-12-01T10:00:00.000Z',
  updatedAt: '2026-12-01T10:00:00.000Z',
};
const requests: { method: string; url: string; body: unknown }[] = [];

before(async () => {
  manager = await standInManager((request, response) => {
    let text = '';
    request.on('data', (chunk) => (text += String(chunk)));
    request.on('end', () => {
      const body = text ? (JSON.parse(text) as { hosts?: string[] }) : undefined;
      requests.push({ method: request.method ?? '', url: request.url ?? '', body });
      if (request.url === '/api/v1/upgrades/run' && !body?.hosts?.includes('h1')) {
        response.statusCode = 202;
        response.setHeader('content-type', 'application/json');
        response.end(JSON.stringify({ job: runJob, url: `/api/v1/jobs/${runJob.id}` }));
        return;
      }
      if (body?.hosts?.includes('h1')) {
        response.statusCode = 422;
        response.setHeader('content-type', 'application/problem+json');
        response.end(
          JSON.stringify({
            type: 'about:blank',
            title: 'Upgrade plan strands a VM',
            status: 422,
            code: 'upgrade-stranded',
            detail: 'the upgrade plan strands 1 VM: db on h1',
            stranded,
          }),
        );
        return;
      }
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify(plan));
    });
  });
});

after(() => manager.close());

const cli = (...args: string[]) => cliAt(manager.url, ...args);

test('host upgrade --plan <hosts…> / --cluster: the body sent, the table printed, exit 0', async () => {
  requests.length = 0;
  const r = await cli('host', 'upgrade', '--plan', 'h2', 'h3', '--target-qemu', '10.1.0');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Upgrade plan: 2 hosts/);
  assert.match(r.stdout, /web\s+h2\s+cluster peer/);
  const c = await cli('host', 'upgrade', '--cluster', 'c1', '--plan');
  assert.equal(c.code, 0, c.stderr);
  assert.deepEqual(
    requests.map((q) => [q.method, q.url, q.body]),
    [
      ['POST', '/api/v1/upgrades/plan', { hosts: ['h2', 'h3'], targetQemuVersion: '10.1.0' }],
      ['POST', '/api/v1/upgrades/plan', { cluster: 'c1' }],
    ],
  );
  const json = await cli('host', 'upgrade', '--plan', 'h2', '--json');
  assert.deepEqual(JSON.parse(json.stdout), plan);
});

test('a refused plan prints every stranded VM and exits 1; --json prints the problem', async () => {
  const r = await cli('host', 'upgrade', '--plan', 'h1');
  assert.equal(r.code, 1);
  assert.match(r.stdout, /The upgrade would strand 1 VM/);
  assert.match(r.stdout, /h1\s+db\s+h3\s+maintenance: h3 is in maintenance/);
  assert.match(r.stderr, /^silobreak: the upgrade plan strands 1 VM\nhint: /);
  const j = await cli('host', 'upgrade', '--plan', 'h1', '--json');
  assert.equal(j.code, 1);
  const problem = JSON.parse(j.stdout) as { code: string; stranded: StrandedVm[] };
  assert.equal(problem.code, 'upgrade-stranded');
  assert.deepEqual(problem.stranded, stranded);
});

test('host upgrade --run: the body sent (returnVms, false with --no-return), the job started; a refused run prints the stranded VMs', async () => {
  requests.length = 0;
  const r = await cli('host', 'upgrade', '--run', '--cluster', 'c1', '--detach');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Started job 0{8}-0{4}-4000-8000-0{10}aa \(host-upgrade upgrade cluster c1\)\./);
  const keep = await cli(
    'host',
    'upgrade',
    '--run',
    'h2',
    'h3',
    '--no-return',
    '--target-qemu',
    '10.9.0',
    '--detach',
  );
  assert.equal(keep.code, 0, keep.stderr);
  assert.deepEqual(
    requests.map((q) => [q.method, q.url, q.body]),
    [
      ['POST', '/api/v1/upgrades/run', { cluster: 'c1', returnVms: true }],
      [
        'POST',
        '/api/v1/upgrades/run',
        { hosts: ['h2', 'h3'], targetQemuVersion: '10.9.0', returnVms: false },
      ],
    ],
  );
  const refused = await cli('host', 'upgrade', '--run', 'h1');
  assert.equal(refused.code, 1);
  assert.match(refused.stdout, /The upgrade would strand 1 VM/);
});

test('bad flags exit 2 naming the flag, and send nothing', async () => {
  requests.length = 0;
  const none = await cli('host', 'upgrade', '--plan');
  assert.equal(none.code, 2);
  assert.match(none.stderr, /<hosts>: name the hosts to upgrade, or give --cluster/);
  const both = await cli('host', 'upgrade', '--plan', 'h1', '--cluster', 'c1');
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--cluster: give hosts or --cluster, not both/);
  const version = await cli('host', 'upgrade', '--plan', 'h1', '--target-qemu', 'latest');
  assert.equal(version.code, 2);
  assert.match(version.stderr, /--target-qemu: must be a version of numbers joined by dots/);
  const noPlan = await cli('host', 'upgrade', 'h1');
  assert.equal(noPlan.code, 2);
  assert.match(noPlan.stderr, /give --plan \(show the plan\) or --run/);
  const both2 = await cli('host', 'upgrade', '--plan', '--run', 'h1');
  assert.equal(both2.code, 2);
  assert.match(both2.stderr, /--run: give --plan or --run, not both/);
  assert.deepEqual(requests, []);
});

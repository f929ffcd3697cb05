import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import { MoveVmRequest, type MovePlan } from '../../api/index.js';
import { UsageError } from '../errors.js';
import {
  datastoreChoice,
  MoveFlags,
  moveRequestBody,
  registerMoveCommands,
  renderCleanup,
  renderPlan,
} from './move.js';

test('--datastore: one name for all disks, or disk=datastore pairs; anything else is a usage error', () => {
  assert.equal(datastoreChoice(undefined), undefined);
  assert.equal(datastoreChoice(['fast']), 'fast');
  assert.deepEqual(datastoreChoice(['root=fast', 'data=slow']), { root: 'fast', data: 'slow' });
  assert.throws(() => datastoreChoice(['fast', 'slow']), UsageError);
  assert.throws(() => datastoreChoice(['fast', 'root=slow']), /do not mix/);
  assert.throws(() => datastoreChoice(['Root=fast']), /--datastore \(disk\): "Root" must be 1-31 lowercase/);
});

const plan: MovePlan = {
  kind: 'vm-move',
  vm: { id: '7f1c0a52-5a8e-4d35-9a55-0d1f3f7a9b11', name: 'web-1' },
  mode: 'live',
  from: 'h1',
  to: 'h2',
  disks: [
    {
      diskId: 'root',
      fromDatastore: 'local',
      toDatastore: 'fast',
      virtualSizeBytes: 2 * 1024 ** 3,
      allocatedBytes: 1024 ** 3,
      requiredBytes: 1024 ** 3 + 100 * 1024 ** 2,
    },
  ],
  memoryOnly: false,
  memoryBytes: 512 * 1024 ** 2,
  spaceRule: 'allocated: ...',
  checks: [
    { check: 'target-memory', ok: true, detail: 'host h2 has 8.0 GiB free, web-1 needs 512 MiB' },
    { check: 'vswitches', ok: false, detail: 'host h2 has no virtual switch vmsw9', field: 'to' },
  ],
  ok: false,
};

test('a dry run shows every check with its verdict, the disks and the space rule', () => {
  const text = renderPlan({ color: false, progressBar: false, json: false }, plan);
  assert.match(text, /would be refused: fix the checks marked NO \(nothing changed\)/);
  assert.match(text, /vswitches\s+NO\s+host h2 has no virtual switch vmsw9/);
  assert.match(text, /target-memory\s+yes/);
  assert.match(text, /root\s+h1:local\s+h2:fast\s+mirror\s+1 GiB\s+2 GiB\s+1\.1 GiB/);
  assert.doesNotMatch(text, /Memory only|Shared storage/);
  assert.match(text, /Space rule: allocated/);
  assert.doesNotMatch(text, /Memory stream/, 'no stream when the source did not say');
  const why = 'link 125 MB/s is the bound and 1.5 idle core(s) compress up to ~250 MB/s';
  const withStream = renderPlan(
    { color: false, progressBar: false, json: false },
    { ...plan, stream: { mode: 'multifd-zstd', why } },
  );
  assert.ok(withStream.endsWith(`Memory stream: multifd-zstd (${why})`), withStream);
  assert.doesNotMatch(withStream, /^Link /m, 'no link line when the plan has none');
  const withLink = renderPlan(
    { color: false, progressBar: false, json: false },
    {
      ...plan,
      link: {
        figure: { bitsPerSecond: 0.94e9, source: 'probe', measuredAt: '2026-12-07T12:00:00.000Z' },
        why: '940 Mbit/s, probed just now',
      },
    },
  );
  assert.match(withLink, /^Link h1 -> h2: 940 Mbit\/s, probed just now$/m);
});

test('a dry run of a VM on shared storage says which disks stay, and "memory only" when all do', () => {
  const root = plan.disks[0] as MovePlan['disks'][number];
  const stays = {
    ...root,
    fromDatastore: 'san',
    toDatastore: 'nas',
    requiredBytes: 0,
    stays: { storageId: '6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f', file: 'web-1-root.qcow2' },
  };
  const style = { color: false, progressBar: false, json: false };
  const memoryOnly = renderPlan(style, { ...plan, ok: true, checks: [], disks: [stays], memoryOnly: true });
  assert.match(memoryOnly, /root\s+h1:san\s+h2:nas\s+none: stays on shared storage\s+1 GiB\s+2 GiB\s+0 B/);
  assert.match(
    memoryOnly,
    /^Memory only: disk root stays on shared datastore nas \(memory-only\); only the guest's memory crosses the link\.$/m,
  );
  const mixed = renderPlan(style, {
    ...plan,
    ok: true,
    checks: [],
    disks: [stays, { ...root, diskId: 'data' }],
  });
  assert.match(
    mixed,
    /^Shared storage: disk root stays on shared datastore nas \(memory-only\); only the other disks are mirrored\.$/m,
  );
  assert.match(mixed, /data\s+h1:local\s+h2:fast\s+mirror/);
  assert.doesNotMatch(mixed, /Memory only/);
});

test('vm move --cleanup says what went and what waits for its host, or that nothing is left', () => {
  const mixed = renderCleanup({
    vm: 'web-1',
    host: 'h1',
    removed: [{ host: 'h2', what: 'incoming copy', migrationId: '7f1c0a52-5a8e-4d35-9a55-0d1f3f7a9b11' }],
    pending: [{ host: 'h3', what: 'abort-incoming', reason: 'host h3 is unreachable: no answer in time' }],
  });
  assert.equal(
    mixed,
    [
      'Failed moves of web-1 (on h1):',
      '  removed on h2: incoming copy (move 7f1c0a52-5a8e-4d35-9a55-0d1f3f7a9b11)',
      '  pending on h3: abort-incoming: host h3 is unreachable: no answer in time',
    ].join('\n'),
  );
  assert.equal(
    renderCleanup({ vm: 'web-1', host: 'h1', removed: [], pending: [] }),
    'Nothing left of failed moves of web-1 on other hosts; it runs on h1.',
  );
});

test('vm move is TLS unless --no-secure: no flag sends no `secure`, the request defaults it to true', () => {
  const program = new Command();
  registerMoveCommands(program);
  const move = program.commands.find((c) => c.name() === 'vm')?.commands.find((c) => c.name() === 'move');
  assert.ok(move);
  const flags = (argv: string[]) => {
    for (const o of move.options) move.setOptionValue(o.attributeName(), undefined);
    move.parseOptions(argv);
    return MoveFlags.parse({ ...move.opts(), vm: 'web-1', to: 'h2' });
  };
  const plain = moveRequestBody(flags(['--no-secure']));
  assert.equal(plain.secure, false);
  assert.equal(MoveVmRequest.parse(plain).secure, false);
  const byDefault = moveRequestBody(flags([]));
  assert.equal('secure' in byDefault, false, 'the CLI keeps no default of its own');
  assert.equal(MoveVmRequest.parse(byDefault).secure, true);
  assert.equal(moveRequestBody(flags(['--secure'])).secure, true);
});

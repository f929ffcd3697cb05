// The pure parts of cold moves: what a copy counts as received (ss output), how far qemu-img is
// (its -p output), an export's endpoint, how the target opens an export (TLS with the move's key,
// nothing taken from the URI but its checked parts), and which disk each export fills.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ColdCopyRequest } from '../../api/index.js';
import {
  bytesReceivedFrom,
  coldCopyTargets,
  exportImageOpts,
  holdsNoData,
  lastPercent,
  nbdEndpoint,
  pskObject,
} from './cold.js';

const SS = [
  'ESTAB 0      0      10.250.0.12:43210 10.250.0.11:50000',
  '\t cubic wscale:7,7 rto:204 bytes_sent:310 bytes_acked:311 bytes_received:52428800 segs_out:12',
  'ESTAB 0      0      10.250.0.12:43212 10.250.0.11:50001',
  '\t cubic bytes_sent:120 bytes_received:1000 segs_out:3',
  // Another connection to the same host (its agent), not an export: not counted.
  'ESTAB 0      0      10.250.0.12:8470 10.250.0.1:50012',
  '\t cubic bytes_sent:9386 bytes_received:18307',
  'ESTAB 0      0      [::ffff:10.250.0.12]:43214 [::ffff:10.250.0.13]:50002',
  '\t cubic bytes_received:7',
  // A connection with no data yet carries no bytes_received field.
  'SYN-SENT 0   1      10.250.0.12:43216 10.250.0.11:50003',
  '\t cubic rto:1000',
  '',
].join('\n');

test('bytes received count only the connections to the exports, IPv4-mapped peers included', () => {
  assert.equal(bytesReceivedFrom(SS, new Set(['10.250.0.11:50000'])), 52428800);
  assert.equal(bytesReceivedFrom(SS, new Set(['10.250.0.11:50000', '10.250.0.11:50001'])), 52429800);
  assert.equal(bytesReceivedFrom(SS, new Set(['10.250.0.13:50002', '10.250.0.11:50003'])), 7);
  assert.equal(bytesReceivedFrom(SS, new Set(['10.250.0.99:50000'])), 0);
  assert.equal(bytesReceivedFrom('', new Set(['10.250.0.11:50000'])), 0);
});

test("qemu-img's progress: the last percentage printed, none before the first", () => {
  assert.equal(lastPercent('    (0.00/100%)\r    (1.01/100%)\r    (42.17/100%)\r'), 42.17);
  assert.equal(lastPercent('    (100.00/100%)\n'), 100);
  assert.equal(lastPercent('qemu-img: warning'), undefined);
});

test("an export's endpoint is host:port of its nbd:// URI", () => {
  assert.equal(nbdEndpoint('nbd://10.250.0.11:50000/root'), '10.250.0.11:50000');
});

test("an export is opened over TLS with the move's key, from the checked parts of its URI only", () => {
  assert.equal(
    exportImageOpts('nbd://10.250.0.11:50000/root'),
    'driver=raw,file.driver=nbd,file.server.type=inet,file.server.host=10.250.0.11,file.server.port=50000,file.export=root,file.tls-creds=cold-tls',
  );
  assert.equal(
    pskObject('/s/m.source.psk', 'server'),
    'tls-creds-psk,id=cold-tls,endpoint=server,dir=/s/m.source.psk',
  );
  assert.equal(
    pskObject('/s/m.target.psk', 'client'),
    'tls-creds-psk,id=cold-tls,endpoint=client,dir=/s/m.target.psk,username=silobreak-cold',
  );
  // Nothing that could add an option to QEMU's comma-separated list gets past the schema.
  for (const uri of [
    'nbd://10.250.0.11:50000/root,file.tls-creds=',
    'nbd://10.250.0.11,x=y:50000/root',
    'nbd://10.250.0.11:50000/root/../x',
  ]) {
    const parsed = ColdCopyRequest.safeParse({
      migrationId: '7b0d5f5e-8a40-4c4e-9a51-3f7c2b1d9e01',
      disks: [{ diskId: 'root', uri }],
      secret: 'ab'.repeat(32),
    });
    assert.equal(parsed.success, false, uri);
  }
});

test('each export fills a disk of the VM, and every disk of the VM is filled', () => {
  const disk = (id: string) => ({
    id,
    datastore: 'ds1',
    path: `/ds1/${id}.qcow2`,
    format: 'qcow2' as const,
    sizeBytes: 1,
  });
  const exp = (diskId: string) => ({ diskId, uri: `nbd://10.0.0.1:5000/${diskId}` });
  assert.deepEqual(
    coldCopyTargets('vm', [disk('root'), disk('data')], [exp('data'), exp('root')]).map((t) => [
      t.source.diskId,
      t.disk.path,
    ]),
    [
      ['data', '/ds1/data.qcow2'],
      ['root', '/ds1/root.qcow2'],
    ],
  );
  assert.throws(() => coldCopyTargets('vm', [disk('root')], [exp('root'), exp('swap')]), {
    code: 'invalid-input',
    field: 'disks.1.diskId',
    message: 'disks.1.diskId: VM "vm" has no disk "swap"',
  });
  assert.throws(() => coldCopyTargets('vm', [disk('root'), disk('data')], [exp('root')]), {
    code: 'invalid-input',
    field: 'disks',
    message: /no export for disk "data"/,
  });
});

test('a disk holds no data when no extent of its map has data (what a cold copy may fill)', () => {
  const fresh =
    '[{ "start": 0, "length": 67108864, "depth": 0, "present": false, "zero": true, "data": false, "compressed": false}]';
  const used = [
    '[{ "start": 0, "length": 1048576, "depth": 0, "present": true, "zero": false, "data": true, "compressed": false, "offset": 327680},',
    '{ "start": 1048576, "length": 15728640, "depth": 0, "present": false, "zero": true, "data": false, "compressed": false}]',
  ].join('\n');
  assert.equal(holdsNoData(fresh), true);
  assert.equal(holdsNoData(used), false);
  assert.equal(holdsNoData('[]'), true);
  assert.equal(holdsNoData('qemu-img: Could not open'), false, 'unreadable counts as holding data');
});

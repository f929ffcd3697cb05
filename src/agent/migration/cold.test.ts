// The pure parts of cold moves: what a copy counts as received (ss output), how far qemu-img is
// (its -p output), and an export's endpoint.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bytesReceivedFrom, lastPercent, nbdEndpoint } from './cold.js';

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
  assert.equal(nbdEndpoint('nbd://10.250.0.11/root'), '10.250.0.11:10809');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MacAddress } from '../api/index.js';
import {
  MAX_DISK_ID,
  MAX_IFNAME,
  MAX_NODE_NAME,
  diskFileNodeName,
  diskNodeName,
  macFromBytes,
  newMac,
  newTapName,
} from './naming.js';

test('MACs are QEMU-style, lowercase and valid for the API schema', () => {
  assert.equal(macFromBytes(Uint8Array.from([0xab, 0x01, 0xff])), '52:54:00:ab:01:ff');
  const mac = newMac(new Set());
  assert.match(mac, /^52:54:00(:[0-9a-f]{2}){3}$/);
  assert.equal(MacAddress.safeParse(mac).success, true);
});

test('newMac skips MACs already taken on the host', () => {
  const draws = [Uint8Array.from([1, 2, 3]), Uint8Array.from([1, 2, 3]), Uint8Array.from([4, 5, 6])];
  const mac = newMac(new Set(['52:54:00:01:02:03']), () => draws.shift() ?? Uint8Array.from([9, 9, 9]));
  assert.equal(mac, '52:54:00:04:05:06');
});

test('tap names fit IFNAMSIZ, are stable for a VM/NIC and unique per host', () => {
  const vmId = '0b5d2f8e-7d0c-4c41-9f7e-1d2a3b4c5d6e';
  const first = newTapName(vmId, 'nic0', new Set());
  assert.ok(first.length <= MAX_IFNAME, first);
  assert.match(first, /^sb[0-9a-f]{12}$/);
  assert.equal(newTapName(vmId, 'nic0', new Set()), first, 'same inputs give the same name');
  assert.notEqual(newTapName(vmId, 'nic1', new Set()), first);
  const second = newTapName(vmId, 'nic0', new Set([first]));
  assert.notEqual(second, first, 'a taken name is never handed out again');
  assert.ok(second.length <= MAX_IFNAME);
});

test('the longest allowed disk id still gives QEMU node names within 31 characters', () => {
  const id = 'd'.repeat(MAX_DISK_ID);
  assert.ok(diskNodeName(id).length <= MAX_NODE_NAME);
  assert.ok(diskFileNodeName(id).length <= MAX_NODE_NAME);
  assert.equal(diskNodeName(`${id}x`).length, MAX_NODE_NAME + 1);
});

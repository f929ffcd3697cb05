import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  anyLabLink,
  anyLabNamespace,
  FAST_CLASS,
  labTag,
  linkPattern,
  MAX_HOSTS,
  namespacePattern,
  planLab,
  STANDARD_TIER_LIMITS,
  vmAddress,
} from './plan.js';

const allLinks = (p: ReturnType<typeof planLab>) => [
  p.fabric.bridge,
  p.vmNet.bridge,
  p.client.veth,
  p.storage.veth,
  ...p.hosts.flatMap((h) => [h.fabricVeth, h.uplinkVeth]),
];

test('a 3-host lab gets the documented addresses and names', () => {
  const p = planLab({ name: 'lab', index: 4, hosts: 3 });
  assert.equal(p.fabric.subnet, '10.250.4.0/24');
  assert.equal(p.fabric.rootAddress, '10.250.4.1');
  assert.equal(p.vmNet.subnet, '10.251.4.0/24');
  assert.equal(p.client.address, '10.251.4.2');
  assert.equal(p.client.namespace, 'sb-lab-client');
  assert.deepEqual(p.storage, { namespace: 'sb-lab-storage', veth: 'sblab-st', address: '10.250.4.5' });
  assert.deepEqual(
    p.hosts.map((h) => [h.name, h.namespace, h.fabricAddress, h.agentUrl, h.fabricVeth, h.uplinkVeth]),
    [
      ['host1', 'sb-lab-host1', '10.250.4.11', 'https://10.250.4.11:8470', 'sblab-f1', 'sblab-v1'],
      ['host2', 'sb-lab-host2', '10.250.4.12', 'https://10.250.4.12:8470', 'sblab-f2', 'sblab-v2'],
      ['host3', 'sb-lab-host3', '10.250.4.13', 'https://10.250.4.13:8470', 'sblab-f3', 'sblab-v3'],
    ],
  );
  assert.equal(p.fabric.bridge, 'sblab-fab');
  assert.equal(p.vmNet.bridge, 'sblab-vm');
  assert.equal(p.managerUrl, 'http://127.0.0.1:18004');
});

test('interface names stay within 15 characters for the longest names and most hosts', () => {
  for (const name of ['a', 'abcdefgh', 'abcdefghi', 'x'.repeat(31), 'migration-test-with-a-long-name']) {
    const p = planLab({ name, index: 255, hosts: MAX_HOSTS });
    for (const link of allLinks(p)) assert.ok(link.length <= 15, `${link} is ${link.length} characters`);
    assert.equal(new Set(allLinks(p)).size, allLinks(p).length, 'link names are distinct');
  }
});

test('long names get a hashed tag that differs between names and never equals a literal tag', () => {
  assert.equal(labTag('short'), 'short');
  const a = labTag('migration-test-a');
  const b = labTag('migration-test-b');
  assert.notEqual(a, b);
  assert.match(a, /^mig_[0-9a-z]{4}$/);
  assert.equal(labTag('migration-test-a'), a, 'deterministic');
});

test("one lab's patterns never match another lab's names, even when one name prefixes the other", () => {
  const names = ['ab', 'ab-c', 'ab-f1', 'ab-st', 'ab-storage', 'ab-vm', 'abc', 'lab', 'lab-host1'];
  const plans = names.map((name, index) => planLab({ name, index, hosts: 3 }));
  for (const p of plans) {
    for (const q of plans) {
      const own = p === q;
      for (const link of allLinks(q))
        assert.equal(linkPattern(p.tag).test(link), own, `${p.name} vs ${link}`);
      for (const ns of [q.client.namespace, q.storage.namespace, ...q.hosts.map((h) => h.namespace)]) {
        assert.equal(namespacePattern(p.name).test(ns), own, `${p.name} vs ${ns}`);
      }
    }
  }
});

test('the any-lab patterns recover the tag and the lab name, and ignore foreign names', () => {
  const p = planLab({ name: 'ab-vm', index: 1, hosts: 2 });
  for (const link of allLinks(p)) assert.equal(anyLabLink.exec(link)?.[1], 'ab-vm');
  assert.equal(anyLabNamespace.exec('sb-ab-vm-host2')?.[1], 'ab-vm');
  assert.equal(anyLabNamespace.exec('sb-ab-vm-client')?.[1], 'ab-vm');
  for (const foreign of ['eth0', 'docker0', 'sb', 'sbx', 'vmsw0', 'sblab-eth0', 'sb-lab-host']) {
    assert.equal(anyLabLink.test(foreign), false, foreign);
    assert.equal(anyLabNamespace.test(foreign), false, foreign);
  }
});

test('bad plan input names the field and the rule', () => {
  assert.throws(() => planLab({ name: 'Lab', index: 0, hosts: 1 }), /name/);
  assert.throws(() => planLab({ name: 'lab', index: 256, hosts: 1 }), /index/);
  assert.throws(() => planLab({ name: 'lab', index: 0, hosts: MAX_HOSTS + 1 }), /hosts/);
  assert.throws(() => planLab({ name: 'lab', index: 0, hosts: 0 }), /hosts/);
});

test('VM addresses start at .101 and stay inside the VM segment', () => {
  assert.deepEqual(vmAddress(7, 1), { ip: '10.251.7.101', cidr: '10.251.7.101/24' });
  assert.equal(vmAddress(7, 150).ip, '10.251.7.250');
  assert.throws(() => vmAddress(7, 0), RangeError);
  assert.throws(() => vmAddress(7, 151), RangeError);
  assert.throws(() => vmAddress(7, 1.5), RangeError);
});

test('--beast: the Beast is fast and unlimited, every other host standard with the tier limits', () => {
  const p = planLab({ name: 'lab', index: 1, hosts: 3, beast: 'host3' });
  assert.deepEqual(
    p.hosts.map((h) => [h.name, h.storage]),
    [
      ['host1', { class: 'standard', limits: STANDARD_TIER_LIMITS }],
      ['host2', { class: 'standard', limits: STANDARD_TIER_LIMITS }],
      ['host3', { class: FAST_CLASS }],
    ],
  );
  assert.deepEqual(STANDARD_TIER_LIMITS, { iops: 400, bytesPerSecond: 80 * 2 ** 20 });
  // Each host's limits are its own copy: changing one changes no other host and not the constant.
  const first = p.hosts[0]?.storage.limits;
  assert.ok(first);
  first.iops = 1;
  assert.equal(p.hosts[1]?.storage.limits?.iops, 400);
});

test('without a Beast every host is standard and unlimited', () => {
  const p = planLab({ name: 'lab', index: 1, hosts: 2 });
  assert.deepEqual(
    p.hosts.map((h) => h.storage),
    [{ class: 'standard' }, { class: 'standard' }],
  );
});

test('a Beast that is not a host of the lab is refused', () => {
  assert.throws(() => planLab({ name: 'lab', index: 1, hosts: 2, beast: 'host3' }), /host1 to host2/);
  assert.throws(() => planLab({ name: 'lab', index: 1, hosts: 2, beast: 'client' }), /like host3/);
  assert.throws(() => planLab({ name: 'lab', index: 1, hosts: 2, beast: 'host0' }), /like host3/);
});

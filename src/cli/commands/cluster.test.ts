import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Cluster } from '../../api/index.js';
import { clusterDetails, drainSummary, haLine, VmHaFlags, vmHaPatch } from './cluster.js';

const flags = (raw: Record<string, unknown>) => VmHaFlags.safeParse({ vm: 'web1', ...raw });
const patchOf = (raw: Record<string, unknown>) => {
  const parsed = flags(raw);
  assert.ok(parsed.success, JSON.stringify(parsed.error?.issues));
  return vmHaPatch(parsed.data);
};
const issue = (raw: Record<string, unknown>) => {
  const parsed = flags(raw);
  assert.equal(parsed.success, false);
  const first = parsed.error?.issues[0];
  return `${first?.path.join('.')}: ${first?.message}`;
};

test('vm ha sends only what its flags ask for; --no-prefer clears the preferred hosts', () => {
  assert.deepEqual(patchOf({}), {});
  assert.deepEqual(patchOf({ protect: true, priority: '900', prefer: 'h2,h3' }), {
    protected: true,
    priority: 900,
    preferredHosts: ['h2', 'h3'],
  });
  assert.deepEqual(patchOf({ unprotect: true }), { protected: false });
  assert.deepEqual(patchOf({ prefer: false }), { preferredHosts: null });
  assert.deepEqual(patchOf({ priority: '0' }), { priority: 0 });
});

test('vm ha refuses bad flags naming the flag and the rule', () => {
  assert.equal(issue({ protect: true, unprotect: true }), 'protect: give --protect or --unprotect, not both');
  assert.equal(issue({ priority: '1001' }), 'priority: must be a whole number from 0 to 1000');
  assert.equal(issue({ priority: 'high' }), 'priority: must be a whole number from 0 to 1000');
  assert.match(issue({ prefer: 'h2,H3' }), /^prefer: "H3" must be 1-31 lowercase letters/);
  assert.equal(issue({ prefer: 'h2,h2' }), 'prefer: h2 is named twice');
  assert.equal(issue({ prefer: 'h2,,h3' }).startsWith('prefer: "" must be'), true);
});

test('haLine, clusterDetails and drainSummary say it as people read it', () => {
  assert.equal(
    haLine({ protected: true, priority: 900, preferredHosts: ['h2', 'h3'] }),
    'protected, priority 900, prefers h2, h3',
  );
  assert.equal(
    haLine({ protected: false, priority: 500, preferredHosts: [] }),
    'not protected, priority 500',
  );
  const c: Cluster = {
    id: '3f0b8c7e-1d2a-4b5c-8d9e-0f1a2b3c4d5e',
    name: 'rack1',
    hosts: [
      { name: 'h1', leaseHostId: 1, state: 'connected', maintenance: 'none' },
      { name: 'h2', leaseHostId: 2, state: 'unreachable', maintenance: 'entering' },
    ],
    createdAt: new Date().toISOString(),
  };
  const text = clusterDetails(c);
  assert.match(text, /HOST\s+LEASE ID\s+STATE\s+MAINTENANCE/);
  assert.match(text, /h2\s+2\s+unreachable\s+entering/);
  assert.match(clusterDetails({ ...c, hosts: [] }), /No hosts: silobreak cluster join rack1 <host>/);
  const summary = drainSummary({
    result: {
      host: 'h1',
      moved: [
        { vm: 'db1', to: 'h2', jobId: '3f0b8c7e-1d2a-4b5c-8d9e-0f1a2b3c4d51' },
        { vm: 'web1', to: 'h3', jobId: '3f0b8c7e-1d2a-4b5c-8d9e-0f1a2b3c4d52' },
      ],
      stayed: ['old1'],
    },
  });
  assert.match(summary ?? '', /Moved:\s+db1 -> h2, web1 -> h3/);
  assert.match(summary ?? '', /Stayed:\s+old1 \(stopped; they cannot start there\)/);
  assert.match(summary ?? '', /h1: in maintenance \(silobreak host resume h1 ends it\)/);
  assert.equal(drainSummary({ result: { vm: 'x' } }), undefined);
});

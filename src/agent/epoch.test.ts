// Fencing of managers at the agent (issue 31): the agent's real server on a temporary state dir
// refuses a call under an older manager epoch than it has seen, with stale-epoch, and keeps the
// highest epoch across a restart (a new server on the same state dir).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { AGENT_EPOCH_HEADER } from '../api/index.js';
import { jsonLineLogger } from './logger.js';
import { buildServer } from './server.js';
import { startTestAgent, type TestAgent } from './test-server.js';

const TOKEN = 'epoch-test-token-0123456789';
let agent: TestAgent;

before(async () => {
  agent = await startTestAgent({ token: TOKEN, prefix: 'sb-agent-epoch-' });
});
after(() => agent.close());

async function listVms(app = agent.app, epoch?: string) {
  const response = await app.inject({
    method: 'GET',
    url: '/v1/vms',
    headers: {
      authorization: `Bearer ${TOKEN}`,
      ...(epoch === undefined ? {} : { [AGENT_EPOCH_HEADER]: epoch }),
    },
  });
  return { status: response.statusCode, body: response.json<{ code?: string; detail?: string }>() };
}

test('an agent takes newer epochs, refuses older ones with stale-epoch (409), and lets calls without one through', async () => {
  assert.equal((await listVms(agent.app, '3')).status, 200);
  assert.equal((await listVms(agent.app, '3')).status, 200, 'the same epoch again');
  const stale = await listVms(agent.app, '2');
  assert.equal(stale.status, 409);
  assert.equal(stale.body.code, 'stale-epoch');
  assert.match(stale.body.detail ?? '', /epoch 2 is older than epoch 3/);
  assert.equal((await listVms(agent.app, '7')).status, 200);
  assert.equal((await listVms(agent.app, '3')).body.code, 'stale-epoch', 'older than the newest now');
  // The break-glass tools (no manager, no epoch) are not fenced.
  assert.equal((await listVms(agent.app)).status, 200);
  assert.equal(agent.breaches.length, 0, 'stale-epoch is in the contract of every route');
});

test('a malformed epoch is refused naming the header, and changes nothing', async () => {
  for (const bad of ['0', '-1', 'x', '1.5', '9'.repeat(16)]) {
    const reply = await listVms(agent.app, bad);
    assert.equal(reply.status, 400, bad);
    assert.equal(reply.body.code, 'invalid-input');
  }
  assert.equal((await listVms(agent.app, '6')).body.code, 'stale-epoch', 'still 7');
});

test('the highest epoch is kept in the state dir: a restarted agent still refuses the older one', async () => {
  const file = path.join(agent.dir, 'state', 'manager-epoch');
  assert.equal((await readFile(file, 'utf8')).trim(), '7');
  const restarted = await buildServer(agent.core, {
    token: TOKEN,
    log: jsonLineLogger('silent'),
    routePlugins: [],
  });
  try {
    assert.equal((await listVms(restarted, '6')).body.code, 'stale-epoch');
    assert.equal((await listVms(restarted, '7')).status, 200);
    assert.equal((await listVms(restarted, '8')).status, 200);
    assert.equal((await readFile(file, 'utf8')).trim(), '8');
  } finally {
    await restarted.close();
  }
});

test("an agent that leaves its fabric forgets the epochs seen: a new fabric's managers count from 1", async () => {
  assert.equal((await listVms(agent.app, '6')).body.code, 'stale-epoch');
  const left = await agent.app.inject({
    method: 'DELETE',
    url: '/v1/pki/certificate',
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  assert.equal(left.statusCode, 204);
  assert.equal((await listVms(agent.app, '1')).status, 200);
  assert.equal((await readFile(path.join(agent.dir, 'state', 'manager-epoch'), 'utf8')).trim(), '1');
});

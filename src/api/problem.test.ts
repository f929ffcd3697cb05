// What both servers write on a connection Node could not parse (its clientError): a whole HTTP
// reply with the server's problem details (issue 28, row 7: the agent sent Fastify's own JSON).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientErrorReply, Problem, STATUS_TITLES } from './problem.js';

const build = (status: number, detail: string): Problem => ({
  type: 'about:blank',
  title: STATUS_TITLES[status] ?? 'Error',
  status,
  code: `c${status}`,
  detail,
});

test('a head over 16 KiB is 431, a timeout 408, anything else 400; a reset peer gets nothing', () => {
  for (const [errno, status] of [
    ['HPE_HEADER_OVERFLOW', 431],
    ['ERR_HTTP_REQUEST_TIMEOUT', 408],
    ['HPE_INVALID_METHOD', 400],
    [undefined, 400],
  ] as const) {
    const reply = clientErrorReply(errno, build) ?? '';
    const [head, body] = reply.split('\r\n\r\n');
    assert.match(head ?? '', new RegExp(`^HTTP/1.1 ${status} ${STATUS_TITLES[status]}\\r\\n`));
    assert.match(head ?? '', /\r\nContent-Type: application\/problem\+json\r\n/);
    assert.match(head ?? '', new RegExp(`\\r\\nContent-Length: ${Buffer.byteLength(body ?? '')}\\r\\n`));
    assert.match(head ?? '', /\r\nConnection: close$/);
    const problem = Problem.parse(JSON.parse(body ?? ''));
    assert.deepEqual([problem.status, problem.code], [status, `c${status}`]);
  }
  assert.equal(clientErrorReply('ECONNRESET', build), undefined);
});

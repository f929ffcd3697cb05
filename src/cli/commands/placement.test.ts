import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ManagerClient, SuggestRequest, SuggestResult } from '../../api/index.js';
import { OperationFailed, UsageError } from '../errors.js';
import { parseFieldSettings } from '../rules.js';
import { parseHome, parsePriority, placeInPoolBySuggest } from './placement.js';

test('--home host/datastore or none; --priority a name or 0-100', () => {
  assert.deepEqual(parseHome('host2/local'), { host: 'host2', datastore: 'local' });
  assert.equal(parseHome('none'), null);
  assert.ok('error' in (parseHome('host2') ?? {}));
  assert.ok('error' in (parseHome('host2/Bad_DS') ?? {}));
  assert.equal(parsePriority('high'), 'high');
  assert.equal(parsePriority('80'), 80);
  assert.ok(typeof parsePriority('101') === 'object');
  assert.ok(typeof parsePriority('urgent') === 'object');
});

test('--set takes numbers, and words where the setting allows them', () => {
  assert.deepEqual(
    parseFieldSettings(['holdSeconds=60', 'fastClass=beast'], ['holdSeconds', 'fastClass'], 'x=1', true),
    {
      holdSeconds: 60,
      fastClass: 'beast',
    },
  );
  assert.throws(() => parseFieldSettings(['fastClass=beast'], ['fastClass'], 'x=1', false), UsageError);
  assert.throws(() => parseFieldSettings(['nope=1'], ['holdSeconds'], 'x=1', true), UsageError);
  assert.throws(() => parseFieldSettings(['holdSeconds'], ['holdSeconds'], 'x=1', true), UsageError);
});

/** A client whose suggest answers `result` and records what it was asked. */
function suggesting(result: SuggestResult, asked: SuggestRequest[]): ManagerClient {
  return {
    suggestPlacement: async (req: SuggestRequest) => {
      asked.push(req);
      return result;
    },
  } as unknown as ManagerClient;
}

test('vm create --pool asks suggest for the pool and creates on its best datastore', async () => {
  const asked: SuggestRequest[] = [];
  const client = suggesting(
    {
      candidates: [
        { host: 'h3', datastore: 'beast', class: 'fast', score: 90, reasons: ['roomy'] },
        { host: 'h1', datastore: 'local', class: 'standard', score: 50, reasons: ['ok'] },
      ],
      refused: [],
    },
    asked,
  );
  const { request, chosen } = await placeInPoolBySuggest(client, {
    pool: 'p1',
    spec: {
      name: 'new1',
      vcpus: 1,
      memoryMiB: 512,
      disks: [{ sizeBytes: 2 ** 30 }, { sizeBytes: 2 ** 30, datastore: 'other' }],
    },
  });
  assert.deepEqual(asked, [{ memoryBytes: 512 * 2 ** 20, diskBytes: 2 * 2 ** 30, pool: 'p1' }]);
  assert.equal(chosen.host, 'h3');
  assert.equal(request.host, 'h3');
  assert.equal(request.pool, undefined);
  assert.deepEqual(
    request.spec.disks?.map((d) => d.datastore),
    ['beast', 'other'],
  );
});

test('vm create --pool fails with the reasons when nothing fits', async () => {
  const client = suggesting(
    {
      candidates: [],
      refused: [{ host: 'h1', datastore: 'local', reason: 'host h1 would keep 0 bytes of memory free' }],
    },
    [],
  );
  await assert.rejects(
    placeInPoolBySuggest(client, { pool: 'p1', spec: { name: 'big', vcpus: 1, memoryMiB: 65536 } }),
    (e: unknown) => e instanceof OperationFailed && /h1\/local: host h1/.test(e.hint ?? ''),
  );
});

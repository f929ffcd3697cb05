import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { DISK_WRITER_RECORD_BYTES } from './test-kit.js';

test('the test kit counts records of the size sb-diskwriter writes', async () => {
  const source = await readFile(
    path.resolve(import.meta.dirname, '..', 'guest', 'workloads', 'sb-diskwriter.c'),
    'utf8',
  );
  assert.equal(Number(/^#define RECORD_SIZE (\d+)$/m.exec(source)?.[1]), DISK_WRITER_RECORD_BYTES);
});

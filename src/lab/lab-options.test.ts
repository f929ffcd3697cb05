import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LabInvalidInput } from './errors.js';
import { labUp } from './lab.js';

test('lab up --beast refuses a host the lab does not have, naming the field, before doing anything', async () => {
  for (const [beast, rule] of [
    ['host4', /host1 to host3/],
    ['beast', /like host3/],
  ] as const) {
    await assert.rejects(
      () => labUp({ name: 'never-made', hosts: 3, beast }),
      (error: unknown) =>
        error instanceof LabInvalidInput && error.field === 'beast' && rule.test(error.message),
    );
  }
});

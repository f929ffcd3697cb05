// JSON merge patch (RFC 7396) and the body rules of PUT and PATCH (issue 28, row 2): a PUT
// replaces its document and needs a body (none, or null, is refused: it once reset every override);
// a PATCH is a merge patch, null removes a member, and the merged document is checked as a whole.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { applyMergePatch, MergePatchOf } from './merge-patch.js';
import { checkRouteInput, defineRoute, openApiDocument } from './route-table.js';

test("RFC 7396's examples (appendix A)", () => {
  const cases: [unknown, unknown, unknown][] = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [
      ['a', 'b'],
      ['c', 'd'],
      ['c', 'd'],
    ],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  for (const [target, patch, result] of cases)
    assert.deepEqual(applyMergePatch(target, patch), result, JSON.stringify([target, patch]));
  const target = { a: { b: 1 } };
  applyMergePatch(target, { a: { b: 2 } });
  assert.deepEqual(target, { a: { b: 1 } }, 'the target is not changed');
});

const Settings = z.strictObject({
  hold: z.number().int().min(0).optional(),
  name: z.string().optional(),
  home: z.strictObject({ host: z.string(), datastore: z.string() }).nullable().optional(),
});
const route = defineRoute<'invalid-input'>();
const table = {
  putSettings: route({
    method: 'PUT',
    path: '/v1/settings',
    summary: 'Replace the settings',
    body: Settings,
    status: 200,
    response: Settings,
    errors: [],
  }),
  patchSettings: route({
    method: 'PATCH',
    path: '/v1/settings',
    summary: 'Change some settings',
    body: MergePatchOf(Settings),
    status: 200,
    response: Settings,
    errors: [],
  }),
};

test('a PUT or PATCH without a body, or with null, is refused naming the body', () => {
  for (const r of [table.putSettings, table.patchSettings])
    for (const body of [undefined, null]) {
      const checked = checkRouteInput(r, { params: {}, query: {}, body });
      assert.equal(checked.ok, false, `${r.method} ${String(body)}`);
      assert.equal(!checked.ok && checked.field, 'body');
    }
  assert.equal(
    checkRouteInput(table.putSettings, { params: {}, query: {}, body: {} }).ok,
    true,
    '{} is explicit',
  );
});

test("a merge patch's schema: each member optional or null, nested objects patches, unknown members refused", () => {
  const patch = MergePatchOf(Settings);
  assert.equal(patch.safeParse({ hold: null, name: 'x', home: { host: 'h2' } }).success, true);
  assert.equal(patch.safeParse({ hold: -1 }).success, false);
  assert.equal(patch.safeParse({ hold: 'x' }).success, false);
  const unknown = checkRouteInput(table.patchSettings, { params: {}, query: {}, body: { hol: 1 } });
  assert.equal(!unknown.ok && unknown.field, 'hol');
  // The merged document is what the PUT schema checks: a half home names its missing member.
  const merged = applyMergePatch({ hold: 5 }, { home: { host: 'h2' } });
  const result = Settings.safeParse(merged);
  assert.equal(result.success, false);
  assert.deepEqual(result.error?.issues[0]?.path, ['home', 'datastore']);
});

test('the OpenAPI document: PUT and PATCH bodies required; a PATCH takes application/merge-patch+json', () => {
  const doc = openApiDocument({
    title: 't',
    version: '1',
    routes: table,
    errors: { 'invalid-input': { statuses: [400], about: 'bad' } },
    commonErrors: ['invalid-input'],
  });
  const ops = doc.paths['/v1/settings'] ?? {};
  assert.equal(ops.put?.requestBody?.required, true);
  assert.equal(ops.patch?.requestBody?.required, true);
  assert.deepEqual(Object.keys(ops.put?.requestBody?.content ?? {}), ['application/json']);
  assert.deepEqual(Object.keys(ops.patch?.requestBody?.content ?? {}), [
    'application/merge-patch+json',
    'application/json',
  ]);
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import {
  checkRouteInput,
  ContractCheck,
  type ContractBreach,
  defineRoute,
  OpenApiDocument,
  openApiDocument,
  pathParams,
  routeUrl,
  unknownField,
  type ErrorCatalogue,
} from './route-table.js';

const route = defineRoute<'invalid-input' | 'internal' | 'thing-not-found' | 'thing-busy'>();
const Spec = z.object({
  name: z.string(),
  size: z.number().default(1),
  parts: z.array(
    z.object({ id: z.string(), tags: z.record(z.string(), z.object({ v: z.number() })).optional() }),
  ),
  policy: z.object({ limit: z.number().default(5) }).prefault({}),
  extra: z.looseObject({ a: z.number() }).optional(),
});
const table = {
  getThing: route({
    method: 'GET',
    path: '/v1/things/:name/parts/:part',
    summary: 'A part of a thing',
    params: z.object({ name: z.string(), part: z.string() }),
    query: z.object({ verbose: z.enum(['true', 'false']).optional() }),
    status: 200,
    response: z.object({ id: z.string() }),
    errors: ['thing-not-found'],
  }),
  makeThing: route({
    method: 'POST',
    path: '/v1/things',
    summary: 'Make a thing',
    body: Spec,
    status: 201,
    response: z.object({ name: z.string() }),
    errors: ['thing-busy', 'thing-not-found'],
  }),
  touchThing: route({
    method: 'POST',
    path: '/v1/things/:name/touch',
    summary: 'Touch a thing',
    params: z.object({ name: z.string() }),
    body: z.object({ hard: z.boolean().default(false) }),
    status: 204,
    errors: [],
  }),
  pokeThing: route({
    method: 'POST',
    path: '/v1/things/:name/poke',
    summary: 'Poke a thing',
    params: z.object({ name: z.string() }),
    status: 200,
    response: z.string(),
    produces: 'text/plain',
    errors: [],
  }),
};
const errors: ErrorCatalogue<'invalid-input' | 'internal' | 'thing-not-found' | 'thing-busy'> = {
  'invalid-input': { statuses: [400], about: 'bad input' },
  internal: { statuses: [500], about: 'oops' },
  'thing-not-found': { statuses: [404], about: 'no such thing' },
  'thing-busy': { statuses: [409, 423], about: 'busy' },
};

test('paths: parameters in order, filled in URL-encoded, query of the defined values', () => {
  assert.deepEqual(pathParams(table.getThing.path), ['name', 'part']);
  assert.deepEqual(pathParams('/v1/things'), []);
  assert.equal(
    routeUrl(table.getThing, { name: 'a b/c', part: 'x?' }, { verbose: 'true', skip: undefined }),
    '/v1/things/a%20b%2Fc/parts/x%3F?verbose=true',
  );
  assert.equal(routeUrl(table.makeThing), '/v1/things');
  assert.throws(() => routeUrl(table.getThing, { name: 'a' }), /no value for :part/);
});

test('unknown fields are found at any depth, through optional, default, prefault, arrays and records', () => {
  const good = { name: 'a', parts: [{ id: 'p', tags: { t: { v: 1 } } }], policy: { limit: 2 } };
  assert.equal(unknownField(Spec, good), undefined);
  assert.equal(unknownField(Spec, { ...good, nmae: 'typo' }), 'nmae');
  assert.equal(unknownField(Spec, { ...good, policy: { limt: 2 } }), 'policy.limt');
  assert.equal(unknownField(Spec, { ...good, parts: [{ id: 'p' }, { id: 'q', ids: 1 }] }), 'parts.1.ids');
  assert.equal(
    unknownField(Spec, { ...good, parts: [{ id: 'p', tags: { t: { v: 1, w: 2 } } }] }),
    'parts.0.tags.t.w',
  );
  // A loose object declares that it takes anything; wrong types are zod's business, not this walk's.
  assert.equal(unknownField(Spec, { ...good, extra: { a: 1, b: 2 } }), undefined);
  assert.equal(unknownField(Spec, { ...good, parts: 'not an array' }), undefined);
  // Inherited names are not fields.
  assert.equal(unknownField(z.object({ a: z.number() }), JSON.parse('{"a":1,"toString":2}')), 'toString');
});

test('input is checked at the edge: unknown field first, then the schema; defaults applied', () => {
  const made = checkRouteInput(table.makeThing, { params: {}, query: {}, body: { name: 'a', parts: [] } });
  assert.deepEqual(made, {
    ok: true,
    value: { params: {}, query: {}, body: { name: 'a', size: 1, parts: [], policy: { limit: 5 } } },
  });
  assert.deepEqual(checkRouteInput(table.makeThing, { params: {}, query: {}, body: { nam: 'a' } }), {
    ok: false,
    field: 'nam',
    detail: 'nam: unknown field',
  });
  const missing = checkRouteInput(table.makeThing, { params: {}, query: {}, body: { parts: [] } });
  assert.equal(missing.ok, false);
  assert.equal(!missing.ok && missing.field, 'name');
  assert.match(!missing.ok ? missing.detail : '', /^name: /);
  // A left-out body is an empty object.
  assert.deepEqual(checkRouteInput(table.touchThing, { params: { name: 'a' }, query: {}, body: undefined }), {
    ok: true,
    value: { params: { name: 'a' }, query: {}, body: { hard: false } },
  });
});

test('a route without a body or query schema takes none (an empty object aside)', () => {
  const params = { name: 'a' };
  for (const body of [undefined, {}])
    assert.equal(checkRouteInput(table.pokeThing, { params, query: {}, body }).ok, true, String(body));
  // JSON null is no body, anywhere: a PUT of null once reset every override.
  assert.deepEqual(checkRouteInput(table.pokeThing, { params, query: {}, body: null }), {
    ok: false,
    field: 'body',
    detail: 'body: must be a JSON object, not null',
  });
  assert.deepEqual(checkRouteInput(table.pokeThing, { params, query: {}, body: { force: true } }), {
    ok: false,
    field: 'force',
    detail: 'force: unknown field (this route takes no body)',
  });
  const text = checkRouteInput(table.pokeThing, { params, query: {}, body: 'x' });
  assert.equal(text.ok, false);
  assert.deepEqual(
    checkRouteInput(table.pokeThing, { params, query: { verbose: 'true' }, body: undefined }),
    {
      ok: false,
      field: 'verbose',
      detail: 'verbose: unknown query parameter',
    },
  );
  assert.deepEqual(
    checkRouteInput(table.getThing, {
      params: { name: 'a', part: 'b' },
      query: { vrb: '1' },
      body: undefined,
    }),
    {
      ok: false,
      field: 'vrb',
      detail: 'vrb: unknown field',
    },
  );
});

test('the OpenAPI document: operations, parameters, bodies, replies and errors grouped by status', () => {
  const doc = openApiDocument({
    title: 'Things',
    version: '1.2.3',
    routes: table,
    errors,
    commonErrors: ['internal'],
  });
  OpenApiDocument.parse(doc);
  assert.equal(doc.openapi, '3.1.0');
  assert.deepEqual(doc.info, { title: 'Things', version: '1.2.3' });
  assert.deepEqual(Object.keys(doc.paths).sort(), [
    '/v1/things',
    '/v1/things/{name}/parts/{part}',
    '/v1/things/{name}/poke',
    '/v1/things/{name}/touch',
  ]);

  const get = doc.paths['/v1/things/{name}/parts/{part}']?.get;
  assert.ok(get);
  assert.equal(get.operationId, 'getThing');
  assert.deepEqual(
    get.parameters.map((p) => [p.name, p.in, p.required]),
    [
      ['name', 'path', true],
      ['part', 'path', true],
      ['verbose', 'query', false],
    ],
  );
  assert.equal(get.requestBody, undefined);
  assert.deepEqual(Object.keys(get.responses), ['200', '404', '500']);

  const make = doc.paths['/v1/things']?.post;
  assert.ok(make);
  assert.equal(make.requestBody?.required, true);
  const body = make.requestBody?.content['application/json']?.schema as { required: string[] };
  assert.deepEqual(body.required.sort(), ['name', 'parts']); // defaults make the rest optional
  assert.deepEqual(Object.keys(make.responses), ['201', '404', '409', '423', '500']);
  const conflict = make.responses['409']?.content?.['application/problem+json']?.schema as {
    properties: { code: { enum: string[] } };
  };
  assert.deepEqual(conflict.properties.code.enum, ['thing-busy']);
  assert.match(make.responses['409']?.description ?? '', /thing-busy: busy/);

  const touch = doc.paths['/v1/things/{name}/touch']?.post;
  assert.equal(touch?.requestBody?.required, false, 'an all-optional body may be left out');
  assert.deepEqual(touch?.responses['204'], { description: 'Done' });
  assert.deepEqual(Object.keys(doc.paths['/v1/things/{name}/poke']?.post?.responses['200']?.content ?? {}), [
    'text/plain',
  ]);
  // It is plain JSON.
  assert.deepEqual(JSON.parse(JSON.stringify(doc)), doc);
});

test('the contract check reports undeclared error codes, and bad replies when asked to', () => {
  const seen: ContractBreach[] = [];
  const strict = new ContractCheck(table, ['invalid-input', 'internal'], (b) => seen.push(b), true);
  strict.error('GET', '/v1/things/:name/parts/:part', 'thing-not-found'); // declared by the route
  strict.error('GET', '/v1/things/:name/parts/:part', 'internal'); // common to every route
  strict.error('GET', '/v1/nowhere', 'thing-busy'); // no route matched: nothing to hold it to
  strict.error('GET', '/v1/things/:name/parts/:part', 'thing-busy');
  strict.reply(table.getThing, { id: 'a' });
  strict.reply(table.getThing, { id: 7 });
  strict.reply(table.touchThing, undefined); // 204: no schema
  assert.deepEqual(
    seen.map((b) => [b.route, b.detail.split(':')[0]]),
    [
      ['GET /v1/things/:name/parts/:part', 'error code thing-busy is not declared'],
      ['GET /v1/things/:name/parts/:part', 'reply refused by its schema'],
    ],
  );
  const lenient = new ContractCheck(table, [], (b) => seen.push(b));
  lenient.reply(table.getThing, { id: 7 });
  assert.equal(seen.length, 2, 'replies are checked only when asked');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { API_PREFIX, MANAGER_ERROR_CODES } from './manager.js';
import { MANAGER_COMMON_ERRORS, managerOpenApiDocument, managerRoutes } from './manager-routes.js';
import { OpenApiDocument, openApiPath, pathParams } from './route-table.js';

const routes = Object.entries(managerRoutes);

test('every manager route: path parameters and params schema agree, one route per method and path', () => {
  const seen = new Set<string>();
  for (const [name, r] of routes) {
    assert.deepEqual(
      pathParams(r.path).sort(),
      Object.keys('params' in r ? r.params.shape : {}).sort(),
      name,
    );
    const key = `${r.method} ${openApiPath(r.path)}`;
    assert.ok(!seen.has(key), `${name}: ${key} twice`);
    seen.add(key);
    assert.ok(r.path.startsWith(`${API_PREFIX}/`), name);
    assert.equal(r.method === 'GET' && 'body' in r, false, `${name}: a GET with a body`);
    assert.equal(r.status === 204, !('response' in r), `${name}: a reply schema exactly when not 204`);
  }
});

test('every manager route lists its own error codes once, none of the common ones', () => {
  for (const [name, r] of routes) {
    assert.equal(new Set(r.errors).size, r.errors.length, name);
    for (const code of r.errors) {
      assert.ok(code in MANAGER_ERROR_CODES, `${name}: ${code}`);
      assert.ok(!(MANAGER_COMMON_ERRORS as readonly string[]).includes(code), `${name}: ${code} is common`);
    }
    // A read-only token may only GET: every other route can answer 403.
    if (r.method !== 'GET') assert.ok((r.errors as readonly string[]).includes('forbidden'), name);
  }
});

test("the HTTP layer's refusals are documented on every route, each with its own code and title", () => {
  const doc = OpenApiDocument.parse(managerOpenApiDocument('9.9.9'));
  const titleOf = (status: string) => {
    const schema = doc.paths['/api/v1/vms']?.get?.responses[status]?.content?.['application/problem+json']
      ?.schema as { properties: { title: { enum: string[] }; code: { enum: string[] } } };
    return [schema.properties.code.enum, schema.properties.title.enum];
  };
  assert.deepEqual(titleOf('408'), [['request-timeout'], ['Request timeout']]);
  assert.deepEqual(titleOf('413'), [['body-too-large'], ['Content too large']]);
  assert.deepEqual(titleOf('414'), [['uri-too-long'], ['URI too long']]);
  assert.deepEqual(titleOf('415'), [['unsupported-media-type'], ['Unsupported media type']]);
  assert.deepEqual(titleOf('431'), [['headers-too-large'], ['Request header fields too large']]);
  assert.deepEqual(titleOf('400'), [['invalid-input'], ['Invalid input']]);
});

test("the manager's OpenAPI document: every route, its error statuses and the dry-run replies", () => {
  const doc = OpenApiDocument.parse(managerOpenApiDocument('9.9.9'));
  assert.equal(doc.info.version, '9.9.9');
  const operations = Object.values(doc.paths).flatMap((p) => Object.values(p));
  assert.deepEqual(operations.map((o) => o.operationId).sort(), Object.keys(managerRoutes).sort());
  const move = doc.paths['/api/v1/vms/{vm}/move']?.post;
  assert.deepEqual(Object.keys(move?.responses ?? {}).sort(), [
    '200',
    '202',
    '400',
    '401',
    '403',
    '404',
    '408',
    '409',
    '413',
    '414',
    '415',
    '431',
    '500',
    '502',
    // not-leader: any route, at a manager that does not lead (issue 31).
    '503',
  ]);
  assert.ok(doc.paths['/api/v1/jobs/{id}/events']?.get?.responses['200']?.content?.['text/event-stream']);
});

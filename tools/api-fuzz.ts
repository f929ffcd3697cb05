// Test support: bad requests for every operation of an OpenAPI document, as fast-check
// arbitraries, and the check that an API refuses them with problem details. Shared by the fuzz
// tests of the manager and of the agent (src/manager/fuzz.test.ts, src/agent/fuzz.test.ts); it
// lives outside src/ so that neither part imports the other and no runtime code needs fast-check.
//
// Every request generated is wrong in at least one way the server must notice whatever else it
// holds: no or a wrong token, an odd path parameter (the objects named do not exist), an unknown
// or out-of-range query parameter, or a body that is not JSON, not an object, has an unknown
// field, or a field of the wrong type or out of its bounds. So a 2xx, or any change, is a bug.
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { TestContext } from 'node:test';
import fc from 'fast-check';
import { z } from 'zod';

type JsonSchema = Record<string, unknown>;

const Parameter = z.looseObject({
  name: z.string(),
  in: z.enum(['path', 'query', 'header']),
  required: z.boolean(),
  schema: z.record(z.string(), z.unknown()),
});
const Operation = z.looseObject({
  operationId: z.string(),
  parameters: z.array(Parameter),
  requestBody: z
    .looseObject({
      content: z.record(z.string(), z.looseObject({ schema: z.record(z.string(), z.unknown()) })),
    })
    .optional(),
});
const Document = z.looseObject({
  paths: z.record(z.string(), z.record(z.string(), Operation)),
});

export interface FuzzOperation {
  operationId: string;
  method: string;
  /** OpenAPI template, e.g. `/v1/vms/{name}`. */
  path: string;
  pathParams: string[];
  query: { name: string; schema: JsonSchema }[];
  /** JSON schema of the request body; none when the route takes no body. */
  body: JsonSchema | undefined;
}

/** Every operation of an OpenAPI document. */
export function operations(document: unknown): FuzzOperation[] {
  const doc = Document.parse(document);
  const ops: FuzzOperation[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      ops.push({
        operationId: op.operationId,
        method: method.toUpperCase(),
        path,
        pathParams: op.parameters.filter((p) => p.in === 'path').map((p) => p.name),
        query: op.parameters.filter((p) => p.in === 'query').map((p) => ({ name: p.name, schema: p.schema })),
        body: op.requestBody?.content['application/json']?.schema,
      });
    }
  }
  return ops;
}

export interface BadRequest {
  /** What is wrong with it, for the failure report. */
  kind: string;
  method: string;
  /** Path and query string, already encoded. */
  url: string;
  headers: Record<string, string>;
  body?: string;
  /** The exact status expected, when there is only one right answer. */
  status?: number;
}

/** Strings no API should take at face value: control characters, huge, unicode, prototype keys. */
export const oddString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    '__proto__',
    'constructor',
    'prototype',
    '..',
    '.',
    '../..',
    '%',
    '%zz',
    '%00',
    '\u0000',
    '\r\n',
    '\u202e',
    '😀',
    'é',
    '\uFEFF',
    '\uD800',
    'NaN',
    '-1',
    'null',
    '<script>',
    "'; DROP TABLE vms; --",
    '$(reboot)',
    'a'.repeat(300),
    'x'.repeat(5000),
  ),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.constantFrom('\u0000', '\u0007', '\n', '\t', '\u001b', '\u007f'), maxLength: 8 }),
  fc.string({ minLength: 1025, maxLength: 3000 }),
);

/** A path segment for an odd string: encoded, or raw where the raw form is itself the test. */
const oddSegment: fc.Arbitrary<string> = fc.oneof(
  oddString.map((s) => encodeURIComponent(s.replace(/[\uD800-\uDFFF]/g, '?'))),
  fc.constantFrom('..', '.', '%', '%zz', '%E0%A4%A', '%2e%2e', '%2F', '%00', '%ff', 'a%', '%%'),
);

/** A wrong token: missing, another scheme, empty, garbage (printable, as headers must be). */
const badAuth: fc.Arbitrary<Record<string, string>> = fc.oneof(
  fc.constant({}),
  fc.constantFrom('Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', 'bearer', 'Token abc', '').map((a) => ({
    authorization: a,
  })),
  fc
    .string({
      unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-_.~+/='.split('')),
      maxLength: 200,
    })
    .map((t) => ({ authorization: `Bearer ${t}` })),
);

const jsonTypeOf = (value: unknown): string =>
  value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;

/** Any JSON value, top-level types mixed. */
const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1.5, 1e308, '', 'x', [], {}),
  oddString,
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 2 }),
);

function schemaType(schema: JsonSchema): string | undefined {
  return typeof schema.type === 'string' ? schema.type : undefined;
}

/** A value of another JSON type than the schema declares; undefined when it declares none. */
function wrongType(schema: JsonSchema): fc.Arbitrary<unknown> | undefined {
  const type = schemaType(schema);
  if (type === undefined) return undefined;
  const fits = (v: unknown) => {
    const t = jsonTypeOf(v);
    if (type === 'integer') return typeof v === 'number' && Number.isInteger(v);
    if (type === 'number') return t === 'number';
    if (type === 'array') return t === 'array';
    if (type === 'object') return t === 'object';
    return t === type;
  };
  return anyJson.filter((v) => !fits(v));
}

/** Values beyond a schema's bounds (numbers, string lengths, array sizes, enums). */
function outOfBounds(schema: JsonSchema): fc.Arbitrary<unknown> | undefined {
  const num = (k: string) => (typeof schema[k] === 'number' ? (schema[k] as number) : undefined);
  const choices: fc.Arbitrary<unknown>[] = [];
  const type = schemaType(schema);
  if (type === 'integer' || type === 'number') {
    const min = num('minimum') ?? num('exclusiveMinimum');
    const max = num('maximum') ?? num('exclusiveMaximum');
    if (min !== undefined && min > -Number.MAX_SAFE_INTEGER)
      choices.push(fc.constantFrom(min - 1, min - 1e6, -1e308));
    if (max !== undefined && max < Number.MAX_SAFE_INTEGER) choices.push(fc.constantFrom(max + 1, 1e308));
    if (type === 'integer') choices.push(fc.constantFrom(0.5, 1.25, Number.MAX_SAFE_INTEGER + 2));
  }
  if (type === 'string') {
    const maxLength = num('maxLength');
    const minLength = num('minLength');
    if (maxLength !== undefined) choices.push(fc.constant('a'.repeat(maxLength + 1)));
    if (minLength !== undefined && minLength > 0) choices.push(fc.constant(''));
  }
  if (Array.isArray(schema.enum)) {
    const allowed = new Set(schema.enum);
    choices.push(oddString.filter((s) => !allowed.has(s)));
  }
  if (type === 'array' && num('maxItems') !== undefined)
    choices.push(fc.constant(Array.from({ length: (num('maxItems') ?? 0) + 1 }, () => ({}))));
  return choices.length ? fc.oneof(...choices) : undefined;
}

/** A query string value outside what the parameter takes; undefined when any string may do. */
function badQueryValue(schema: JsonSchema): fc.Arbitrary<string> | undefined {
  const type = schemaType(schema);
  const choices: fc.Arbitrary<string>[] = [];
  if (type === 'integer' || type === 'number') {
    choices.push(fc.constantFrom('abc', '', '1e999', 'NaN', '0x10', '1,2', ' '));
    const bad = outOfBounds(schema);
    if (bad) choices.push(bad.map(String));
  }
  if (Array.isArray(schema.enum)) {
    const allowed = new Set(schema.enum.map(String));
    choices.push(oddString.filter((s) => !allowed.has(s)));
  }
  if (type === 'string' && typeof schema.maxLength === 'number')
    choices.push(fc.constant('a'.repeat(schema.maxLength + 1)));
  return choices.length ? fc.oneof(...choices) : undefined;
}

const query = (pairs: [string, string][]) =>
  pairs.length
    ? `?${pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&')}`
    : '';

/** Property names of an object schema with the schema of each. */
function properties(schema: JsonSchema): [string, JsonSchema][] {
  const props = schema.properties;
  if (typeof props !== 'object' || props === null) return [];
  return Object.entries(props as Record<string, JsonSchema>);
}

/** JSON text of an object with these members, keys such as `__proto__` kept as own members. */
const objectText = (members: [string, unknown][]) =>
  `{${members.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`;

/**
 * Bad requests for one operation. `token` is a valid token (the requests are then wrong in another
 * way); `fill` gives path parameters a well-formed value naming nothing (default `fuzz-none`), so
 * that the other parts of a request are checked too.
 */
export function badRequests(
  op: FuzzOperation,
  token: string,
  fill: Readonly<Record<string, string>> = {},
): fc.Arbitrary<BadRequest> {
  const auth = { authorization: `Bearer ${token}` };
  const pathWith = (values: Record<string, string>) =>
    op.path.replace(
      /\{([^}]+)\}/g,
      (_m, name: string) => values[name] ?? encodeURIComponent(fill[name] ?? 'fuzz-none'),
    );
  const plainPath = pathWith({});
  const kinds: fc.Arbitrary<BadRequest>[] = [];

  kinds.push(
    badAuth.map((headers) => ({ kind: 'auth', method: op.method, url: plainPath, headers, status: 401 })),
  );
  // A wrong token with a body the route would refuse anyway: the token is checked first.
  if (op.body)
    kinds.push(
      fc
        .tuple(badAuth, fc.constantFrom('{', 'null', '[1]', '{"__proto__":{"x":1}}'))
        .map(([headers, body]) => ({
          kind: 'auth+body',
          method: op.method,
          url: plainPath,
          headers: { ...headers, 'content-type': 'application/json' },
          body,
          status: 401,
        })),
    );

  for (const name of op.pathParams) {
    kinds.push(
      oddSegment.map((segment) => ({
        kind: `path ${name}`,
        method: op.method,
        url: pathWith({ [name]: segment }),
        headers: auth,
        ...(op.body ? { body: '{}', headers: { ...auth, 'content-type': 'application/json' } } : {}),
      })),
    );
  }

  // An unknown query parameter, always.
  const known = new Set(op.query.map((q) => q.name));
  kinds.push(
    fc
      .tuple(
        oddString.filter((k) => k !== '' && !known.has(k)),
        oddString,
      )
      .map(([k, v]) => ({
        kind: 'query unknown',
        method: op.method,
        url: plainPath + query([[k.replace(/[\uD800-\uDFFF]/g, '?'), v.replace(/[\uD800-\uDFFF]/g, '?')]]),
        headers: auth,
      })),
  );
  for (const q of op.query) {
    const bad = badQueryValue(q.schema);
    if (!bad) continue;
    kinds.push(
      bad.map((v) => ({
        kind: `query ${q.name}`,
        method: op.method,
        url: plainPath + query([[q.name, v.replace(/[\uD800-\uDFFF]/g, '?')]]),
        headers: auth,
      })),
    );
  }

  // A body on a route that takes none: refused, not ignored (GET bodies are not read at all).
  if (!op.body && op.method !== 'GET')
    kinds.push(
      fc
        .tuple(
          fc.constantFrom('{"x":1}', '[1]', '1', '"x"', '{"__proto__":{"x":1}}', '{"force":true}'),
          fc.constantFrom('application/json'),
        )
        .map(([body, type]) => ({
          kind: 'body on a route without one',
          method: op.method,
          url: plainPath,
          headers: { ...auth, 'content-type': type },
          body,
        })),
    );

  if (op.body) {
    const json = { ...auth, 'content-type': 'application/json' };
    const post = (kind: string, body: string, headers: Record<string, string> = json): BadRequest => ({
      kind,
      method: op.method,
      url: plainPath,
      headers,
      body,
    });
    kinds.push(
      fc
        .constantFrom('{', '{"a":', 'nul', "{'a':1}", '{"a":1}}', '\u0000', '[', '{"a":1,}', 'x'.repeat(2000))
        .map((t) => post('body not JSON', t)),
    );
    kinds.push(
      fc
        .constantFrom('1', '"x"', 'true', '[]', '[{}]', '-0', '1e400', '"__proto__"', 'null')
        .map((t) => post('body not an object', t)),
    );
    // Another media type is 415 whatever the body holds (JSON too: it is not read as JSON).
    kinds.push(
      fc
        .tuple(
          fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'application/xml', 'text/json'),
          fc.oneof(fc.string(), fc.constant('{}')),
        )
        .map(([type, t]) => ({
          ...post('body of another type', t, { ...auth, 'content-type': type }),
          status: 415,
        })),
    );
    const props = properties(op.body);
    const names = new Set(props.map(([k]) => k));
    if (op.body.additionalProperties === undefined || op.body.additionalProperties === false)
      kinds.push(
        fc
          .tuple(
            fc.oneof(
              fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty'),
              oddString,
            ),
            anyJson,
          )
          .filter(([k]) => !names.has(k))
          .map(([k, v]) => post('body unknown field', objectText([[k, v]]))),
      );
    for (const [name, schema] of props) {
      const wrong = wrongType(schema);
      if (wrong) kinds.push(wrong.map((v) => post(`body ${name} wrong type`, objectText([[name, v]]))));
      const outside = outOfBounds(schema);
      if (outside)
        kinds.push(outside.map((v) => post(`body ${name} out of bounds`, objectText([[name, v]]))));
      // One level down: a nested object's fields, or an array's items.
      const inner: [string, JsonSchema][] =
        schemaType(schema) === 'object'
          ? properties(schema)
          : schemaType(schema) === 'array' && typeof schema.items === 'object' && schema.items !== null
            ? properties(schema.items as JsonSchema)
            : [];
      const wrap = (v: unknown) => (schemaType(schema) === 'array' ? [v] : v);
      for (const [field, fieldSchema] of inner) {
        const bad = wrongType(fieldSchema) ?? outOfBounds(fieldSchema);
        if (bad)
          kinds.push(
            bad.map((v) => post(`body ${name}.${field} wrong`, objectText([[name, wrap({ [field]: v })]]))),
          );
      }
    }
  }
  return fc.oneof(...kinds);
}

export interface Answer {
  status: number;
  contentType: string;
  text: string;
}

const Problem = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  code: z.string().min(1),
  detail: z.string(),
});

/** The answer must be a 4xx RFC 9457 problem (the status expected, if any). */
export function assertRefused(request: BadRequest, answer: Answer): void {
  const what = `${request.kind}: ${request.method} ${request.url.slice(0, 200)} -> ${answer.status} ${answer.text.slice(0, 300)}`;
  if (request.status !== undefined) assert.equal(answer.status, request.status, what);
  assert.ok(answer.status >= 400 && answer.status < 500, what);
  assert.match(answer.contentType, /^application\/problem\+json/, what);
  let body: unknown;
  try {
    body = JSON.parse(answer.text);
  } catch {
    assert.fail(`not JSON: ${what}`);
  }
  const problem = Problem.safeParse(body);
  assert.ok(problem.success, `not problem details: ${what}`);
  assert.equal(problem.data.status, answer.status, what);
}

/**
 * Sends a request exactly as generated to a server at `base` (node:http, so `..` and stray `%`
 * reach it raw, and its own HTTP parser sees the head): both APIs are fuzzed this way.
 */
/** A server to fuzz: its base URL, and for HTTPS the CA and the client's certificate (mutual TLS). */
export interface FuzzTarget {
  baseUrl: string;
  tls?: { ca: string; cert?: string | undefined; key?: string | undefined } | undefined;
  /** HTTP over this unix socket (an agent's break-glass socket). */
  socketPath?: string | undefined;
}

export function sendRaw(base: string | FuzzTarget, request: BadRequest): Promise<Answer> {
  const endpoint: FuzzTarget = typeof base === 'string' ? { baseUrl: base } : base;
  const url = new URL(endpoint.baseUrl);
  // The agent's API is HTTPS with the manager's certificate (mutual TLS), as the manager calls it.
  const tls = endpoint.tls;
  const send = tls ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      {
        ...(endpoint.socketPath
          ? { socketPath: endpoint.socketPath }
          : { host: url.hostname, port: url.port }),
        ...(tls ? { ca: tls.ca, cert: tls.cert, key: tls.key } : {}),
        method: request.method,
        path: request.url,
        headers: {
          ...request.headers,
          ...(request.body !== undefined ? { 'content-length': Buffer.byteLength(request.body) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: String(res.headers['content-type'] ?? ''),
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(request.body);
  });
}

/** Seed of the fuzz runs: FUZZ_SEED to replay one, else fixed so that every run is the same. */
export const fuzzSeed = (): number => {
  const fromEnv = Number(process.env.FUZZ_SEED);
  return Number.isInteger(fromEnv) && process.env.FUZZ_SEED !== '' ? fromEnv : 20260515;
};

/**
 * One subtest per operation: `runs` bad requests (seeded by `seed`) made with `token` and either
 * set of path parameters in `fills`, each sent with `send`, must be refused (assertRefused) and
 * leave `state()` as it was before. Returns how many cases ran.
 */
export async function fuzzOperations(
  t: TestContext,
  ops: readonly FuzzOperation[],
  options: {
    token: string;
    fills: readonly [Readonly<Record<string, string>>, Readonly<Record<string, string>>];
    send: (request: BadRequest) => Promise<Answer>;
    state: () => Promise<string>;
    seed: number;
    runs: number;
  },
): Promise<number> {
  const { token, fills, send, state, seed, runs } = options;
  let cases = 0;
  for (const op of ops) {
    await t.test(`${op.method} ${op.path}`, async () => {
      const before = await state();
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(badRequests(op, token, fills[0]), badRequests(op, token, fills[1])),
          async (request) => {
            cases++;
            assertRefused(request, await send(request));
            assert.equal(await state(), before, `${request.kind}: ${request.method} ${request.url}`);
          },
        ),
        { seed, numRuns: runs, endOnFailure: true },
      );
    });
  }
  return cases;
}

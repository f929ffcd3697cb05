import { z } from 'zod';
import { MERGE_PATCH_TYPE } from './merge-patch.js';
import { describeZodError, Problem, STATUS_TITLES } from './problem.js';

/*
 * An HTTP API declared as a table of plain objects: per route its method, path, input schemas,
 * reply schema and status, and the error codes it may answer. The server registers and validates
 * from the table, clients build their calls from it and the OpenAPI document is generated from it,
 * so a path or a schema is written once. Nothing here knows Fastify or any one API.
 */

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface RouteSpec<Code extends string = string> {
  method: HttpMethod;
  /** Fastify-style template, e.g. `/v1/vms/:name`; every `:segment` is a key of `params`. */
  path: string;
  summary: string;
  params?: z.ZodObject;
  query?: z.ZodObject;
  /** JSON request body. A route without one accepts no body (or an empty object). */
  body?: z.ZodType;
  /** Status of a successful reply. */
  status: number;
  /** Schema of a successful reply; none for 204. */
  response?: z.ZodType;
  /** Media type of a reply that is not JSON (its response schema is then a string). */
  produces?: string;
  /** Error codes this route answers beyond those every route of its API may answer. */
  errors: readonly Code[];
  /** Successful replies other than the usual one (e.g. a dry run's 200), for the OpenAPI document. */
  otherReplies?: readonly OtherReply[];
}

export interface OtherReply {
  status: number;
  description: string;
  schema: z.ZodType;
}

export type RouteTable<Code extends string = string> = Record<string, RouteSpec<Code>>;

/** Identity that keeps a route's exact schema types, and checks its error codes against `Code`. */
export function defineRoute<Code extends string>() {
  return <const R extends RouteSpec<Code>>(route: R): R => route;
}

// ---- types derived from a route ----

/** The schema of one part of a route; never when the route has no such part. */
type Part<R, K extends 'params' | 'query' | 'body' | 'response'> = R extends {
  [P in K]: infer S extends z.ZodType;
}
  ? S
  : never;
type OutputOf<S, Else> = [S] extends [never] ? Else : S extends z.ZodType ? z.output<S> : Else;
type InputOf<S> = S extends z.ZodType ? z.input<S> : never;

/** What a server handler receives: every part already parsed, defaults applied. */
export interface RouteInput<R> {
  params: OutputOf<Part<R, 'params'>, Record<string, never>>;
  query: OutputOf<Part<R, 'query'>, Record<string, never>>;
  body: OutputOf<Part<R, 'body'>, undefined>;
}

/** What a server handler returns (and a client call resolves to). */
export type RouteResult<R> = OutputOf<Part<R, 'response'>, void>;

/** A server's handler of one route: typed input in, the reply's body out (the status is the route's). */
export type RouteHandler<R> = (input: RouteInput<R>) => RouteResult<R> | Promise<RouteResult<R>>;
export type RouteHandlers<T extends RouteTable> = { [K in keyof T]: RouteHandler<T[K]> };

/** What a client passes: the schemas' input types, only for the parts the route has. */
export type RouteCall<R> = ([Part<R, 'params'>] extends [never]
  ? unknown
  : { params: InputOf<Part<R, 'params'>> }) &
  ([Part<R, 'query'>] extends [never] ? unknown : { query?: InputOf<Part<R, 'query'>> }) &
  ([Part<R, 'body'>] extends [never] ? unknown : { body: InputOf<Part<R, 'body'>> });

// ---- paths ----

const PARAM = /:([A-Za-z_][A-Za-z0-9_]*)/g;

/** The `:name` segments of a path template, in order. */
export function pathParams(template: string): string[] {
  return [...template.matchAll(PARAM)].map((m) => m[1] ?? '');
}

type Scalar = string | number | boolean;

/** The path with every `:name` filled in (URL-encoded), plus a query string of the defined values. */
export function routeUrl(
  route: Pick<RouteSpec, 'path'>,
  params: Record<string, Scalar> = {},
  query: Record<string, Scalar | undefined> = {},
): string {
  const path = route.path.replace(PARAM, (_match, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`${route.path}: no value for :${name}`);
    return encodeURIComponent(String(value));
  });
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined) search.set(key, String(value));
  const qs = search.toString();
  return qs ? `${path}?${qs}` : path;
}

/** `/v1/vms/:name` -> `/v1/vms/{name}`. */
export function openApiPath(template: string): string {
  return template.replace(PARAM, '{$1}');
}

// ---- input validation at the edge ----

export type Checked<T> = { ok: true; value: T } | { ok: false; field: string | undefined; detail: string };

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The first key in `value` that `schema` does not declare, as a path like `disks.0.sizz`. zod
 * drops unknown keys silently, and a misspelt optional field would then quietly take its default.
 * Objects with a catchall (loose or strict) and unions are left to zod itself.
 */
export function unknownField(
  schema: z.ZodType,
  value: unknown,
  at: readonly PropertyKey[] = [],
): string | undefined {
  if (
    schema instanceof z.ZodOptional ||
    schema instanceof z.ZodNullable ||
    schema instanceof z.ZodDefault ||
    schema instanceof z.ZodPrefault ||
    schema instanceof z.ZodReadonly ||
    schema instanceof z.ZodCatch
  )
    return unknownField(schema.def.innerType as z.ZodType, value, at);
  if (schema instanceof z.ZodPipe) return unknownField(schema.def.in as z.ZodType, value, at);
  if (schema instanceof z.ZodArray && Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = unknownField(schema.element as z.ZodType, item, [...at, i]);
      if (found !== undefined) return found;
    }
  }
  if (schema instanceof z.ZodRecord && isRecord(value)) {
    for (const [key, item] of Object.entries(value)) {
      const found = unknownField(schema.def.valueType as z.ZodType, item, [...at, key]);
      if (found !== undefined) return found;
    }
  }
  if (schema instanceof z.ZodObject && isRecord(value)) {
    const shape: Record<string, z.ZodType> = schema.shape;
    for (const [key, item] of Object.entries(value)) {
      const field = shape[key];
      if (field === undefined || !Object.hasOwn(shape, key)) {
        if (schema.def.catchall === undefined) return [...at, key].map(String).join('.');
        continue;
      }
      const found = unknownField(field, item, [...at, key]);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/** Validates one part of a request: unknown fields first (naming the field), then the schema. */
export function checkPart(schema: z.ZodType, value: unknown): Checked<unknown> {
  const unknown = unknownField(schema, value);
  if (unknown !== undefined) return { ok: false, field: unknown, detail: `${unknown}: unknown field` };
  const result = schema.safeParse(value);
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, ...describeZodError(result.error) };
}

const firstKey = (value: unknown) => (isRecord(value) ? Object.keys(value)[0] : undefined);
const fail = (detail: string, field: string | undefined): Checked<never> => ({ ok: false, field, detail });
const ok = (value: unknown): Checked<unknown> => ({ ok: true, value });

/** PUT replaces a document and PATCH changes one: neither means anything without a body. */
const needsBody = (route: Pick<RouteSpec, 'method' | 'body'>) =>
  route.body !== undefined && (route.method === 'PUT' || route.method === 'PATCH');

/**
 * Validates the raw params, query and body of a request against its route. A missing body of a
 * POST is an empty object (all-optional bodies may be left out); a PUT or PATCH needs its body, and
 * JSON `null` is no body anywhere (a PUT of null once reset every override). A route without a
 * body schema takes none (an empty object aside), and one without a query schema no query.
 */
export function checkRouteInput<R extends RouteSpec>(
  route: R,
  raw: { params: unknown; query: unknown; body: unknown },
): Checked<RouteInput<R>> {
  const params = route.params ? checkPart(route.params, raw.params ?? {}) : ok({});
  if (!params.ok) return params;

  let query = ok({});
  const extra = firstKey(raw.query);
  if (route.query) query = checkPart(route.query, raw.query ?? {});
  else if (extra !== undefined) query = fail(`${extra}: unknown query parameter`, extra);
  if (!query.ok) return query;

  let body = ok(undefined);
  const stray = firstKey(raw.body);
  if (raw.body === null) body = fail('body: must be a JSON object, not null', 'body');
  else if (raw.body === undefined && needsBody(route))
    body = fail(`body: ${route.method} ${route.path} needs a JSON body (send {} to mean "nothing")`, 'body');
  else if (route.body) body = checkPart(route.body, raw.body ?? {});
  else if (stray !== undefined) body = fail(`${stray}: unknown field (this route takes no body)`, stray);
  else if (raw.body !== undefined && raw.body !== null && !isRecord(raw.body))
    body = fail(`${route.method} ${route.path} takes no request body`, undefined);
  if (!body.ok) return body;

  const value = { params: params.value, query: query.value, body: body.value };
  return { ok: true, value: value as RouteInput<R> };
}

// ---- OpenAPI 3.1 ----

/** What an error code means and with which HTTP statuses it comes (the first is the usual one). */
export interface ErrorInfo {
  statuses: readonly [number, ...number[]];
  about: string;
  /** The problem's title; the status's reason phrase (STATUS_TITLES) when absent. */
  title?: string;
  /** Extension members the problem carries beside code and detail (RFC 9457 §3.2). */
  members?: z.ZodObject;
}
export type ErrorCatalogue<Code extends string> = Readonly<Record<Code, ErrorInfo>>;

type JsonObject = Record<string, unknown>;

const Content = z.record(z.string(), z.looseObject({ schema: z.unknown() }));
/** Enough of an OpenAPI 3.1 document to generate it, serve it and read it back. */
export const OpenApiOperation = z.looseObject({
  operationId: z.string(),
  summary: z.string(),
  parameters: z.array(
    z.looseObject({
      name: z.string(),
      in: z.enum(['path', 'query', 'header']),
      required: z.boolean(),
      schema: z.unknown(),
    }),
  ),
  requestBody: z.looseObject({ required: z.boolean(), content: Content }).optional(),
  responses: z.record(z.string(), z.looseObject({ description: z.string(), content: Content.optional() })),
});
export type OpenApiOperation = z.infer<typeof OpenApiOperation>;
export const OpenApiDocument = z.looseObject({
  openapi: z.literal('3.1.0'),
  info: z.looseObject({ title: z.string(), version: z.string() }),
  components: z.looseObject({ securitySchemes: z.record(z.string(), z.unknown()) }),
  security: z.array(z.record(z.string(), z.array(z.string()))),
  paths: z.record(z.string(), z.record(z.string(), OpenApiOperation)),
});
export type OpenApiDocument = z.infer<typeof OpenApiDocument>;

/** JSON Schema 2020-12's own formats (§7.3); zod also writes its own (`cidrv4`, `starts_with`). */
const STANDARD_FORMATS = new Set([
  'date-time',
  'date',
  'time',
  'duration',
  'email',
  'idn-email',
  'hostname',
  'idn-hostname',
  'ipv4',
  'ipv6',
  'uri',
  'uri-reference',
  'iri',
  'iri-reference',
  'uuid',
  'uri-template',
  'json-pointer',
  'relative-json-pointer',
  'regex',
]);

export function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonObject {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, {
    io,
    unrepresentable: 'any',
    override: ({ zodSchema, jsonSchema }) => {
      // No format of zod's own: a validator would not know it (the patterns beside them say it).
      if (typeof jsonSchema.format === 'string' && !STANDARD_FORMATS.has(jsonSchema.format))
        delete jsonSchema.format;
      // A request's object takes no member it does not declare (checkPart refuses them, whether
      // or not the schema is strict): the document says so.
      const def = zodSchema._zod.def;
      if (io === 'input' && def.type === 'object' && !('catchall' in def && def.catchall))
        jsonSchema.additionalProperties = false;
    },
  });
  return rest;
}

function parameters(
  schema: z.ZodObject | undefined,
  where: 'path' | 'query',
): OpenApiOperation['parameters'] {
  if (!schema) return [];
  const json = jsonSchema(schema, 'input') as { properties?: JsonObject; required?: string[] };
  return Object.entries(json.properties ?? {}).map(([name, s]) => ({
    name,
    in: where,
    required: where === 'path' || (json.required ?? []).includes(name),
    schema: s,
  }));
}

/** A PATCH body is a JSON merge patch (RFC 7396), under its own media type and plain JSON. */
function bodyContent(method: HttpMethod, schema: JsonObject): Record<string, { schema: JsonObject }> {
  return method === 'PATCH'
    ? { [MERGE_PATCH_TYPE]: { schema }, 'application/json': { schema } }
    : { 'application/json': { schema } };
}

/**
 * The OpenAPI 3.1 document of a route table. Each route's error answers are grouped by status,
 * each a problem (RFC 9457) whose `code` is one of the codes listed for that status.
 */
export function openApiDocument<Code extends string>(options: {
  title: string;
  version: string;
  routes: RouteTable<Code>;
  errors: ErrorCatalogue<Code>;
  /** Codes every route may answer (authentication, input validation, internal failures). */
  commonErrors: readonly Code[];
  /** Optional request headers every route takes (e.g. the agent's manager epoch). */
  commonHeaders?: readonly { name: string; description: string; schema: z.ZodType }[];
  /** SPDX identifier of the API's license (redocly's recommended rules want one). */
  license?: string;
  /** Who serves the document, for its one relative server entry. */
  servedBy?: string;
}): OpenApiDocument {
  const problem = jsonSchema(Problem, 'output');
  const paths: OpenApiDocument['paths'] = {};
  for (const [operationId, r] of Object.entries(options.routes)) {
    const responses: OpenApiOperation['responses'] = {};
    const reply = r.response && {
      [r.produces ?? 'application/json']: { schema: jsonSchema(r.response, 'output') },
    };
    responses[String(r.status)] = {
      description: r.status === 204 ? 'Done' : 'OK',
      ...(reply ? { content: reply } : {}),
    };
    for (const other of r.otherReplies ?? [])
      responses[String(other.status)] = {
        description: other.description,
        content: { 'application/json': { schema: jsonSchema(other.schema, 'output') } },
      };
    const byStatus = new Map<number, Code[]>();
    for (const code of new Set([...r.errors, ...options.commonErrors])) {
      for (const status of options.errors[code].statuses)
        byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
    }
    for (const [status, codes] of [...byStatus].sort(([a], [b]) => a - b)) {
      const info = (c: Code): ErrorInfo => options.errors[c];
      const titles = [...new Set(codes.map((c) => info(c).title ?? STATUS_TITLES[status] ?? 'Error'))];
      // A code's extension members, optional in the group's schema (other codes lack them).
      const members = codes.flatMap((c) => {
        const schema = info(c).members;
        return schema ? Object.entries((jsonSchema(schema, 'output').properties ?? {}) as JsonObject) : [];
      });
      const properties = {
        ...(problem.properties as JsonObject),
        ...Object.fromEntries(members),
        title: { type: 'string', enum: titles },
        code: { type: 'string', enum: codes },
      };
      responses[String(status)] = {
        description: codes.map((c) => `${c}: ${options.errors[c].about}`).join('; '),
        content: { 'application/problem+json': { schema: { ...problem, properties } } },
      };
    }
    const path = openApiPath(r.path);
    paths[path] ??= {};
    paths[path][r.method.toLowerCase()] = {
      operationId,
      summary: r.summary,
      parameters: [
        ...parameters(r.params, 'path'),
        ...parameters(r.query, 'query'),
        ...(options.commonHeaders ?? []).map((h) => ({
          name: h.name,
          in: 'header' as const,
          required: false,
          description: h.description,
          schema: jsonSchema(h.schema, 'input'),
        })),
      ],
      ...(r.body
        ? {
            requestBody: {
              // Left out, a POST body is an empty object: required only when that would not do.
              required: needsBody(r) || !r.body.safeParse({}).success,
              content: bodyContent(r.method, jsonSchema(r.body, 'input')),
            },
          }
        : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: options.title,
      version: options.version,
      ...(options.license ? { license: { name: options.license, identifier: options.license } } : {}),
    },
    // Relative: the document is served by the server it describes, at whatever address it has.
    ...(options.servedBy ? { servers: [{ url: '/', description: options.servedBy }] } : {}),
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{ bearer: [] }],
    paths,
  };
}

/** An answer a server gave outside its route's declaration. */
export interface ContractBreach {
  /** `METHOD /path/:template` */
  route: string;
  detail: string;
}

/**
 * Holds a server to its route table: every error code it answers must be one its route lists (or
 * one every route may answer), and, when `replies` is on, every successful reply must pass the
 * route's response schema. Servers report each breach; tests collect them and expect none.
 */
export class ContractCheck {
  readonly #routes = new Map<string, RouteSpec>();
  constructor(
    table: RouteTable,
    private readonly common: readonly string[],
    private readonly onBreach: (breach: ContractBreach) => void,
    private readonly replies = false,
  ) {
    for (const route of Object.values(table)) this.#routes.set(`${route.method} ${route.path}`, route);
  }

  /** An error answered on a route (`path` is the route's template, undefined when none matched). */
  error(method: string, path: string | undefined, code: string): void {
    const key = `${method} ${path}`;
    const route = this.#routes.get(key);
    if (!route || this.common.includes(code) || (route.errors as readonly string[]).includes(code)) return;
    this.onBreach({ route: key, detail: `error code ${code} is not declared` });
  }

  /** A successful reply of `route`. */
  reply(route: RouteSpec, result: unknown): void {
    if (!this.replies || !route.response) return;
    const checked = route.response.safeParse(result);
    if (!checked.success)
      this.onBreach({
        route: `${route.method} ${route.path}`,
        detail: `reply refused by its schema: ${z.prettifyError(checked.error)}`,
      });
  }
}

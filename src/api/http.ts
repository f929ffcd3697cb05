import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { createSecureContext, type SecureContext } from 'node:tls';
import { z } from 'zod';
import { ApiError, Problem } from './problem.js';
import { routeUrl, type RouteCall, type RouteResult, type RouteSpec } from './route-table.js';

/** The client side of mutual TLS: the CA that signed the server, and this caller's certificate. */
export interface TlsClientIdentity {
  /** PEM: the fabric CA, or (enrollment) the one self-signed certificate a join token pins. */
  ca: string;
  cert?: string;
  key?: string;
  /** The server's certificate is pinned by `ca` (enrollment): its names are not checked. */
  pinned?: boolean;
}

/** Where a client sends its requests, and how it proves who it is. */
export interface HttpEndpoint {
  baseUrl: string;
  /** Sent as `Authorization: Bearer`: the manager's API, an agent's break-glass socket. */
  token?: string;
  /** HTTPS with this identity (an agent's API on the fabric). */
  tls?: TlsClientIdentity;
  /** HTTP over this local unix socket (an agent's break-glass socket); baseUrl gives the path. */
  socketPath?: string;
  /**
   * Headers added to each request, asked for as it is sent (a manager's leader epoch: it throws
   * when the manager no longer leads, and the request is not sent).
   */
  headers?: () => Record<string, string>;
}

/** A bearer-token JSON client for one base URL; every reply is validated against its schema. */
export class JsonHttpClient {
  readonly baseUrl: string;
  constructor(
    readonly endpoint: HttpEndpoint,
    private readonly timeoutMs = 30_000,
  ) {
    this.baseUrl = endpoint.baseUrl;
  }

  async request<T extends z.ZodType>(
    method: string,
    path: string,
    schema: T,
    body?: unknown,
    options: { timeoutMs?: number } = {},
  ): Promise<z.infer<T>> {
    const response = await this.raw(method, path, body, options);
    const text = await response.text();
    const json: unknown = text.length ? JSON.parse(text) : undefined;
    return schema.parse(json);
  }

  /**
   * Calls one route of a route table: its method and path (params filled in, query appended), the
   * body as given; the reply is checked against the route's response schema.
   */
  async call<R extends RouteSpec>(
    route: R,
    input: RouteCall<R>,
    options: { timeoutMs?: number } = {},
  ): Promise<RouteResult<R>> {
    // RouteCall<R> holds the schemas' input types; path and query values are scalars by then.
    const { params, query, body } = input as {
      params?: Record<string, string | number | boolean>;
      query?: Record<string, string | number | boolean | undefined>;
      body?: unknown;
    };
    const url = routeUrl(route, params, query);
    // A PATCH body is a merge patch; it goes as application/json, which both servers take for one
    // (and an agent older than merge-patch+json takes at all).
    const response = await this.raw(route.method, url, body, options);
    const text = await response.text();
    if (!route.response) return undefined as RouteResult<R>;
    const reply: unknown = route.produces ? text : text.length ? JSON.parse(text) : undefined;
    return route.response.parse(reply) as RouteResult<R>;
  }

  /** Sends the request and throws ApiError on a non-2xx reply; the body is left to the caller. */
  async raw(
    method: string,
    path: string,
    body?: unknown,
    options: { timeoutMs?: number } = {},
  ): Promise<Response> {
    const headers: Record<string, string> = { ...this.endpoint.headers?.() };
    if (this.endpoint.token !== undefined) headers.authorization = `Bearer ${this.endpoint.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const signal = AbortSignal.timeout(options.timeoutMs ?? this.timeoutMs);
    const payload = body === undefined ? null : JSON.stringify(body);
    const url = new URL(path, this.baseUrl);
    const response =
      this.endpoint.tls === undefined && this.endpoint.socketPath === undefined
        ? await fetch(url, { method, headers, body: payload, signal })
        : await nodeRequest(this.endpoint, url, { method, headers, body: payload, signal });
    if (!response.ok) {
      const text = await response.text();
      let problem: Problem;
      let body: unknown;
      try {
        body = JSON.parse(text);
        problem = Problem.parse(body);
      } catch {
        problem = {
          type: 'about:blank',
          title: response.statusText,
          status: response.status,
          code: 'http-error',
          detail: text || response.statusText,
        };
      }
      throw new ApiError(problem, body);
    }
    return response;
  }
}

/** Parsed TLS identities kept, most recently used last (the manager's own, a few enrolling hosts). */
const CONTEXTS_KEPT = 16;
const contexts = new Map<string, SecureContext>();

/**
 * The identity's parsed CA, certificate and key. Parsing them costs the event loop a millisecond or
 * more, and every call opens a new connection (below): the manager's calls to a thousand agents
 * parsed the same PEM each time, and its API's replies queued behind that.
 */
function secureContextOf(tls: TlsClientIdentity): SecureContext {
  const id = `${tls.ca}\0${tls.cert ?? ''}\0${tls.key ?? ''}`;
  let context = contexts.get(id);
  if (context) contexts.delete(id);
  else
    context = createSecureContext({
      ca: tls.ca,
      ...(tls.cert === undefined ? {} : { cert: tls.cert }),
      ...(tls.key === undefined ? {} : { key: tls.key }),
    });
  contexts.set(id, context);
  if (contexts.size > CONTEXTS_KEPT) contexts.delete(contexts.keys().next().value ?? id);
  return context;
}

/**
 * One request with node:http(s): what fetch cannot do (client certificates, a pinned server
 * certificate, a unix socket). A new connection each time: a TLS handshake costs a millisecond,
 * and no kept-alive socket outlives a cut link.
 */
function nodeRequest(
  endpoint: HttpEndpoint,
  url: URL,
  init: { method: string; headers: Record<string, string>; body: string | null; signal: AbortSignal },
): Promise<Response> {
  const tls = endpoint.tls;
  const options: https.RequestOptions = {
    method: init.method,
    headers:
      init.body === null ? init.headers : { ...init.headers, 'content-length': Buffer.byteLength(init.body) },
    signal: init.signal,
    agent: false,
    ...(endpoint.socketPath === undefined
      ? { hostname: url.hostname.replace(/^\[|\]$/g, ''), port: url.port }
      : { socketPath: endpoint.socketPath }),
    path: `${url.pathname}${url.search}`,
    ...(tls === undefined
      ? {}
      : {
          secureContext: secureContextOf(tls),
          // A pinned certificate is the only one trusted: whose name it bears does not matter.
          ...(tls.pinned ? { checkServerIdentity: () => undefined } : {}),
        }),
  };
  const send = tls !== undefined && endpoint.socketPath === undefined ? https.request : http.request;
  return new Promise((resolve, reject) => {
    const request = send(options, (res) => {
      const headers = new Headers();
      for (const [key, value] of Object.entries(res.headers))
        if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(', ') : value);
      const status = res.statusCode ?? 502;
      const nobody = status === 204 || status === 304 || init.method === 'HEAD';
      if (nobody) res.resume();
      resolve(
        new Response(nobody ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
          status,
          statusText: res.statusMessage ?? '',
          headers,
        }),
      );
    });
    request.on('error', reject);
    request.end(init.body ?? undefined);
  });
}

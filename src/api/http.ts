import { z } from 'zod';
import { ApiError, Problem } from './problem.js';
import { routeUrl, type RouteCall, type RouteResult, type RouteSpec } from './route-table.js';

/** A bearer-token JSON client for one base URL; every reply is validated against its schema. */
export class JsonHttpClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
    private readonly timeoutMs = 30_000,
  ) {}

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
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(new URL(path, this.baseUrl), {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      signal: AbortSignal.timeout(options.timeoutMs ?? this.timeoutMs),
    });
    if (!response.ok) {
      const text = await response.text();
      let problem: Problem;
      try {
        problem = Problem.parse(JSON.parse(text));
      } catch {
        problem = {
          type: 'about:blank',
          title: response.statusText,
          status: response.status,
          code: 'http-error',
          detail: text || response.statusText,
        };
      }
      throw new ApiError(problem);
    }
    return response;
  }
}

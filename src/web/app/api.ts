// The console's client of the manager's REST API: every call is built from its route in the
// route table (src/api/manager-routes.ts), typed by it, and its reply checked against the route's
// schema — the same table the server registers and the OpenAPI document comes from.
import {
  ApiError,
  managerRoutes,
  Problem,
  routeUrl,
  type RouteCall,
  type RouteResult,
} from '../../api/browser.js';

export type Routes = typeof managerRoutes;
export type RouteName = keyof Routes;
export type Input<K extends RouteName> = RouteCall<Routes[K]>;
export type Output<K extends RouteName> = RouteResult<Routes[K]>;

export { ApiError };

type Scalar = string | number | boolean;

/** The query without its empty values (an unset filter, an empty search box). */
function defined(query: Record<string, unknown> | undefined): Record<string, Scalar> {
  const out: Record<string, Scalar> = {};
  for (const [key, value] of Object.entries(query ?? {}))
    if (typeof value === 'string' ? value !== '' : typeof value === 'number' || typeof value === 'boolean')
      out[key] = value as Scalar;
  return out;
}

/** The URL and fetch options of one call (also used for the event streams, which read the body themselves). */
export function request<K extends RouteName>(
  name: K,
  input: Input<K>,
  token: string,
): { url: string; init: RequestInit } {
  const route = managerRoutes[name];
  const { params, query, body } = input as {
    params?: Record<string, Scalar>;
    query?: Record<string, unknown>;
    body?: unknown;
  };
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  return {
    url: routeUrl(route, params, defined(query)),
    init: { method: route.method, headers, body: body === undefined ? null : JSON.stringify(body) },
  };
}

/** Turns a non-2xx reply into the manager's typed problem (callers branch on `code`). */
export async function problemOf(response: Response): Promise<ApiError> {
  const text = await response.text();
  try {
    return new ApiError(Problem.parse(JSON.parse(text)));
  } catch {
    return new ApiError({
      type: 'about:blank',
      title: response.statusText,
      status: response.status,
      code: 'http-error',
      detail: text || response.statusText || `HTTP ${response.status}`,
    });
  }
}

/** Calls one route with the user's token; resolves to its reply, validated. */
export async function call<K extends RouteName>(
  name: K,
  input: Input<K>,
  token: string,
  signal?: AbortSignal,
): Promise<Output<K>> {
  const { url, init } = request(name, input, token);
  const response = await fetch(url, { ...init, ...(signal ? { signal } : {}) });
  if (!response.ok) throw await problemOf(response);
  const route = managerRoutes[name];
  const text = await response.text();
  if (!('response' in route) || route.response === undefined) return undefined as Output<K>;
  const reply: unknown =
    'produces' in route && route.produces ? text : text.length ? JSON.parse(text) : undefined;
  return route.response.parse(reply) as Output<K>;
}

/** One line for a person: what failed and, when the manager named it, which field. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError)
    return error.field ? `${error.message} (field: ${error.field})` : error.message;
  return error instanceof Error ? error.message : String(error);
}

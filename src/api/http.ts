import { z } from 'zod';
import { ApiError, Problem } from './problem.js';

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

import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/**
 * The page loads only its own script and stylesheet and calls only its own origin; it is never
 * framed (clickjacking). Inline style attributes (the progress bars' widths) are the one
 * inline thing allowed; inline script is not.
 */
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; " +
    "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/**
 * Serves the web console's static files at `/`. The files are public (the page asks for a token
 * and then calls /api/v1 like any other client); only the files present at start are served, read
 * once, so no request path ever reaches the file system.
 */
export async function serveConsole(app: FastifyInstance, dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const type = contentTypes[path.extname(name)];
    if (!type) continue;
    const body = await readFile(path.join(dir, name));
    const urls = name === 'index.html' ? ['/', '/index.html'] : [`/${name}`];
    for (const url of urls)
      app.get(url, async (_request, reply) => reply.headers(SECURITY_HEADERS).type(type).send(body));
  }
}

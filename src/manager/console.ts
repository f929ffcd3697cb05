import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
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
 * Serves the web console's built files (src/web/dist, with its assets/ folder) at `/`. The files are public (the page asks for a token
 * and then calls /api/v1 like any other client); only the files present at start are served, read
 * once, so no request path ever reaches the file system.
 */
export async function serveConsole(
  app: FastifyInstance,
  dir: string,
  log: (message: string) => void = () => {},
): Promise<void> {
  if (!existsSync(path.join(dir, 'index.html'))) {
    // A source checkout whose console was never built: the API serves on, and says why `/` is empty.
    log(`no web console at ${dir} (build it: npm run build:web); serving the API only`);
    return;
  }
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    const type = contentTypes[path.extname(entry.name)];
    if (!entry.isFile() || !type) continue;
    const file = path.join(entry.parentPath, entry.name);
    const name = path.relative(dir, file).split(path.sep).join('/');
    const body = await readFile(file);
    // The built bundle's names carry a hash of their content: a browser may keep them for good.
    const cache = name.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'no-cache';
    const urls = name === 'index.html' ? ['/', '/index.html'] : [`/${name}`];
    for (const url of urls)
      app.get(url, async (_request, reply) =>
        reply.headers(SECURITY_HEADERS).header('cache-control', cache).type(type).send(body),
      );
  }
}
